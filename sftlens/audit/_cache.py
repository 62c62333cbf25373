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
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        good_end = 0
        pos = 0
        for i, raw in enumerate(lines):
            last = i == len(lines) - 1
            end = pos + len(raw) + (0 if last else 1)
            if raw.strip():
                try:
                    obj = json.loads(raw)
                    if not isinstance(obj, dict) or self.key_field not in obj:
                        raise ValueError
                except ValueError:
                    if last or all(not x.strip() for x in lines[i + 1:]):
                        self.dropped_partial = True
                        break
                    raise RecordError(f"{self.path}:{i + 1}: not a valid record (no '{self.key_field}' or "
                                      "bad JSON); delete the file to start over") from None
                self.records[obj[self.key_field]] = obj
            if not last:
                good_end = end
            elif raw.strip():
                good_end = end
            pos = end
        if self.dropped_partial:
            with self.path.open("r+b") as f:
                f.truncate(good_end)

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
                with self.path.open("rb") as rf:
                    rf.seek(-1, os.SEEK_END)
                    if rf.read(1) != b"\n":
                        f.write("\n")
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        for r in records:
            self.records[r[self.key_field]] = r


def _hash(obj: Any, n: int = 24) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()[:n]


def sample_key(identity: str, name: str, revision: str | None, adapter: str | None, prompt: str,
               gen: dict) -> str:
    """Cache key of one generation: model identity, path/id, revision, adapter state, the exact
    (chat-formatted) prompt and the generation parameters (including the seed).

    >>> k = sample_key("abc", "m", None, None, "Q: 1 + 1 ?\\n", {"max_new_tokens": 8, "seed": 0})
    >>> k == sample_key("abd", "m", None, None, "Q: 1 + 1 ?\\n", {"max_new_tokens": 8, "seed": 0})
    False
    """
    return _hash({"identity": identity, "name": name, "revision": revision, "adapter": adapter,
                  "prompt": prompt, "gen": gen})
