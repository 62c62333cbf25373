"""`sftlens audit --predictions`: saved generations scored with text metrics only."""

from __future__ import annotations

import json
from math import comb

from sftlens.cli import main

# (id, reference, completion of model "a", completion of model "b")
ROWS = [
    ("1", "18", "16 - 3 - 4 = <<16-3-4=9>>9\n9 * 2 = <<9*2=18>>18\n#### 18", "9 * 2 = <<9*2=18>>18\nA: 18"),
    ("2", "3", "2 / 2 = <<2/2=1>>1\nso 3 bolts", "2 / 2 = <<2/2=1>>1\n2 + 1 = <<2+1=3>>3\nA: 3"),
    ("3", "70000", "the profit is 70,000 dollars", "A: 70000"),
    ("4", "540", "#### 500", "3 * 60 = <<3*60=180>>180\nA: 540"),
    ("5", "20", "A: 20", "5 * 4 = <<5*4=21>>21\nA: 21"),
    ("6", "64", "I think 64", "A: 64"),
]
# hand-computed: strict = answer after A:/####; flexible = last number in the completion
STRICT = {"a": [1, 0, 0, 0, 1, 0], "b": [1, 1, 1, 1, 0, 1]}
FLEX = {"a": [1, 1, 1, 0, 1, 1], "b": [1, 1, 1, 1, 0, 1]}


def _write(path, rows, with_id=True, drop=None):
    with open(path, "w") as f:
        for pid, ref, ca, cb in rows:
            for model, comp in (("a", ca), ("b", cb)):
                d = {"id": pid, "model": model, "question": f"question {pid} ?", "completion": comp, "reference": ref}
                if not with_id:
                    d.pop("id")
                if drop:
                    d.pop(drop)
                f.write(json.dumps(d) + "\n")


def _mcnemar_p(a, b):
    b10 = sum(x and not y for x, y in zip(a, b))
    b01 = sum(y and not x for x, y in zip(a, b))
    n = b10 + b01
    k = min(b10, b01)
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n)


def test_predictions_reproduce_hand_computed_numbers(tmp_path, capsys):
    p = tmp_path / "preds.jsonl"
    _write(p, ROWS)
    out = tmp_path / "out"
    assert main(["audit", "--predictions", str(p), "--out", str(out)]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["mode"] == "predictions" and r["text_metrics_only"] is True
    for m in ("a", "b"):
        met = r["models"][m]["metrics"]
        assert abs(met["correct"]["mean"] - sum(STRICT[m]) / 6) < 1e-12
        assert abs(met["flexible_correct"]["mean"] - sum(FLEX[m]) / 6) < 1e-12
        assert "ig_mean" not in met and "ki" not in met
    c = r["comparisons"][0]
    assert (c["a"], c["b"], c["n_pairs"]) == ("a", "b", 6)
    assert abs(c["mcnemar"]["strict"]["p_value"] - _mcnemar_p(STRICT["a"], STRICT["b"])) < 1e-12
    assert abs(c["mcnemar"]["flexible"]["p_value"] - _mcnemar_p(FLEX["a"], FLEX["b"])) < 1e-12
    assert c["mcnemar"]["strict"]["b01"] == 4 and c["mcnemar"]["strict"]["b10"] == 1
    assert abs(c["diff"]["correct"]["mean"] - (sum(STRICT["b"]) - sum(STRICT["a"])) / 6) < 1e-12
    # step validity from annotations: b's chain 5 has one wrong annotation (5*4=21)
    assert r["models"]["b"]["metrics"]["validity"]["mean"] < 1.0
    assert r["verdict"]["status"] == "n/a" and "text metrics only" in r["verdict"]["text"].lower()
    html = (out / "report.html").read_text()
    assert "text metrics only" in html and "&lt;&lt;5*4=21&gt;&gt;" in html
    assert "McNemar" in (out / "report.md").read_text()
    assert "Text metrics only" in capsys.readouterr().out


def test_predictions_pair_by_question_without_ids(tmp_path):
    p = tmp_path / "preds.jsonl"
    _write(p, ROWS, with_id=False)
    assert main(["audit", "--predictions", str(p), "--out", str(tmp_path / "o")]) == 0
    r = json.loads((tmp_path / "o" / "results.json").read_text())
    assert r["inputs"]["paired_by"] == "question" and r["comparisons"][0]["n_pairs"] == 6


def test_predictions_missing_field_is_one_clear_error(tmp_path, capsys):
    p = tmp_path / "preds.jsonl"
    _write(p, ROWS, drop="completion")
    assert main(["audit", "--predictions", str(p), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{p}:1: field 'completion': missing" in err


def test_predictions_duplicate_and_bad_json(tmp_path, capsys):
    p = tmp_path / "preds.jsonl"
    line = json.dumps({"id": "1", "question": "q", "completion": "A: 1", "reference": "1"})
    p.write_text(line + "\n" + line + "\n")
    assert main(["audit", "--predictions", str(p), "--out", str(tmp_path / "o")]) == 2
    assert ":2: field 'id': duplicate" in capsys.readouterr().err
    p.write_text(line + "\n{oops\n")
    assert main(["audit", "--predictions", str(p), "--out", str(tmp_path / "o")]) == 2
    assert ":2: not valid JSON" in capsys.readouterr().err


def test_gsm8k_solutions_as_references_score_like_their_bare_answers(tmp_path, capsys):
    """References as they come: whole GSM8K solutions ('... #### 18') score exactly as the bare answers."""
    import pytest

    from sftlens.paths import GSM8K_DIR

    src = GSM8K_DIR / "test.jsonl"
    if not src.exists():
        pytest.skip(f"{src} not present (the GSM8K test set ships next to CLAIMS.md in ../shared/data/gsm8k)")
    rows = [json.loads(x) for x in src.read_text().splitlines()[:40]]
    bare = [r["answer"].split("####")[-1].strip().replace(",", "") for r in rows]
    # half the completions right, half wrong; the solutions' own numbers (e.g. 48/2 = 24) are no answers
    comps = [f"so the answer is {b}" if i % 2 else f"A: {int(float(b)) + 1}" for i, b in enumerate(bare)]
    scores = {}
    for kind in ("solution", "bare"):
        path = tmp_path / f"{kind}.jsonl"
        with open(path, "w") as f:
            for i, (r, b, c) in enumerate(zip(rows, bare, comps)):
                f.write(json.dumps({"id": str(i), "question": r["question"], "completion": c,
                                    "reference": r["answer"] if kind == "solution" else b}) + "\n")
        assert main(["audit", "--predictions", str(path), "--out", str(tmp_path / kind)]) == 0
        assert "scored 40 saved generations" in capsys.readouterr().out
        metrics = [json.loads(x) for x in (tmp_path / kind / "metrics.jsonl").read_text().splitlines()]
        scores[kind] = [(m["id"], m["correct"]) for m in metrics]
    assert scores["solution"] == scores["bare"]
    assert sum(c for _, c in scores["bare"]) == 20  # the checks bite: right and wrong both occur


def test_a_reference_without_a_single_final_answer_is_refused(tmp_path, capsys):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"question": "q", "completion": "A: 24", "reference": "48/2 = 24 clips"}) + "\n")
    assert main(["audit", "--predictions", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{path}:1: field 'reference':" in err and "marks none as the final answer" in err
    assert not (tmp_path / "out").exists()


# (reference as written, completion, math-verify's judgement, exact match's judgement)
EQUIVALENCE_CASES = [
    ("\\frac{1}{5}", "A: 1/5", True, True),         # exact reads '1' vs '1': right for the wrong reason...
    ("1/5", "A: 1/7", False, True),                  # ...as here: exact match's false positive
    ("0.5", "A: .5", True, False),
    ("15", "A: 1,5", False, True),                   # '1,5' is not fifteen
    ("18", "A: 10 + 8 = 18", True, False),
    ("29", "A: $29.00", True, True),
    ("10%", "A: 10", True, True),
    ("5/2", "A: 2\\frac{1}{2}", True, False),        # mixed number
    ("1200", "so the answer is \\boxed{1,200}", True, True),
    ("\\frac{1}{2004!}", "A: \\frac{1}{2006!}", False, True),  # math-verify's rounding false positive
    ("7", "<think>A: 7</think> A: 8", False, False),  # the answer after the thinking counts
]


def test_math_equivalence_is_the_default_and_strict_is_kept(tmp_path, capsys):
    p = tmp_path / "preds.jsonl"
    with open(p, "w") as f:
        for i, (ref, completion, _, _) in enumerate(EQUIVALENCE_CASES):
            f.write(json.dumps({"id": str(i), "question": f"q{i}", "completion": completion, "reference": ref}) + "\n")
    out, strict_out = tmp_path / "math", tmp_path / "strict"
    assert main(["audit", "--predictions", str(p), "--out", str(out)]) == 0
    assert main(["audit", "--predictions", str(p), "--out", str(strict_out), "--equivalence", "strict"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [bool(r["correct"]) for r in rows] == [c[2] for c in EQUIVALENCE_CASES]
    assert [bool(r["exact_correct"]) for r in rows] == [c[3] for c in EQUIVALENCE_CASES]
    disagree = sum(c[2] != c[3] for c in EQUIVALENCE_CASES)
    met = json.loads((out / "results.json").read_text())["models"]["model"]["metrics"]
    assert abs(met["judges_disagree"]["mean"] - disagree / len(EQUIVALENCE_CASES)) < 1e-12
    assert abs(met["correct"]["mean"] - sum(c[2] for c in EQUIVALENCE_CASES) / len(EQUIVALENCE_CASES)) < 1e-12
    assert "math-verify and exact match disagree" in (out / "report.md").read_text()
    strict = json.loads((strict_out / "results.json").read_text())
    assert strict["inputs"]["equivalence"] == "strict" and "judges_disagree" not in strict["models"]["model"]["metrics"]
    assert abs(strict["models"]["model"]["metrics"]["correct"]["mean"]
               - sum(c[3] for c in EQUIVALENCE_CASES) / len(EQUIVALENCE_CASES)) < 1e-12


def test_math_equivalence_works_off_the_main_thread():
    """math-verify's own timeouts use SIGALRM, which raises off the main thread; ours are off."""
    import threading

    from sftlens.metrics.equivalence import math_equivalent

    math_equivalent.cache_clear()
    results, errors = [], []

    def judge():
        try:
            results.append((math_equivalent("\\frac{3}{4}", "0.75"), math_equivalent("3/4", "0.7")))
        except Exception as e:  # noqa: BLE001 - the test reports whatever went wrong
            errors.append(e)

    t = threading.Thread(target=judge)
    t.start()
    t.join()
    assert errors == [] and results == [(True, False)]


def test_models_in_separate_files_compare_like_one_file(tmp_path, capsys):
    """A base log and a tuned log (no model field in either) audit like one file naming both models."""
    one = tmp_path / "both.jsonl"
    _write(one, ROWS)
    lines = [json.loads(line) for line in one.read_text().splitlines()]
    for model in ("a", "b"):
        with open(tmp_path / f"{model}.jsonl", "w") as f:
            for d in lines:
                if d["model"] == model:
                    f.write(json.dumps({k: v for k, v in d.items() if k != "model"}) + "\n")
    assert main(["audit", "--predictions", str(one), "--out", str(tmp_path / "one")]) == 0
    assert main(["audit", "--predictions", str(tmp_path / "a.jsonl"), "--predictions", str(tmp_path / "b.jsonl"),
                 "--out", str(tmp_path / "two")]) == 0
    r1 = json.loads((tmp_path / "one" / "results.json").read_text())
    r2 = json.loads((tmp_path / "two" / "results.json").read_text())
    assert list(r2["models"]) == ["model (a)", "model (b)"]
    c1, c2 = r1["comparisons"][0], r2["comparisons"][0]
    assert (c2["a"], c2["b"], c2["n_pairs"]) == ("model (a)", "model (b)", 6)
    assert c2["diff"] == c1["diff"] and c2["mcnemar"] == c1["mcnemar"]
    for m in ("a", "b"):
        assert r2["models"][f"model ({m})"]["metrics"] == r1["models"][m]["metrics"]
    # the tuned file answering other questions (another reference for id 1) is refused, nothing written
    bad = tmp_path / "b_bad.jsonl"
    bad.write_text((tmp_path / "b.jsonl").read_text().replace('"reference": "18"', '"reference": "19"'))
    capsys.readouterr()
    assert main(["audit", "--predictions", str(tmp_path / "a.jsonl"), "--predictions", str(bad),
                 "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "b_bad.jsonl" in err and "'1'" in err and "'19'" in err and "a.jsonl" in err
    assert not (tmp_path / "bad").exists()


def test_lm_eval_and_inspect_logs_of_one_model_pair_by_question(tmp_path, capsys):
    """The fixtures are one greedy model run by both tools: paired by question, the two logs hold the
    same generations (a reader taking the wrong field would differ); paired by id they are refused."""
    from pathlib import Path

    fixtures = Path(__file__).parent / "fixtures"
    lm_eval = next((fixtures / "lm_eval").glob("samples_*.jsonl"))
    inspect_log = fixtures / "inspect" / "gsm8k_fixture.json"
    args = ["audit", "--predictions", str(lm_eval), "--predictions", str(inspect_log)]
    assert main([*args, "--out", str(tmp_path / "by_id")]) == 2
    assert "--pair-by question" in capsys.readouterr().err and not (tmp_path / "by_id").exists()
    assert main([*args, "--pair-by", "question", "--out", str(tmp_path / "q")]) == 0
    r = json.loads((tmp_path / "q" / "results.json").read_text())
    assert r["inputs"]["paired_by"] == "question" and r["comparisons"][0]["n_pairs"] == 6
    samples = [json.loads(line) for line in (tmp_path / "q" / "samples.jsonl").read_text().splitlines()]
    by_model: dict[str, dict[str, str]] = {}
    for s in samples:
        by_model.setdefault(s["model"], {})[s["id"]] = s["completion"].strip()
    assert len(by_model) == 2
    first, second = by_model.values()
    assert first.keys() == second.keys() and len(set(first.values())) == 6
    assert all(first[k] == second[k] for k in first)
