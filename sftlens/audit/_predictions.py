"""Reading a predictions file: generations made elsewhere, one JSON object a line, or another tool's
evaluation log (lm-evaluation-harness ``--log_samples``, inspect_ai; see ``_logs``)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from ..core.format import marked_answer, reference_answer
from ..core.record import Example, RecordError, Sample, iter_dicts
from ..metrics.reasoning import make_sample
from ._cache import content_hash
from ._logs import FIELDS, FORMATS, READERS, detect_format


class Prediction(NamedTuple):
    """One checked line of a predictions file."""

    lineno: int
    question: str
    completion: str
    reference: str
    model: str
    id: str | None
    reference_text: str | None = None  # the reference's final answer as written, for math-verify


def parse_prediction(record, where: str, lineno: int, fields: dict[str, str] | None = None) -> Prediction:
    """Check one line's object; errors start with ``where`` (``FILE:LINE``) and name the field, as
    ``fields`` calls it where the record was mapped from another tool's log (``{"reference": "target"}``).

    >>> parse_prediction({"question": "q", "completion": "A: 2", "reference": 2}, "p.jsonl:1", 1)
    Prediction(lineno=1, question='q', completion='A: 2', reference='2', model='model', id=None, reference_text='2')
    >>> parse_prediction({"question": "q", "completion": "A: 3", "reference": "1 + 2 = 3\\n#### 3"}, "p.jsonl:2", 2).reference
    '3'
    >>> parse_prediction({"question": "q", "completion": "c"}, "p.jsonl:3", 3)
    Traceback (most recent call last):
    ...
    sftlens.core.errors.RecordError: p.jsonl:3: field 'reference': missing (each line needs question, completion, reference; model and id are optional)
    >>> parse_prediction({"question": "q", "completion": "c", "reference": [1]}, "s.jsonl:4", 4, {"reference": "target"})
    Traceback (most recent call last):
    ...
    sftlens.core.errors.RecordError: s.jsonl:4: field 'target': expected a non-empty string or a number
    """
    field = (fields or {}).get
    if not isinstance(record, dict):
        raise RecordError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for name in ("question", "completion", "reference"):
        if name not in record:
            raise RecordError(f"{where}: field '{name}': missing (each line needs question, completion, "
                              "reference; model and id are optional)")
    for name in ("question", "completion"):
        if not isinstance(record[name], str):
            raise RecordError(f"{where}: field '{field(name, name)}': expected a string, got "
                              f"{type(record[name]).__name__}")
    reference = record["reference"]
    if isinstance(reference, (int, float)) and not isinstance(reference, bool):
        reference = str(reference)
    if not isinstance(reference, str) or not reference.strip():
        raise RecordError(f"{where}: field '{field('reference', 'reference')}': expected a non-empty string or a number")
    written = (marked_answer(reference) or reference).strip()
    try:  # the same final-answer rules as a completion: a whole GSM8K solution is a valid reference
        reference = reference_answer(reference)
    except ValueError as e:
        raise RecordError(f"{where}: field '{field('reference', 'reference')}': {e}") from None
    model = record.get("model", "model")
    if not isinstance(model, str) or not model:
        raise RecordError(f"{where}: field '{field('model', 'model')}': expected a non-empty string")
    prediction_id = record.get("id")
    if prediction_id is not None and not isinstance(prediction_id, (str, int)):
        raise RecordError(f"{where}: field '{field('id', 'id')}': expected a string or an integer")
    return Prediction(lineno, record["question"], record["completion"], reference, model,
                      None if prediction_id is None else str(prediction_id), written)


def read_predictions(path: str | os.PathLike, fmt: str = "auto",
                     paired_by: str | None = None) -> tuple[list[Sample], list[Example], str]:
    """Parse predictions into samples, one example per distinct pairing key, and the pairing used (``id``
    when every prediction has one, else ``question``). ``fmt``: ``sftlens`` (a JSONL of ``question``,
    ``completion``, ``reference``; optional ``model``, ``id``), ``lm-eval`` (a ``--log_samples`` file),
    ``inspect`` (an eval log) or ``auto`` (:func:`detect_format`). Errors name the file, the line or
    sample, and the field as the file calls it. ``paired_by`` forces the pairing (``question`` when
    predictions from several files must pair alike)."""
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"{path}: no such file" if not path.exists() else f"{path}: is a folder, expected a file")
    if fmt not in ("auto", *FORMATS):
        raise ValueError(f"fmt must be 'auto' or one of {FORMATS}, got {fmt!r}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "sftlens":
        rows = [(lineno, f"{path}:{lineno}", record) for lineno, record in iter_dicts(path)]
    else:
        rows = READERS[fmt](path)
    predictions = [parse_prediction(record, where, lineno, FIELDS.get(fmt)) for lineno, where, record in rows]
    if not predictions:
        raise RecordError(f"{path}: no predictions (the file is empty)")
    wheres = {p.lineno: where for p, (_, where, _) in zip(predictions, rows)}
    if paired_by is None:
        paired_by = "id" if all(p.id is not None for p in predictions) else "question"
    examples: dict[str, Example] = {}
    samples: list[Sample] = []
    first: dict[tuple[str, str], str] = {}
    for p in predictions:
        pair_key = p.id if paired_by == "id" else content_hash(" ".join(p.question.split()), 12)
        if (p.model, pair_key) in first:
            raise RecordError(f"{wheres[p.lineno]}: field '{FIELDS.get(fmt, {}).get(paired_by, paired_by)}': "
                              f"duplicate for model '{p.model}' (first at {first[(p.model, pair_key)]})")
        first[(p.model, pair_key)] = wheres[p.lineno]
        example = Example(id=pair_key, task="predictions", question=p.question.strip(), answer=p.reference,
                          meta={"reference_text": p.reference_text or p.reference})
        examples.setdefault(pair_key, example)
        sample_key = content_hash({"line": p.lineno, "q": p.question, "c": p.completion, "r": p.reference,
                                   "m": p.model})
        samples.append(make_sample(example, p.model, p.question, p.completion, role=p.model, set="main",
                                   question=p.question.strip(), line=p.lineno, key=sample_key))
    return samples, list(examples.values()), paired_by


def read_prediction_files(paths: list[str | os.PathLike], fmt: str = "auto", pair_by: str = "auto"
                          ) -> tuple[list[Sample], list[Example], str, list[str]]:
    """Predictions from several files (e.g. a base model's lm-eval log and a tuned model's), as
    :func:`read_predictions` gives them for one: the samples, the examples, the pairing (``id`` when
    every file pairs by id, else ``question`` for all; or as ``pair_by`` says) and the model names. A model name
    found in two files is renamed after each file (``NAME (FILE STEM)``); an example whose reference
    differs between files is an error naming both files."""
    paths = [Path(p) for p in paths]
    read = [read_predictions(p, fmt, None if pair_by == "auto" else pair_by) for p in paths]
    paired_by = "id" if all(r[2] == "id" for r in read) else "question"
    if pair_by == "id" and paired_by != "id":
        raise RecordError(f"{paths[[r[2] for r in read].index('question')]}: --pair-by id, but some predictions "
                          "have no id (pair them by question)")
    read = [r if r[2] == paired_by else read_predictions(p, fmt, paired_by) for p, r in zip(paths, read)]
    names = [list(dict.fromkeys(s.model for s in r[0])) for r in read]
    shared = {n for i, ns in enumerate(names) for n in ns if any(n in other for other in names[i + 1:])}
    samples: list[Sample] = []
    examples: dict[str, tuple[Example, Path]] = {}
    for index, (path, (file_samples, file_examples, _)) in enumerate(zip(paths, read)):
        for example in file_examples:
            seen = examples.setdefault(example.id, (example, path))
            if seen[0].answer != example.answer:
                raise RecordError(f"{path}: the example paired by {paired_by} '{example.id}' has the reference "
                                  f"{example.answer!r}, but {seen[1]} gives {seen[0].answer!r} (the files must "
                                  "answer the same questions; tools number them differently: try --pair-by question)")
        for s in file_samples:
            if s.model in shared:
                label = f"{s.model} ({path.stem})"
                s = replace(s, model=label, meta={**s.meta, "role": label})
            if len(paths) > 1:  # the same line in two files is two generations
                s = replace(s, meta={**s.meta, "key": content_hash([index, s.meta["key"]]), "file": str(path)})
            samples.append(s)
        names[index] = list(dict.fromkeys(s.model for s in samples[-len(file_samples):]))
    models = [n for ns in names for n in ns]
    if len(set(models)) != len(models):
        raise RecordError(f"two files give the same model names after renaming ({', '.join(models)}): give the "
                          "files different names")
    return samples, [e for e, _ in examples.values()], paired_by, models
