"""One entry point for every data source the ``sftlens data`` commands accept.

:func:`load_examples` reads

- our JSONL (:func:`~sftlens.core.record.read_jsonl`: ``id``, ``question``, ``steps``, ``answer``...);
- GSM8K format (``question`` and ``answer`` strings, the answer ending in ``#### N``), through
  :func:`~sftlens.tasks.gsm8k.load_gsm8k`;
- any JSONL with a field mapping (``question_field``, ``answer_field``, and ``steps_field`` or a
  ``step_splitter`` regex);
- a Hugging Face dataset name (``owner/name`` or ``owner/name:config``) when the path does not exist
  and the machine is online (``datasets.load_dataset``).

Bad input raises :class:`~sftlens.core.record.RecordError` as ``FILE:LINE: field 'x': ...`` on the
first bad record, before anything is written.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable

from ..core.format import normalize_answer
from ..core.record import Example, RecordError, iter_dicts, read_jsonl

FORMATS = ("auto", "sftlens", "gsm8k", "fields", "hf")
_OUR_FIELDS = {"id", "task", "instruction", "question", "steps", "answer", "meta"}


def _get(obj: dict, dotted: str) -> Any:
    """``obj["a"]["b"]`` for ``"a.b"``; a missing key raises ``KeyError``."""
    cur: Any = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise KeyError(part)
        cur = cur[part]
    return cur


def detect_format(obj: Any) -> str | None:
    """The format a first record suggests: ``sftlens``, ``gsm8k`` or ``None`` (unknown).

    >>> detect_format({"id": "1", "question": "q", "answer": "4", "steps": []})
    'sftlens'
    >>> detect_format({"question": "q", "answer": "2+2=4\\n#### 4"})
    'gsm8k'
    >>> detect_format({"prompt": "q", "label": 1}) is None
    True
    """
    if not isinstance(obj, dict):
        return None
    if {"id", "question", "answer"} <= set(obj) and set(obj) <= _OUR_FIELDS:
        return "sftlens"
    if isinstance(obj.get("question"), str) and isinstance(obj.get("answer"), str) and "####" in obj["answer"]:
        return "gsm8k"
    return None


def split_steps(text: str, splitter: str | None = None) -> list[str]:
    """Split a solution text into non-empty stripped steps (``splitter`` is a regex; default newline).

    >>> split_steps("a = 1. b = 2.", r"(?<=\\.)\\s+")
    ['a = 1.', 'b = 2.']
    """
    parts = re.split(splitter, text) if splitter else text.split("\n")
    return [p.strip() for p in parts if p and p.strip()]


def record_from_fields(obj: dict, *, default_id: str, question_field: str = "question",
                       answer_field: str = "answer", steps_field: str | None = None,
                       step_splitter: str | None = None, id_field: str | None = None,
                       instruction_field: str | None = None, task: str = "custom",
                       instruction: str = "") -> Example:
    """Build an :class:`Example` from any object with a field mapping (dotted names reach into
    nested objects). Without ``steps_field`` the answer field may hold a whole solution: the steps
    are the text before ``####`` (split by ``step_splitter``) and the answer what follows.

    >>> e = record_from_fields({"q": "2 + 2 ?", "sol": "2 + 2 = 4\\n#### 4"}, default_id="x-0",
    ...                        question_field="q", answer_field="sol")
    >>> e.steps, e.answer
    (['2 + 2 = 4'], '4')
    """
    def need(name: str, label: str) -> Any:
        try:
            return _get(obj, name)
        except KeyError:
            raise RecordError(f"field '{name}': missing (the {label} field; fields here: "
                              f"{', '.join(sorted(obj)) or 'none'})") from None

    q = need(question_field, "question")
    if not isinstance(q, str) or not q.strip():
        raise RecordError(f"field '{question_field}': expected a non-empty string, got {type(q).__name__}")
    a = need(answer_field, "answer")
    if isinstance(a, (int, float)) and not isinstance(a, bool):
        a = str(a)
    if not isinstance(a, str):
        raise RecordError(f"field '{answer_field}': expected a string or a number, got {type(a).__name__}")
    steps: list[str] = []
    if steps_field:
        s = need(steps_field, "steps")
        if isinstance(s, str):
            steps = split_steps(s, step_splitter)
        elif isinstance(s, list) and all(isinstance(x, str) for x in s):
            steps = [x.strip() for x in s if x.strip()]
        else:
            raise RecordError(f"field '{steps_field}': expected a list of strings or a text to split, "
                              f"got {type(s).__name__}")
        if "####" in a:
            a = a.rpartition("####")[2]
    elif "####" in a:
        body, _, a = a.rpartition("####")
        steps = split_steps(body, step_splitter)
    elif step_splitter:
        parts = split_steps(a, step_splitter)
        steps, a = (parts[:-1], parts[-1]) if parts else ([], a)
    a = a.strip()
    if not a:
        raise RecordError(f"field '{answer_field}': empty answer")
    ident = default_id
    if id_field:
        v = need(id_field, "id")
        ident = str(v)
    ins = instruction
    if instruction_field:
        v = need(instruction_field, "instruction")
        if not isinstance(v, str):
            raise RecordError(f"field '{instruction_field}': expected a string, got {type(v).__name__}")
        ins = v
    num = normalize_answer(a)
    return Example(id=ident, task=task, instruction=ins, question=q.strip(), steps=steps,
                   answer=num if num is not None and re.fullmatch(r"[\s$]*-?[\d,]*\.?\d+[\s.]*", a) else a)


def _first_record(path: Path) -> tuple[int, Any] | None:
    for lineno, obj in iter_dicts(path):
        return lineno, obj
    return None


def _looks_like_hub_name(source: str) -> bool:
    s = source.split(":")[0]
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", s)) and not s.endswith((".jsonl", ".json", ".txt"))


def _hub_offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes")
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub's host answers a TCP connection (so an offline machine fails in seconds, not
    after the ``datasets`` retry loop)."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _check_steps(examples: Iterable[tuple[str, Example]], require_steps: bool) -> None:
    if not require_steps:
        return
    for where, ex in examples:
        if not ex.steps:
            raise RecordError(f"{where}: field 'steps': empty (at least one step is required here)")


def load_examples(source: str | os.PathLike, fmt: str = "auto", *, question_field: str | None = None,
                  steps_field: str | None = None, step_splitter: str | None = None,
                  answer_field: str | None = None, id_field: str | None = None,
                  instruction_field: str | None = None, task: str | None = None,
                  split: str = "train", hf_config: str | None = None, limit: int | None = None,
                  require_steps: bool = False) -> list[Example]:
    """Read examples from a file or a Hugging Face dataset (see the module docstring).

    ``fmt`` is ``auto`` (detect from the first record; a field mapping given means ``fields``),
    ``sftlens``, ``gsm8k``, ``fields`` or ``hf``. ``limit`` keeps the first N examples. With
    ``require_steps`` an example without steps is an error naming its line. Raises
    :class:`RecordError` (``FILE:LINE: field 'x': ...``) on bad input.
    """
    if fmt not in FORMATS:
        raise RecordError(f"format '{fmt}': unknown (valid: {', '.join(FORMATS)})")
    if step_splitter is not None:
        try:
            re.compile(step_splitter)
        except re.error as e:
            raise RecordError(f"step splitter '{step_splitter}': not a valid regex ({e})") from None
    mapping = dict(question_field=question_field or "question", answer_field=answer_field or "answer",
                   steps_field=steps_field, step_splitter=step_splitter, id_field=id_field,
                   instruction_field=instruction_field)
    has_mapping = any(v is not None for v in (question_field, steps_field, answer_field, step_splitter,
                                              id_field, instruction_field))
    src = str(source)
    path = Path(src)
    if fmt == "hf" or (not path.exists() and fmt == "auto" and _looks_like_hub_name(src)):
        out = _load_hub(src, split, hf_config, mapping, has_mapping, task, limit)
        _check_steps(((f"{src}[{split}]:{i}", e) for i, e in enumerate(out)), require_steps)
        return out
    if not path.exists():
        raise RecordError(f"{path}: no such file")
    if path.is_dir():
        raise RecordError(f"{path}: is a folder, expected a JSONL file")
    if fmt == "auto":
        first = _first_record(path)
        if first is None:
            return []
        lineno, obj = first
        fmt = "fields" if has_mapping else (detect_format(obj) or "")
        if not fmt:
            fields = ", ".join(sorted(obj)) if isinstance(obj, dict) else type(obj).__name__
            raise RecordError(f"{path}:{lineno}: cannot tell the format (fields: {fields}); name the fields "
                              "with --question-field, --answer-field and --steps-field or --step-splitter")
    if fmt == "sftlens":
        out = read_jsonl(path, require_steps=require_steps)
        return out[:limit] if limit is not None else out
    if fmt == "gsm8k":
        from ..tasks.gsm8k import load_gsm8k

        out = load_gsm8k(path, limit=limit)
        _check_steps(((f"{path}:{e.meta.get('line', '?')}", e) for e in out), require_steps)
        return out
    def parse(obj: Any, lineno: int) -> Example:
        if not isinstance(obj, dict):
            raise RecordError(f"expected a JSON object, got {type(obj).__name__}")
        ex = record_from_fields(obj, default_id=f"{path.stem}-{lineno - 1}", task=task or path.stem, **mapping)
        ex.meta = {"source": str(path), "line": lineno}
        return ex

    return read_jsonl(path, require_steps=require_steps, parse=parse, limit=limit)


def _load_hub(source: str, split: str, config: str | None, mapping: dict, has_mapping: bool,
              task: str | None, limit: int | None) -> list[Example]:
    name, _, cfg = source.partition(":")
    config = config or cfg or None
    offline = _hub_offline()
    if not offline and not _hub_reachable():
        raise RecordError(f"{source}: no such file, and the Hugging Face Hub cannot be reached (offline?); "
                          "give a local JSONL file or check the path (a dataset already in the local cache "
                          "loads with HF_HUB_OFFLINE=1)")
    try:
        import datasets

        ds = datasets.load_dataset(name, config, split=split)
    except Exception as e:  # noqa: BLE001 - any failure becomes one sentence for the user
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        hint = ("Hugging Face datasets are offline here (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set) and it is "
                "not in the local cache" if offline else "is the name right?")
        raise RecordError(f"{source}: no such file, and loading it as a Hugging Face dataset failed "
                          f"({type(e).__name__}: {first[:200]}); {hint}") from None
    out: list[Example] = []
    default_task = task or name.split("/")[-1]
    for i, row in enumerate(ds):
        where = f"{source}[{split}]:{i}"
        try:
            kind = "fields" if has_mapping else detect_format(row)
            if kind == "sftlens":
                ex = Example.from_dict(row)
            elif kind == "gsm8k":
                from ..tasks.gsm8k import INSTRUCTION, parse_solution

                steps, ans = parse_solution(row["answer"])
                ex = Example(id=f"{name.split('/')[-1]}-{split}-{i}", task=task or "gsm8k", instruction=INSTRUCTION,
                             question=row["question"].strip(), steps=steps, answer=normalize_answer(ans) or ans)
            elif kind == "fields":
                ex = record_from_fields(row, default_id=f"{name.split('/')[-1]}-{split}-{i}", task=default_task, **mapping)
            else:
                raise RecordError(f"cannot tell the format (fields: {', '.join(sorted(row))}); name the fields "
                                  "with --question-field, --answer-field and --steps-field or --step-splitter")
        except RecordError as e:
            raise RecordError(f"{where}: {e}") from None
        ex.meta.setdefault("source", f"hf:{source}:{split}")
        out.append(ex)
        if limit is not None and len(out) >= limit:
            break
    return out


def dump_examples(examples: list[Example]) -> str:
    """Examples as JSONL text (for previews and tests)."""
    return "".join(json.dumps(e.to_dict(), ensure_ascii=False) + "\n" for e in examples)
