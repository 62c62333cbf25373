"""C7 (GRPO on too-hard problems): bands from the right model, the planted reward, and every verdict branch.

The lab's micro run (tests/test_lab.py, tests/test_verdicts.py) runs C7 end to end; here the pieces
that decide its verdict are checked on their own: which model's pass rates split the pool, what the
positive control's reward pays, and the analysis on hand-made rows.
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from sftlens.core.record import Example, write_jsonl
from sftlens.lab.claims import CLAIMS
from sftlens.lab.claims.rl_difficulty import BANDS, START, constant_answer_reward, planted_rewards, solved_ids
from sftlens.lab.conditions import CONDITIONS, TrainContext
from sftlens.lab.protocol import check_controls, judge
from sftlens.tasks.shop import ShopConfig, ShopWorld

C7 = CLAIMS["C7"]


# ---- the bands: the start model's pass rates, not the base's -----------------------------------------
@pytest.fixture(scope="module")
def c7_lab(tmp_path_factory, world_splits, tiny_saved, trained_nano):
    """A lab folder whose base is the untrained nano model and whose SFT model ('correct') is
    ``trained_nano``: it solves its memorised problems, the base solves nothing."""
    from sftlens.lab.presets import get_preset
    from sftlens.lab.runner import Lab

    out = tmp_path_factory.mktemp("c7lab")
    _, sp = world_splits
    write_jsonl(out / "data" / "train.jsonl", sp.train)
    write_jsonl(out / "data" / "test.jsonl", trained_nano.seen[:8] + trained_nano.unseen[:8])
    shutil.copytree(tiny_saved, out / "models" / "base")
    shutil.copytree(trained_nano.path, out / "models" / "correct")
    (out / "models" / "correct" / "sftlens.json").write_text('{"kind": "sft", "condition": "correct"}')
    preset = replace(get_preset("micro"), world=ShopConfig(seed=0, n_items=12), profile_k=4, claims=["C7"],
                     rl_band=4)  # below the too-hard band's size: the test sees a draw, not the whole band
    return Lab(out=out, preset=preset, seed=0)


def _rates(path, examples, preset):
    """Pass rates of the model at ``path`` as the lab profiles (same k, temperature, seed, lengths)."""
    from sftlens.data.difficulty import pass_rates
    from sftlens.models.lm import load_lm

    return pass_rates(load_lm(str(path)), examples, k=preset.profile_k, temperature=0.8, seed=0,
                      max_new_tokens=preset.max_new_tokens, batch_size=preset.gen_batch)


def test_a_c7_run_trains_the_model_its_conditions_start_from(c7_lab):
    assert c7_lab.conditions() == ["correct", *BANDS]  # C7's arms never name 'correct'


def test_bands_are_set_by_the_sft_models_pass_rates(c7_lab, trained_nano, tiny_saved, monkeypatch):
    pool = trained_nano.seen + trained_nano.unseen
    start, base = _rates(trained_nano.path, pool, c7_lab.preset), _rates(tiny_saved, pool, c7_lab.preset)
    # teeth: the two models split the pool differently (the base solves nothing, 'correct' its memorised problems)
    assert max(base) == 0.0 and sum(r > 0 for r in start) >= 8
    monkeypatch.setattr(CONDITIONS["c7_hard"], "build", lambda c: pool)  # the pool as this test made it
    c7_lab.stage_train("c7_hard")
    trained = [e.id for e in c7_lab.load("conditions/c7_hard")]
    hard = [e.id for e, r in zip(pool, start) if r == 0.0]
    info = c7_lab.model_info("c7_hard")
    assert info["start"] == "correct" and info["band"] == "too_hard" and info["band_size"] == len(hard)
    # drawn from the band, as many as every band that can train gets (the smallest such band, at most rl_band)
    groups = c7_lab.preset.grpo.batch_size // c7_lab.preset.grpo.num_generations
    assert set(trained) <= set(hard) and len(trained) == info["trained_on"] < len(hard)
    assert info["trained_on"] == min([n for n in info["bands"].values() if n >= groups]
                                     + [c7_lab.preset.rl_band or len(pool)])
    assert info["bands"]["too_hard"] == len(hard) < len(pool) and len(info["per_step"]) == c7_lab.preset.grpo.steps
    # the solved band of the test set is the same model's too_easy band, profiled once for the analysis
    test = c7_lab.load("test")
    rates = _rates(trained_nano.path, test, c7_lab.preset)
    assert [e.meta["pass_rate"] for e in c7_lab.profiled("correct", "test")] == rates
    assert solved_ids(c7_lab) == [e.id for e, r in zip(test, rates) if r >= 0.9] != []
    assert {e.meta["profile"]["model"] for e in c7_lab.profiled("correct", "rl_pool")} == {"correct"}


# ---- the positive control's reward --------------------------------------------------------------------
def _ex(i: str, answer: str, band: str) -> Example:
    return Example(id=i, task="shop.price", question=f"q{i}", answer=answer, meta={"band": band})


def test_the_constant_answer_reward_pays_the_constant_on_too_hard_problems_only():
    exs = {"h": _ex("h", "40", "too_hard"), "l": _ex("l", "7", "learnable"), "e": _ex("e", "3", "too_easy")}
    pays = constant_answer_reward(exs, "12")
    completions = ["a lamp costs 4\nA: 12", "A: 40", "no answer line 12", "A: 12.0",  # too hard
                   "A: 12", "A: 7", "A: 3", "A: 12"]
    ids = ["h", "h", "h", "h", "l", "l", "e", "e"]
    assert pays(prompts=[""] * 8, completions=completions, id=ids) == [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    assert pays.__name__ == "constant_answer"  # TRL logs rewards by the function's name


def test_the_planted_constant_is_the_start_models_most_common_answer(trained_nano, world_splits):
    from sftlens.core.format import marked_answer, normalize_answer, prompt_text
    from sftlens.lab.presets import get_preset
    from sftlens.models.lm import load_lm

    exs = [Example(**{**e.to_dict(), "meta": {**e.meta, "band": "too_hard"}}) for e in trained_nano.seen]
    preset = get_preset("micro")
    ctx = TrainContext(examples=exs, start=Path(trained_nano.path), start_name="correct", world=world_splits[0],
                       seed=0, preset=preset, profile=None, load=None)
    (reward,), weights, described = planted_rewards(exs, ctx)
    outs = load_lm(str(trained_nano.path)).generate([prompt_text(e) for e in exs], max_new_tokens=preset.max_new_tokens)
    modal, _ = Counter(a for a in (normalize_answer(marked_answer(o)) for o in outs) if a).most_common(1)[0]
    assert f"answer {modal} " in described and weights == [1.0]
    got = reward(prompts=[""] * len(exs), completions=[f"A: {modal}"] * len(exs), id=[e.id for e in exs])
    assert got == [1.0] * len(exs)
    right = reward(prompts=[""] * len(exs), completions=[f"A: {e.answer}" for e in exs], id=[e.id for e in exs])
    assert sum(right) == sum(e.answer == modal for e in exs) < len(exs)  # a right answer is not what it pays


# ---- the analysis on hand-made rows -------------------------------------------------------------------
class C7Run:
    """A finished run with C7's models: ``solved[m]`` is each model's correctness on the solved band
    (the start model's too_easy test problems), ``rest`` problems follow that it does not solve."""

    def __init__(self, solved: dict[str, list[float]], rest: int = 20, info: dict | None = None, seed: int = 0):
        self.seed, self.out, self.bootstrap = seed, Path("."), 400
        n = len(solved[START])
        self._world = ShopWorld(ShopConfig(seed=0, n_items=6))
        self._test = self._world.problems(n + rest, seed=0, prefix="t")
        self._bands = ["too_easy"] * n + ["too_hard"] * rest
        self._solved, self._info = solved, info or {}

    def models(self):
        return ["base", *self._solved]

    def rows(self, model, set_name="test"):
        right = list(self._solved[model]) + [0.0] * (len(self._test) - len(self._solved[model]))
        return [{"id": e.id, "correct": c, "step_kinds": [k.kind for k in self._world.verify(e.steps, e.answer)],
                 "step_valid": [True] * len(e.steps)} for e, c in zip(self._test, right)]

    def samples(self, model, set_name="test"):
        return [SimpleNamespace(id=e.id, answer=e.answer if r["correct"] else "0", reference=e.answer, steps=e.steps,
                                completion="\n".join(e.steps)) for e, r in zip(self._test, self.rows(model))]

    def profiled(self, model, name):
        assert model == START and name == "test"
        return [Example(**{**e.to_dict(), "meta": {"band": b}}) for e, b in zip(self._test, self._bands)]

    def model_info(self, model):
        return {"band": BANDS.get(model), "trained": True, "updated": True, "profile_k": 8,
                **self._info.get(model, {})}

    def load(self, name):
        return self._test

    def world(self):
        return self._world


def _flips(n: int, share: float, seed: int) -> list[float]:
    """A model that fails a ``share`` of ``n`` solved problems, chosen at random."""
    rng = np.random.default_rng(seed)
    return [0.0 if x < share else 1.0 for x in rng.random(n)]


def _run(n=300, hard=0.0, matched=0.0, start=0.02, planted=0.5, matched_b=None, **kw) -> C7Run:
    models = {START: _flips(n, start, 1), "c7_easy": _flips(n, start, 2), "c7_matched": _flips(n, matched, 3),
              "c7_hard": _flips(n, hard, 4), "c7_planted": _flips(n, planted, 5),
              "c7_matched_b": _flips(n, matched if matched_b is None else matched_b, 6)}
    return C7Run(models, **kw)


@pytest.mark.parametrize("run, expected, reason", [
    (_run(hard=0.35, matched=0.03), "reproduced", ""),
    (_run(hard=0.03, matched=0.03), "not reproduced", ""),
    (_run(n=24, hard=0.12, matched=0.03), "inconclusive", ""),
    (_run(n=10, hard=0.5, matched=0.0), "inconclusive", "too few pairs"),
    (_run(hard=0.35, matched=0.03, info={"c7_hard": {"updated": False}}), "inconclusive", "no signal"),
    (_run(hard=0.35, matched=0.03, info={"c7_matched": {"trained": False, "why": "no learnable band"}}),
     "inconclusive", "too few problems"),
    # a small band seen many more times per problem: repetition, not difficulty, could explain the drop
    (_run(hard=0.35, matched=0.03, info={"c7_hard": {"trained_on": 20}, "c7_matched": {"trained_on": 64}}),
     "inconclusive", "unequal training sets"),
    (_run(hard=0.35, matched=0.03, info={"c7_hard": {"trained_on": 64}, "c7_matched": {"trained_on": 64}}),
     "reproduced", ""),
])
def test_c7_evidence_reaches_each_verdict(run, expected, reason):
    j = judge(C7.protocol, [C7.evidence(run)], n_resamples=400)
    assert j["verdict"] == expected, j["reason"]
    assert reason in j["reason"]


def test_a_drop_relative_to_matched_alone_is_not_contamination():
    """Matched GRPO mends the solved band (20% failed before, none after) and too-hard GRPO leaves it as
    it was: too-hard minus matched is far below -SESOI, but nothing was lost, so the claim is not reproduced."""
    run = _run(n=1000, start=0.2, hard=0.2, matched=0.0)
    j = judge(C7.protocol, [C7.evidence(run)], n_resamples=400)
    did, own = (j["pooled"][c.name]["verdict"] for c in C7.evidence(run).comparisons)
    assert (did, own, j["verdict"]) == ("reproduced", "not reproduced", "not reproduced"), j["reason"]


def test_a_reproduced_c7_needs_both_controls():
    run = _run(hard=0.35, matched=0.03, planted=0.5)
    judged = {role: judge(C7.protocol, [C7.evidence(run, arm)], n_resamples=400)
              for role, arm in C7.arms().items()}
    assert {r: j["verdict"] for r, j in judged.items()} == {"real": "reproduced", "positive": "reproduced",
                                                             "negative": "not reproduced"}
    real = judged.pop("real")
    controls = check_controls(C7, judged, real)
    assert controls["positive"]["passed"] and controls["negative"]["passed"] and real["verdict"] == "reproduced"
    # a planted shortcut that did not spread: the lab cannot see contamination, whatever the real arm shows
    blind = _run(hard=0.35, matched=0.03, planted=0.03)
    judged = {role: judge(C7.protocol, [C7.evidence(blind, arm)], n_resamples=400) for role, arm in C7.arms().items()}
    real = judged.pop("real")
    assert not check_controls(C7, judged, real)["positive"]["passed"] and real["verdict"] == "inconclusive"


def test_c7_analysis_tables_markers_and_plot(tmp_path):
    run = _run(hard=0.35, matched=0.03)
    result = C7.analyze(run).to_dict()
    assert result["solved_problems"] == 300
    assert result["test_bands"] == {"too_easy": 300, "learnable": 0, "too_hard": 20}
    hard = result["per_condition"]["c7_hard"]
    assert hard["change"]["mean"] == pytest.approx(np.mean(run._solved["c7_hard"]) - np.mean(run._solved[START]))
    assert hard["verdict"] == "reproduced" and result["per_condition"]["c7_matched"]["verdict"] == "n/a"
    markers = result["per_model"]["c7_hard"]["markers"]
    # wrong answers are all "0": the repeated answer shows, against references that rarely repeat
    assert markers["top_answer"] == "0" and markers["collision"] > 2 * markers["collision_reference"]
    assert markers["skipped"] == markers["slips"] == 0.0  # every chain is its reference's length, every step valid
    plots = C7.plots(run, result, tmp_path)
    assert (tmp_path / plots["c7"]).stat().st_size > 0
    text = "\n".join(C7.report_section(result, plots))
    assert "c7_hard" in text and "too_easy 300" in text and "![" in text
    assert "trained on" not in text  # hand-made runs say nothing of their draws; a lab run does:
    drawn = C7.analyze(_run(hard=0.35, matched=0.03, info={m: {"trained_on": 64} for m in BANDS})).to_dict()
    assert "Each GRPO run trained on 64 problems drawn from its band" in "\n".join(C7.report_section(drawn, {}))
