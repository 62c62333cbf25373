"""Command line: ``sftlens lab | audit | data | train | report``.

Each subcommand lives in :mod:`sftlens.commands` as a module with ``add_parser(subparsers)`` and a
``run(args) -> int``. Errors a user can fix (bad input file, missing model) are printed as one
sentence and exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .core.errors import SftlensError

COMMANDS = ["lab", "audit", "data", "train", "report"]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per command."""
    from . import __version__

    p = argparse.ArgumentParser(prog="sftlens", description="What did fine-tuning teach: reasoning, or the look of answers?")
    p.add_argument("--version", action="version", version=f"sftlens {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
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
    try:
        return int(args.func(args) or 0)
    except (SftlensError, FileNotFoundError) as e:
        print(f"sftlens {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sftlens {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
