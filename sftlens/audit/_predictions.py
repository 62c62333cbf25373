"""Reading a predictions file: generations made elsewhere, one JSON object a line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from ..core.format import marked_answer, reference_answer
from ..core.record import Example, RecordError, Sample, iter_dicts
from ..metrics.reasoning import make_sample
from ._cache import content_hash


class Prediction(NamedTuple):
    """One checked line of a predictions file."""

    lineno: int
    question: str
    completion: str
    reference: str
    model: str
    id: str | None
    reference_text: str | None = None  # the reference's final answer as written, for math-verify


def parse_prediction(record, where: str, lineno: int) -> Prediction:
    """Check one line's object; errors start with ``where`` (``FILE:LINE``) and name the field.

    >>> parse_prediction({"question": "q", "completion": "A: 2", "reference": 2}, "p.jsonl:1", 1)
    Prediction(lineno=1, question='q', completion='A: 2', reference='2', model='model', id=None, reference_text='2')
    >>> parse_prediction({"question": "q", "completion": "A: 3", "reference": "1 + 2 = 3\\n#### 3"}, "p.jsonl:2", 2).reference
    '3'
    >>> parse_prediction({"question": "q", "completion": "c"}, "p.jsonl:3", 3)
    Traceback (most recent call last):
    ...
    sftlens.core.errors.RecordError: p.jsonl:3: field 'reference': missing (each line needs question, completion, reference; model and id are optional)
    """
    if not isinstance(record, dict):
        raise RecordError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for name in ("question", "completion", "reference"):
        if name not in record:
            raise RecordError(f"{where}: field '{name}': missing (each line needs question, completion, "
                              "reference; model and id are optional)")
    for name in ("question", "completion"):
        if not isinstance(record[name], str):
            raise RecordError(f"{where}: field '{name}': expected a string, got {type(record[name]).__name__}")
    reference = record["reference"]
    if isinstance(reference, (int, float)) and not isinstance(reference, bool):
        reference = str(reference)
    if not isinstance(reference, str) or not reference.strip():
        raise RecordError(f"{where}: field 'reference': expected a non-empty string or a number")
    written = (marked_answer(reference) or reference).strip()
    try:  # the same final-answer rules as a completion: a whole GSM8K solution is a valid reference
        reference = reference_answer(reference)
    except ValueError as e:
        raise RecordError(f"{where}: field 'reference': {e}") from None
    model = record.get("model", "model")
    if not isinstance(model, str) or not model:
        raise RecordError(f"{where}: field 'model': expected a non-empty string")
    prediction_id = record.get("id")
    if prediction_id is not None and not isinstance(prediction_id, (str, int)):
        raise RecordError(f"{where}: field 'id': expected a string or an integer")
    return Prediction(lineno, record["question"], record["completion"], reference, model,
                      None if prediction_id is None else str(prediction_id), written)


def read_predictions(path: str | os.PathLike) -> tuple[list[Sample], list[Example], str]:
    """Parse a predictions JSONL (``question``, ``completion``, ``reference``; optional ``model``,
    ``id``) into samples, one example per distinct pairing key, and the pairing used (``id`` when
    every line has one, else ``question``). Errors name ``FILE:LINE`` and the field."""
    path = Path(path)
    if not path.exists():
        raise RecordError(f"{path}: no such file")
    predictions = [parse_prediction(record, f"{path}:{lineno}", lineno) for lineno, record in iter_dicts(path)]
    if not predictions:
        raise RecordError(f"{path}: no predictions (the file is empty)")
    paired_by = "id" if all(p.id is not None for p in predictions) else "question"
    examples: dict[str, Example] = {}
    samples: list[Sample] = []
    first_line: dict[tuple[str, str], int] = {}
    for p in predictions:
        pair_key = p.id if paired_by == "id" else content_hash(" ".join(p.question.split()), 12)
        if (p.model, pair_key) in first_line:
            raise RecordError(f"{path}:{p.lineno}: field '{paired_by}': duplicate for model '{p.model}' (first on "
                              f"line {first_line[(p.model, pair_key)]})")
        first_line[(p.model, pair_key)] = p.lineno
        example = Example(id=pair_key, task="predictions", question=p.question.strip(), answer=p.reference,
                          meta={"reference_text": p.reference_text or p.reference})
        examples.setdefault(pair_key, example)
        sample_key = content_hash({"line": p.lineno, "q": p.question, "c": p.completion, "r": p.reference,
                                   "m": p.model})
        samples.append(make_sample(example, p.model, p.question, p.completion, role=p.model, set="main",
                                   question=p.question.strip(), line=p.lineno, key=sample_key))
    return samples, list(examples.values()), paired_by
