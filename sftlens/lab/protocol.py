"""The verdict protocol: one way, the same for every claim, from per-example numbers to a verdict.

A claim states, before any number (:class:`Protocol`): its primary quantity, the smallest effect
size of interest (SESOI) with a one-line reason, and the test — **superiority** (the effect exceeds
the SESOI in the claimed direction) or **equivalence** (two one-sided tests: the effect lies within
±SESOI). From each seed's finished run it returns one or more :class:`Comparison` s (a table of
per-example values and the statistic computed from it) and the guards that apply to that seed.

:func:`judge` then decides, per seed (bootstrap over examples) and pooled over seeds (two-level
bootstrap: seeds, then examples within each seed), with 90% intervals (one-sided 5% tests):

- superiority: *reproduced* when the interval of direction × effect lies above the SESOI; *not
  reproduced* when it lies below the SESOI (the effect is shown to be smaller than what matters);
- equivalence: *reproduced* when the interval lies inside ±SESOI; *not reproduced* when it lies
  entirely outside it;
- non-superiority (one half of the two one-sided tests, for a claim that something does *not* move):
  *reproduced* when the interval of direction × effect lies below the SESOI; *not reproduced* when it
  lies above it;
Pooled over several seeds the interval is the wider of the two-level bootstrap's and a t interval
over the per-seed estimates (:func:`seed_t_decision`: with few seeds and an effect that varies
between them, the bootstrap alone is too narrow). A *binary* comparison (paired 0/1 outcomes) whose
pairs all differ alike has no bootstrap width: its interval is exact (:func:`exact_decision`).

- *inconclusive* otherwise, and whenever a guard applies (too few pairs, a constant column, a floor
  or ceiling, no signal in the control), with the guard's reason in words.

A claim with several comparisons is reproduced only when all are (intersection-union), not reproduced
when any is not. Across the claims of one run, p-values are Holm-adjusted (:func:`adjust_across`):
a "reproduced" whose adjusted p is not below 0.05 becomes inconclusive, and both are shown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..metrics.protocol import guards as shared_guards
from ..metrics.protocol import two_level_bootstrap_statistic

ALPHA = 0.05
MIN_PAIRS = 20
Z_POWER = 2.8016  # z(0.975) + z(0.80): a two-sided 5% test with 80% power detects 2.80 standard errors


@dataclass
class Protocol:
    """What a claim states before any number."""

    quantity: str          # the primary quantity, in words
    sesoi: float           # smallest effect size of interest, in the quantity's unit
    sesoi_reason: str      # one line: why that size
    test: str              # "superiority" | "equivalence" | "non-superiority"
    direction: int = +1    # superiority: +1 the claim says the quantity rises, -1 falls; non-superiority: +1
                           # the claim says it does not rise by the SESOI, -1 does not fall by it
    unit: str = "pts"      # "pts" (a difference of rates, shown x100), "nats", "aoc"

    def rule(self) -> str:
        """The decision rule in words (what the report prints under the claim)."""
        if self.test == "superiority":
            way = "above" if self.direction > 0 else "below"
            bound = f"{'+' if self.direction > 0 else '-'}{self.sesoi:g}"
            core = (f"Superiority: reproduced when the 90% interval of {self.quantity} lies {way} {bound} "
                    f"(SESOI {self.sesoi:g}: {self.sesoi_reason}); not reproduced when it lies on the other "
                    f"side of {bound} (the effect is shown to be smaller than what matters, or opposite)")
        elif self.test == "non-superiority":
            rise, bound = ("rise", f"+{self.sesoi:g}") if self.direction > 0 else ("fall", f"-{self.sesoi:g}")
            core = (f"Non-superiority (one one-sided test): reproduced when the 90% interval of {self.quantity} "
                    f"stays short of {bound} (it is shown not to {rise} by the SESOI {self.sesoi:g}: "
                    f"{self.sesoi_reason}); not reproduced when it lies beyond {bound}")
        else:
            core = (f"Equivalence (two one-sided tests): reproduced when the 90% interval of {self.quantity} lies "
                    f"inside ±{self.sesoi:g} (SESOI: {self.sesoi_reason}); not reproduced when it lies entirely "
                    f"outside ±{self.sesoi:g}")
        return (core + "; inconclusive otherwise, or when a guard applies (fewer than "
                f"{MIN_PAIRS} pairs, a constant column, a floor or ceiling, no signal in the control). Per seed "
                "the interval bootstraps test problems; pooled, it is the wider of a two-level bootstrap (seeds, then problems) and a t interval over the seeds. "
                "Holm-adjusted across the run's claims.")


@dataclass
class Comparison:
    """One comparison of a claim in one seed: per-example rows (``table``, shape (n, k)) and the
    statistic over rows (default: the NaN-mean of column 0, e.g. a paired difference)."""

    name: str
    table: np.ndarray
    statistic: Callable[[np.ndarray], float] | None = None
    protocol: Protocol | None = None  # None: the claim's own
    # one column of paired differences of 0/1 outcomes (-1, 0, +1): when every pair differs alike the
    # bootstrap has zero width, and the exact interval (exact_decision) replaces the constant-column guard
    binary: bool = False

    def stat(self, rows: np.ndarray) -> float:
        if self.statistic is not None:
            return float(self.statistic(rows))
        column = rows[:, 0]
        column = column[~np.isnan(column)]
        return float(column.mean()) if column.size else math.nan

    @property
    def n(self) -> int:
        """Pairs that carry a value (rows without NaN in every column)."""
        return int((~np.isnan(self.table).all(axis=1)).sum()) if self.table.size else 0

    def constant(self) -> bool:
        """Every column holds one value only: a bootstrap of it has zero width and proves nothing."""
        if self.table.size == 0:
            return True
        return all(np.unique(col[~np.isnan(col)]).size <= 1 for col in self.table.T)


@dataclass
class SeedEvidence:
    """What one seed gives a claim: its comparisons and the guard reasons that apply to it."""

    seed: int
    comparisons: list[Comparison]
    guards: list[str] = field(default_factory=list)


def paired_table(*columns) -> np.ndarray:
    """Columns (one value per example) as an (n, k) float table.

    >>> paired_table([1, 0], [0, 0]).shape
    (2, 2)
    """
    return np.column_stack([np.asarray(c, float) for c in columns]) if columns else np.empty((0, 0))


def decide(point: float, boot: np.ndarray, proto: Protocol) -> dict:
    """Verdict, reason, 90% interval, one-sided p (for Holm) and MDE of one comparison's bootstrap.

    >>> proto = Protocol("x", 0.05, "why", "equivalence")
    >>> decide(0.0, np.random.default_rng(0).normal(0, 0.01, 2000), proto)["verdict"]
    'reproduced'
    >>> decide(0.3, np.random.default_rng(0).normal(0.3, 0.01, 2000), proto)["verdict"]
    'not reproduced'
    """
    boot = boot[~np.isnan(boot)]
    if math.isnan(point) or boot.size == 0:
        return {"verdict": "inconclusive", "reason": "the quantity is undefined (no pairs with values)",
                "estimate": {"mean": math.nan, "lo": math.nan, "hi": math.nan}, "p_value": math.nan, "mde": math.nan}
    lo, hi = (float(x) for x in np.percentile(boot, [5, 95]))
    se = float(boot.std(ddof=1)) if boot.size > 1 else math.nan
    s, r = proto.sesoi, boot.size
    if proto.test == "superiority":
        p = (1 + int(np.sum(proto.direction * boot <= s))) / (r + 1)
    elif proto.test == "non-superiority":
        p = (1 + int(np.sum(proto.direction * boot >= s))) / (r + 1)
    else:
        p = (1 + max(int(np.sum(boot >= s)), int(np.sum(boot <= -s)))) / (r + 1)
    mde = Z_POWER * se if se > 0 else math.nan  # no variation: no effect size is "detectable"
    return rule_on_interval(point, lo, hi, float(p), mde, proto)


def rule_on_interval(point: float, lo: float, hi: float, p: float, mde: float, proto: Protocol) -> dict:
    """The decision rule applied to a 90% interval ``[lo, hi]`` (see the module docstring).

    >>> rule_on_interval(0.2, 0.1, 0.3, 0.01, 0.1, Protocol("x", 0.05, "why", "superiority"))["verdict"]
    'reproduced'
    >>> [rule_on_interval(0.0, lo, hi, 0.01, 0.1, Protocol("x", 0.05, "why", "non-superiority"))["verdict"]
    ...  for lo, hi in ((-0.02, 0.03), (0.06, 0.2), (0.0, 0.1))]
    ['reproduced', 'not reproduced', 'inconclusive']
    """
    s = proto.sesoi
    if proto.test == "superiority":
        d = proto.direction
        lo_d, hi_d = (lo, hi) if d > 0 else (-hi, -lo)  # interval of direction * effect
        if lo_d > s:
            verdict, reason = "reproduced", f"the 90% interval [{lo:+.3f}, {hi:+.3f}] lies beyond {d * s:+g}"
        elif hi_d < s:
            verdict, reason = "not reproduced", (f"the 90% interval [{lo:+.3f}, {hi:+.3f}] stays short of "
                                                 f"{d * s:+g}: any effect is smaller than the SESOI")
        else:
            verdict, reason = "inconclusive", f"the 90% interval [{lo:+.3f}, {hi:+.3f}] contains {d * s:+g}"
    elif proto.test == "non-superiority":
        d = proto.direction
        lo_d, hi_d = (lo, hi) if d > 0 else (-hi, -lo)
        if hi_d < s:
            verdict, reason = "reproduced", (f"the 90% interval [{lo:+.3f}, {hi:+.3f}] stays short of {d * s:+g}: "
                                             f"it does not {'rise' if d > 0 else 'fall'} by the SESOI")
        elif lo_d > s:
            verdict, reason = "not reproduced", f"the 90% interval [{lo:+.3f}, {hi:+.3f}] lies beyond {d * s:+g}"
        else:
            verdict, reason = "inconclusive", f"the 90% interval [{lo:+.3f}, {hi:+.3f}] contains {d * s:+g}"
    else:
        if -s < lo and hi < s:
            verdict, reason = "reproduced", f"equivalent: the 90% interval [{lo:+.3f}, {hi:+.3f}] lies inside ±{s:g}"
        elif lo > s or hi < -s:
            verdict, reason = "not reproduced", (f"different: the 90% interval [{lo:+.3f}, {hi:+.3f}] lies outside "
                                                 f"±{s:g}")
        else:
            verdict, reason = "inconclusive", f"the 90% interval [{lo:+.3f}, {hi:+.3f}] crosses ±{s:g}"
    return {"verdict": verdict, "reason": reason, "estimate": {"mean": point, "lo": lo, "hi": hi},
            "p_value": float(p), "mde": mde}


def seed_t_decision(boot_decision: dict, seed_values: list[float], proto: Protocol) -> dict:
    """Pooled over seeds, the seeds are the unit: a t interval (S - 1 degrees of freedom) over the
    per-seed estimates, each of which carries its own test sampling. The two-level bootstrap alone
    under-covers when the effect varies much between few seeds (a percentile bootstrap of 5 values
    is too narrow), the t interval alone wastes the within-seed resolution when it does not: the
    verdict uses the wider of the two intervals, the larger p and the larger MDE.

    >>> proto = Protocol("x", 0.05, "why", "superiority")
    >>> tight = {"verdict": "reproduced", "estimate": {"mean": 0.3, "lo": 0.2, "hi": 0.4}, "p_value": 0.001, "mde": 0.1}
    >>> d = seed_t_decision(tight, [-0.05, 0.18, 0.83, 0.36, 0.29], proto)
    >>> d["verdict"], d["estimate"]["lo"] < 0.05
    ('inconclusive', True)
    """
    from scipy import stats as sps

    values = np.asarray([v for v in seed_values if v == v], float)
    est = boot_decision["estimate"]
    if values.size < 2 or math.isnan(est["mean"]):
        return boot_decision
    df = values.size - 1
    se = float(values.std(ddof=1)) / math.sqrt(values.size)
    point = est["mean"]
    half = float(sps.t.ppf(0.95, df)) * se
    lo, hi = min(est["lo"], point - half), max(est["hi"], point + half)
    s = proto.sesoi
    if se > 0:
        if proto.test == "superiority":
            p_t = float(sps.t.sf((proto.direction * point - s) / se, df))
        elif proto.test == "non-superiority":
            p_t = float(sps.t.sf((s - proto.direction * point) / se, df))
        else:
            # two one-sided tests: H0 mean <= -s, H0 mean >= +s
            p_t = max(float(sps.t.sf((point + s) / se, df)), float(sps.t.sf((s - point) / se, df)))
        mde_t = float((sps.t.ppf(0.975, df) + sps.t.ppf(0.80, df)) * se)
    else:
        p_t, mde_t = boot_decision["p_value"], boot_decision["mde"]
    mde = max((m for m in (boot_decision["mde"], mde_t) if m == m), default=math.nan)
    out = rule_on_interval(point, lo, hi, max(boot_decision["p_value"], p_t), mde, proto)
    out["interval_source"] = "seed t" if (lo, hi) != (est["lo"], est["hi"]) else "two-level bootstrap"
    return out


def combine(verdicts: list[str]) -> str:
    """Intersection-union: reproduced when all are, not reproduced when any is, else inconclusive.

    >>> combine(["reproduced", "inconclusive"]), combine(["reproduced", "not reproduced"])
    ('inconclusive', 'not reproduced')
    """
    if verdicts and all(v == "reproduced" for v in verdicts):
        return "reproduced"
    if any(v == "not reproduced" for v in verdicts):
        return "not reproduced"
    return "inconclusive"


def exact_decision(value: float, n: int, proto: Protocol) -> dict:
    """The decision on ``n`` paired 0/1 outcomes that all differ by ``value`` (-1, 0 or +1), where a
    bootstrap has zero width: the exact one-sided bound on the pairs that differ otherwise
    (Clopper-Pearson for none in ``n``: ``b = 1 - 0.05^(1/n)``, the rule of three) gives the 90%
    interval (``±b`` around 0; ``2b`` toward 0 from ±1), and the p-value is the largest chance,
    under the null, that all ``n`` pairs differ by ``value``.

    >>> [exact_decision(0.0, n, Protocol("x", 0.05, "why", "non-superiority"))["verdict"] for n in (40, 600)]
    ['inconclusive', 'reproduced']
    >>> exact_decision(1.0, 600, Protocol("x", 0.05, "why", "superiority"))["estimate"]["lo"] > 0.98
    True
    """
    b = 1 - ALPHA ** (1 / n)
    lo, hi = (-b, b) if value == 0 else ((1 - 2 * b, 1.0) if value > 0 else (-1.0, -1 + 2 * b))
    s, d = proto.sesoi, proto.direction
    null = {"superiority": [(-1.0, s) if d > 0 else (-s, 1.0)], "non-superiority": [(s, 1.0) if d > 0 else (-1.0, -s)],
            "equivalence": [(-1.0, -s), (s, 1.0)]}[proto.test]  # the null hypothesis as intervals of the effect

    def most_likely(a: float, z: float) -> float:  # sup over the null interval [a, z] of P(a pair differs by value)
        return 1 - (0.0 if a <= 0 <= z else min(abs(a), abs(z))) if value == 0 else (1 + (z if value > 0 else -a)) / 2

    p = max(most_likely(a, z) for a, z in null) ** n
    out = rule_on_interval(value, lo, hi, float(min(p, 1.0)), math.nan, proto)
    out["interval_source"] = "exact: every pair differs alike"
    return out


def _decide(comps: list[Comparison], point: float, boot: np.ndarray, proto: Protocol) -> dict:
    """:func:`decide`, or :func:`exact_decision` for binary comparisons whose pairs (over every seed) all
    differ alike."""
    values = np.concatenate([c.table[:, 0][~np.isnan(c.table[:, 0])] for c in comps]) if comps[0].binary else None
    if values is not None and values.size and np.unique(values).size == 1 and values[0] in (-1.0, 0.0, 1.0):
        return exact_decision(float(values[0]), int(values.size), proto)
    return decide(point, boot, proto)


def structural_guards(comparisons: list[Comparison]) -> list[str]:
    """The guards every claim shares (:func:`sftlens.metrics.protocol.guards`): too few pairs, a
    constant column (every column of a comparison's table holds one value)."""
    reasons = []
    for c in comparisons:
        found = shared_guards(n_pairs=c.n, min_pairs=MIN_PAIRS)
        if not found and c.constant() and not c.binary:
            found = shared_guards(n_pairs=c.n, columns={c.name: c.table[:, 0] if c.table.size else []})
        reasons += [f"{r} ({c.name})" if r.startswith("too few") else r for r in found]
    return reasons


def bound_guard(name: str, value: float, lower: float, upper: float, sesoi: float) -> list[str]:
    """Floor/ceiling: ``value`` within the SESOI of a bound of its scale.

    >>> bound_guard("base AOC", 0.99, 0.0, 1.0, 0.05)[0][:8]
    'ceiling:'
    """
    if math.isnan(value):
        return []
    return shared_guards(n_pairs=MIN_PAIRS, bounded={name: (value, lower, upper)}, sesoi=sesoi)


def signal_guard(what: str, diffs, sesoi: float) -> list[str]:
    """No signal: the control does not beat its reference beyond the SESOI (mean of paired ``diffs``).

    >>> signal_guard("SFT on correct traces vs the base (accuracy)", [0, 0, 1, 0], 0.05)
    []
    >>> signal_guard("x", [0, 0, 0, 0], 0.05)[0][:10]
    'no signal:'
    """
    d = np.asarray(diffs, float)
    d = d[~np.isnan(d)]
    mean = float(d.mean()) if d.size else math.nan
    if math.isnan(mean) or mean <= sesoi:
        return [f"no signal: {what} is {mean:+.3f}, not beyond the SESOI {sesoi:g}, so there is nothing the "
                "claim's comparison could be measured against"]
    return []


def power_plan(pooled_mde: float, seed_mdes: list[float], seed_ns: list[int], sesoi: float) -> dict:
    """What it would take to detect the SESOI, split into its two sources of noise.

    The pooled standard error over ``S`` seeds is about ``sqrt(sb^2 / S + sw^2 / S)``, ``sb`` the
    spread of the true effect between seeds (training variance) and ``sw`` the mean within-seed
    standard error (test sampling, shrinking as ``1/sqrt(n)``). Returned: ``between_seed_sd`` (sb),
    ``within_seed_se`` (sw), ``n_per_seed_needed`` for one seed's MDE to reach the SESOI, and
    ``seeds_needed`` for the pooled MDE to reach it even with unlimited test problems (NaN without
    several seeds).

    >>> plan = power_plan(0.09, [0.08, 0.08], [300, 300], 0.05)
    >>> plan["n_per_seed_needed"], round(plan["between_seed_sd"], 3), plan["seeds_needed"]
    (768, 0.035, 4)
    """
    se = [m / Z_POWER for m in seed_mdes if m == m and m > 0]
    out = {"between_seed_sd": math.nan, "within_seed_se": math.nan, "n_per_seed_needed": None, "seeds_needed": None}
    if not se:
        return out
    within = float(np.mean([x * x for x in se]))
    out["within_seed_se"] = math.sqrt(within)
    need = [n * (m / sesoi) ** 2 for n, m in zip(seed_ns, seed_mdes) if m == m and m > 0]
    out["n_per_seed_needed"] = int(math.ceil(max(need))) if need else None
    if len(se) > 1 and pooled_mde == pooled_mde:
        between = max(len(se) * (pooled_mde / Z_POWER) ** 2 - within, 0.0)
        out["between_seed_sd"] = math.sqrt(between)
        out["seeds_needed"] = max(int(math.ceil(between * (Z_POWER / sesoi) ** 2)), 1) if between > 0 else 1
    return out


def judge(proto: Protocol, evidence: list[SeedEvidence], n_resamples: int = 2000, seed: int = 0) -> dict:
    """Per-seed and pooled verdicts of a claim from its evidence in each seed (see the module docstring)."""
    names = [c.name for c in evidence[0].comparisons]
    per_seed = {}
    for ev in evidence:
        guards = ev.guards + structural_guards(ev.comparisons)
        decisions = {}
        for c in ev.comparisons:
            point, boot = two_level_bootstrap_statistic([c.table], c.stat, n_resamples, seed=seed + ev.seed)
            decisions[c.name] = {**_decide([c], point, boot, c.protocol or proto), "n": c.n}
        verdict = combine([d["verdict"] for d in decisions.values()])
        per_seed[str(ev.seed)] = {"verdict": "inconclusive" if guards else verdict, "unguarded_verdict": verdict,
                                  "guards": guards, "comparisons": decisions}
    pooled = {}
    for i, name in enumerate(names):
        comps = [ev.comparisons[i] for ev in evidence]
        point, boot = two_level_bootstrap_statistic([c.table for c in comps], comps[0].stat, n_resamples, seed=seed)
        decision = _decide(comps, point, boot, comps[0].protocol or proto)
        if len(comps) > 1 and "interval_source" not in decision:
            decision = seed_t_decision(decision, [c.stat(c.table) for c in comps], comps[0].protocol or proto)
        pooled[name] = {**decision, "n": sum(c.n for c in comps)}
        pooled[name]["power"] = power_plan(pooled[name]["mde"],
                                           [per_seed[str(ev.seed)]["comparisons"][name]["mde"] for ev in evidence],
                                           [c.n for c in comps], (comps[0].protocol or proto).sesoi)
    all_guards = [f"seed {s}: {g}" if len(evidence) > 1 else g for s, e in per_seed.items() for g in e["guards"]]
    verdict = combine([d["verdict"] for d in pooled.values()])
    # a guarded claim has no test to adjust: it leaves the Holm family (its p is kept as p_unguarded)
    p_unguarded = max(d["p_value"] for d in pooled.values())
    p_value = math.nan if all_guards else p_unguarded
    main = pooled[names[0]]
    return {
        "verdict": "inconclusive" if all_guards else verdict,
        "unguarded_verdict": verdict,
        "reason": ("; ".join(all_guards) if all_guards
                   else "; ".join(f"{n}: {d['reason']}" for n, d in pooled.items())),
        "quantity": proto.quantity, "sesoi": proto.sesoi, "sesoi_reason": proto.sesoi_reason, "test": proto.test,
        "direction": proto.direction, "guards": all_guards,
        "mde": main["mde"], "power": main["power"], "p_value": p_value, "p_unguarded": p_unguarded, "p_holm": math.nan,
        "pooled": pooled, "per_seed": per_seed, "n_seeds": len(evidence),
    }


NO_CONTROL = "no control yet"
BLIND = "the lab cannot see this effect here"


def control_summary(role: str, arm, judgement: dict | None) -> dict:
    """A control's entry in ``results.json``: where it was measured, what it must show, what it showed.

    A positive control passes when its verdict is "reproduced" (the planted effect is detected); a
    negative control passes when it is anything but "reproduced" (no effect is found where none is)."""
    expected = "reproduced" if role == "positive" else "not reproduced or inconclusive"
    if judgement is None:
        return {"status": "not measured", "world": arm.world, "conditions": list(arm.conditions),
                "description": arm.description, "expected": expected, "passed": False}
    verdict = judgement["verdict"]
    passed = verdict == "reproduced" if role == "positive" else verdict != "reproduced"
    first = next(iter(judgement["pooled"]))
    return {"status": "passed" if passed else "failed", "world": arm.world, "conditions": list(arm.conditions),
            "description": arm.description, "expected": expected, "verdict": verdict, "passed": passed,
            "reason": judgement["reason"], "effect": {"name": first, **judgement["pooled"][first]["estimate"]},
            "guards": judgement["guards"], "mde": judgement["mde"],
            "per_seed": {s: e["verdict"] for s, e in judgement["per_seed"].items()}}


def check_controls(claim, judged: dict[str, dict], real: dict) -> dict:
    """The claim's ``controls`` entry; when a declared control fails, the real verdict becomes
    "inconclusive", its reason starting with :data:`BLIND` (the raw verdict is kept in
    ``verdict_uncontrolled``), and the claim leaves the Holm family.
    A claim without controls keeps its verdict, marked :data:`NO_CONTROL` for each role."""
    arms = claim.arms()
    out = {}
    for role in ("positive", "negative"):
        if role not in arms:
            out[role] = {"status": NO_CONTROL, "passed": None}
        else:
            out[role] = control_summary(role, arms[role], judged.get(role))
    failed = [r for r in ("positive", "negative") if out[r]["passed"] is False]
    real["verdict_uncontrolled"] = real["verdict"]
    real["controlled"] = not failed and all(out[r]["passed"] for r in ("positive", "negative"))
    if failed:
        why = "; ".join(f"the {r} control ({arms[r].description or arms[r].world}) came out "
                        f"{out[r].get('verdict', 'unmeasured')}, expected {out[r]['expected']}" for r in failed)
        real["verdict"] = "inconclusive"
        real["reason"] = f"{BLIND}: {why}. Uncontrolled: {real['reason']}"
        real["p_value"] = math.nan
    return out


def adjust_across(judgements: dict[str, dict]) -> None:
    """Holm-adjust the claims' p-values in place; a "reproduced" whose adjusted p is not below
    :data:`ALPHA` becomes "inconclusive" (the raw verdict stays in ``verdict_raw``)."""
    from ..metrics.protocol import holm

    adjusted = holm({cid: j["p_value"] for cid, j in judgements.items()})
    for cid, j in judgements.items():
        j["p_holm"] = adjusted.get(cid, math.nan)
        j["verdict_raw"] = j["verdict"]
        if j["verdict"] == "reproduced" and not (j["p_holm"] < ALPHA):
            j["verdict"] = "inconclusive"
            j["reason"] += f"; not significant after Holm adjustment across claims (p = {j['p_holm']:.3g})"
