"""Checks every command runs on its inputs and outputs before any expensive work.

Each check costs at most a read of the file (no model, no torch) and raises :class:`UserError` with
one sentence naming the option, the file (and line) and what would be valid. Commands call them
first, so a bad input fails in well under a second and leaves nothing behind: output folders are
created only after every check has passed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from .errors import UserError

#: Seeds go to ``random``, ``numpy`` and ``torch``; numpy accepts 0 .. 2**32 - 1.
MAX_SEED = 2**32 - 1

_CHUNK = 1 << 20


def check_seed(seed: int, option: str = "--seed") -> int:
    """``seed`` if it is in ``0 .. 2**32 - 1``."""
    if not 0 <= seed <= MAX_SEED:
        raise UserError(f"{option} must be between 0 and {MAX_SEED}, got {seed}")
    return seed


def check_at_least(value: int | float | None, minimum: int | float, option: str) -> None:
    """``value`` (when given) is at least ``minimum``."""
    if value is not None and value < minimum:
        raise UserError(f"{option} must be at least {minimum}, got {value}")


def check_input_file(path: str | os.PathLike, option: str) -> Path:
    """``path`` is an existing, readable file of UTF-8 text (no NUL bytes); returns it as a Path.

    The error names the option, the file and, for bad bytes, the line.
    """
    p = Path(path)
    if not p.exists():
        raise UserError(f"{option} {p}: no such file")
    if p.is_dir():
        raise UserError(f"{option} {p}: is a folder, expected a file")
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    try:
        with p.open("rb") as f:
            while chunk := f.read(_CHUNK):
                nul = chunk.find(b"\0")
                try:
                    decoder.decode(chunk[:nul] if nul >= 0 else chunk)
                except UnicodeDecodeError as e:
                    line += chunk[:e.start].count(b"\n")
                    raise UserError(f"{option} {p}:{line}: not UTF-8 text (byte 0x{chunk[e.start]:02x}); "
                                    "expected a UTF-8 text file such as JSONL") from None
                if nul >= 0:
                    line += chunk[:nul].count(b"\n")
                    raise UserError(f"{option} {p}:{line}: a NUL byte, so a binary file; expected a UTF-8 "
                                    "text file such as JSONL")
                line += chunk.count(b"\n")
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                raise UserError(f"{option} {p}:{line}: not UTF-8 text (the file ends inside a character); "
                                "expected a UTF-8 text file such as JSONL") from None
    except PermissionError:
        raise UserError(f"{option} {p}: not readable (permission denied)") from None
    return p


def check_local_input(source: str | None, option: str) -> None:
    """Check ``source`` as a file when it is one on disk or clearly meant as a path; a name that is
    not on disk may be a Hugging Face dataset and is left to the loader."""
    if source is None:
        return
    p = Path(source)
    if p.exists() or source.endswith((".jsonl", ".json", ".txt", ".yaml", ".yml")) or source.startswith((".", "/", "~")):
        check_input_file(p, option)


def check_model_path(path: str | None, option: str, *, adapter: bool = False) -> None:
    """A local model (or adapter) folder exists and holds ``config.json`` (``adapter_config.json``);
    a name that is not on disk is left to the loader as a Hub id."""
    if path is None:
        return
    p = Path(path)
    looks_local = path.startswith((".", "/", "~")) or p.exists() or len(path.split("/")) > 2 or adapter
    if not looks_local:
        return
    if not p.exists():
        raise UserError(f"{option} {path}: does not exist (expected a saved model folder or a Hub id)")
    if not p.is_dir():
        raise UserError(f"{option} {path}: is a file, expected a saved model folder (with config.json)")
    wanted = ("adapter_config.json",) if adapter else ("config.json", "adapter_config.json")
    if not any((p / name).exists() for name in wanted):
        raise UserError(f"{option} {path}: is a folder but not a saved {'adapter' if adapter else 'model'} "
                        f"(no {wanted[0]} inside)")


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_output_path(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = (),
                      kind: str = "file", option: str = "--out") -> Path:
    """``out`` can be written: it is not one of ``inputs`` (an output never replaces an input), it is
    not a folder when a file is wanted nor a file when a folder is wanted, and its nearest existing
    folder is writable. Nothing is created here."""
    if kind not in ("file", "dir"):
        raise ValueError(f"kind must be 'file' or 'dir', got {kind!r}")
    p = Path(out)
    for src in inputs:
        if src is not None and _same(p, Path(src)):
            raise UserError(f"{option} {p}: is also an input; give a different output path (inputs are "
                            "never overwritten)")
    if kind == "file" and p.is_dir():
        raise UserError(f"{option} {p}: is a folder; give the output file name")
    if kind == "dir" and p.exists() and not p.is_dir():
        raise UserError(f"{option} {p}: is an existing file; give a folder (new or existing)")
    anchor = p if (kind == "dir" and p.is_dir()) else p.parent
    while not anchor.exists() and anchor != anchor.parent:
        anchor = anchor.parent
    if not anchor.is_dir():
        raise UserError(f"{option} {p}: cannot be created because {anchor} is a file, not a folder")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise UserError(f"{option} {p}: cannot be written ({anchor} is not writable)")
    return p


__all__ = ["MAX_SEED", "check_at_least", "check_input_file", "check_local_input", "check_model_path",
           "check_output_path", "check_seed"]
