"""The verdict protocol's statistics (sftlens.metrics.protocol) against statsmodels/scipy, hand
computations, a coverage simulation and boundary cases of the decision rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from sftlens.metrics.protocol import (Decision, decide, guards, holm, mde_paired, superiority_paired,
                                      tost_paired, two_level_bootstrap)


def exact(mean: float, sd: float, n: int, seed: int = 0) -> np.ndarray:
    """n values with exactly this sample mean and sd (ddof=1), to put an interval where we want it."""
    z = np.random.default_rng(seed).normal(size=n)
    z = (z - z.mean()) / z.std(ddof=1)
    return mean + sd * z


def crit(n: int, level: float) -> float:
    """Two-sided t critical value at this confidence level."""
    return float(sps.t.ppf(0.5 + level / 2, n - 1))


# ------------------------------------------------------------------------------------------ TOST


@pytest.mark.parametrize("seed", range(6))
def test_tost_matches_statsmodels(seed):
    from statsmodels.stats.weightstats import ttost_paired

    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    mu, sd, sesoi = rng.normal(0, 0.05), rng.uniform(0.01, 0.5), rng.uniform(0.01, 0.1)
    treated = rng.normal(0.5, 0.2, n)
    control = treated - rng.normal(mu, sd, n)
    p, (_, p1, _), (_, p2, _) = ttost_paired(treated, control, -sesoi, sesoi)
    r = tost_paired(treated - control, sesoi)
    assert r["p_value"] == pytest.approx(p, abs=1e-10)
    assert r["p_lower"] == pytest.approx(p1, abs=1e-10)
    assert r["p_upper"] == pytest.approx(p2, abs=1e-10)
    assert r["equivalent"] == (p < 0.05)
    lo, hi = sps.t.interval(0.90, n - 1, loc=np.mean(treated - control), scale=sps.sem(treated - control))
    assert (r["lo"], r["hi"]) == pytest.approx((lo, hi), abs=1e-12)
    assert r["n"] == n


def test_tost_drops_nans_and_refuses_degenerate_data():
    d = exact(0.0, 0.1, 60)
    with_nans = np.concatenate([d, [math.nan] * 7])
    assert tost_paired(with_nans, 0.05)["p_value"] == pytest.approx(tost_paired(d, 0.05)["p_value"], abs=1e-15)
    assert tost_paired(with_nans, 0.05)["n"] == 60
    for bad in ([0.0] * 30, [0.01], []):
        r = tost_paired(bad, 0.05)
        assert math.isnan(r["p_value"]) and r["equivalent"] is False


def test_superiority_matches_scipy_one_sided_t():
    rng = np.random.default_rng(3)
    for direction in (1, -1):
        d = rng.normal(0.08 * direction, 0.3, 150)
        r = superiority_paired(d, 0.05, direction=direction)
        ref = sps.ttest_1samp(direction * d - 0.05, 0.0, alternative="greater").pvalue
        assert r["p_value"] == pytest.approx(ref, abs=1e-12)
        assert r["p_below"] == pytest.approx(1 - ref, abs=1e-12)
        lo, hi = sps.t.interval(0.95, 149, loc=d.mean(), scale=sps.sem(d))
        assert (r["lo"], r["hi"]) == pytest.approx((lo, hi), abs=1e-12)
        assert r["mean"] == pytest.approx(d.mean())  # the differences, not direction * differences


# ---------------------------------------------------------------------------------------- decide

SESOI = 0.05


def test_superiority_each_verdict_at_its_boundary():
    n, sd = 40, 0.1
    se, c = sd / math.sqrt(n), crit(n, 0.90)  # one-sided 95% bound = end of the two-sided 90% interval
    just_above = decide(exact(SESOI + c * se * 1.01, sd, n), SESOI, "superiority")
    just_short = decide(exact(SESOI + c * se * 0.99, sd, n), SESOI, "superiority")
    assert just_above.verdict == "reproduced", just_above.reason
    assert just_above.estimate["lo"] > SESOI and just_above.p_value < 0.05
    assert just_short.verdict == "inconclusive", just_short.reason
    assert 0.05 < just_short.p_value < 0.06
    # the upper bound just under the SESOI: shown smaller than the SESOI although the mean is positive
    small = decide(exact(SESOI - c * se * 1.01, sd, n), SESOI, "superiority")
    assert small.verdict == "not reproduced", small.reason
    assert small.estimate["mean"] > 0 and small.estimate["hi"] < SESOI
    assert "smaller than the SESOI" in small.reason
    not_quite = decide(exact(SESOI - c * se * 0.99, sd, n), SESOI, "superiority")
    assert not_quite.verdict == "inconclusive"
    opposite = decide(exact(-0.2, sd, n), SESOI, "superiority")
    assert opposite.verdict == "not reproduced" and "opposite direction" in opposite.reason


def test_superiority_direction_and_swapped_claim():
    d = exact(-0.2, 0.1, 40)
    assert decide(d, SESOI, "superiority", direction=-1).verdict == "reproduced"
    assert decide(d, SESOI, "superiority", direction=+1).verdict == "not reproduced"
    assert decide(d, SESOI, "superiority", direction=-1, claim_direction_means_reproduced=False).verdict == "not reproduced"
    assert decide(d, SESOI, "superiority", direction=+1, claim_direction_means_reproduced=False).verdict == "reproduced"


def test_equivalence_each_verdict_at_its_boundary():
    n, sd = 50, 0.1
    se = sd / math.sqrt(n)
    inside = decide(exact(SESOI - crit(n, 0.90) * se * 1.01, sd, n), SESOI, "equivalence")
    assert inside.verdict == "reproduced", inside.reason
    assert inside.estimate["hi"] < SESOI and "inside ±0.05" in inside.reason
    assert inside.p_value < 0.05 and inside.confidence == pytest.approx(0.90)
    crossing = decide(exact(SESOI - crit(n, 0.90) * se * 0.99, sd, n), SESOI, "equivalence")
    assert crossing.verdict == "inconclusive", crossing.reason
    # not reproduced needs the 95% interval outside the margin, not just the 90% one
    outside = decide(exact(-SESOI - crit(n, 0.95) * se * 1.01, sd, n), SESOI, "equivalence")
    assert outside.verdict == "not reproduced", outside.reason
    assert "below -0.05" in outside.reason
    only_90_outside = decide(exact(-SESOI - crit(n, 0.95) * se * 0.99, sd, n), SESOI, "equivalence")
    assert only_90_outside.estimate["hi"] < -SESOI  # the 90% interval already lies outside ...
    assert only_90_outside.verdict == "inconclusive"  # ... but the 95% one does not


@pytest.mark.parametrize("test", ["superiority", "equivalence"])
def test_constant_column_is_never_a_decision(test):
    both_zero = np.zeros(200) - np.zeros(200)  # both arms scored 0% on every example
    d = decide(both_zero, SESOI, test)
    assert d.verdict == "inconclusive"
    assert "constant column" in d.reason and "inside" not in d.reason
    assert math.isnan(d.p_value)
    assert decide([0.1, math.nan], SESOI, test).verdict == "inconclusive"
    assert "too few pairs" in decide([0.1, math.nan], SESOI, test).reason


def test_decision_round_trips_and_rejects_unknown_test():
    d = decide(exact(0.2, 0.1, 30), SESOI, "superiority")
    assert isinstance(d, Decision)
    assert set(d.to_dict()) >= {"verdict", "reason", "test", "sesoi", "estimate", "p_value"}
    assert set(d.estimate) == {"mean", "lo", "hi", "n"}
    with pytest.raises(ValueError):
        decide([0.1, 0.2], SESOI, "non-inferiority")


# ---------------------------------------------------------------------------------------- guards


def test_guards_none_on_healthy_data():
    assert guards(n_pairs=200, columns={"base": [0, 1, 1, 0], "sft": [1, 1, 0, 1]},
                  bounded={"base accuracy": (0.43, 0.0, 1.0)}, signal=(0.08, SESOI), sesoi=SESOI) == []


@pytest.mark.parametrize("kwargs, start", [
    (dict(n_pairs=19), "too few pairs"),
    (dict(n_pairs=200, columns={"base": [0, 1], "sft": [0.0, 0.0, math.nan]}), "constant column"),
    (dict(n_pairs=200, columns={"sft": [math.nan]}), "empty column"),
    (dict(n_pairs=200, bounded={"base accuracy": (0.03, 0.0, 1.0)}, sesoi=SESOI), "floor"),
    (dict(n_pairs=200, bounded={"base accuracy": (0.97, 0.0, 1.0)}, sesoi=SESOI), "ceiling"),
    (dict(n_pairs=200, signal=(-0.01, SESOI)), "no signal"),
    (dict(n_pairs=200, signal=(math.nan, SESOI)), "no signal"),
])
def test_each_guard_alone(kwargs, start):
    reasons = guards(**kwargs)
    assert len(reasons) == 1 and reasons[0].startswith(start), reasons


def test_guards_need_sesoi_for_bounds():
    with pytest.raises(ValueError):
        guards(n_pairs=200, bounded={"x": (0.5, 0.0, 1.0)})


# ------------------------------------------------------------------------------------- bootstrap


def _simulate(rng, tau, sd=0.5, n_seeds=5, n=100, true_mean=0.1):
    return [list(true_mean + o + rng.normal(0, sd, n)) for o in rng.normal(0, tau, n_seeds)]


def test_two_level_bootstrap_coverage():
    """5 seeds x 100 examples, per-example sd 0.5 (a paired 0/1 difference), seed-level offsets of
    sd 0.025 (2.5 points between training seeds): the 95% interval covers the true mean >= 93%."""
    rng = np.random.default_rng(2024)
    hits = [two_level_bootstrap(_simulate(rng, tau=0.025), n_resamples=1000, seed=i) for i in range(200)]
    coverage = np.mean([r["lo"] <= 0.1 <= r["hi"] for r in hits])
    assert coverage >= 0.93, coverage
    assert all(r["n"] == 500 and r["n_seeds"] == 5 for r in hits)


def test_two_level_bootstrap_carries_seed_variance():
    """Seed-to-seed spread must widen the interval (a pooled one-level bootstrap would not)."""
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.5, (5, 100))
    quiet = two_level_bootstrap(list(0.1 + noise))
    offsets = np.array([-0.2, -0.1, 0.0, 0.1, 0.2])[:, None]  # sd 0.16 between seeds
    noisy = two_level_bootstrap(list(0.1 + offsets + noise))
    pooled = (0.1 + offsets + noise).ravel()
    one_level = 2 * 1.96 * pooled.std(ddof=1) / math.sqrt(pooled.size)
    assert noisy["mean"] == pytest.approx(quiet["mean"])
    assert noisy["hi"] - noisy["lo"] > 2 * (quiet["hi"] - quiet["lo"])
    assert noisy["hi"] - noisy["lo"] > 2 * one_level


def test_two_level_bootstrap_edges():
    from sftlens.metrics.stats import bootstrap_mean

    one = two_level_bootstrap([[0.0, 1.0, 1.0, 0.0, 1.0], [math.nan]], seed=3)
    ref = bootstrap_mean([0.0, 1.0, 1.0, 0.0, 1.0], seed=3)
    assert (one["mean"], one["lo"], one["hi"], one["n_seeds"]) == (ref.mean, ref.lo, ref.hi, 1)
    assert math.isnan(two_level_bootstrap([])["mean"])
    assert two_level_bootstrap([[1, 2], [3, 4, 5, 6]])["mean"] == pytest.approx((1.5 + 4.5) / 2)
    a = two_level_bootstrap([[1, 2, 3], [2, 5]], seed=7)
    assert a == two_level_bootstrap([[1, 2, 3], [2, 5]], seed=7)


# ------------------------------------------------------------------------------------ holm, MDE


def test_holm_by_hand_and_against_statsmodels():
    from statsmodels.stats.multitest import multipletests

    got = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005, "e": math.nan})
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> monotone 0.06
    assert got["d"] == pytest.approx(0.02) and got["a"] == pytest.approx(0.03)
    assert got["c"] == pytest.approx(0.06) and got["b"] == pytest.approx(0.06)
    assert math.isnan(got["e"])
    assert holm({"x": 0.6, "y": 0.7}) == {"x": 1.0, "y": 1.0}
    assert holm({}) == {}
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 0.2, 9)
    ref = multipletests(p, method="holm")[1]
    got = holm({str(i): float(v) for i, v in enumerate(p)})
    assert [got[str(i)] for i in range(9)] == pytest.approx(list(ref), abs=1e-15)


def test_mde_matches_closed_form():
    d = np.random.default_rng(5).normal(0.0, 0.4, 300)
    closed = (sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) * d.std(ddof=1) / math.sqrt(300)
    assert mde_paired(d) == pytest.approx(closed, rel=0.02)
    assert mde_paired(d, n=1200) == pytest.approx(closed / 2, rel=0.02)
    assert mde_paired(d, power=0.9) > mde_paired(d)
    assert math.isnan(mde_paired([0.0] * 10)) and math.isnan(mde_paired([0.3])) and math.isnan(mde_paired(d, n=1))
