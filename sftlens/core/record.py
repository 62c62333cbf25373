"""The one record that passes between tasks, data operators, training and metrics.

An :class:`Example` is a reasoning problem with a worked solution: an instruction, a question,
a list of steps and a final answer. Everything else (which task made it, which operator touched it,
difficulty, variant name) lives in ``meta``.

JSONL I/O is strict: a malformed line raises :class:`RecordError` whose message names the file,
the line and the field (``data.jsonl:7: field 'steps': expected a list of strings, got int``),
and writes are atomic (temporary file, then rename), so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .errors import MissingFileError, RecordError


@dataclass
class Example:
    """One reasoning example.

    Attributes:
        id: unique within its file.
        task: the task that generated it (e.g. ``"shop.price"``, ``"gsm8k"``).
        instruction: the task instruction shown before the question; may be empty.
        question: the problem statement.
        steps: the solution's reasoning steps, one string each; may be empty (answer only).
        answer: the final answer as a string (numbers in canonical form, e.g. ``"29"``).
        meta: free-form metadata (variant, difficulty, operators applied, ...).
    """

    id: str
    task: str
    question: str
    answer: str
    steps: list[str] = field(default_factory=list)
    instruction: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict in a stable field order."""
        d = asdict(self)
        return {k: d[k] for k in ("id", "task", "instruction", "question", "steps", "answer", "meta")}

    @classmethod
    def from_dict(cls, d: Any) -> "Example":
        """Validate and build; raises :class:`RecordError` naming the offending field."""
        if not isinstance(d, dict):
            raise RecordError(f"expected a JSON object, got {type(d).__name__}")
        for name in ("id", "question", "answer"):
            if name not in d:
                raise RecordError(f"field '{name}': missing (required fields: id, question, answer)")
        out: dict[str, Any] = {}
        for name in ("id", "task", "instruction", "question", "answer"):
            v = d.get(name, "" if name in ("task", "instruction") else None)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and name in ("id", "answer"):
                v = str(v)
            if not isinstance(v, str):
                raise RecordError(f"field '{name}': expected a string, got {type(v).__name__}")
            out[name] = v
        if not out["question"].strip():
            raise RecordError("field 'question': empty")
        steps = d.get("steps", [])
        if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
            got = type(steps).__name__ if not isinstance(steps, list) else "a list with non-strings"
            raise RecordError(f"field 'steps': expected a list of strings, got {got}")
        meta = d.get("meta", {})
        if not isinstance(meta, dict):
            raise RecordError(f"field 'meta': expected an object, got {type(meta).__name__}")
        unknown = set(d) - {"id", "task", "instruction", "question", "steps", "answer", "meta"}
        if unknown:
            raise RecordError(f"field '{sorted(unknown)[0]}': unknown (valid: id, task, instruction, "
                              "question, steps, answer, meta)")
        return cls(steps=list(steps), meta=dict(meta), **out)


def read_jsonl(path: str | os.PathLike, *, require_steps: bool = False,
               parse: Callable[[Any, int], Example] | None = None, limit: int | None = None) -> list[Example]:
    """Read examples from a JSONL file, one object per line (blank lines are skipped).

    Raises :class:`RecordError` as ``FILE:LINE: field 'x': what is wrong`` on the first bad line;
    with ``require_steps`` an empty step list is an error too. Duplicate ids are an error.
    ``parse(obj, line_number)`` turns one object into an example (default: our schema,
    :meth:`Example.from_dict`); ``limit`` stops after that many examples.
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: no such file")
    parse = parse or (lambda obj, lineno: Example.from_dict(obj))
    out: list[Example] = []
    seen: dict[str, int] = {}
    for lineno, obj in iter_dicts(path):
        try:
            ex = parse(obj, lineno)
            if require_steps and not ex.steps:
                raise RecordError("field 'steps': empty (at least one step is required here)")
        except RecordError as e:
            raise RecordError(f"{path}:{lineno}: {e}") from None
        if ex.id in seen:
            raise RecordError(f"{path}:{lineno}: field 'id': duplicate '{ex.id}' (first on line {seen[ex.id]})")
        seen[ex.id] = lineno
        out.append(ex)
        if limit is not None and len(out) >= limit:
            break
    return out


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~process_umask())  # mkstemp makes 0600; a plain open() would give 0644
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def process_umask() -> int:
    """The process umask: from /proc on Linux, else by setting it and setting it straight back."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_jsonl(path: str | os.PathLike, rows: Iterable[Example | dict[str, Any]]) -> int:
    """Write examples (or plain dicts) as JSONL atomically; returns the number of lines."""
    lines = [json.dumps(r.to_dict() if isinstance(r, Example) else r, ensure_ascii=False) for r in rows]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=True) + "\n")


def iter_dicts(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line; bad JSON raises :class:`RecordError`."""
    path = Path(path)
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise RecordError(f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column "
                                  f"{e.start + 1}); expected a UTF-8 JSONL file") from None
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                # json's own messages may end in "at" ("Invalid control character at"); the line
                # terminator is stripped above so that a line that ends early gets its real column
                msg = e.msg[:-3] if e.msg.endswith(" at") else e.msg
                raise RecordError(f"{path}:{lineno}: not valid JSON ({msg} at column {e.colno})") from None


@dataclass
class Sample:
    """One model's generation for one example: the contract between inference and metrics.

    Attributes:
        id: the example's id.
        model: a label of the model that generated it.
        task: the example's task.
        prompt: the exact text the model was conditioned on.
        completion: the generated text.
        steps: the completion's steps (parsed).
        answer: the answer the model gave in the expected format (``A:`` / ``####``), normalised,
            or ``None`` when it gave none (the *strict* answer).
        flexible_answer: the last number in the completion (the *flexible* answer).
        reference: the reference answer, normalised.
        meta: anything else (variant, generation parameters, cache key, ...).
    """

    id: str
    model: str
    task: str
    prompt: str
    completion: str
    steps: list[str]
    answer: str | None
    flexible_answer: str | None
    reference: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def correct(self) -> bool:
        """Strict correctness: the formatted answer equals the reference."""
        return self.answer is not None and self.answer == self.reference

    @property
    def flexible_correct(self) -> bool:
        """Flexible correctness: the last number equals the reference."""
        return self.flexible_answer is not None and self.flexible_answer == self.reference

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Sample":
        return cls(**{k: d[k] for k in ("id", "model", "task", "prompt", "completion", "steps", "answer",
                                        "flexible_answer", "reference")}, meta=d.get("meta", {}))
