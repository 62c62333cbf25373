"""Statistics over metric rows: per-model intervals, paired differences, variant gaps, and the
verdicts (the accuracy trap for a model audit, a text-only summary for saved predictions)."""

from __future__ import annotations

import math

from ..metrics.catalogue import CATALOGUE, names
from ..metrics.stats import Estimate, bootstrap_mean, mcnemar, paired_difference, unpaired_difference

# metric name -> (label, unit), from the one catalogue (sftlens.metrics.catalogue)
METRICS: dict[str, tuple[str, str]] = {n: (CATALOGUE[n].label, CATALOGUE[n].unit) for n in names("score", "audit")}
TEXT_METRICS = ("correct", "flexible_correct", "format_gap", "answered", "validity", "chain_valid", "n_steps")
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
        if common and all(metric in by_key_a[k] for k in common):
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


TRAP_RULE = ("YES when the paired interval of strict accuracy (tuned − base) lies above zero AND the "
             "interval of information gain per step, or of the early-answering AOC (faithfulness), lies "
             "below zero; otherwise NO. 95% bootstrap intervals over examples.")


def trap_verdict(acc: dict | None, ig: dict | None, aoc: dict | None = None) -> dict:
    """The one-line verdict on the accuracy trap from paired differences (``mean``/``lo``/``hi``).

    >>> v = trap_verdict({"mean": .12, "lo": .081, "hi": .159}, {"mean": -.21, "lo": -.30, "hi": -.12})
    >>> v["status"], v["text"]
    ('yes', 'Accuracy trap: YES — accuracy +12.0 pts [+8.1, +15.9], information gain -0.210 [-0.300, -0.120] nats/step')
    >>> trap_verdict({"mean": .01, "lo": -.05, "hi": .07}, {"mean": -.2, "lo": -.3, "hi": -.1})["status"]
    'no'
    """
    if not _has_interval(acc):
        return {"status": "n/a", "trap": None, "rule": TRAP_RULE,
                "text": "Accuracy trap: cannot tell — no paired accuracy could be measured"}
    acc_up = acc["lo"] > 0
    ig_down = _has_interval(ig) and ig["hi"] < 0
    aoc_down = _has_interval(aoc) and aoc["hi"] < 0
    parts = [f"accuracy {_format_points(acc)}"]
    if _has_interval(ig):
        parts.append(f"information gain {_format_nats(ig)}")
    if _has_interval(aoc):
        parts.append(f"faithfulness (AOC) {_format_points(aoc)}")
    if not _has_interval(ig) and not _has_interval(aoc):
        return {"status": "n/a", "trap": None, "rule": TRAP_RULE,
                "text": "Accuracy trap: cannot tell — " + parts[0] + "; information gain and faithfulness "
                        "were not measured"}
    trap = acc_up and (ig_down or aoc_down)
    if trap:
        text = "Accuracy trap: YES — " + ", ".join(parts)
    else:
        why = ("accuracy did not rise beyond its interval" if not acc_up
               else "accuracy rose but reasoning quality did not fall beyond its interval")
        text = f"Accuracy trap: NO ({why}) — " + ", ".join(parts)
    return {"status": "yes" if trap else "no", "trap": trap, "rule": TRAP_RULE, "text": text}


def comparison_verdict(comparison: dict) -> dict:
    """:func:`trap_verdict` from one comparison entry of ``results.json`` (tuned − base)."""
    return trap_verdict(comparison["diff"].get("correct"), comparison["diff"].get("ig_mean"),
                        comparison.get("faithfulness_diff", {}).get("aoc"))


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
            text = (f"Text metrics only — {first['b']} vs {first['a']}: strict accuracy {_format_points(accuracy)}, "
                    f"flexible accuracy {_format_points(flexible)}, McNemar p = {p_value:.3g}; the accuracy trap "
                    "needs information gain or faithfulness (run with --base/--tuned)")
        else:
            text = "Text metrics only — no example is shared by the models"
    return {"status": "n/a", "trap": None, "rule": TRAP_RULE, "text": text}
