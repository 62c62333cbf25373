"""Several samples per example, and what the generations say about themselves.

With ``--samples N`` the caches hold N generations (and N metric rows) per example; every statistic
over examples first averages an example's rows (:func:`per_example`: accuracy becomes that example's
pass@1), so the intervals and the paired tests stay over examples. :func:`sampling_summary` adds
pass@k and maj@k; :func:`generation_summary` the share of generations cut at ``max_new_tokens`` and
the mean length of ``<think>`` blocks; :func:`limit_warnings` the warnings a report shows on top.
"""

from __future__ import annotations

import math

from ..core.record import Sample
from ..metrics.sampling import majority_vote, pass_at_k, powers_of_two
from ._compare import as_float, summarize_model

#: above this share of generations cut at ``max_new_tokens`` an audit warns
LIMIT_WARN_SHARE = 0.05


def _numeric(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def per_example(rows: list[dict]) -> list[dict]:
    """One row per example (grouped by ``id``, in order of first appearance): numeric fields are the
    mean over the example's samples (NaN ignored), the rest is the first sample's, and
    ``n_samples`` counts them. Rows of one sample per example come back unchanged.

    >>> rows = [{"id": "a", "correct": 1.0, "key": "k1"}, {"id": "a", "correct": 0.0, "key": "k2"},
    ...         {"id": "b", "correct": 0.0, "key": "k3"}]
    >>> [(r["id"], r["correct"], r["key"], r["n_samples"]) for r in per_example(rows)]
    [('a', 0.5, 'k1', 2), ('b', 0.0, 'k3', 1)]
    >>> per_example(rows[:1]) is rows[:1] or per_example(rows[2:]) == rows[2:]
    True
    """
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["id"], []).append(row)
    if all(len(group) == 1 for group in groups.values()):
        return rows
    out = []
    for group in groups.values():
        merged = dict(group[0])
        for name in dict.fromkeys(k for r in group for k in r):
            if all(_numeric(r.get(name)) or r.get(name) is None for r in group) and any(_numeric(r.get(name))
                                                                                       for r in group):
                values = [x for x in (as_float(r.get(name)) for r in group) if not math.isnan(x)]
                merged[name] = sum(values) / len(values) if values else math.nan
        merged["n_samples"] = len(group)
        out.append(merged)
    return out


def first_samples(samples: list[Sample]) -> list[Sample]:
    """Each example's first sample, in order (what the faithfulness battery and the changed
    examples read: one chain per example).

    >>> s = [Sample("a", "m", "t", "p", c, [], None, None, "1") for c in ("c1", "c2")]
    >>> [x.completion for x in first_samples(s)]
    ['c1']
    """
    seen: set[str] = set()
    out = []
    for sample in samples:
        if sample.id not in seen:
            seen.add(sample.id)
            out.append(sample)
    return out


def _groups(samples: list[Sample], rows: list[dict]) -> list[list[tuple[Sample, dict]]]:
    """``(sample, row)`` pairs grouped by example, samples in generation order."""
    groups: dict[str, list[tuple[Sample, dict]]] = {}
    for sample, row in zip(samples, rows, strict=True):
        groups.setdefault(sample.id, []).append((sample, row))
    return list(groups.values())


def _majority_correct(group: list[tuple[Sample, dict]]) -> float:
    """1.0 when the answer most of ``group``'s samples give is right (as that answer's first
    sample was judged), else 0.0; 0.0 when no sample answered."""
    voted = majority_vote([s.answer for s, _ in group])
    if voted is None:
        return 0.0
    return next(as_float(r.get("correct")) for s, r in group if s.answer == voted)


def sampling_summary(samples: list[Sample], rows: list[dict], seed: int = 0) -> dict | None:
    """pass@k (unbiased, Chen et al. 2021) and maj@k (majority vote of the first k samples' strict
    answers) for k = 1 and powers of two up to the samples per example, each a mean over examples
    with a 95% bootstrap interval; ``None`` with one sample per example.

    >>> s = [Sample(i, "m", "t", "p", "c", [], a, a, "8") for i, a in [("1", "9"), ("1", "8"), ("1", "9"),
    ...                                                                 ("2", "8"), ("2", "8"), ("2", None)]]
    >>> r = [{"id": x.id, "correct": float(x.correct)} for x in s]
    >>> m = sampling_summary(s + s[-1:], r + r[-1:])
    >>> m["n_samples"], m["metrics"]["pass@1"]["mean"], m["metrics"]["pass@2"]["mean"], m["metrics"]["maj@2"]["mean"]
    (3, 0.4166666666666667, 0.75, 0.5)
    """
    groups = _groups(samples, rows)
    if not groups or max(map(len, groups)) <= 1:
        return None
    n = min(map(len, groups))
    per_group = []
    for group in groups:
        right = sum(1 for _, r in group if as_float(r.get("correct")) == 1.0)
        values = {f"pass@{k}": pass_at_k(len(group), right, k) for k in powers_of_two(n)}
        values.update({f"maj@{k}": _majority_correct(group[:k]) for k in powers_of_two(n)})
        per_group.append(values)
    names = list(per_group[0])
    return {"n_samples": n, "k": powers_of_two(n), "metrics": summarize_model(per_group, names, seed=seed)}


def generation_summary(samples: list[Sample]) -> dict | None:
    """How the generations ended and how long they thought: the share cut at ``max_new_tokens``
    (of the samples that recorded it, ``meta["hit_max_new_tokens"]``) and the mean length in
    characters of ``<think>`` blocks (``meta["think_chars"]``, over the samples that have one);
    ``None`` when neither was recorded.

    >>> s = [Sample("1", "m", "t", "p", "c", [], None, None, "1", {"hit_max_new_tokens": h, **t})
    ...      for h, t in [(True, {"think_chars": 10}), (False, {"think_chars": 20}), (False, {})]]
    >>> generation_summary(s)
    {'n_samples': 3, 'hit_max_new_tokens': 0.3333333333333333, 'n_hit_max_new_tokens': 1, 'n_measured': 3,
     'think_chars_mean': 15.0, 'n_thinking': 2}
    """
    out: dict = {"n_samples": len(samples)}
    flags = [bool(s.meta["hit_max_new_tokens"]) for s in samples if "hit_max_new_tokens" in s.meta]
    if flags:
        out.update(hit_max_new_tokens=sum(flags) / len(flags), n_hit_max_new_tokens=sum(flags), n_measured=len(flags))
    think = [s.meta["think_chars"] for s in samples if _numeric(s.meta.get("think_chars"))]
    if think:
        out.update(think_chars_mean=sum(think) / len(think), n_thinking=len(think))
    return out if len(out) > 1 else None


def limit_warnings(models: dict[str, dict], max_new_tokens: int | None) -> list[str]:
    """A warning for each model with more than :data:`LIMIT_WARN_SHARE` of its generations cut at
    ``max_new_tokens`` (read from ``results["models"][label]["generation"]``).

    >>> limit_warnings({"tuned": {"generation": {"hit_max_new_tokens": 0.5, "n_hit_max_new_tokens": 2,
    ...                                          "n_measured": 4}}}, 8)[0][:65]
    '2 of 4 generations of tuned (50.0%) stopped at --max-new-tokens 8'
    """
    warnings = []
    for label, model in models.items():
        generation = model.get("generation") or {}
        share = generation.get("hit_max_new_tokens")
        if share is not None and share > LIMIT_WARN_SHARE:
            warnings.append(f"{generation['n_hit_max_new_tokens']} of {generation['n_measured']} generations of "
                            f"{label} ({share:.1%}) stopped at --max-new-tokens {max_new_tokens} before an end of "
                            "sequence or a finished answer line: their answers may be cut off (more than "
                            f"{LIMIT_WARN_SHARE:.0%}); rerun with a larger --max-new-tokens")
    return warnings
