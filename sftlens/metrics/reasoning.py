"""Per-sample reasoning metrics: accuracy, step validity and the Knowledge Index.

Batch in, batch out: each function takes a list of :class:`~sftlens.data.record.Sample` and returns
one value per sample (NaN where it does not apply, e.g. validity of a chain without steps), so a
caller can average, bootstrap or pair them.
"""

from __future__ import annotations

import math

from ..data.format import last_number, normalize_answer, parse_completion
from ..data.record import Example, Sample
from ..tasks.base import Verifier


def make_sample(ex: Example, model: str, prompt: str, completion: str, **meta) -> Sample:
    """Parse a completion into a :class:`Sample` (strict answer after ``A:`` or ``####``, flexible
    answer = the last number).

    >>> s = make_sample(Example(id="1", task="t", question="q", answer="8"), "m", "Q: q\\n", "2 * 4 = 8\\nA: 8")
    >>> (s.steps, s.answer, s.correct)
    (['2 * 4 = 8'], '8', True)
    """
    steps, ans = parse_completion(completion)
    if ans is None and "####" in completion:
        head, _, tail = completion.partition("####")
        steps = [s.strip() for s in head.split("\n") if s.strip()]
        ans = tail.strip().split("\n")[0]
    return Sample(id=ex.id, model=model, task=ex.task, prompt=prompt, completion=completion, steps=steps,
                  answer=normalize_answer(ans), flexible_answer=last_number(completion),
                  reference=normalize_answer(ex.answer) or "", meta=dict(meta))


def accuracy(samples: list[Sample]) -> list[float]:
    """1.0 when the strict answer is right, else 0.0."""
    return [1.0 if s.correct else 0.0 for s in samples]


def flexible_accuracy(samples: list[Sample]) -> list[float]:
    """1.0 when the last number in the completion is right, else 0.0."""
    return [1.0 if s.flexible_correct else 0.0 for s in samples]


def step_validity(samples: list[Sample], verifier: Verifier) -> list[float]:
    """Share of a chain's checkable steps that are valid (NaN when no step can be checked)."""
    out = []
    for s in samples:
        checks = [c for c in verifier.verify(s.steps, s.answer) if c.valid is not None]
        out.append(sum(c.valid for c in checks) / len(checks) if checks else math.nan)
    return out


def chain_valid(samples: list[Sample], verifier: Verifier) -> list[float]:
    """1.0 when the chain has steps and every one is a valid known fact or correct arithmetic."""
    out = []
    for s in samples:
        checks = verifier.verify(s.steps, s.answer)
        out.append(1.0 if checks and all(c.valid for c in checks) else 0.0)
    return out


def knowledge_index(samples: list[Sample], verifier: Verifier) -> list[float]:
    """Share of knowledge steps that state a true fact (NaN when a chain has no knowledge step)."""
    out = []
    for s in samples:
        ks = [c for c in verifier.verify(s.steps, s.answer) if c.kind == "knowledge"]
        out.append(sum(bool(c.valid) for c in ks) / len(ks) if ks else math.nan)
    return out


def mean(xs: list[float]) -> float:
    """Mean ignoring NaN; NaN if nothing is left."""
    v = [x for x in xs if not math.isnan(x)]
    return sum(v) / len(v) if v else math.nan
