"""Statistics over metric rows: per-model intervals, paired differences, variant gaps, and the
verdicts (the accuracy trap for a model audit, a text-only summary for saved predictions)."""

from __future__ import annotations

import math

from ..metrics.catalogue import CATALOGUE, names
from ..metrics.stats import Estimate, bootstrap_mean, mcnemar, paired_difference, unpaired_difference

# metric name -> (label, unit), from the one catalogue (sftlens.metrics.catalogue)
METRICS: dict[str, tuple[str, str]] = {n: (CATALOGUE[n].label, CATALOGUE[n].unit) for n in names("score", "audit")}
TEXT_METRICS = ("correct", "exact_correct", "judges_disagree", "flexible_correct", "format_gap", "answered", "validity",
                "chain_valid", "n_steps", "json_parses", "schema_valid", "feasible", "optimal")  # the last four: with --checker
FAITH_METRICS: dict[str, tuple[str, str]] = {n: (CATALOGUE[n].label, CATALOGUE[n].unit) for n in names("battery")}


def as_float(value) -> float:
    """A metric value as a float, ``None`` (not measured) as NaN.

    >>> as_float(None), as_float(1)
    (nan, 1.0)
    """
    return math.nan if value is None else float(value)


def _interval_dict(estimate: Estimate) -> dict:
    """An estimate as JSON-ready numbers (NaN as ``None``)."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in estimate.to_dict().items()}


def summarize_model(rows: list[dict], metrics=METRICS, seed: int = 0) -> dict[str, dict]:
    """Mean and 95% bootstrap interval of each metric over examples (metrics absent from the rows
    are left out).

    >>> s = summarize_model([{"correct": 1.0}, {"correct": 0.0}], {"correct": ("acc", "pct")})
    >>> s["correct"]["mean"], s["correct"]["n"]
    (0.5, 2)
    """
    summary = {}
    for metric in metrics:
        if not any(metric in r for r in rows):
            continue
        summary[metric] = _interval_dict(bootstrap_mean([as_float(r.get(metric)) for r in rows], seed=seed))
    return summary


def compare_models(rows_a: list[dict], rows_b: list[dict], pair_key: str = "id", metrics=METRICS,
                   seed: int = 0) -> dict:
    """Paired comparison ``b − a`` over examples present in both: a bootstrap interval of each
    metric's difference and McNemar's exact test on strict and flexible accuracy.

    >>> a = [{"id": str(i), "correct": 0.0, "flexible_correct": 0.0} for i in range(4)]
    >>> b = [{"id": str(i), "correct": 1.0, "flexible_correct": 0.0} for i in range(4)]
    >>> c = compare_models(a, b)
    >>> c["diff"]["correct"]["mean"], c["mcnemar"]["strict"]["p_value"], c["n_pairs"]
    (1.0, 0.125, 4)
    """
    by_key_a = {r[pair_key]: r for r in rows_a}
    by_key_b = {r[pair_key]: r for r in rows_b}
    common = [k for k in by_key_a if k in by_key_b]
    diff = {}
    for metric in metrics:
        if not any(metric in by_key_a[k] and metric in by_key_b[k] for k in common):
            continue
        diff[metric] = _interval_dict(paired_difference([as_float(by_key_b[k].get(metric)) for k in common],
                                                        [as_float(by_key_a[k].get(metric)) for k in common],
                                                        seed=seed))
    mcnemar_tests = {}
    for metric, label in (("correct", "strict"), ("flexible_correct", "flexible")):
        if common and all(by_key_a[k].get(metric) in (0.0, 1.0) and by_key_b[k].get(metric) in (0.0, 1.0)
                          for k in common):  # binary outcomes only (not the pass@1 of several samples)
            mcnemar_tests[label] = mcnemar([by_key_a[k][metric] for k in common],
                                           [by_key_b[k][metric] for k in common])
    return {"n_pairs": len(common), "only_a": len(by_key_a) - len(common), "only_b": len(by_key_b) - len(common),
            "diff": diff, "mcnemar": mcnemar_tests}


def variant_gap(main_rows: list[dict], variant_rows: list[dict], seed: int = 0) -> dict:
    """Strict accuracy on a variant set and its gap to the main set (main − variant, unpaired).

    >>> g = variant_gap([{"correct": 1.0}] * 4, [{"correct": 0.0}] * 2)
    >>> g["accuracy"]["mean"], g["gap"]["mean"], g["n"]
    (0.0, 1.0, 2)
    """
    accuracy_main = [as_float(r["correct"]) for r in main_rows]
    accuracy_variant = [as_float(r["correct"]) for r in variant_rows]
    return {"accuracy": _interval_dict(bootstrap_mean(accuracy_variant, seed=seed)),
            "gap": _interval_dict(unpaired_difference(accuracy_main, accuracy_variant, seed=seed)),
            "n": len(accuracy_variant)}


def _format_points(d: dict) -> str:
    return f"{d['mean'] * 100:+.1f} pts [{d['lo'] * 100:+.1f}, {d['hi'] * 100:+.1f}]"


def _format_nats(d: dict) -> str:
    return f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}] nats/step"


def _has_interval(d: dict | None) -> bool:
    """Whether ``d`` holds a measured ``mean``, ``lo`` and ``hi`` (no ``None``, no NaN)."""
    def measured(x):
        return isinstance(x, (int, float)) and not math.isnan(x)

    return bool(d) and measured(d.get("mean")) and measured(d.get("lo")) and measured(d.get("hi"))


TRAP_SESOI = {"correct": 0.05, "ig_mean": 0.05, "aoc": 0.05}  # accuracy 5 pts, 0.05 nats/step, 5 pts of AOC
TRAP_RULE = ("The lab's verdict protocol: YES when accuracy (tuned − base, paired) rises beyond its smallest "
             "effect of interest (+5 pts: the one-sided 95% bound lies above it) AND information gain per step "
             "(SESOI 0.05 nats) or the early-answering AOC (SESOI 5 pts) falls beyond its SESOI, the reasoning "
             "metrics Holm-adjusted between them; NO when accuracy is shown not to rise by 5 pts, or every measured "
             "reasoning metric is shown not to fall by its SESOI; otherwise cannot tell. Paired t-tests over examples "
             "(sftlens.metrics.protocol.decide).")


def _paired(rows_a: list[dict], rows_b: list[dict], metric: str, key: str = "id") -> list[float]:
    """Per-example ``b − a`` of one metric over examples in both (NaN where either lacks it)."""
    by_key = {r[key]: r for r in rows_a}
    return [as_float(r.get(metric)) - as_float(by_key[r[key]].get(metric)) for r in rows_b if r[key] in by_key]


def trap_verdict(acc_diffs, ig_diffs=None, aoc_diffs=None) -> dict:
    """The accuracy-trap verdict from per-example paired differences (tuned − base), under the
    lab's protocol (:data:`TRAP_RULE`).

    >>> up = [0.0] * 10 + [1.0] * 30
    >>> v = trap_verdict(up, [-0.2 + 0.01 * (i % 5) for i in range(40)])
    >>> v["status"], v["text"].split(" — ")[0]
    ('yes', 'Accuracy trap: YES')
    >>> flat = [0.0] * 190 + [1.0, -1.0] * 5  # accuracy shown not to rise by 5 points
    >>> trap_verdict(flat, [-0.2 + 0.01 * (i % 5) for i in range(200)])["status"]
    'no'
    >>> trap_verdict([0.0, 1.0, -1.0] * 20, [-0.2 + 0.01 * (i % 5) for i in range(60)])["status"]
    'n/a'
    """
    from ..metrics.protocol import decide, holm

    acc = decide(acc_diffs, TRAP_SESOI["correct"], "superiority", direction=+1) if len(acc_diffs) else None
    if acc is None:
        return {"status": "n/a", "trap": None, "rule": TRAP_RULE,
                "text": "Accuracy trap: cannot tell — no paired accuracy could be measured"}
    reasoning = {name: decide(d, TRAP_SESOI[key], "superiority", direction=-1)
                 for name, key, d in (("information gain", "ig_mean", ig_diffs), ("faithfulness (AOC)", "aoc", aoc_diffs))
                 if d is not None and any(x == x for x in d)}
    parts = [f"accuracy {_format_points(acc.estimate)}"]
    parts += [f"{name} {_format_nats(d.estimate) if name == 'information gain' else _format_points(d.estimate)}"
              for name, d in reasoning.items()]
    if not reasoning:
        return {"status": "n/a", "trap": None, "rule": TRAP_RULE,
                "text": "Accuracy trap: cannot tell — " + parts[0] + "; information gain and faithfulness "
                        "were not measured"}
    adjusted = holm({name: d.p_value for name, d in reasoning.items()})
    falls = [n for n, d in reasoning.items() if d.verdict == "reproduced" and adjusted.get(n, 1.0) < 0.05]
    if acc.verdict == "reproduced" and falls:
        status, text = "yes", "Accuracy trap: YES — " + ", ".join(parts)
    elif acc.verdict == "not reproduced" or all(d.verdict == "not reproduced" for d in reasoning.values()):
        why = ("accuracy did not rise by 5 points" if acc.verdict == "not reproduced"
               else "accuracy rose but no reasoning metric fell by its smallest effect of interest")
        status, text = "no", f"Accuracy trap: NO ({why}) — " + ", ".join(parts)
    else:
        status, text = "n/a", "Accuracy trap: cannot tell (the intervals allow both) — " + ", ".join(parts)
    return {"status": status, "trap": status == "yes" if status != "n/a" else None, "rule": TRAP_RULE, "text": text,
            "tests": {"accuracy": acc.to_dict(), **{n: {**d.to_dict(), "p_holm": adjusted.get(n)}
                                                     for n, d in reasoning.items()}}}


def comparison_verdict(rows_a: list[dict], rows_b: list[dict], battery_a: list[dict] | None = None,
                       battery_b: list[dict] | None = None) -> dict:
    """:func:`trap_verdict` of ``b`` (tuned) against ``a`` (base) from their per-example rows and,
    when both ran, their faithfulness batteries."""
    aoc = _paired(battery_a, battery_b, "aoc") if battery_a and battery_b else None
    return trap_verdict(_paired(rows_a, rows_b, "correct"), _paired(rows_a, rows_b, "ig_mean")
                        if any("ig_mean" in r for r in rows_b) else None, aoc)


def text_only_verdict(comparisons: list[dict], labels: list[str]) -> dict:
    """The verdict of a predictions audit: the accuracy trap needs information gain or faithfulness,
    so it is ``n/a``; the text says how accuracy moved between the first two models.

    >>> text_only_verdict([], ["m"])["text"]
    "Saved generations, one model ('m'): text metrics only, nothing to compare"
    >>> text_only_verdict([{"a": "a", "b": "b", "diff": {}, "mcnemar": {}}], ["a", "b"])["status"]
    'n/a'
    """
    if len(labels) == 1:
        text = f"Saved generations, one model ('{labels[0]}'): text metrics only, nothing to compare"
    else:
        first = comparisons[0]
        accuracy = first["diff"].get("correct")
        flexible = first["diff"].get("flexible_correct")
        if _has_interval(accuracy) and _has_interval(flexible):
            p_value = first["mcnemar"].get("strict", {}).get("p_value")
            text = (f"Text metrics only — {first['b']} vs {first['a']}: accuracy {_format_points(accuracy)}, "
                    f"flexible accuracy {_format_points(flexible)}, McNemar p = {p_value:.3g}; the accuracy trap "
                    "needs information gain or faithfulness (run with --base/--tuned)")
        else:
            text = "Text metrics only — no example is shared by the models"
    return {"status": "n/a", "trap": None, "rule": TRAP_RULE, "text": text}
