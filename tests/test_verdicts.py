"""The verdict protocol and every claim's evidence, on synthetic rows at the boundaries of the rules.

Each verdict word must be reachable for each kind of test, each guard must trigger on its own, and
no guard may fire on healthy data: a verdict that cannot come out another way measures nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from sftlens.core.record import Example
from sftlens.lab.claims import CLAIMS
from sftlens.lab.protocol import (Comparison, Protocol, SeedEvidence, bound_guard, decide, judge, paired_table,
                                  signal_guard)
from sftlens.metrics.protocol import two_level_bootstrap_statistic

SUP_DOWN = Protocol("x", 0.05, "why", "superiority", direction=-1)
EQUIV = Protocol("x", 0.05, "why", "equivalence")


def _evidence(values, guards=(), seed=0) -> SeedEvidence:
    return SeedEvidence(seed, [Comparison("diff", paired_table(values))], list(guards))


def _normal(mean, sd, n, seed=0):
    return list(np.random.default_rng(seed).normal(mean, sd, n))


@pytest.mark.parametrize("values, expected", [
    (_normal(-0.30, 0.1, 200), "reproduced"),      # falls well beyond the SESOI
    (_normal(+0.10, 0.1, 200), "not reproduced"),  # rises: any fall is smaller than the SESOI
    (_normal(-0.05, 0.5, 200), "inconclusive"),    # too noisy to tell
])
def test_superiority_reaches_every_verdict(values, expected):
    assert judge(SUP_DOWN, [_evidence(values)], n_resamples=400)["verdict"] == expected


@pytest.mark.parametrize("values, expected", [
    (_normal(0.0, 0.05, 300), "reproduced"),
    (_normal(0.3, 0.05, 300), "not reproduced"),
    (_normal(0.04, 0.6, 300), "inconclusive"),
])
def test_equivalence_reaches_every_verdict(values, expected):
    assert judge(EQUIV, [_evidence(values)], n_resamples=400)["verdict"] == expected


def test_constant_column_is_never_inside_the_margin():
    # every model scored 0%: the paired differences are all zero, a zero-width interval
    j = judge(EQUIV, [_evidence([0.0] * 100)], n_resamples=200)
    assert j["verdict"] == "inconclusive" and "constant column" in j["reason"]
    assert j["unguarded_verdict"] == "reproduced"  # what a naive rule would have said


def test_each_guard_triggers_alone_and_none_on_healthy_data():
    healthy = _normal(0.0, 0.05, 300)
    assert judge(EQUIV, [_evidence(healthy)], n_resamples=200)["guards"] == []
    assert "too few pairs" in judge(EQUIV, [_evidence(healthy[:10])], n_resamples=200)["reason"]
    assert bound_guard("base AOC", 0.99, 0, 1, 0.05)[0].startswith("ceiling")
    assert bound_guard("accuracy", 0.01, 0, 1, 0.05)[0].startswith("floor")
    assert bound_guard("accuracy", 0.5, 0, 1, 0.05) == []
    assert signal_guard("control", [0.0] * 50, 0.05)[0].startswith("no signal")
    assert signal_guard("control", [1.0] * 50, 0.05) == []
    guarded = judge(EQUIV, [_evidence(healthy, guards=["no signal: test"])], n_resamples=200)
    assert guarded["verdict"] == "inconclusive" and guarded["unguarded_verdict"] == "reproduced"


def test_several_comparisons_must_all_hold():
    proto = Protocol("x", 0.05, "why", "equivalence")
    ev = SeedEvidence(0, [Comparison("a", paired_table(_normal(0, 0.05, 300))),
                          Comparison("b", paired_table(_normal(0.3, 0.05, 300, seed=1)))])
    assert judge(proto, [ev], n_resamples=200)["verdict"] == "not reproduced"


def test_pooled_verdict_uses_every_seed():
    proto = Protocol("x", 0.05, "why", "superiority", direction=+1)
    seeds = [_evidence(_normal(0.2, 0.3, 100, seed=s), seed=s) for s in range(3)]
    j = judge(proto, seeds, n_resamples=300)
    assert set(j["per_seed"]) == {"0", "1", "2"} and j["n_seeds"] == 3
    assert j["pooled"]["diff"]["n"] == 300


def test_two_level_bootstrap_widens_with_seed_variance():
    rng = np.random.default_rng(0)
    same = [rng.normal(0, 1, (100, 1)) for _ in range(5)]
    shifted = [t + off for t, off in zip(same, [-1, -0.5, 0, 0.5, 1])]
    stat = lambda t: float(t[:, 0].mean())  # noqa: E731
    _, narrow = two_level_bootstrap_statistic(same, stat, 400)
    _, wide = two_level_bootstrap_statistic(shifted, stat, 400)
    assert wide.std() > 2 * narrow.std()


def test_decide_reports_mde_and_a_p_value():
    d = decide(-0.3, np.random.default_rng(0).normal(-0.3, 0.02, 1000), SUP_DOWN)
    assert d["verdict"] == "reproduced" and d["p_value"] < 0.01 and 0.04 < d["mde"] < 0.07


# ---- every claim's evidence on a synthetic finished run --------------------------------------------
class FakeRun:
    """A finished run made of synthetic rows: per model a test accuracy and information gain."""

    def __init__(self, accuracy: dict[str, float], ig: dict[str, float] | None = None, n: int = 200, seed: int = 0,
                 aoc: dict[str, float] | None = None):
        self.seed, self.out, self.bootstrap = seed, Path("."), 300
        rng = np.random.default_rng(seed)
        self._rows = {}
        for m, acc in accuracy.items():
            right = (rng.random(n) < acc).astype(float)
            gains = rng.normal((ig or {}).get(m, 0.2), 0.05, n)
            self._rows[m] = [{"id": f"t{i}", "correct": right[i], "ig_mean": gains[i], "chain_valid": 1.0}
                             for i in range(n)]
        self._aoc = aoc or {}
        self._n = n

    def models(self):
        return list(self._rows)

    def rows(self, model, set_name="test"):
        if set_name == "test":
            return self._rows[model]
        if set_name == "variant_n_minus_1":  # variants solved exactly when the source is, unless "collapse"
            return [{"id": f"v{i}", "correct": 0.0 if model == "correct" and i % 2 else r["correct"]}
                    for i, r in enumerate(self._rows[model])]
        return []

    def load(self, name):
        if name == "variant_n_minus_1":
            return [Example(id=f"v{i}", task="shop.price", question="q", answer="1",
                            meta={"source": f"t{i}", "items": [["a", 1]] * (1 + i % 2)}) for i in range(self._n)]
        return [Example(id=f"t{i}", task="shop.price", question="q", answer=str(i % 3),
                        meta={"items": [["a", 1]] * (1 + i % 2)}) for i in range(self._n)]

    def variant_names(self):
        return ["n_minus_1"]

    def has_faithfulness(self, model):
        return model in self._aoc

    def faith_rows(self, model):
        return [{"id": f"t{i}", "aoc": self._aoc[model]} for i in range(self._n)]


@pytest.mark.parametrize("claim_id, run, expected, reason", [
    ("C1", FakeRun({"base": 0.3, "correct": 0.8}, ig={"base": 0.4, "correct": 0.1}), "reproduced", ""),
    ("C1", FakeRun({"base": 0.3, "correct": 0.8}, ig={"base": 0.1, "correct": 0.4}), "not reproduced", ""),
    ("C1", FakeRun({"base": 0.0, "correct": 0.0}, ig={"base": 0.4, "correct": 0.1}), "inconclusive", "no signal"),
    ("C2", FakeRun({"base": 0.3, "correct": 0.8}, aoc={"base": 0.99, "correct": 0.5}), "inconclusive", "ceiling"),
    ("C2", FakeRun({"base": 0.3, "correct": 0.8}, aoc={"base": 0.6, "correct": 0.6}), "inconclusive",
     "constant column"),
    ("C4", FakeRun({"base": 0.1, "correct": 0.0, "swapped": 0.0}), "inconclusive", "no signal"),
    ("C8", FakeRun({"base": 0.5, "correct": 0.9}), "reproduced", ""),
    ("C8", FakeRun({"base": 0.05, "correct": 0.05}), "inconclusive", "too few pairs"),
    ("C10", FakeRun({"base": 0.2, "correct": 0.7, "bulk": 0.0, "curated_k": 0.0, "random_k": 0.0}),
     "inconclusive", "no signal"),
])
def test_claim_evidence_reaches_its_verdicts(claim_id, run, expected, reason):
    claim = CLAIMS[claim_id]
    evidence = claim.evidence(run)
    assert evidence is not None
    j = judge(claim.protocol, [evidence], n_resamples=300)
    assert j["verdict"] == expected, j["reason"]
    assert reason in j["reason"]


def test_every_claim_states_its_protocol_before_any_number():
    for cid, claim in CLAIMS.items():
        p = claim.protocol
        assert p is not None and p.test in ("superiority", "equivalence") and p.sesoi > 0 and p.sesoi_reason
        rule = p.rule()
        assert "SESOI" in rule or "±" in rule and "guard" in rule


def test_micro_run_gives_guarded_inconclusive_for_accuracy_claims(micro_results):
    """Micro models learn nothing: no accuracy-based claim may reach a verdict, and each says why."""
    for cid in ("C1", "C3", "C4", "C6", "C7", "C8", "C10"):
        c = micro_results["claims"][cid]
        assert c["verdict"] == "inconclusive", (cid, c["reason"])
        assert c["guards"], cid
        assert any(w in c["reason"] for w in ("no signal", "floor", "too few pairs", "constant column")), c["reason"]
        assert {"sesoi", "test", "guards", "mde", "p_holm", "per_seed"} <= set(c)
        assert c["exploratory"] is True and not math.isnan(c["sesoi"])


# ---- planted controls -------------------------------------------------------------------------------
def _judged(verdict: str) -> dict:
    return {"verdict": verdict, "reason": "r", "guards": [], "mde": 0.1, "p_value": 0.01,
            "pooled": {"q": {"estimate": {"mean": 0.2, "lo": 0.1, "hi": 0.3}}}, "per_seed": {"0": {"verdict": verdict}}}


@pytest.mark.parametrize("positive, negative, passed", [
    ("reproduced", "not reproduced", True),
    ("reproduced", "inconclusive", True),
    ("inconclusive", "not reproduced", False),   # the planted effect was not detected
    ("not reproduced", "not reproduced", False),
    ("reproduced", "reproduced", False),         # an effect was "found" where none exists
])
def test_a_failed_control_makes_the_claim_blind(positive, negative, passed):
    from sftlens.lab.protocol import BLIND, check_controls

    claim = CLAIMS["C8"]
    real = _judged("reproduced")
    controls = check_controls(claim, {"positive": _judged(positive), "negative": _judged(negative)}, real)
    assert controls["positive"]["passed"] is (positive == "reproduced")
    assert controls["negative"]["passed"] is (negative != "reproduced")
    if passed:
        assert real["verdict"] == "reproduced" and real["controlled"] and not math.isnan(real["p_value"])
    else:
        assert real["verdict"] == "inconclusive" and real["reason"].startswith(BLIND)
        assert real["verdict_uncontrolled"] == "reproduced" and math.isnan(real["p_value"])


def test_a_claim_without_controls_says_so():
    from sftlens.lab.protocol import NO_CONTROL, check_controls

    real = _judged("not reproduced")
    controls = check_controls(CLAIMS["C10"], {}, real)
    assert {d["status"] for d in controls.values()} == {NO_CONTROL}
    assert real["verdict"] == "not reproduced" and real["controlled"] is False


def _c1_run(model: str, ig: float) -> FakeRun:
    return FakeRun({"base": 0.3, "correct": 0.8, model: 0.8}, ig={"base": 0.1, "correct": 0.4, model: ig})


@pytest.mark.parametrize("role, model", [("positive", "c1_verbose"), ("negative", "correct_again")])
def test_c1_controls_read_their_models_and_can_come_out_either_way(role, model):
    """C1's positive arm judges the verbose model, its negative arm a second SFT run on correct traces, each
    against `correct` (information gain per step): a model whose steps lost their gain is called a trap, one
    whose steps kept it is not, whichever arm -- so the positive can be missed and the negative can fail."""
    claim = CLAIMS["C1"]
    arm = claim.arms()[role]
    assert arm.conditions == (model, "correct")
    lost = judge(claim.protocol, [claim.evidence(_c1_run(model, 0.1), arm)], n_resamples=300)
    assert lost["verdict"] == "reproduced" and f"{model} - correct" in next(iter(lost["pooled"]))
    kept = claim.evidence(_c1_run(model, 0.4), arm)
    assert judge(claim.protocol, [kept], n_resamples=300)["verdict"] == "not reproduced"
    # the guard asks whether the compared model beats the *base*: as good as correct is not "no signal"
    assert not kept.guards


def test_c3_controls_are_the_replicate_and_swapped_traces():
    """C3 is an equivalence claim: its positive arm (the same training twice) must come out equivalent,
    its negative arm (SFT on swapped traces, far worse) must not."""
    claim = CLAIMS["C3"]
    arms = claim.arms()
    assert arms["positive"].conditions == ("correct", "correct_again") and arms["negative"].conditions == ("correct",
                                                                                                          "swapped")
    run = FakeRun({"base": 0.0, "correct": 0.8, "correct_again": 0.8, "swapped": 0.1, "instr_empty": 0.8,
                   "instr_wrong": 0.8, "instr_random": 0.8}, n=2000)
    run._rows["correct_again"] = [dict(r) for r in run._rows["correct"]]  # the same outcomes, problem by problem
    for r in run._rows["correct_again"][:40]:
        r["correct"] = 1.0 - r["correct"]  # ... but for 2% of them: a replicate, not a copy
    verdicts = {role: judge(claim.protocol, [claim.evidence(run, arm)], n_resamples=300)["verdict"]
                for role, arm in arms.items()}
    assert verdicts["positive"] == "reproduced" and verdicts["negative"] == "not reproduced"
    ev = claim.evidence(run, arms["positive"])
    assert [c.name for c in ev.comparisons] == ["accuracy, correct_again - correct"]


def test_c8_controls_read_their_own_conditions():
    """The positive arm judges the narrow model, the negative the variant-covering one."""
    claim = CLAIMS["C8"]
    run = FakeRun({"base": 0.5, "correct": 0.9, "c8_narrow": 0.9, "c8_full": 0.9})
    arms = claim.arms()
    names = {role: claim.evidence(run, arm).comparisons[0].name for role, arm in arms.items()}
    assert "c8_narrow" in names["positive"] and "c8_full" in names["negative"] and "correct" in names["real"]
    # FakeRun's variants collapse only for "correct": the narrow and full models show no collapse
    assert judge(claim.protocol, [claim.evidence(run, arms["negative"])], n_resamples=300)["verdict"] != "reproduced"


class NarrowRun(FakeRun):
    """A model tuned on 2-item problems only: it solves every 2-item test problem and no 1-item one,
    and fails every variant. Its SFT data (``conditions/<model>``) holds 2-item examples only."""

    def __init__(self):
        super().__init__({"base": 0.0, "c8_narrow": 0.0}, n=200)
        for i, r in enumerate(self._rows["c8_narrow"]):
            r["correct"] = float(i % 2 == 1)  # item count 1 + i % 2: solves exactly the 2-item problems

    def rows(self, model, set_name="test"):
        if set_name == "variant_n_minus_1":
            return [{"id": f"v{i}", "correct": 0.0} for i in range(self._n)]
        return super().rows(model, set_name)

    def load(self, name):
        if name.startswith("conditions/"):
            return [Example(id=f"s{i}", task="shop.price", question="q", answer="1", meta={"items": [["a", 1]] * 2})
                    for i in range(10)]
        return super().load(name)


def test_c8_measures_each_model_against_its_own_training_distribution():
    """The narrow control fails every variant of the problems it solves; its in-distribution failure
    rate is that on 2-item problems (0), not on every test problem (0.5, half of them lie outside its
    SFT data as the variants do): the collapse is 1.0, and the control learned something (no guard)."""
    claim = CLAIMS["C8"]
    run = NarrowRun()
    ev = claim.evidence(run, claim.arms()["positive"])
    comp = ev.comparisons[0]
    assert comp.stat(comp.table) == pytest.approx(1.0)
    assert ev.guards == []
    # the same model with no gain over the base in its own distribution: "no signal"
    for r in run._rows["c8_narrow"]:
        r["correct"] = 0.0
    guards = claim.evidence(run, claim.arms()["positive"]).guards
    assert any(g.startswith("no signal") for g in guards)


def test_c2_controls_read_the_answer_first_model_and_the_replicate():
    """C2's positive arm judges the answer-first model against `correct` (the same chains, the answer
    first): its answers no longer depend on the chain (AOC far below), while the real arm's `correct`
    keeps the base's dependence; the negative arm judges a second run of `correct` against the first."""
    claim = CLAIMS["C2"]
    run = FakeRun({"base": 0.0, "correct": 0.8, "c2_answer_first": 0.3, "correct_again": 0.8},
                  aoc={"base": 0.8, "correct": 0.85, "c2_answer_first": 0.1, "correct_again": 0.84})
    rng = np.random.default_rng(0)
    noisy = {m: [{"id": f"t{i}", "aoc": float(np.clip(a + rng.normal(0, 0.1), 0, 1))} for i in range(run._n)]
             for m, a in run._aoc.items()}  # a constant column would be guarded
    run.faith_rows = noisy.__getitem__
    arms = claim.arms()
    assert arms["positive"].conditions == ("c2_answer_first", "correct")
    judged = {role: judge(claim.protocol, [claim.evidence(run, arm)], n_resamples=300) for role, arm in arms.items()}
    assert "c2_answer_first - correct" in judged["positive"]["pooled"].popitem()[0]
    assert judged["positive"]["verdict"] == "reproduced" and judged["real"]["verdict"] != "reproduced"
    assert arms["negative"].conditions == ("correct_again", "correct")
    assert "correct_again - correct" in judged["negative"]["pooled"].popitem()[0]
    assert judged["negative"]["verdict"] == "not reproduced"
    # teeth: a replicate that lost the chain's hold would be called out (so the negative control can fail)
    noisy["correct_again"] = noisy["c2_answer_first"]
    assert judge(claim.protocol, [claim.evidence(run, arms["negative"])], n_resamples=300)["verdict"] == "reproduced"


def test_pooled_interval_covers_when_the_effect_varies_between_seeds():
    """5 seeds whose true effects spread with sd 0.2 around 0.1 (per-example sd 0.5, 100 each): the
    two-level percentile bootstrap alone covers ~81% for a nominal 90%; the pooled decision (the wider
    of it and the t interval over seeds) must cover at least 85% of 200 simulations."""
    from sftlens.lab.protocol import seed_t_decision
    from sftlens.metrics.protocol import two_level_bootstrap_statistic

    rng = np.random.default_rng(1)
    stat = lambda t: float(t[:, 0].mean())  # noqa: E731
    hits = []
    for i in range(200):
        tables = [(0.1 + o + rng.normal(0, 0.5, 100))[:, None] for o in rng.normal(0, 0.2, 5)]
        point, boot = two_level_bootstrap_statistic(tables, stat, 200, seed=i)
        d = seed_t_decision(decide(point, boot, SUP_DOWN), [stat(t) for t in tables], SUP_DOWN)
        hits.append(d["estimate"]["lo"] <= 0.1 <= d["estimate"]["hi"])
    assert np.mean(hits) >= 0.85, np.mean(hits)


def _pieces(text: str) -> list[str]:
    from sftlens.models.tiny import _pre_tokenizer

    return [p for p, _ in _pre_tokenizer().pre_tokenize_str(text)]


def test_micro_run_shows_both_controls_for_every_claim(micro_run):
    """Every claim carries a positive and a negative control entry; C4's in the maze world and the shop (each
    trained in DIR/worlds/<name>/), C5's in the packing worlds, C6's in the judge world, C7's, C8's and C9's
    in the shop, C1's, C2's and C3's too; C10 says "no control yet"."""
    out, results = micro_run
    for cid, c in results["claims"].items():
        assert set(c["controls"]) == {"positive", "negative"}, cid
        if cid != "C10":
            assert all(d["status"] in ("passed", "failed") and d["conditions"] for d in c["controls"].values()), cid
        else:
            assert {d["status"] for d in c["controls"].values()} == {"no control yet"}, cid
        # a failed control can only make a verdict less certain, never "reproduced"
        if any(d["status"] == "failed" for d in c["controls"].values()):
            assert c["verdict"] == "inconclusive" and c["reason"].startswith("the lab cannot see this effect here")
    c4 = results["claims"]["C4"]["controls"]
    assert c4["positive"]["world"] == "maze" and c4["negative"]["world"] == "shop"
    assert c4["positive"]["conditions"] == ["correct", "correct_again"]
    c5 = results["claims"]["C5"]["controls"]
    assert (c5["positive"]["world"], c5["negative"]["world"]) == ("packing", "packing_loose")
    for world, model in (("maze", "shuffled"), ("maze", "answer_only"), ("maze", "correct_again"),
                         ("packing", "c5_infeasible"), ("packing_loose", "correct")):
        assert (out / "worlds" / world / "models" / model / "sftlens.json").exists(), (world, model)
    assert not (out / "models" / "shuffled").exists()  # the shop trains only what its own arms need
    c2 = results["claims"]["C2"]["controls"]
    assert c2["positive"]["conditions"] == ["c2_answer_first", "correct"]
    assert c2["negative"]["conditions"] == ["correct_again", "correct"] and c2["negative"]["world"] == "shop"
    assert (out / "eval" / "correct_again" / "faithfulness.jsonl").exists()
    c1 = results["claims"]["C1"]["controls"]
    assert c1["positive"]["conditions"] == ["c1_verbose", "correct"] and c1["negative"]["conditions"] == [
        "correct_again", "correct"]
    verbose = json.loads((out / "data" / "conditions" / "c1_verbose.jsonl").read_text().splitlines()[0])
    assert verbose["steps"][-2:] == [f"recall {verbose['steps'][0]}", f"recall {verbose['steps'][-3]}"]
    # the padding brings no word the shop's vocabulary lacks, so the base (and every other model) is unchanged
    tok = json.loads((out / "models" / "base" / "tokenizer.json").read_text())["model"]["vocab"]
    assert "<unk>" not in [p for step in verbose["steps"] for p in _pieces(step)] and all(
        p in tok for step in verbose["steps"] for p in _pieces(step))
    c6 = results["claims"]["C6"]["controls"]
    assert c6["positive"]["world"] == c6["negative"]["world"] == "judge"
    for model in ("c6_labels", "c6_criteria", "c6_criteria_only"):
        assert (out / "worlds" / "judge" / "eval" / model / "variant_hinge.jsonl").exists(), model
    report = (out / "report.md").read_text()
    assert "**Controls**" in report and "no control yet" in report
