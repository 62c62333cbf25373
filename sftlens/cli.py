"""Command line: ``sftlens lab | audit | data | train | proxy | drift | report``.

Each subcommand lives in :mod:`sftlens.commands` as a module with ``add_parser(subparsers)`` and a
``run(args) -> int``. Errors a user can fix (bad input file, missing model) are printed as one
sentence and exit with status 2; anything else is a bug: it keeps its traceback, says how to report
it and exits with status 1. A bad option of a subcommand prints that subcommand's usage. A command
module that sets ``RESUMABLE = True`` resumes when rerun after an interruption.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .core.errors import SftlensError

COMMANDS = ["lab", "audit", "data", "train", "proxy", "drift", "report"]


class CommandParser(argparse.ArgumentParser):
    """A subcommand's parser: an unknown option is reported with this subcommand's usage (plain
    argparse hands unknown options up to the top-level parser, which prints its own usage)."""

    def parse_known_args(self, args=None, namespace=None):
        ns, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return ns, extras


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per command."""
    from . import __version__

    p = argparse.ArgumentParser(prog="sftlens", description="What did fine-tuning teach: reasoning, or the look of answers?")
    p.add_argument("--version", action="version", version=f"sftlens {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=CommandParser)
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"sftlens.commands.{name}")
        except ModuleNotFoundError as e:  # a command not built yet
            if e.name == f"sftlens.commands.{name}":
                continue
            raise
        mod.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sftlens`` console script."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    name = " ".join(filter(None, (args.command, getattr(args, "data_command", None), getattr(args, "method", None))))
    try:
        return int(args.func(args) or 0)
    except SftlensError as e:
        print(f"sftlens {name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resumable = getattr(importlib.import_module(f"sftlens.commands.{args.command}"), "RESUMABLE", False)
        print(f"sftlens {name}: interrupted; "
              + ("rerun the same command to resume" if resumable else "no output was written"), file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001 - a bug: keep the traceback and say where to report it
        import traceback

        from . import __version__

        traceback.print_exc()
        print(f"sftlens {name}: internal error (a bug in sftlens {__version__}, not in your input); "
              f"please report it to the sftlens maintainers with the command line and the traceback above", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
