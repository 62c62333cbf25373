"""The verdict protocol's statistics: one decision rule for every claim, as pure functions.

A claim's primary comparison is a set of paired differences (one per example, ``treated - control``)
and a smallest effect size of interest (SESOI) in the same unit. Two kinds of question:

- **superiority** ("fine-tuning on X raises Y"): the effect must *exceed* the SESOI in the claimed
  direction. A one-sided t-test of ``direction * mean > sesoi``; reproduced when its lower one-sided
  ``1 - alpha`` bound lies above the SESOI, not reproduced when its upper one-sided bound lies below
  it (no effect, or an effect in the opposite direction), otherwise inconclusive.
- **equivalence** ("X changes nothing"): two one-sided t-tests (TOST) against ``±sesoi``;
  reproduced when the ``1 - 2*alpha`` (90%) interval lies inside the margin, not reproduced when the
  ``1 - alpha`` (95%) interval lies entirely outside it, otherwise inconclusive.

The two one-sided ``1 - alpha`` bounds are the ends of the two-sided ``1 - 2*alpha`` interval, so a
:class:`Decision` always carries that (90%) interval: the verdict can be read off it.

:func:`guards` lists the reasons a verdict must be inconclusive whatever the test says (too few
pairs, a constant column, a score at a floor or ceiling, a control that learned nothing);
:func:`two_level_bootstrap` pools several training seeds; :func:`holm` adjusts a family of p-values;
:func:`mde_paired` says how large an effect a design could have detected.

Every function returns NaN (never raises) when there is nothing to measure, except on arguments that
are wrong in themselves (an unknown test, a direction other than ±1).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

__all__ = [
    "Decision",
    "tost_paired",
    "superiority_paired",
    "decide",
    "guards",
    "two_level_bootstrap",
    "two_level_bootstrap_statistic",
    "holm",
    "mde_paired",
    "VERDICTS",
    "TESTS",
]

VERDICTS = ("reproduced", "not reproduced", "inconclusive")
TESTS = ("superiority", "equivalence")


@dataclass
class Decision:
    """What a claim's primary comparison concludes.

    ``estimate`` is ``{"mean", "lo", "hi", "n"}`` of the paired differences (not multiplied by the
    direction) with the two-sided interval at level ``confidence`` (``1 - 2*alpha``: 90% for
    ``alpha = 0.05``), whose ends are the one-sided bounds both tests decide on. ``p_value`` is the
    one-sided p of ``direction * effect > sesoi`` for superiority, the larger TOST p for equivalence.
    """

    verdict: str
    reason: str
    test: str
    sesoi: float
    estimate: dict
    p_value: float
    confidence: float = 0.90

    def to_dict(self) -> dict:
        """A plain dict (JSON-ready apart from NaN).

        >>> Decision("inconclusive", "r", "equivalence", 0.05, {"mean": 0.0, "lo": 0.0, "hi": 0.0, "n": 3}, math.nan).to_dict()["verdict"]
        'inconclusive'
        """
        return asdict(self)


# ---------------------------------------------------------------------------------------- helpers


def _clean(x) -> np.ndarray:
    a = np.asarray(x, dtype=float).ravel()
    return a[~np.isnan(a)]


def _moments(d: np.ndarray) -> tuple[int, float, float]:
    """n, mean and standard error of the mean (NaN where undefined)."""
    n = int(d.size)
    mean = float(d.mean()) if n else math.nan
    se = float(d.std(ddof=1) / math.sqrt(n)) if n >= 2 else math.nan
    return n, mean, se


def _t_interval(mean: float, se: float, n: int, confidence: float) -> tuple[float, float]:
    from scipy.stats import t

    if n < 2 or not se > 0:
        return (mean, mean) if n >= 1 and se == 0 else (math.nan, math.nan)
    h = float(t.ppf(0.5 + confidence / 2, n - 1)) * se
    return mean - h, mean + h


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.3g}"


def _iv(lo: float, hi: float) -> str:
    return f"[{_fmt(lo)}, {_fmt(hi)}]"


def _degenerate(d: np.ndarray) -> str | None:
    """Why no test can be run on these differences, or None."""
    if d.size < 2:
        return f"too few pairs: {d.size} non-missing paired difference(s), a t-test needs at least 2"
    if np.all(d == d[0]):
        return (f"constant column: every one of the {d.size} paired differences equals {_fmt(float(d[0]))} "
                "(e.g. both arms scored 0% on every example), so there is no variance to test")
    return None


# ------------------------------------------------------------------------------------------ tests


def tost_paired(diffs, sesoi: float, alpha: float = 0.05) -> dict:
    """Two one-sided t-tests of paired differences (NaNs dropped) against ``±sesoi``.

    ``p_lower`` tests ``mean > -sesoi``, ``p_upper`` tests ``mean < sesoi``; ``p_value`` is their
    maximum; ``lo, hi`` the ``1 - 2*alpha`` (90%) t interval; ``equivalent`` is ``p_value < alpha``.
    Fewer than 2 differences or a constant column give NaN p-values and ``equivalent=False``.
    Agrees with :func:`statsmodels.stats.weightstats.ttost_paired`.

    >>> r = tost_paired([0.01, -0.02, 0.0, 0.02, -0.01, 0.01], sesoi=0.05)
    >>> r["equivalent"], r["n"], round(r["p_value"], 4)
    (True, 6, 0.0002)
    >>> tost_paired([0, 0, 0], sesoi=0.05)["equivalent"]
    False
    """
    from scipy.stats import t

    d = _clean(diffs)
    n, mean, se = _moments(d)
    lo, hi = _t_interval(mean, se, n, 1 - 2 * alpha)
    if _degenerate(d) is not None:
        return {"p_value": math.nan, "p_lower": math.nan, "p_upper": math.nan, "lo": lo, "hi": hi,
                "mean": mean, "n": n, "equivalent": False}
    p_lower = float(t.sf((mean + sesoi) / se, n - 1))
    p_upper = float(t.cdf((mean - sesoi) / se, n - 1))
    p = max(p_lower, p_upper)
    return {"p_value": p, "p_lower": p_lower, "p_upper": p_upper, "lo": lo, "hi": hi, "mean": mean,
            "n": n, "equivalent": bool(p < alpha)}


def superiority_paired(diffs, sesoi: float, direction: int = +1, alpha: float = 0.05) -> dict:
    """One-sided t-test that ``direction * mean(diffs) > sesoi`` (NaNs dropped).

    ``mean, lo, hi`` describe the differences themselves (not multiplied by ``direction``), with the
    two-sided ``1 - alpha`` (95%) t interval; ``lo_one_sided, hi_one_sided`` are the one-sided
    ``1 - alpha`` bounds (the two-sided ``1 - 2*alpha`` interval) the decision uses. ``beyond`` is
    ``p_value < alpha``; ``p_below`` is the one-sided p of ``direction * mean < sesoi`` (the effect
    is shown to be smaller than the SESOI). Degenerate data give NaN p-values and ``beyond=False``.

    >>> r = superiority_paired([0.2, 0.3, 0.25, 0.15, 0.35], sesoi=0.05)
    >>> r["beyond"], r["n"], r["p_value"] < 0.01
    (True, 5, True)
    >>> superiority_paired([-0.2, -0.3, -0.25, -0.15, -0.35], sesoi=0.05, direction=-1)["beyond"]
    True
    """
    from scipy.stats import t

    if direction not in (1, -1):
        raise ValueError(f"superiority_paired: direction must be +1 or -1, not {direction!r}")
    d = _clean(diffs)
    n, mean, se = _moments(d)
    lo, hi = _t_interval(mean, se, n, 1 - alpha)
    lo1, hi1 = _t_interval(mean, se, n, 1 - 2 * alpha)
    out = {"p_value": math.nan, "p_below": math.nan, "mean": mean, "lo": lo, "hi": hi,
           "lo_one_sided": lo1, "hi_one_sided": hi1, "n": n, "beyond": False}
    if _degenerate(d) is not None:
        return out
    tstat = (direction * mean - sesoi) / se
    out["p_value"] = float(t.sf(tstat, n - 1))
    out["p_below"] = float(t.cdf(tstat, n - 1))
    out["beyond"] = bool(out["p_value"] < alpha)
    return out


def decide(diffs, sesoi: float, test: str, direction: int = +1, alpha: float = 0.05,
           claim_direction_means_reproduced: bool = True) -> Decision:
    """The one decision rule every claim uses (see the module docstring).

    ``claim_direction_means_reproduced=False`` is for a claim that asserts the *absence* of a
    superiority effect (the published claim is "X does not beat Y by more than the SESOI"): the
    reproduced and not-reproduced verdicts of the superiority test swap. It has no effect on
    equivalence. Fewer than 2 pairs or a constant column are inconclusive, with that reason.

    >>> decide([0.2, 0.3, 0.25, 0.15, 0.35], 0.05, "superiority").verdict
    'reproduced'
    >>> decide([0.01, -0.02, 0.0, 0.02, -0.01, 0.01], 0.05, "equivalence").verdict
    'reproduced'
    >>> d = decide([0.0] * 50, 0.05, "equivalence")
    >>> d.verdict, d.reason.startswith("constant column")
    ('inconclusive', True)
    """
    if test not in TESTS:
        raise ValueError(f"decide: test must be one of {TESTS}, not {test!r}")
    if direction not in (1, -1):
        raise ValueError(f"decide: direction must be +1 or -1, not {direction!r}")
    d = _clean(diffs)
    n, mean, se = _moments(d)
    lo, hi = _t_interval(mean, se, n, 1 - 2 * alpha)
    est = {"mean": mean, "lo": lo, "hi": hi, "n": n}
    pct = f"{100 * (1 - 2 * alpha):g}%"

    def out(verdict: str, reason: str, p: float) -> Decision:
        return Decision(verdict, reason, test, float(sesoi), est, p, confidence=1 - 2 * alpha)

    why = _degenerate(d)
    if why is not None:
        return out("inconclusive", why, math.nan)

    if test == "equivalence":
        r = tost_paired(d, sesoi, alpha)
        lo95, hi95 = _t_interval(mean, se, n, 1 - alpha)
        pct95 = f"{100 * (1 - alpha):g}%"
        if r["equivalent"]:
            return out("reproduced", f"equivalent: the {pct} interval {_iv(lo, hi)} lies inside ±{_fmt(sesoi)}",
                       r["p_value"])
        if lo95 > sesoi or hi95 < -sesoi:
            side = "above +" if lo95 > sesoi else "below -"
            return out("not reproduced", f"different: the {pct95} interval {_iv(lo95, hi95)} lies entirely "
                       f"{side}{_fmt(sesoi)}, a difference of interest", r["p_value"])
        return out("inconclusive", f"neither equivalent nor different: the {pct} interval {_iv(lo, hi)} "
                   f"crosses the margin ±{_fmt(sesoi)}", r["p_value"])

    r = superiority_paired(d, sesoi, direction, alpha)
    # one-sided 1-alpha bounds of direction * mean
    e_lo, e_hi = (lo, hi) if direction > 0 else (-hi, -lo)
    sign = "" if direction > 0 else "-1 × "
    if r["beyond"]:
        verdict = "reproduced" if claim_direction_means_reproduced else "not reproduced"
        reason = (f"the effect exceeds the SESOI: the lower one-sided {100 * (1 - alpha):g}% bound of "
                  f"{sign}the mean difference, {_fmt(e_lo)}, lies above {_fmt(sesoi)}")
    elif r["p_below"] < alpha:
        verdict = "not reproduced" if claim_direction_means_reproduced else "reproduced"
        kind = "in the opposite direction" if e_hi < 0 else "absent or smaller than the SESOI"
        reason = (f"the effect is {kind}: the upper one-sided {100 * (1 - alpha):g}% bound of "
                  f"{sign}the mean difference, {_fmt(e_hi)}, lies below {_fmt(sesoi)}")
    else:
        verdict = "inconclusive"
        reason = (f"the {pct} interval {_iv(e_lo, e_hi)} of {sign}the mean difference contains the "
                  f"SESOI {_fmt(sesoi)}: neither larger nor smaller is shown")
    return out(verdict, reason, r["p_value"])


# ----------------------------------------------------------------------------------------- guards


def guards(*, n_pairs: int, min_pairs: int = 20, columns: dict[str, list[float]] | None = None,
           bounded: dict[str, tuple[float, float, float]] | None = None,
           signal: tuple[float, float] | None = None, sesoi: float | None = None) -> list[str]:
    """Reasons (one sentence each) why a verdict must be "inconclusive"; empty when none applies.

    - ``n_pairs < min_pairs``: too few pairs;
    - ``columns`` (name -> values): a column whose non-NaN values are all equal (e.g. every model
      scored 0%), or one with no value at all;
    - ``bounded`` (name -> ``(value, lower, upper)``): the value lies within ``sesoi`` of a bound
      (floor or ceiling), so a change of interest may not fit; needs ``sesoi``;
    - ``signal`` = ``(control_effect_lo, sesoi)``: the lower end of the interval of the control's
      effect over the base is ``<= 0`` (or NaN), i.e. the control learned nothing measurable. The
      tuple's sesoi is only quoted in the message.

    >>> guards(n_pairs=100)
    []
    >>> guards(n_pairs=5)
    ['too few pairs: 5 < 20 needed for a verdict']
    >>> guards(n_pairs=100, columns={"base correct": [0, 0, 0]})
    ['constant column: every value of "base correct" equals 0, so it carries no contrast (e.g. every model scored 0%)']
    """
    out: list[str] = []
    if n_pairs < min_pairs:
        out.append(f"too few pairs: {n_pairs} < {min_pairs} needed for a verdict")
    for name, values in (columns or {}).items():
        a = _clean(values)
        if a.size == 0:
            out.append(f'empty column: "{name}" has no non-missing value')
        elif np.all(a == a[0]):
            out.append(f'constant column: every value of "{name}" equals {_fmt(float(a[0]))}, '
                       "so it carries no contrast (e.g. every model scored 0%)")
    if bounded:
        if sesoi is None:
            raise ValueError("guards: bounded values need the sesoi to judge a floor or ceiling")
        for name, (value, lower, upper) in bounded.items():
            if value - lower <= sesoi:
                out.append(f'floor: "{name}" = {_fmt(value)} lies within the SESOI {_fmt(sesoi)} of its lower '
                           f"bound {_fmt(lower)}, so a decrease of interest cannot be observed")
            elif upper - value <= sesoi:
                out.append(f'ceiling: "{name}" = {_fmt(value)} lies within the SESOI {_fmt(sesoi)} of its upper '
                           f"bound {_fmt(upper)}, so an increase of interest cannot be observed")
    if signal is not None:
        lo, s = signal
        if not lo > 0:
            out.append(f"no signal: the control learned nothing measurable (the lower end of its effect over "
                       f"the base is {_fmt(lo)} ≤ 0; SESOI {_fmt(s)})")
    return out


# ------------------------------------------------------------------------- pooling, family, power


def two_level_bootstrap(per_seed: list[list[float]], n_resamples: int = 2000, seed: int = 0,
                        confidence: float = 0.95) -> dict:
    """Mean of per-example values over several seeds, with a two-level percentile bootstrap interval.

    Each resample draws seeds with replacement, then examples with replacement within each drawn
    seed (independently each time a seed is drawn); its statistic is the mean over drawn seeds of
    the per-seed means. ``mean`` is the same statistic on the data (the mean of per-seed means, so
    every seed weighs the same), ``n`` the number of examples, ``n_seeds`` the seeds with at least
    one non-NaN value. One seed falls back to the ordinary bootstrap
    (:func:`sftlens.metrics.stats.bootstrap_mean`); none gives NaN.

    With few seeds the percentile interval is too narrow when the spread *between* seeds dominates
    (resampling 5 seeds sees 4/5 of their variance and cannot know a t-quantile with 4 degrees of
    freedom): 5 seeds x 100 examples with per-example sd 1 cover the mean in about 97% of
    simulations with seed offsets of sd 0.05, 95% at 0.1, 89% at 0.2 and 85% at 0.5. Examples are
    resampled independently within each seed, which assumes different examples per seed.

    >>> r = two_level_bootstrap([[1, 2, 3], [2, 3, 4], [3, 4, 5]])
    >>> r["mean"], r["n"], r["n_seeds"], r["lo"] < 3 < r["hi"]
    (3.0, 9, 3, True)
    >>> two_level_bootstrap([[1.0, 1.0]])["lo"]
    1.0
    """
    arrays = [a for a in (_clean(s) for s in per_seed) if a.size]
    n = int(sum(a.size for a in arrays))
    S = len(arrays)
    if S == 0:
        return {"mean": math.nan, "lo": math.nan, "hi": math.nan, "n": 0, "n_seeds": 0}
    if S == 1:
        from sftlens.metrics.stats import bootstrap_mean

        e = bootstrap_mean(arrays[0], seed=seed, n_resamples=n_resamples, confidence=confidence)
        return {"mean": e.mean, "lo": e.lo, "hi": e.hi, "n": n, "n_seeds": 1}
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, S, size=n_resamples * S)  # seeds drawn, S per resample
    replicate = np.repeat(np.arange(n_resamples), S)
    total = np.zeros(n_resamples)
    for s, a in enumerate(arrays):
        where = replicate[drawn == s]
        if where.size:
            means = a[rng.integers(0, a.size, size=(where.size, a.size))].mean(axis=1)
            total += np.bincount(where, weights=means, minlength=n_resamples)
    stats = total / S
    tail = 100 * (1 - confidence) / 2
    return {"mean": float(np.mean([a.mean() for a in arrays])), "lo": float(np.percentile(stats, tail)),
            "hi": float(np.percentile(stats, 100 - tail)), "n": n, "n_seeds": S}


def two_level_bootstrap_statistic(tables: list[np.ndarray], statistic: Callable[[np.ndarray], float],
                        n_resamples: int = 2000, seed: int = 0) -> tuple[float, np.ndarray]:
    """Point estimate (mean over seeds of each seed's statistic) and its bootstrap distribution:
    resample seeds with replacement, then rows within each drawn seed. One table: the ordinary
    bootstrap over rows.

    Unlike :func:`two_level_bootstrap` (the mean of one column, vectorised), ``statistic`` may be any
    function of a seed's rows, e.g. a ratio of sums (C8's conditional collapse).

    >>> point, boot = two_level_bootstrap_statistic([np.ones((5, 1))], lambda t: t[:, 0].mean(), 50)
    >>> point, float(boot.min()), boot.shape
    (1.0, 1.0, (50,))
    """
    rng = np.random.default_rng(seed)
    point = float(np.mean([statistic(t) for t in tables]))
    n_seeds = len(tables)
    boot = np.empty(n_resamples)
    for r in range(n_resamples):
        drawn = rng.integers(0, n_seeds, n_seeds) if n_seeds > 1 else [0]
        values = []
        for s in drawn:
            t = tables[s]
            values.append(statistic(t[rng.integers(0, len(t), len(t))]))  # (n_s, k) resampled rows
        boot[r] = np.nanmean(values) if not all(math.isnan(v) for v in values) else math.nan
    return point, boot


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm-adjusted p-values (statsmodels ``multipletests(method="holm")``); NaN p-values stay NaN
    and are left out of the family.

    >>> holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": float("nan")})
    {'a': 0.03, 'b': 0.06, 'c': 0.06, 'd': nan}
    """
    from statsmodels.stats.multitest import multipletests

    keys = [k for k, p in p_values.items() if not math.isnan(p)]
    out = {k: math.nan for k in p_values}
    if keys:
        adj = multipletests([p_values[k] for k in keys], method="holm")[1]
        out.update({k: float(p) for k, p in zip(keys, adj)})
    return out


def mde_paired(diffs, n: int | None = None, alpha: float = 0.05, power: float = 0.8) -> float:
    """Minimum detectable effect (in the unit of ``diffs``) of a paired t-test at ``n`` pairs
    (default: the non-NaN diffs), two-sided ``alpha``, given ``power``: the standardised effect from
    statsmodels' ``TTestPower().solve_power`` times the sd of the differences. NaN when the sd is 0
    or undefined, or ``n < 2``.

    >>> round(mde_paired([1.0, -1.0] * 150), 3)
    0.163
    >>> mde_paired([0.0, 0.0, 0.0])
    nan
    """
    from statsmodels.stats.power import TTestPower

    d = _clean(diffs)
    n = int(d.size) if n is None else int(n)
    if n < 2 or d.size < 2:
        return math.nan
    sd = float(d.std(ddof=1))
    if not sd > 0:
        return math.nan
    es = TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=power, alternative="two-sided")
    return float(np.asarray(es).item()) * sd
