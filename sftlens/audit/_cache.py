"""The audit's caches: an append-only keyed JSONL store and the keys that index it."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..core.record import RecordError


class Store:
    """An append-only JSONL file of records keyed by ``key_field``.

    Opening it reads every record; a truncated last line (an interrupted write) is dropped and cut
    from the file, any other bad line is a :class:`RecordError` naming the line. Later records with
    the same key replace earlier ones.
    """

    def __init__(self, path: str | os.PathLike, key_field: str = "key"):
        self.path = Path(path)
        self.key_field = key_field
        self.records: dict[str, dict] = {}
        self.dropped_partial = False
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        """Read every record; a bad last line (nothing but blank lines after it) is cut from the file."""
        lines = self.path.read_bytes().split(b"\n")
        line_start = 0  # byte offset of the current line
        for lineno, raw in enumerate(lines, 1):
            if raw.strip():
                try:
                    record = json.loads(raw)
                    if not isinstance(record, dict) or self.key_field not in record:
                        raise ValueError
                except ValueError:
                    if all(not rest.strip() for rest in lines[lineno:]):
                        self.dropped_partial = True
                        with self.path.open("r+b") as f:
                            f.truncate(line_start)
                        return
                    raise RecordError(f"{self.path}:{lineno}: not a valid record (no '{self.key_field}' or "
                                      "bad JSON); delete the file to start over") from None
                self.records[record[self.key_field]] = record
            line_start += len(raw) + 1

    def get(self, key: str) -> dict | None:
        """The record with this key, or ``None``."""
        return self.records.get(key)

    def append(self, records: list[dict]) -> None:
        """Append records and flush them to disk (a crash loses at most a partial line)."""
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        with self.path.open("a", encoding="utf-8") as f:
            if f.tell() > 0:
                with self.path.open("rb") as tail:
                    tail.seek(-1, os.SEEK_END)
                    if tail.read(1) != b"\n":
                        f.write("\n")
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        for r in records:
            self.records[r[self.key_field]] = r


def content_hash(obj: Any, n: int = 24) -> str:
    """The first ``n`` hex digits of the SHA-256 of ``obj`` as canonical JSON (sorted keys).

    >>> content_hash({"b": 1, "a": 2}) == content_hash({"a": 2, "b": 1}), len(content_hash("x", 8))
    (True, 8)
    """
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()[:n]


def sample_key(identity: str, name: str, revision: str | None, adapter: str | None, prompt: str,
               gen: dict) -> str:
    """Cache key of one generation: model identity, path/id, revision, adapter state, the exact
    (chat-formatted) prompt and the generation parameters (including the seed).

    >>> k = sample_key("abc", "m", None, None, "Q: 1 + 1 ?\\n", {"max_new_tokens": 8, "seed": 0})
    >>> k == sample_key("abd", "m", None, None, "Q: 1 + 1 ?\\n", {"max_new_tokens": 8, "seed": 0})
    False
    """
    return content_hash({"identity": identity, "name": name, "revision": revision, "adapter": adapter,
                         "prompt": prompt, "gen": gen})


def row_key(sample: str, scorer: str | None, verifier: str, equivalence: str = "strict") -> str:
    """Cache key of one metric row: the sample's key, the scorer's identity, the verifier label and
    the answer equivalence (``strict`` keys as before it existed, so older caches stay valid)."""
    key = {"sample": sample, "scorer": scorer, "verifier": verifier}
    return content_hash(key if equivalence == "strict" else {**key, "equivalence": equivalence})
