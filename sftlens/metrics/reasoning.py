"""Per-sample reasoning metrics: accuracy, step validity and the Knowledge Index.

Batch in, batch out: each function takes a list of :class:`~sftlens.core.record.Sample` and returns
one value per sample (NaN where it does not apply, e.g. validity of a chain without steps), so a
caller can average, bootstrap or pair them.
"""

from __future__ import annotations

import math

from ..core.format import last_number, normalize_answer, parse_completion
from ..core.record import Example, Sample
from ..tasks.base import StepCheck, Verifier


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


def chain_metrics(checks: list[StepCheck]) -> dict[str, float]:
    """Step metrics of one verified chain: ``validity`` (share of checkable steps that are valid;
    NaN if none can be checked), ``chain_valid`` (1.0 when there are steps and all are valid) and
    ``ki``, the Knowledge Index (share of knowledge steps stating a true fact; NaN without any).

    >>> chain_metrics([StepCheck("knowledge", True, True), StepCheck("arithmetic", False, True)])
    {'validity': 0.5, 'chain_valid': 0.0, 'ki': 1.0}
    """
    known = [c for c in checks if c.valid is not None]
    ks = [c for c in checks if c.kind == "knowledge"]
    return {"validity": sum(bool(c.valid) for c in known) / len(known) if known else math.nan,
            "chain_valid": 1.0 if checks and all(c.valid for c in checks) else 0.0,
            "ki": sum(bool(c.valid) for c in ks) / len(ks) if ks else math.nan}


def step_validity(samples: list[Sample], verifier: Verifier) -> list[float]:
    """Share of a chain's checkable steps that are valid (NaN when no step can be checked)."""
    return [chain_metrics(verifier.verify(s.steps, s.answer))["validity"] for s in samples]


def chain_valid(samples: list[Sample], verifier: Verifier) -> list[float]:
    """1.0 when the chain has steps and every one is a valid known fact or correct arithmetic."""
    return [chain_metrics(verifier.verify(s.steps, s.answer))["chain_valid"] for s in samples]


def knowledge_index(samples: list[Sample], verifier: Verifier) -> list[float]:
    """Share of knowledge steps that state a true fact (NaN when a chain has no knowledge step)."""
    return [chain_metrics(verifier.verify(s.steps, s.answer))["ki"] for s in samples]


def mean(xs: list[float]) -> float:
    """Mean ignoring NaN; NaN if nothing is left."""
    v = [x for x in xs if not math.isnan(x)]
    return sum(v) / len(v) if v else math.nan
