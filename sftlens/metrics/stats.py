"""Paired statistics: bootstrap intervals (scipy), paired differences and McNemar's test.

Every function is deterministic for a seed and returns NaN (never raises) when there is nothing to
measure, so a report can say "n/a" with a reason instead of inventing a number.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class Estimate:
    """A mean with its 95% bootstrap interval over ``n`` units (examples)."""

    mean: float
    lo: float
    hi: float
    n: int

    @classmethod
    def nan(cls, n: int = 0) -> "Estimate":
        """The estimate of nothing: every number NaN (a report prints "n/a")."""
        return cls(math.nan, math.nan, math.nan, n)

    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of zero."""
        return (self.lo > 0 or self.hi < 0) and not math.isnan(self.lo)

    def to_dict(self) -> dict:
        return asdict(self)


def column(rows: list[dict], key: str) -> list[float]:
    """One metric across per-example rows as floats; a missing or ``None`` value becomes NaN.

    >>> column([{"a": 1}, {"a": None}, {}], "a")
    [1.0, nan, nan]
    """
    return [math.nan if r.get(key) is None else float(r[key]) for r in rows]


def _clean(x) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    return a[~np.isnan(a)]


def bootstrap_mean(x, seed: int = 0, n_resamples: int = 2000, confidence: float = 0.95) -> Estimate:
    """Mean of ``x`` (NaNs dropped) with a percentile bootstrap interval.

    >>> e = bootstrap_mean([1, 1, 1, 1])
    >>> (e.mean, e.lo, e.hi, e.n)
    (1.0, 1.0, 1.0, 4)
    >>> import math; math.isnan(bootstrap_mean([]).mean)
    True
    """
    a = _clean(x)
    if a.size == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    m = float(a.mean())
    if a.size == 1 or np.all(a == a[0]):
        return Estimate(m, m, m, int(a.size))
    from scipy.stats import bootstrap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = bootstrap((a,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                      method="percentile", rng=np.random.default_rng(seed), vectorized=True)
    return Estimate(m, float(r.confidence_interval.low), float(r.confidence_interval.high), int(a.size))


def paired_difference(treated, control, seed: int = 0, n_resamples: int = 2000) -> Estimate:
    """Mean of ``treated - control`` over units measured in both (pairs with a NaN are dropped),
    with a bootstrap interval over units.

    >>> paired_difference([1, 1, 0], [0, 0, 0]).mean
    0.6666666666666666
    """
    t, c = np.asarray(treated, float), np.asarray(control, float)
    if t.shape != c.shape:
        raise ValueError(f"paired_difference: {t.shape} vs {c.shape} — the two models must be scored on the same examples")
    return bootstrap_mean(t - c, seed=seed, n_resamples=n_resamples)


def unpaired_difference(a, b, seed: int = 0, n_resamples: int = 2000) -> Estimate:
    """Difference of means ``mean(a) - mean(b)`` with an independent-resampling bootstrap interval
    (for groups measured on different examples, e.g. in-distribution vs a variant set)."""
    x, y = _clean(a), _clean(b)
    if x.size == 0 or y.size == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    rng = np.random.default_rng(seed)
    bx = rng.choice(x, (n_resamples, x.size)).mean(1)
    by = rng.choice(y, (n_resamples, y.size)).mean(1)
    d = bx - by
    return Estimate(float(x.mean() - y.mean()), float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5)),
                    int(min(x.size, y.size)))


def mcnemar(a_correct, b_correct) -> dict:
    """Exact McNemar test on paired binary outcomes (scipy's binomial test on discordant pairs).

    Returns ``{"b01": only b right, "b10": only a right, "p_value": ...}``; p is 1.0 without
    discordant pairs.

    >>> mcnemar([1, 1, 1, 0], [0, 0, 1, 0])["p_value"]
    0.5
    """
    from scipy.stats import binomtest

    a = np.asarray(a_correct, bool)
    b = np.asarray(b_correct, bool)
    b10 = int(np.sum(a & ~b))
    b01 = int(np.sum(~a & b))
    n = b10 + b01
    p = 1.0 if n == 0 else float(binomtest(b10, n, 0.5).pvalue)
    return {"b01": b01, "b10": b10, "p_value": p}


def verdict(effects: list[Estimate], directions: list[int]) -> str:
    """``reproduced`` if every effect's interval excludes zero in its expected direction (+1/-1),
    ``not reproduced`` if any interval excludes zero in the opposite direction or all intervals
    include zero with enough data, otherwise ``inconclusive``. NaN effects make it inconclusive."""
    if any(math.isnan(e.mean) for e in effects):
        return "inconclusive"
    ok = [(e.lo > 0) if d > 0 else (e.hi < 0) for e, d in zip(effects, directions)]
    wrong = [(e.hi < 0) if d > 0 else (e.lo > 0) for e, d in zip(effects, directions)]
    if all(ok):
        return "reproduced"
    if any(wrong):
        return "not reproduced"
    return "inconclusive"
