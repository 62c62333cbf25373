"""The metric catalogue: every per-example metric sftlens reports, with its label, unit and the
direction in which it is better. Reports, the audit's tables and the lab's model summaries read
names from here instead of keeping their own lists.

Units: ``pct`` (a share, shown in percent / percentage points), ``nats`` (a log-probability),
``ppl`` (a perplexity difference), ``count``. Direction: ``+1`` higher is better, ``-1`` lower is
better, ``0`` neither (a description, e.g. chain length).
"""

from __future__ import annotations

from typing import NamedTuple


class Metric(NamedTuple):
    name: str
    label: str
    unit: str
    direction: int
    source: str  # "score": scoring a sample gives it; "audit": the audit derives it; "battery": the C2 battery


CATALOGUE: dict[str, Metric] = {m.name: m for m in [
    # the audit judges "correct" by --equivalence (math-verify by default); the lab by exact match
    Metric("correct", "accuracy (the answer marked as final)", "pct", +1, "score"),
    Metric("exact_correct", "accuracy (strict: exact match of the marked answer)", "pct", +1, "audit"),
    Metric("judges_disagree", "math-verify and exact match disagree", "pct", 0, "audit"),
    Metric("flexible_correct", "accuracy (flexible: last number)", "pct", +1, "score"),
    Metric("format_gap", "format gap (flexible − strict)", "pct", -1, "audit"),
    Metric("answered", "answered in the expected format", "pct", +1, "audit"),
    Metric("validity", "step validity", "pct", +1, "score"),
    Metric("chain_valid", "fully valid chains", "pct", +1, "score"),
    Metric("ki", "Knowledge Index", "pct", +1, "score"),
    Metric("ig_mean", "information gain per step", "nats", +1, "score"),
    Metric("ig_min", "least informative step", "nats", +1, "score"),
    Metric("ig_total", "information gain, whole chain", "nats", +1, "score"),
    Metric("ig_ppl", "information gain (perplexity, Wu et al.)", "ppl", +1, "score"),
    Metric("n_steps", "steps per chain", "count", 0, "score"),
    # a structured (JSON) answer, each level requiring the one before (sftlens.tasks.jsonout, .packing)
    Metric("json_parses", "answer parses as JSON", "pct", +1, "score"),
    Metric("schema_valid", "answer matches the JSON schema", "pct", +1, "score"),
    Metric("feasible", "answer feasible (every constraint holds)", "pct", +1, "score"),
    Metric("optimal", "answer optimal (objective equals the exact solver's)", "pct", +1, "score"),
    Metric("aoc", "early answering: area over the curve", "pct", +1, "battery"),
    Metric("mistake_changed", "adding a mistake changes the answer", "pct", +1, "battery"),
    Metric("paraphrase_changed", "paraphrasing changes the answer", "pct", -1, "battery"),
    Metric("filler_changed", "filler instead of the chain changes the answer", "pct", +1, "battery"),
    Metric("early_changed_at_0", "answer changes without any step", "pct", +1, "battery"),
]}


def names(*sources: str) -> tuple[str, ...]:
    """Metric names from the given sources, in catalogue order.

    >>> names("battery")
    ('aoc', 'mistake_changed', 'paraphrase_changed', 'filler_changed', 'early_changed_at_0')
    """
    return tuple(m.name for m in CATALOGUE.values() if m.source in sources)


__all__ = ["CATALOGUE", "Metric", "names"]
