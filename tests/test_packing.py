"""The packing task (C5): the exact solver, the four-level checker, the SFT conditions' answers, and
C5's evidence and its exact intervals on synthetic rows at the boundaries of the rule."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import numpy as np
import pytest

from sftlens.core.errors import UserError
from sftlens.core.format import completion_text, prompt_text
from sftlens.lab.claims import CLAIMS
from sftlens.lab.protocol import Comparison, Protocol, SeedEvidence, judge, paired_table
from sftlens.tasks import get_task, task_for
from sftlens.tasks.jsonout import load_schema, validator_for
from sftlens.tasks.packing import (SCHEMA, Instance, PackingChecker, PackingConfig, PackingWorld, check_answer,
                                   instance_of, make_packing_splits, solve, with_answers)

# a tight instance (17 > 9 + 6): the unique optimum packs a and b into bin 1, c into bin 2 (value 18)
INST = Instance((9, 6), ("a", "b", "c", "d"), (4, 5, 6, 2), (7, 3, 8, 2))


def random_instance(rng: random.Random) -> Instance:
    n, m = rng.randint(3, 7), rng.randint(1, 3)
    return Instance(tuple(rng.randint(3, 15) for _ in range(m)), tuple("abcdefg"[:n]),
                    tuple(rng.randint(1, 9) for _ in range(n)), tuple(rng.randint(1, 9) for _ in range(n)))


def naive_optimum(inst: Instance) -> int:
    """The optimum by plain enumeration in Python, written independently of :func:`solve`."""
    best = 0
    for a in itertools.product(range(len(inst.capacities) + 1), repeat=len(inst.names)):
        loads = [0] * len(inst.capacities)
        for item, b in enumerate(a):
            if b:
                loads[b - 1] += inst.weights[item]
        if all(load <= cap for load, cap in zip(loads, inst.capacities)):
            best = max(best, sum(v for v, b in zip(inst.values, a) if b))
    return best


def milp_optimum(inst: Instance) -> int:
    """The optimum by scipy's mixed-integer solver: binary x[i, j] (item i in bin j)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    n, m = len(inst.names), len(inst.capacities)
    c = -np.repeat(np.asarray(inst.values, float), m)  # x flattened item-major: x[i * m + j]
    once = np.zeros((n, n * m))
    fits = np.zeros((m, n * m))
    for i in range(n):
        once[i, i * m:(i + 1) * m] = 1
        for j in range(m):
            fits[j, i * m + j] = inst.weights[i]
    res = milp(c, integrality=np.ones(n * m), bounds=Bounds(0, 1),
               constraints=[LinearConstraint(once, 0, 1), LinearConstraint(fits, 0, np.asarray(inst.capacities, float))])
    assert res.success, res.message
    return int(round(-res.fun))


def test_solver_matches_milp_and_plain_enumeration_on_50_random_instances():
    rng = random.Random(12)
    instances = [random_instance(rng) for _ in range(50)]
    optima = [solve(i).value for i in instances]
    assert optima == [milp_optimum(i) for i in instances] == [naive_optimum(i) for i in instances]
    assert len(set(optima)) > 10  # the instances differ: the agreement is not on one trivial value
    for inst in instances:  # the reference assignment reaches the optimum and fits
        sol = solve(inst)
        assert check_answer(inst, json.dumps({"bins": [[n for n, a in zip(inst.names, sol.assignment) if a == j + 1]
                                                       for j in range(len(inst.capacities))]})).optimal


@pytest.mark.parametrize("answer, reached, failure", [
    ('{"bins":[["a","b"],["c"]', 0, "json: does not parse"),                 # cut off: not JSON
    ('{"take":["a","b"]}', 1, "schema: 'bins' is a required property"),     # JSON, another shape
    ('[["a","b"],["c"]]', 1, "schema: [['a', 'b'], ['c']] is not of type 'object'"),  # not an object
    ('{"bins":[["a","b"],[3]]}', 1, "schema: bins/1/0: 3 is not of type 'string'"),
    ('{"bins":[["a","b","c"],[]]}', 2, "bin 1 holds weight 15 > capacity 9"),  # schema-valid, infeasible
    ('{"bins":[["a","b"]]}', 2, "bins: 1 lists for 2 bins"),
    ('{"bins":[["a","x"],["c"]]}', 2, "unknown item 'x' in bin 1"),
    ('{"bins":[["a","b"],["a"]]}', 2, "item 'a' packed twice (bins 1 and 2)"),
    ('{"bins":[["a"],["c"]]}', 3, "value 15 < optimum 18"),                   # feasible, not optimal
    ('{"bins":[["a","b"],["c"]]}', 4, ""),                                     # optimal
    ('{"bins": [["b", "a"], ["c"]]}', 4, ""),                                  # other spacing and order
])
def test_each_level_fails_alone(answer, reached, failure):
    check = PackingChecker(INST).check("A: " + answer)
    assert list(check.levels().values()) == [1.0] * reached + [0.0] * (4 - reached)
    assert (check.failed[0] if check.failed else "") .startswith(failure)


def test_checker_reads_bare_json_and_every_constraint_it_breaks():
    assert PackingChecker(INST).check('{"bins":[["a","b"],["c"]]}').optimal  # no 'A:' line: the whole text
    row = PackingChecker(INST).check_output('A: {"bins":[["a","b","x"],["a","c"]]}')
    assert row["schema_valid"] == 1.0 and row["feasible"] == 0.0
    assert row["output_check"].split("; ") == ["unknown item 'x' in bin 1", "item 'a' packed twice (bins 1 and 2)",
                                               "bin 2 holds weight 10 > capacity 6"]


def test_schema_is_valid_json_schema_and_a_bad_schema_file_names_file_and_field(tmp_path):
    validator_for(SCHEMA)
    bad = tmp_path / "schema.json"
    bad.write_text(json.dumps({"type": "object", "properties": {"bins": {"type": "arrey"}}}))
    with pytest.raises(UserError, match=r"schema.json: not a valid JSON Schema: field 'properties/bins/type'"):
        load_schema(bad)
    bad.write_text("{\n  \"type\": \n")
    with pytest.raises(UserError, match=r"schema.json:3: not JSON"):
        load_schema(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(UserError, match="expected an object at the top, got list"):
        load_schema(bad)


def test_world_problems_have_unique_optima_a_real_choice_and_round_trip():
    w = PackingWorld()
    for e in w.problems(40, seed=3):
        inst = instance_of(e)
        assert instance_of(e.question) == inst and sum(inst.weights) > sum(inst.capacities)
        sol = solve(inst)
        assert sol.n_optimal == 1 and e.meta["optimum"] == sol.value
        assert check_answer(inst, e.answer).optimal and task_for([e]).name == "packing"
    loose = PackingWorld(PackingConfig(loose=True, unique_optimum=False)).problems(20, seed=3)
    assert all(min(instance_of(e).capacities) >= sum(instance_of(e).weights) for e in loose)
    with pytest.raises(ValueError, match="unique_optimum=False"):
        PackingConfig(loose=True)
    assert PackingWorld.from_dict(json.loads(json.dumps(w.to_dict()))).config == w.config


def test_condition_answers_are_what_their_names_say():
    train = PackingWorld().problems(60, seed=5)
    checks = {kind: [check_answer(instance_of(e), e.answer) for e in with_answers(train, kind, seed=0)]
              for kind in ("optimal", "infeasible", "suboptimal")}
    assert all(c.optimal for c in checks["optimal"])
    assert all(c.schema_valid and not c.feasible for c in checks["infeasible"])  # form without feasibility
    assert all(c.feasible and not c.optimal for c in checks["suboptimal"])
    with pytest.raises(ValueError, match="every item fits"):
        with_answers(PackingWorld(PackingConfig(loose=True, unique_optimum=False)).problems(2, seed=0), "infeasible", 0)


def test_splits_are_disjoint_and_every_text_tokenizes_without_unk():
    from sftlens.models.tiny import build_tokenizer

    w = PackingWorld()
    sp = make_packing_splits(w, 30, 40, 20, 10, seed=0)
    sets = [sp.pretrain_problems, sp.train, sp.test, sp.variants["more_items"]]
    questions = [e.question for s in sets for e in s]
    assert len(questions) == len(set(questions))
    assert all(json.loads(e.answer).keys() == {"take"} for e in sp.pretrain_problems)  # the base's other shape
    assert all(len(instance_of(e).names) == w.config.more_items for e in sp.variants["more_items"])
    tok = build_tokenizer(w.tokenizer_corpus())  # the vocabulary alone, no generated text
    for e in sets[1] + sets[0][:5]:
        text = prompt_text(e) + completion_text(e)
        assert tok.unk_token_id not in tok(text)["input_ids"], text
        assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text


def test_task_contract():
    task = get_task("packing", PackingWorld())
    assert set(task.variants([], 2, seed=0)) == {"more_items"}
    assert task.verifier.for_example(PackingWorld().problems(1, seed=0)[0]).check_output("A: x")["json_parses"] == 0.0


# ---- C5's evidence and the exact intervals of binary comparisons --------------------------------------
class LevelsRun:
    """A finished packing run made of synthetic rows: per model a schema-valid and a feasible rate, drawn
    from one set of uniforms for every model (paired rows, as the same test problems give)."""

    def __init__(self, rates: dict[str, tuple[float, float]], n: int = 300, seed: int = 0):
        self.seed, self.out, self.bootstrap = seed, Path("."), 300
        rng = np.random.default_rng(seed)
        u, v = rng.random(n), rng.random(n)
        self._rows = {}
        for m, (schema, feasible) in rates.items():
            s = (u < schema).astype(float)
            f = s * (v < (feasible / schema if schema else 0.0))
            self._rows[m] = [{"id": f"t{i}", "json_parses": s[i], "schema_valid": s[i], "feasible": f[i],
                              "optimal": f[i], "correct": f[i], "output_check": ""} for i in range(n)]

    def models(self):
        return list(self._rows)

    def rows(self, model, set_name="test"):
        return self._rows[model] if set_name == "test" else []

    def variant_names(self):
        return []


@pytest.mark.parametrize("rates, expected, reason", [
    ({"base": (0.0, 0.0), "correct": (1.0, 0.0)}, "reproduced", "exact"),       # every pair alike: exact intervals
    ({"base": (0.1, 0.02), "correct": (0.9, 0.03)}, "reproduced", ""),
    ({"base": (0.1, 0.02), "correct": (0.9, 0.6)}, "not reproduced", "lies beyond +0.05"),  # feasibility rose
    ({"base": (0.3, 0.1), "correct": (0.31, 0.1)}, "not reproduced", "stays short of +0.05"),  # form did not rise
    ({"base": (0.99, 0.1), "correct": (1.0, 0.1)}, "inconclusive", "ceiling"),
])
def test_c5_evidence_reaches_its_verdicts(rates, expected, reason):
    claim = CLAIMS["C5"]
    run = LevelsRun(rates)
    j = judge(claim.protocol, [claim.evidence(run)], n_resamples=300)
    assert j["verdict"] == expected, j["reason"]
    assert reason in j["reason"] or reason in json.dumps(j["pooled"])


def test_c5_arms_read_their_own_conditions():
    claim = CLAIMS["C5"]
    arms = claim.arms()
    assert {role: (a.world, a.conditions[0]) for role, a in arms.items()} == {
        "real": ("packing", "correct"), "positive": ("packing", "c5_infeasible"), "negative": ("packing_loose", "correct")}
    run = LevelsRun({"base": (0.0, 0.0), "c5_infeasible": (0.9, 0.0), "correct": (0.9, 0.5)})
    assert "c5_infeasible" in claim.evidence(run, arms["positive"]).comparisons[0].name
    assert claim.evidence(LevelsRun({"base": (0.0, 0.0)}), arms["positive"]) is None  # not trained: no evidence
    # no other claim trains or judges anything in the packing worlds
    assert all(a.world not in ("packing", "packing_loose") and not any(c.startswith("c5_") for c in a.conditions)
               for cid, cl in CLAIMS.items() if cid != "C5" for a in cl.arms().values())


@pytest.mark.parametrize("values, expected", [
    ([0.0] * 600, "reproduced"),    # no pair differs in 600: the rise is bounded below 0.5 points
    ([0.0] * 40, "inconclusive"),   # in 40 the exact bound (7.2 points) still allows the SESOI
    ([1.0] * 100, "not reproduced"),
])
def test_non_superiority_on_constant_binary_columns_uses_exact_intervals(values, expected):
    proto = Protocol("x", 0.05, "why", "non-superiority")
    binary = SeedEvidence(0, [Comparison("d", paired_table(values), binary=True)])
    j = judge(proto, [binary], n_resamples=200)
    assert j["verdict"] == expected and not j["guards"], j["reason"]
    # the same column without the binary mark is guarded as constant, as before
    plain = judge(proto, [SeedEvidence(0, [Comparison("d", paired_table(values))])], n_resamples=200)
    assert plain["verdict"] == "inconclusive" and "constant column" in plain["reason"]


@pytest.mark.parametrize("mean, sd, expected", [(0.0, 0.05, "reproduced"), (0.2, 0.05, "not reproduced"),
                                                (0.05, 0.3, "inconclusive")])
def test_non_superiority_reaches_every_verdict(mean, sd, expected):
    values = list(np.random.default_rng(0).normal(mean, sd, 300))
    j = judge(Protocol("x", 0.05, "why", "non-superiority"), [SeedEvidence(0, [Comparison("d", paired_table(values))])],
              n_resamples=400)
    assert j["verdict"] == expected


# ---- sftlens audit --checker -----------------------------------------------------------------------------
def _predictions(path: Path, examples) -> None:
    """Model 'a' answers every problem optimally; model 'b' writes a format-perfect infeasible answer to the
    even problems and the pretraining shape ({"take": [...]}) to the odd ones."""
    bad = with_answers(examples, "infeasible", seed=0)
    with open(path, "w") as f:
        for i, (e, b) in enumerate(zip(examples, bad)):
            f.write(json.dumps({"id": e.id, "model": "a", "question": e.question, "completion": "A: " + e.answer,
                                "reference": e.answer}) + "\n")
            other = b.answer if i % 2 == 0 else json.dumps({"take": ["a"]})
            f.write(json.dumps({"id": e.id, "model": "b", "question": e.question, "completion": "A: " + other,
                                "reference": e.answer}) + "\n")


def test_audit_predictions_reports_the_levels_of_each_model_paired(tmp_path):
    from sftlens.cli import main

    preds = tmp_path / "preds.jsonl"
    _predictions(preds, PackingWorld().problems(6, seed=2))
    assert main(["audit", "--predictions", str(preds), "--out", str(tmp_path / "p"), "--checker", "packing"]) == 0
    r = json.loads((tmp_path / "p" / "results.json").read_text())
    a, b = (r["models"][m]["metrics"] for m in ("a", "b"))
    assert [a[k]["mean"] for k in ("json_parses", "schema_valid", "feasible", "optimal")] == [1.0, 1.0, 1.0, 1.0]
    assert [b[k]["mean"] for k in ("json_parses", "schema_valid", "feasible", "optimal")] == [1.0, 0.5, 0.0, 0.0]
    assert r["comparisons"][0]["diff"]["schema_valid"]["mean"] == -0.5 and r["inputs"]["checker"] == "packing"
    assert "answer feasible" in (tmp_path / "p" / "report.md").read_text()
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    assert main(["audit", "--predictions", str(preds), "--out", str(tmp_path / "s"),
                 "--checker", f"json-schema:{schema}"]) == 0
    r = json.loads((tmp_path / "s" / "results.json").read_text())
    assert r["models"]["b"]["metrics"]["schema_valid"]["mean"] == 0.5 and "feasible" not in r["models"]["b"]["metrics"]


def test_model_audit_adds_the_levels_to_every_row(tmp_path, tiny_saved):
    from sftlens.cli import main
    from sftlens.core.record import write_jsonl

    data = tmp_path / "packing.jsonl"
    write_jsonl(data, PackingWorld().problems(4, seed=4))
    out = tmp_path / "audit"
    assert main(["audit", "--base", str(tiny_saved), "--tuned", str(tiny_saved), "--data", str(data), "--out", str(out),
                 "--checker", "packing", "--no-faithfulness", "--no-progress", "--max-new-tokens", "6"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    levels = {"json_parses", "schema_valid", "feasible", "optimal", "output_check"}
    assert len(rows) == 4 and all(levels <= set(r) for r in rows)  # one model as base and tuned: one row each
    r = json.loads((out / "results.json").read_text())
    assert r["inputs"]["verifier"].startswith("packing checker") and "feasible" in r["models"]["tuned"]["metrics"]


def test_micro_run_saves_levels_per_example_a_plot_and_a_c5_section(micro_run):
    from sftlens.tasks.packing import LEVELS

    out, results = micro_run
    for world, model in (("packing", "c5_infeasible"), ("packing", "base"), ("packing_loose", "correct")):
        rows = [json.loads(line)["metrics"] for line in (out / "worlds" / world / "eval" / model / "test.jsonl").open()]
        assert rows and all(set(LEVELS) | {"output_check"} <= set(r) for r in rows), (world, model)
    c5 = results["claims"]["C5"]
    assert set(c5["per_model"]) == {"base", "correct", "c5_infeasible", "c5_suboptimal"}
    assert "## C5" in (out / "report.md").read_text() and (out / "c5_levels.png").exists()
