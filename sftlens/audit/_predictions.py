"""Reading a predictions file: generations made elsewhere, one JSON object a line."""

from __future__ import annotations

import os
from pathlib import Path

from ..core.record import Example, RecordError, Sample, iter_dicts
from ..metrics.reasoning import make_sample
from ._cache import _hash


def read_predictions(path: str | os.PathLike) -> tuple[list[Sample], list[Example], str]:
    """Parse a predictions JSONL (``question``, ``completion``, ``reference``; optional ``model``,
    ``id``) into samples, one example per distinct pairing key, and the pairing used (``id`` when
    every line has one, else ``question``). Errors name ``FILE:LINE`` and the field."""
    path = Path(path)
    if not path.exists():
        raise RecordError(f"{path}: no such file")
    lines = []
    for lineno, obj in iter_dicts(path):
        where = f"{path}:{lineno}"
        if not isinstance(obj, dict):
            raise RecordError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        for fld in ("question", "completion", "reference"):
            if fld not in obj:
                raise RecordError(f"{where}: field '{fld}': missing (each line needs question, completion, "
                                  "reference; model and id are optional)")
        for fld in ("question", "completion"):
            if not isinstance(obj[fld], str):
                raise RecordError(f"{where}: field '{fld}': expected a string, got {type(obj[fld]).__name__}")
        ref = obj["reference"]
        if isinstance(ref, (int, float)) and not isinstance(ref, bool):
            ref = str(ref)
        if not isinstance(ref, str) or not ref.strip():
            raise RecordError(f"{where}: field 'reference': expected a non-empty string or a number")
        model = obj.get("model", "model")
        if not isinstance(model, str) or not model:
            raise RecordError(f"{where}: field 'model': expected a non-empty string")
        pid = obj.get("id")
        if pid is not None and not isinstance(pid, (str, int)):
            raise RecordError(f"{where}: field 'id': expected a string or an integer")
        lines.append((lineno, obj["question"], obj["completion"], ref, model, None if pid is None else str(pid)))
    if not lines:
        raise RecordError(f"{path}: no predictions (the file is empty)")
    by = "id" if all(x[5] is not None for x in lines) else "question"
    examples: dict[str, Example] = {}
    samples: list[Sample] = []
    seen: dict[tuple[str, str], int] = {}
    for lineno, q, comp, ref, model, pid in lines:
        pk = pid if by == "id" else _hash(" ".join(q.split()), 12)
        if (model, pk) in seen:
            raise RecordError(f"{path}:{lineno}: field '{by}': duplicate for model '{model}' (first on line "
                              f"{seen[(model, pk)]})")
        seen[(model, pk)] = lineno
        ex = Example(id=pk, task="predictions", question=q.strip(), answer=ref)
        examples.setdefault(pk, ex)
        samples.append(make_sample(ex, model, q, comp, role=model, set="main", question=q.strip(), line=lineno,
                                   key=_hash({"line": lineno, "q": q, "c": comp, "r": ref, "m": model})))
    return samples, list(examples.values()), by
