"""Per-sample reasoning metrics: a completion parsed into a :class:`~sftlens.core.record.Sample`
(strict and flexible answers), and the step metrics of one verified chain (validity, the Knowledge
Index); NaN where a metric does not apply, so callers can average, bootstrap or pair them.
"""

from __future__ import annotations

import math

from ..core.format import last_number, marked_answer, normalize_answer, parse_completion, split_thinking
from ..core.record import Example, Sample
from ..tasks.base import StepCheck


def make_sample(ex: Example, model: str, prompt: str, completion: str, **meta) -> Sample:
    """Parse a completion into a :class:`Sample` (strict answer: the one the text marks as final — after
    ``A:`` or ``####``, in ``\\boxed{}``, after "the answer is"; flexible answer: the last number).

    >>> s = make_sample(Example(id="1", task="t", question="q", answer="8"), "m", "Q: q\\n", "2 * 4 = 8\\nA: 8")
    >>> (s.steps, s.answer, s.correct)
    (['2 * 4 = 8'], '8', True)
    >>> t = make_sample(Example(id="1", task="t", question="q", answer="8"), "m", "Q: q\\n", "<think>maybe 9</think>A: 8")
    >>> (t.answer, t.flexible_answer, t.meta["think_chars"])
    ('8', '8', 7)
    """
    thinking, visible = split_thinking(completion)  # a reasoning model's <think> block is not its answer
    written_reference = (ex.meta or {}).get("reference_text") or ex.answer
    if written_reference != normalize_answer(ex.answer):  # e.g. '\frac{1}{5}': shown as written
        meta["reference_text"] = written_reference
    if thinking is not None:
        meta["think_chars"] = len(thinking)
    steps, ans = parse_completion(visible)
    if ans is None:  # '#### N', '\boxed{N}' or 'the answer is N' (core.format.marked_answer)
        ans = marked_answer(visible)
        if "####" in visible:
            steps = [s.strip() for s in visible.partition("####")[0].split("\n") if s.strip()]
    return Sample(id=ex.id, model=model, task=ex.task, prompt=prompt, completion=completion, steps=steps,
                  answer=normalize_answer(ans), flexible_answer=last_number(visible),
                  reference=normalize_answer(ex.answer) or "", meta=dict(meta))


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
