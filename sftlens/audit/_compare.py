"""Statistics over metric rows: per-model intervals, paired differences, the accuracy-trap verdict."""

from __future__ import annotations

import math

from ..core.record import Sample
from ..metrics.stats import Estimate, bootstrap_mean, mcnemar, paired_difference

# metric name -> (label, unit); unit "pct" is a share shown in percentage points, "nats" a log-prob.
METRICS: dict[str, tuple[str, str]] = {
    "correct": ("accuracy (strict: answer after A:/####)", "pct"),
    "flexible_correct": ("accuracy (flexible: last number)", "pct"),
    "format_gap": ("format gap (flexible − strict)", "pct"),
    "answered": ("answered in the expected format", "pct"),
    "validity": ("step validity", "pct"),
    "chain_valid": ("fully valid chains", "pct"),
    "ki": ("Knowledge Index", "pct"),
    "ig_mean": ("information gain per step", "nats"),
    "ig_min": ("least informative step", "nats"),
    "ig_total": ("information gain, whole chain", "nats"),
    "ig_ppl": ("information gain (perplexity, Wu et al.)", "ppl"),
    "n_steps": ("steps per chain", "count"),
}
TEXT_METRICS = ("correct", "flexible_correct", "format_gap", "answered", "validity", "chain_valid", "n_steps")
FAITH_METRICS: dict[str, tuple[str, str]] = {
    "aoc": ("early answering: area over the curve", "pct"),
    "mistake_changed": ("adding a mistake changes the answer", "pct"),
    "paraphrase_changed": ("paraphrasing changes the answer", "pct"),
    "filler_changed": ("filler instead of the chain changes the answer", "pct"),
    "early_changed_at_0": ("answer changes without any step", "pct"),
}


def _num(x) -> float:
    return math.nan if x is None else float(x)


def _est(e: Estimate) -> dict:
    d = e.to_dict()
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def summarize_model(rows: list[dict], metrics=METRICS, seed: int = 0) -> dict[str, dict]:
    """Mean and 95% bootstrap interval of each metric over examples (metrics absent from the rows
    are left out).

    >>> s = summarize_model([{"correct": 1.0}, {"correct": 0.0}], {"correct": ("acc", "pct")})
    >>> s["correct"]["mean"], s["correct"]["n"]
    (0.5, 2)
    """
    out = {}
    for m in metrics:
        if not any(m in r for r in rows):
            continue
        out[m] = _est(bootstrap_mean([_num(r.get(m)) for r in rows], seed=seed))
    return out


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
    ia = {r[pair_key]: r for r in rows_a}
    ib = {r[pair_key]: r for r in rows_b}
    common = [k for k in ia if k in ib]
    diff = {}
    for m in metrics:
        if not any(m in ia[k] and m in ib[k] for k in common):
            continue
        diff[m] = _est(paired_difference([_num(ib[k].get(m)) for k in common],
                                         [_num(ia[k].get(m)) for k in common], seed=seed))
    mc = {}
    for m, label in (("correct", "strict"), ("flexible_correct", "flexible")):
        if common and all(m in ia[k] for k in common):
            mc[label] = mcnemar([ia[k][m] for k in common], [ib[k][m] for k in common])
    return {"n_pairs": len(common), "only_a": len(ia) - len(common), "only_b": len(ib) - len(common),
            "diff": diff, "mcnemar": mc}


def _fmt_pts(d: dict) -> str:
    return f"{d['mean'] * 100:+.1f} pts [{d['lo'] * 100:+.1f}, {d['hi'] * 100:+.1f}]"


def _fmt_nats(d: dict, unit: str = "nats/step") -> str:
    return f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}] {unit}"


def _ok(d: dict | None) -> bool:
    def num(x):
        return isinstance(x, (int, float)) and not math.isnan(x)

    return bool(d) and num(d.get("mean")) and num(d.get("lo")) and num(d.get("hi"))


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
    if not _ok(acc):
        return {"status": "n/a", "trap": None, "rule": TRAP_RULE,
                "text": "Accuracy trap: cannot tell — no paired accuracy could be measured"}
    acc_up = acc["lo"] > 0
    ig_down = _ok(ig) and ig["hi"] < 0
    aoc_down = _ok(aoc) and aoc["hi"] < 0
    parts = [f"accuracy {_fmt_pts(acc)}"]
    if _ok(ig):
        parts.append(f"information gain {_fmt_nats(ig)}")
    if _ok(aoc):
        parts.append(f"faithfulness (AOC) {_fmt_pts(aoc)}")
    if not _ok(ig) and not _ok(aoc):
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


def step_gain_profile(rows: list[dict], max_steps: int = 12) -> list[dict]:
    """Mean per-step information gain at each chain position (1-based) over the chains that reach it.

    >>> step_gain_profile([{"ig_gains": [0.5, -0.1]}, {"ig_gains": [0.3]}])
    [{'step': 1, 'mean': 0.4, 'n': 2}, {'step': 2, 'mean': -0.1, 'n': 1}]
    """
    out = []
    for k in range(max_steps):
        v = [r["ig_gains"][k] for r in rows if isinstance(r.get("ig_gains"), list) and len(r["ig_gains"]) > k]
        v = [x for x in v if x is not None and not math.isnan(x)]
        if not v:
            break
        out.append({"step": k + 1, "mean": round(sum(v) / len(v), 6), "n": len(v)})
    return out


def biggest_changes(samples_a: list[Sample], samples_b: list[Sample], rows_a: list[dict], rows_b: list[dict],
                    k: int = 5) -> list[dict]:
    """The ``k`` examples behind the biggest changes from ``a`` to ``b`` (paired by id): correctness
    flips first, then the largest drop in information gain per step; with both chains, each step's
    gain, and ``lost_steps_b`` (indices of ``b``'s steps with the most negative gains)."""
    ia = {s.id: (s, r) for s, r in zip(samples_a, rows_a)}
    items = []
    for s, r in zip(samples_b, rows_b):
        if s.id not in ia:
            continue
        sa, ra = ia[s.id]
        dc = _num(r.get("correct")) - _num(ra.get("correct"))
        dig = _num(r.get("ig_mean")) - _num(ra.get("ig_mean"))
        items.append((sa, ra, s, r, dc, dig))
    items.sort(key=lambda t: (-abs(t[4]), t[5] if not math.isnan(t[5]) else math.inf, t[2].id))
    out = []
    for sa, ra, sb, rb, dc, dig in items[:k]:
        def chain(s, r):
            gains = r.get("ig_gains") if isinstance(r.get("ig_gains"), list) else None
            valid = r.get("step_valid") if isinstance(r.get("step_valid"), list) else None
            return {"completion": s.completion, "steps": s.steps, "answer": s.answer,
                    "flexible_answer": s.flexible_answer, "correct": s.correct,
                    "flexible_correct": s.flexible_correct, "gains": gains, "step_valid": valid,
                    "ig_mean": None if math.isnan(_num(r.get("ig_mean"))) else r.get("ig_mean")}
        cb = chain(sb, rb)
        lost = []
        if cb["gains"]:
            neg = sorted((g, i) for i, g in enumerate(cb["gains"]) if g is not None and g < 0)
            lost = [i for _, i in neg[:2]]
        out.append({"id": sb.id, "question": _question_of(sb), "reference": sb.reference,
                    "a": chain(sa, ra), "b": cb, "delta_correct": dc,
                    "delta_ig_mean": None if math.isnan(dig) else dig, "lost_steps_b": lost})
    return out


def _question_of(s: Sample) -> str:
    q = s.meta.get("question")
    if q:
        return q
    p = s.prompt
    i = p.rfind("Q: ")
    return p[i + 3:].strip() if i >= 0 else p.strip()


def _clean_json(x):
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    if isinstance(x, dict):
        return {k: _clean_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean_json(v) for v in x]
    return x
