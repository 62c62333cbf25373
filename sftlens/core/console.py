"""One place that builds rich consoles and progress bars, so every command looks the same.

Library code takes an optional console (``None`` = silent) and asks :func:`progress` for a bar;
only commands decide where output goes (``stderr`` for progress, ``stdout`` for results).
"""

from __future__ import annotations


def make_console(stderr: bool = True, quiet: bool = False):
    """A rich console writing to stderr (progress, notes) or stdout (results)."""
    from rich.console import Console

    return Console(stderr=stderr, quiet=quiet)


def progress(console=None, *, width: int = 28, transient: bool = False, disable: bool | None = None):
    """A progress display: description, bar, done/total, elapsed, eta and a free ``info`` field.

    ``console=None`` disables it (silent library use); tasks may pass ``info=...`` to ``add_task``
    and ``update``.
    """
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(TextColumn(f"[bold]{{task.description:<{width}}}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                    TextColumn("{task.fields[info]}"), console=console, transient=transient,
                    disable=(console is None) if disable is None else disable)


__all__ = ["make_console", "progress"]
