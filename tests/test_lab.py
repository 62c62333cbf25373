"""The lab end to end on the micro preset: outputs, determinism, resume."""

import json
import shutil

import pytest

from sftlens.cli import main
from sftlens.lab.runner import LabConfigMismatch, run_lab


def _numbers(results):
    return json.dumps(results["claims"], sort_keys=True) + json.dumps(results["models"], sort_keys=True)


def test_micro_writes_results_and_report(micro_run):
    out, res = micro_run
    on_disk = json.loads((out / "results.json").read_text())
    assert set(on_disk["claims"]) >= {"C1", "C4", "C8"}
    for c in on_disk["claims"].values():
        assert c["verdict"] in {"reproduced", "not reproduced", "inconclusive"}
        assert {"claim", "rule", "effect", "per_model", "per_condition"} <= set(c)
        assert {"mean", "lo", "hi"} <= set(c["effect"])
    report = (out / "report.md").read_text()
    for key in ("C1", "C4", "C8", "Decision rule"):
        assert key in report
    for where, m in (("", "base"), ("", "correct"), ("", "swapped"), ("worlds/maze", "answer_only"),
                     ("worlds/maze", "base"), ("worlds/maze", "correct_again")):
        assert (out / where / "models" / m / "config.json").exists(), (where, m)
        assert (out / where / "eval" / m / "test.jsonl").exists(), (where, m)
    assert (out / "data" / "test.jsonl").exists() and (out / "data" / "world.json").exists()
    for m in ("base", "correct"):  # each model keeps its loss curve, and training lowered the loss
        curve = json.loads((out / "models" / m / "sftlens.json").read_text())["loss_curve"]
        assert len(curve) >= 5 and curve[-1][1] < curve[0][1], (m, curve)


def test_same_seed_same_numbers(micro_run, background_lab):
    """Seed 0 run again in another process on another executor (conftest's background run: a local Ray
    instance, or two worker processes where Ray is not installed) gives the in-process run's numbers."""
    out, res = micro_run
    again = background_lab.wait("again")
    res2 = json.loads((again / "results.json").read_text())
    assert _numbers(res) == _numbers(json.loads((out / "results.json").read_text())) == _numbers(res2)


def test_ray_executor_gives_the_same_numbers(background_lab):
    """The Ray half of test_same_seed_same_numbers: skipped, saying so, where Ray is not installed."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed (pip install 'sftlens[ray]'): the Ray executor is not tested")
    assert background_lab.executor["again"] == "ray" and (background_lab.wait("again") / "results.json").exists()


def test_process_executor_gives_the_same_evaluations(micro_run, tmp_path):
    """One world (the smallest) as a job in a spawned worker process: the in-process run's generations."""
    from sftlens.lab.executors import Job, run_jobs

    out, _ = micro_run
    run_jobs([Job(out=str(tmp_path), preset="micro", seed=0, world="packing_loose")], executor="process", workers=1)
    mine, theirs = tmp_path / "worlds" / "packing_loose" / "eval", out / "worlds" / "packing_loose" / "eval"
    files = sorted(p.relative_to(theirs) for p in theirs.rglob("*.jsonl"))
    assert files and sorted(p.relative_to(mine) for p in mine.rglob("*.jsonl")) == files
    for f in files:
        assert (mine / f).read_text() == (theirs / f).read_text(), f


def test_resume_skips_finished_stages_and_redoes_interrupted_ones(micro_run, tmp_path):
    out, res = micro_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    model_file = next((copy / "models" / "correct").glob("*.safetensors"))
    mtime = model_file.stat().st_mtime_ns
    # simulate an interrupted run: a half-written model folder, a missing eval file, no results
    (copy / "models" / ".tmp-swapped").mkdir()
    (copy / "models" / ".tmp-swapped" / "junk").write_text("partial")
    shutil.rmtree(copy / "worlds" / "maze" / "models" / "answer_only")  # another world's stage
    (copy / "eval" / "swapped" / "test.jsonl").unlink()
    (copy / "results.json").unlink()
    res2 = run_lab(copy, preset="micro", seed=0)
    assert model_file.stat().st_mtime_ns == mtime          # finished stage skipped
    assert (copy / "worlds" / "maze" / "models" / "answer_only" / "config.json").exists()  # redone
    assert not (copy / "models" / ".tmp-swapped").exists()  # leftovers cleaned
    assert _numbers(res2) == _numbers(res)


def test_evaluations_belong_to_the_model_that_made_them(micro_run, tmp_path):
    """Replace a finished model's weights: its evaluations are redone, not reused (eval/<model>/MODEL)."""
    out, res = micro_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    rows = lambda m: [json.loads(l)["sample"]["completion"]  # noqa: E731
                      for l in (copy / "eval" / m / "test.jsonl").read_text().splitlines()]
    # a donor whose generations differ from correct's (asked the same test set): the test has teeth
    donor = next((m for m in ("base", "swapped", "c8_narrow", "c8_full", "bulk", "curated_k", "random_k")
                  if rows(m) != rows("correct")), None)
    assert donor is not None, "every micro model generated what 'correct' did: nothing to tell apart"
    stamp = (copy / "eval" / "correct" / "MODEL").read_text()
    for f in (copy / "models" / donor).glob("*.safetensors"):
        shutil.copy(f, copy / "models" / "correct" / f.name)
    (copy / "results.json").unlink()
    run_lab(copy, preset="micro", seed=0)
    assert (copy / "eval" / "correct" / "MODEL").read_text() != stamp
    assert rows("correct") == rows(donor)  # scored again, from the weights now in models/correct


def test_a_model_with_another_models_weights_takes_its_evaluations(micro_run):
    """Micro's C7 runs change nothing (the nano SFT model solves nothing: no band to train on, or every
    sampled group has one reward), so each keeps 'correct''s weights; its evaluations are then correct's,
    relabelled, not generated again (no eval_ timing)."""
    out, _ = micro_run
    weights = lambda m: next((out / "models" / m).glob("*.safetensors")).read_bytes()  # noqa: E731
    twins = [m for m in ("c7_easy", "c7_matched", "c7_hard", "c7_planted", "c7_matched_b")
             if weights(m) == weights("correct")]
    assert twins, "every micro C7 model changed: nothing here is reused"
    timings = json.loads((out / "timings.json").read_text())
    for m in twins:
        assert f"eval_{m}" not in timings and f"faithfulness_{m}" not in timings and "eval_correct" in timings
        for f in ("test.jsonl", "variant_long.jsonl", "facts.jsonl", "faithfulness.jsonl"):
            theirs = (out / "eval" / "correct" / f).read_text().replace('"model": "correct"', f'"model": "{m}"')
            assert (out / "eval" / m / f).read_text() == theirs, (m, f)


def test_rerun_with_other_settings_is_refused(micro_run, capsys):
    out, _ = micro_run
    with pytest.raises(LabConfigMismatch):
        run_lab(out, preset="micro", seed=1)
    assert main(["lab", "--preset", "micro", "--seed", "1", "--out", str(out), "--quiet"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_a_failing_job_fails_the_run(tmp_path):
    from sftlens.core.errors import UserError
    from sftlens.lab.executors import Job, run_jobs

    bad = [Job(out=str(tmp_path / "x"), preset="no-such-preset", seed=0, world="shop")]
    with pytest.raises(ValueError, match="unknown preset 'no-such-preset'"):
        run_jobs(bad, executor="process", workers=1)  # raised in a worker, re-raised here
    with pytest.raises(UserError, match="--executor"):
        run_jobs(bad, executor="threads")


def test_several_seeds_write_per_seed_and_pooled_verdicts(micro_run, background_lab, tmp_path):
    out, _ = micro_run
    pooled_dir = tmp_path / "pooled"
    # both seeds are finished single runs (seed 1 trained in the background): only pooling happens here
    shutil.copytree(out, pooled_dir / "seed_0")
    shutil.copytree(background_lab.wait("seed_1"), pooled_dir / "seed_1")
    for s in (0, 1):
        (pooled_dir / f"seed_{s}" / "results.json").unlink()
    weights = next((pooled_dir / "seed_1" / "models" / "correct").glob("*.safetensors"))
    mtime = weights.stat().st_mtime_ns
    assert main(["lab", "--preset", "micro", "--seeds", "0,1", "--out", str(pooled_dir), "--quiet",
                 "--executor", "serial"]) == 0
    pooled = json.loads((pooled_dir / "results.json").read_text())
    assert pooled["seeds"] == [0, 1] and weights.stat().st_mtime_ns == mtime  # seed 1 resumed, not retrained
    for cid, c in pooled["claims"].items():
        assert {"sesoi", "test", "guards", "mde", "p_holm", "per_seed"} <= set(c), cid
        assert set(c["per_seed"]) == {"0", "1"} and c["n_seeds"] == 2 and c["exploratory"] is False
    for s in (0, 1):
        single = json.loads((pooled_dir / f"seed_{s}" / "results.json").read_text())
        assert single["seeds"] == [s]
    assert "seeds 0, 1" in (pooled_dir / "report.md").read_text()


def test_bad_seed_lists_are_refused(tmp_path, capsys):
    assert main(["lab", "--preset", "micro", "--seed", "-1", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "--seed" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main(["lab", "--preset", "micro", "--workers", "0", "--out", str(tmp_path / "w"), "--quiet"]) == 2
    assert "--workers" in capsys.readouterr().err and not (tmp_path / "w").exists()
    with pytest.raises(SystemExit):
        main(["lab", "--preset", "micro", "--seeds", "0,0", "--out", str(tmp_path / "y"), "--quiet"])
    assert not (tmp_path / "y").exists()


def test_claims_option_trains_only_what_those_claims_need(micro_run, tmp_path, capsys):
    """``--claims C8``: only C8 is judged, and the shop trains only C8's conditions and controls (no other
    world), with exactly the full run's numbers (the base's tokenizer covers every claim's conditions,
    whichever are tested). A resume with ``--claims C4`` adds C4's world and judges C4, reusing the shop's
    finished stages; an unknown id is refused before anything is written."""
    full, _ = micro_run
    out = tmp_path / "c8"
    assert main(["lab", "--preset", "micro", "--claims", "C8", "--out", str(out), "--quiet",
                 "--executor", "serial"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["claims"]) == ["C8"]
    assert sorted(p.name for p in (out / "models").iterdir()) == ["base", "c8_full", "c8_narrow", "correct"]
    assert not (out / "worlds").exists()
    for m in ("base", "correct", "c8_narrow", "c8_full"):
        for f in ("test.jsonl", "variant_n_minus_1.jsonl"):
            assert (out / "eval" / m / f).read_text() == (full / "eval" / m / f).read_text(), (m, f)
    base = next((out / "models" / "base").glob("*.safetensors")).stat().st_mtime_ns
    assert main(["lab", "--preset", "micro", "--claims", "C4", "--out", str(out), "--quiet",
                 "--executor", "serial"]) == 0
    assert list(json.loads((out / "results.json").read_text())["claims"]) == ["C4"]
    assert (out / "worlds" / "maze" / "models" / "correct_again").exists() and (out / "models" / "swapped").exists()
    assert next((out / "models" / "base").glob("*.safetensors")).stat().st_mtime_ns == base
    with pytest.raises(SystemExit):
        main(["lab", "--preset", "micro", "--claims", "C4,C99", "--out", str(tmp_path / "z"), "--quiet"])
    assert "C99" in capsys.readouterr().err and not (tmp_path / "z").exists()
