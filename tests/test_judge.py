"""The judgement task (C6): the checker, the held-out item types, the generators, the criteria file,
and the claim's evidence on synthetic runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sftlens.core.errors import RecordError
from sftlens.core.format import completion_text, prompt_text
from sftlens.core.record import Example
from sftlens.lab.claims import CLAIMS
from sftlens.lab.conditions import CONDITIONS, BuildContext
from sftlens.lab.protocol import judge as judge_verdict
from sftlens.tasks import get_task, task_for
from sftlens.tasks.judge import (CRITERIA, JudgeConfig, JudgeWorld, Rules, judge, load_criteria,
                                 make_judge_splits, parse_cart)

RULES = Rules(5, ("lamp", "tent"), ("cup", "kite"))


@pytest.mark.parametrize("items, total, decided", [
    (["lamp", "bowl"], 5, "none"),              # every criterion holds (the budget exactly met)
    (["lamp", "bowl"], 6, "budget"),            # one over the budget, nothing else wrong
    (["bowl", "cup"], 3, "needs"),              # no needed item (one forbidden member alone is fine)
    (["tent", "cup", "kite"], 2, "forbidden"),  # the forbidden pair together, met by the other needed item
])
def test_each_criterion_decides_alone(items, total, decided):
    label, by = judge(items, total, RULES)
    assert (label, by) == ("yes" if decided == "none" else "no", decided)


def test_the_first_failing_criterion_decides():
    assert judge(["cup", "kite"], 9, RULES) == ("no", "budget")
    assert judge(["cup", "kite"], 1, RULES) == ("no", "needs")


@pytest.fixture(scope="module")
def world():
    return JudgeWorld(JudgeConfig(seed=3))


@pytest.fixture(scope="module")
def splits(world):
    return make_judge_splits(world, 300, 500, 200, 100, seed=3)


def _condition_sets(world, sp) -> dict[str, list[Example]]:
    heldout = frozenset(e.question for e in sp.test + [e for v in sp.variants.values() for e in v])
    ctx = BuildContext(sp.train, world, 3, None, heldout)
    return {name: CONDITIONS[name].build(ctx) for name in CRITERIA_CLAIM.arms()["real"].conditions}


CRITERIA_CLAIM = CLAIMS["C6"]


def test_heldout_types_are_absent_from_every_training_set(world, splits):
    """No pretraining or SFT cart holds a held-out type; labels-only texts never name one; the
    criteria condition names one of them in its written rules only (the criteria cover it)."""
    held = set(world.heldout)
    assert world.rules.forbidden[1] in held and not held & set(world.rules.needs) and len(held) == 4
    sets = _condition_sets(world, splits)
    assert set(sets) == {"c6_labels", "c6_criteria", "c6_criteria_only"}
    block = [e.question for e in sets["c6_criteria_only"]]  # the practice block, in every condition alike
    assert block and all(q in {e.question for e in exs} for exs in sets.values() for q in block)
    for name, exs in [("pretrain", splits.pretrain_problems)] + list(sets.items()):
        for e in exs:
            items, _ = parse_cart(e.question)
            assert not held & set(items), (name, e.question)
    assert not any(held & set(e.meta["rules"]["needs"] + e.meta["rules"]["forbidden"])
                   for e in splits.pretrain_problems)
    store = [e for e in sets["c6_labels"] if e.meta.get("split") != "practice"]
    assert len(store) == len(splits.train) and not any(held & set((prompt_text(e) + completion_text(e)).split())
                                                       for e in sets["c6_labels"])
    assert all(held & set(e.question.split(" . rules : ")[1].split()) == {world.rules.forbidden[1]}
               for e in sets["c6_criteria"] if e.meta.get("split") != "practice")
    # in pretraining only the membership drills name them ("list ... . check ..."), never a cart
    drills = world.drills(400, 0)
    assert {w for line in drills if line.startswith("list ") for w in line.split()} >= held
    assert not any(held & set(line.split()) for line in drills if not line.startswith("list "))
    for v in ("heldout", "hinge"):
        assert all(held & set(parse_cart(e.question)[0]) for e in splits.variants[v])


def test_labels_follow_the_criteria_on_500_generated_carts(world, splits):
    carts = (splits.train + splits.test + splits.variants["heldout"] + splits.variants["hinge"]
             + splits.pretrain_problems)[:500]
    assert len(carts) == 500
    for e in carts:
        items, total = parse_cart(e.question)
        rules = Rules.from_dict(e.meta["rules"])
        label, by = judge(items, total, rules)
        assert (e.answer, e.meta["decided_by"]) == (label, by)
        assert len(e.meta["failed"]) <= 1  # a generated cart breaks one criterion at most: the deciding one
    decided = {c: sum(e.meta["decided_by"] == c for e in splits.variants["heldout"]) for c in ("none",) + CRITERIA}
    assert all(decided.values()), decided  # on held-out types every criterion decides some carts
    assert not any(e.meta["decided_by"] == "forbidden" for e in splits.train + splits.test)  # never shown by example


def test_hinge_twins_differ_in_one_held_out_item_and_in_their_label(world, splits):
    hinge = splits.variants["hinge"]
    named = {world.rules.forbidden[1]}
    for a, b in zip(hinge[::2], hinge[1::2]):
        (ia, ta), (ib, tb) = parse_cart(a.question), parse_cart(b.question)
        diff = [(x, y) for x, y in zip(ia, ib) if x != y]
        assert ta == tb and len(diff) == 1 and a.answer != b.answer
        assert diff[0][0] in named and diff[0][1] in set(world.heldout) - named
        assert a.meta["turns_on_heldout"] == [diff[0][0]] and a.meta["hinge"] == b.meta["hinge"]


def test_world_round_trip_and_task_registry(world, splits):
    assert JudgeWorld.from_dict(json.loads(json.dumps(world.to_dict()))).rules == world.rules
    assert task_for(splits.test).name == "judge" and get_task("judge", world).variants(splits.test, 4, 1)["hinge"]
    tampered = {**world.to_dict(), "rules": {**world.rules.to_dict(), "budget": world.rules.budget + 1}}
    with pytest.raises(ValueError, match="field 'rules'"):
        JudgeWorld.from_dict(tampered)


def test_a_criteria_file_with_an_unknown_criterion_names_file_and_field(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"budget": 5, "needs": ["lamp"], "forbidden": ["cup", "kite"], "colour": "red"}))
    with pytest.raises(RecordError) as err:
        load_criteria(path)
    message = str(err.value)
    assert message == f"{path}: field 'colour': unknown criterion (valid: budget, needs, forbidden)"
    path.write_text(json.dumps({"budget": 5, "needs": ["lamp"]}))
    with pytest.raises(RecordError, match=r"field 'forbidden': missing"):
        load_criteria(path)
    path.write_text(json.dumps(RULES.to_dict()))
    assert load_criteria(path) == RULES


# ---- the claim's evidence on synthetic runs ----------------------------------------------------------
class FakeJudgeRun:
    """A finished judge run made of synthetic rows: per model and set, an accuracy. Models share each
    cart's difficulty (as models asked the same carts do), and 3% of each model's outcomes are flipped."""

    def __init__(self, accuracy: dict[str, dict[str, float]], n: int = 300, seed: int = 0):
        self.seed, self.out, self.bootstrap = seed, Path("."), 300
        rng = np.random.default_rng(seed)
        hard = {s: rng.random(n) for s in ("test", "variant_heldout", "variant_hinge")}
        self._rows = {(m, s): [{"id": f"{s}{i}", "correct": float(x)}
                               for i, x in enumerate((hard[s] < acc) ^ (rng.random(n) < 0.03))]
                      for m, sets in accuracy.items() for s, acc in sets.items()}
        self._n = n

    def models(self):
        return list(dict.fromkeys(m for m, _ in self._rows))

    def rows(self, model, set_name="test"):
        return self._rows[(model, set_name)]

    def variant_names(self):
        return ["heldout", "hinge"]

    def load(self, name):
        return [Example(id=f"{name}{i}", task="judge.purchase", question="q", answer="yes" if i % 2 else "no",
                        meta={"decided_by": "none" if i % 2 else CRITERIA[i % 3], "turns_on_heldout": []})
                for i in range(self._n)]


def _accuracies(labels: tuple[float, float, float], written: tuple[float, float, float]):
    sets = ("test", "variant_heldout", "variant_hinge")
    return {"base": dict.fromkeys(sets, 0.5), "c6_labels": dict(zip(sets, labels)),
            "c6_criteria": dict(zip(sets, written)), "c6_criteria_only": dict.fromkeys(sets, 0.6)}


@pytest.mark.parametrize("labels, written, real, positive, negative", [
    ((0.95, 0.6, 0.5), (0.95, 0.9, 0.95), "reproduced", "reproduced", "not reproduced"),
    ((0.95, 0.9, 0.5), (0.95, 0.9, 0.95), "not reproduced", "reproduced", "not reproduced"),  # labels transfer
    ((0.7, 0.5, 0.5), (0.95, 0.9, 0.95), "not reproduced", "reproduced", "reproduced"),  # unequal in distribution
    ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "inconclusive", "inconclusive", "inconclusive"),  # labels taught nothing
])
def test_claim_evidence_reaches_its_verdicts(labels, written, real, positive, negative):
    claim = CRITERIA_CLAIM
    run = FakeJudgeRun(_accuracies(labels, written))
    verdicts = {role: judge_verdict(claim.protocol, [claim.evidence(run, arm)], n_resamples=300)["verdict"]
                for role, arm in claim.arms().items()}
    assert verdicts == {"real": real, "positive": positive, "negative": negative}


def test_analysis_reports_errors_by_criterion():
    run = FakeJudgeRun(_accuracies((0.95, 0.6, 0.5), (0.95, 0.9, 0.95)))
    result = CRITERIA_CLAIM.analyze(run).to_dict()
    errors = result["per_model"]["c6_labels"]["errors_by_criterion"]["variant_heldout"]
    assert set(errors) == {"none", *CRITERIA, "turns on held-out"}
    assert sum(e["n"] for k, e in errors.items() if k != "turns on held-out") == 300
    assert errors["none"]["error"] is not None and errors["turns on held-out"] == {"n": 0, "error": None}
    assert result["per_condition"]["c6_criteria"]["variant_heldout"]["mean"] > 0.1
    lines = CRITERIA_CLAIM.report_section(result, {})
    assert any("deciding criterion, held-out types" in line for line in lines)
