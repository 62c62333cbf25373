"""`sftlens audit` / `sftlens report` with tiny local models: files, cache/resume, lab layout, adapter, errors."""

from __future__ import annotations

import copy
import json
import math

from pathlib import Path

import pytest

from sftlens.audit import METRICS, Store, compare_models, comparison_verdict, faithfulness_module, trap_verdict
from sftlens.cli import main
from sftlens.core.errors import RecordError
from sftlens.core.format import completion_text, prompt_text
from sftlens.core.record import atomic_write_json, write_jsonl
from sftlens.models import lm as lm_mod
from sftlens.models.tiny import build_tokenizer, make_model
from sftlens.tasks.gsm8k import load_gsm8k
from sftlens.paths import GSM8K_DIR

GSM = str(GSM8K_DIR / "test.jsonl")
FAST = ["--max-new-tokens", "8", "--batch-size", "20", "--no-progress"]


def _brief_train(model, tok, texts, steps=4):
    from sftlens.train.pretrain import PretrainConfig, pretrain

    pretrain(model, tok, texts, PretrainConfig(steps=steps, batch_size=4, lr=1e-2, warmup=1))
    return model


@pytest.fixture(scope="module")
def gsm_models(tmp_path_factory):
    if not Path(GSM).exists():
        pytest.skip(f"{GSM} not present (the GSM8K test set ships next to CLAIMS.md in ../shared/data/gsm8k)")
    d = tmp_path_factory.mktemp("gsm")
    exs = load_gsm8k(GSM, limit=20)
    texts = [prompt_text(e) + completion_text(e) for e in exs]
    tok = build_tokenizer(texts)
    base = make_model(tok, "nano", max_positions=1024, seed=0)
    base.save_pretrained(d / "base"), tok.save_pretrained(d / "base")
    tuned = _brief_train(copy.deepcopy(base), tok, texts)
    tuned.save_pretrained(d / "tuned"), tok.save_pretrained(d / "tuned")
    other = make_model(tok, "nano", max_positions=1024, seed=1)
    other.save_pretrained(d / "other"), tok.save_pretrained(d / "other")
    return d


@pytest.fixture()
def count_generate(monkeypatch):
    calls = {"prompts": 0}
    orig = lm_mod.LM.generate

    def gen(self, prompts, *a, **k):
        calls["prompts"] += len(prompts)
        return orig(self, prompts, *a, **k)

    monkeypatch.setattr(lm_mod.LM, "generate", gen)
    return calls


def test_gsm8k_audit_writes_reports_and_second_run_regenerates_nothing(gsm_models, tmp_path, count_generate, capsys):
    out = tmp_path / "audit"
    argv = ["audit", "--base", str(gsm_models / "base"), "--tuned", str(gsm_models / "tuned"), "--data", GSM,
            "--limit", "20", "--out", str(out), "--no-faithfulness", *FAST]
    assert main(argv) == 0
    for f in ("report.html", "report.md", "results.json", "samples.jsonl", "metrics.jsonl"):
        assert (out / f).stat().st_size > 0, f
    r1 = json.loads((out / "results.json").read_text())
    assert r1["run"]["generated_new"] == 40 and count_generate["prompts"] == 40
    assert r1["inputs"]["format"] == "gsm8k" and r1["inputs"]["n_examples"] == 20
    assert set(r1["models"]) == {"base", "tuned"} and r1["models"]["base"]["identity"] != r1["models"]["tuned"]["identity"]
    assert r1["comparisons"][0]["n_pairs"] == 20
    # (the verdict, the report's numbers and the banner are checked where a model gets answers right:
    # test_lab_layout_with_world_variants_and_faithfulness; both GSM8K models here score 0%)
    lines = (out / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 40 and all("key" in json.loads(x) for x in lines)

    count_generate["prompts"] = 0
    assert main(argv) == 0
    r2 = json.loads((out / "results.json").read_text())
    assert count_generate["prompts"] == 0 and r2["run"]["generated_new"] == 0 and r2["run"]["scored_new"] == 0
    assert "generated 0 new samples" in capsys.readouterr().out
    # same seed, same numbers
    assert r2["models"] == r1["models"] and r2["comparisons"] == r1["comparisons"]

    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "<script" not in html
    assert "http://" not in html and "https://" not in html
    assert (out / "report.md").stat().st_size > 0

    # `sftlens report` re-renders without loading a model or generating
    (out / "report.html").unlink()
    (out / "report.md").unlink()

    def no_load(*a, **k):
        raise AssertionError("report must not load a model")

    import sftlens.models.lm as m
    orig = m.load_lm
    m.load_lm = no_load
    try:
        assert main(["report", str(out)]) == 0
    finally:
        m.load_lm = orig
    assert (out / "report.html").read_text().count("<table") >= 1 and (out / "report.md").exists()

    # another tuned model in the same folder: only its own samples are generated
    count_generate["prompts"] = 0
    argv_other = list(argv)
    argv_other[argv_other.index("--tuned") + 1] = str(gsm_models / "other")
    argv_other[argv_other.index("--limit") + 1] = "3"
    assert main(argv_other) == 0
    assert count_generate["prompts"] == 3
    # other generation settings are other cache keys
    count_generate["prompts"] = 0
    argv_len = [*argv_other[:-len(FAST)], "--max-new-tokens", "6", "--batch-size", "20", "--no-progress"]
    assert main(argv_len) == 0 and count_generate["prompts"] == 6


def test_resume_after_interrupted_write(gsm_models, tmp_path, count_generate):
    out = tmp_path / "a"
    argv = ["audit", "--base", str(gsm_models / "base"), "--tuned", str(gsm_models / "tuned"), "--data", GSM,
            "--limit", "4", "--out", str(out), "--no-faithfulness", *FAST]
    assert main(argv) == 0
    p = out / "samples.jsonl"
    lines = p.read_text().splitlines(keepends=True)
    assert len(lines) == 8
    p.write_text("".join(lines[:5]) + lines[5][: len(lines[5]) // 2])  # 5 complete + a truncated line
    count_generate["prompts"] = 0
    assert main(argv) == 0
    r = json.loads((out / "results.json").read_text())
    assert count_generate["prompts"] == 3 and r["run"]["generated_new"] == 3
    assert any("truncated" in n for n in r["notes"])
    assert all(json.loads(x) for x in p.read_text().splitlines())


def test_store_rejects_corruption_in_the_middle(tmp_path):
    p = tmp_path / "s.jsonl"
    p.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    with pytest.raises(RecordError, match=r"s\.jsonl:2"):
        Store(p)


def test_lab_layout_with_world_variants_and_faithfulness(tmp_path, count_generate, world_splits, tiny_saved,
                                                         trained_nano):
    """The audit on shop data: an untrained base against a model that answers its memorised problems."""
    w, sp = world_splits
    lab = tmp_path / "lab"
    test = trained_nano.seen[:8] + trained_nano.unseen[:8]
    atomic_write_json(lab / "data" / "world.json", w.to_dict())
    write_jsonl(lab / "data" / "test.jsonl", test)
    write_jsonl(lab / "data" / "variant_long.jsonl", sp.variants["long"][:2])
    out = tmp_path / "audit"
    argv = ["audit", "--base", str(tiny_saved), "--tuned", str(trained_nano.path),
            "--data", str(lab / "data" / "test.jsonl"), "--variants", f"long={lab / 'data' / 'variant_long.jsonl'}",
            "--out", str(out), "--max-new-tokens", "72", "--batch-size", "20", "--no-progress"]
    assert main(argv) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["inputs"]["verifier"].startswith("shop world") and r["inputs"]["format"] == "sftlens"
    assert set(r["variants"]["long"]) == {"base", "tuned"} and r["variants"]["long"]["base"]["n"] == 2
    assert r["run"]["generated_new"] == 2 * (16 + 2)
    # accuracy recounted from the saved samples, independently of the metric code
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    tuned = [s for s in samples if s["role"] == "tuned" and s["set"] == "main"]
    assert len(tuned) == 16
    acc = sum(s["completion"].strip().splitlines()[-1] == f"A: {s['reference']}" for s in tuned) / 16
    assert acc == r["models"]["tuned"]["metrics"]["correct"]["mean"] == 0.5  # the 8 memorised problems
    assert r["models"]["base"]["metrics"]["correct"]["mean"] == 0.0
    assert 0.0 < r["models"]["tuned"]["metrics"]["ki"]["mean"] < 1.0
    # the verdict's branch and numbers: +50 points, and no reasoning metric for a base that writes no chain
    assert r["verdict"]["status"] == "n/a"
    assert r["verdict"]["text"].startswith("Accuracy trap: cannot tell — accuracy +50.0 pts [")
    assert r["verdict"]["text"].endswith("information gain and faithfulness were not measured")
    md = (out / "report.md").read_text()
    assert "50.0%" in md
    html = (out / "report.html").read_text()
    banner = html.index('<div class="banner ')
    assert html.index("<body") < banner < html.index("<table")
    assert "Accuracy trap: cannot tell" in html[banner:html.index("</div>", banner)]
    if faithfulness_module() is not None:
        assert r["faithfulness"]["status"] == "ran" and "aoc" in r["models"]["tuned"]["faithfulness"]
        assert (out / "faithfulness_tuned.json").exists()
    # a world file whose facts do not match its config is refused with one sentence
    d = w.to_dict()
    first = next(iter(d["facts"]))
    d["facts"][first]["price"] += 1
    atomic_write_json(lab / "data" / "world.json", d)
    assert main(argv) == 2


def test_adapter_audit_shares_weights(tmp_path, gsm_models):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(gsm_models / "base")
    peft_model = get_peft_model(m, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    out = tmp_path / "audit"
    assert main(["audit", "--base", str(gsm_models / "base"), "--adapter", str(tmp_path / "adapter"), "--data", GSM,
                 "--limit", "4", "--out", str(out), "--no-faithfulness", *FAST]) == 0
    r = json.loads((out / "results.json").read_text())
    b, t = r["models"]["base"], r["models"]["tuned"]
    assert b["adapter_disabled"] and t["adapter"] and b["identity"] != t["identity"]
    recs = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len({x["key"] for x in recs}) == 8


def test_bad_model_path_and_mismatched_tokenizer(tmp_path, gsm_models, capsys):
    out = str(tmp_path / "o")
    assert main(["audit", "--base", str(tmp_path / "nope"), "--tuned", str(gsm_models / "tuned"), "--data", GSM,
                 "--limit", "2", "--out", out, *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("sftlens audit: error:") and "does not exist" in err
    # a tokenizer with more tokens than the model's embedding
    bad = tmp_path / "bad"
    big = build_tokenizer([prompt_text(e) + completion_text(e) for e in load_gsm8k(GSM, limit=60)])
    small = build_tokenizer(["a b c"])
    make_model(small, "nano").save_pretrained(bad)
    big.save_pretrained(bad)
    capsys.readouterr()
    assert main(["audit", "--base", str(bad), "--tuned", str(gsm_models / "tuned"), "--data", GSM, "--limit", "2",
                 "--out", out, *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("sftlens audit: error:") and "do not belong together" in err
    # missing tuned model / data file
    assert main(["audit", "--base", str(gsm_models / "base"), "--data", GSM, "--out", out]) == 2
    assert "--tuned" in capsys.readouterr().err
    assert main(["audit", "--base", str(gsm_models / "base"), "--tuned", str(gsm_models / "tuned"),
                 "--data", str(tmp_path / "none.jsonl"), "--out", out]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "results.json" in capsys.readouterr().err


def test_trap_verdict_and_comparison_from_rows():
    base = [{"id": str(i), "correct": float(i % 4 == 0), "flexible_correct": float(i % 4 == 0), "ig_mean": 0.3 + 0.01 * (i % 3)}
            for i in range(40)]
    tuned = [{"id": str(i), "correct": float(i % 4 != 3), "flexible_correct": 1.0, "ig_mean": 0.1 - 0.01 * (i % 5)}
             for i in range(40)]
    c = compare_models(base, tuned, metrics={k: METRICS[k] for k in ("correct", "flexible_correct", "ig_mean")})
    acc = sum(t["correct"] for t in tuned) / 40 - sum(b["correct"] for b in base) / 40
    assert math.isclose(c["diff"]["correct"]["mean"], acc)
    assert c["mcnemar"]["strict"]["b01"] == 20 and c["mcnemar"]["strict"]["b10"] == 0
    v = comparison_verdict(base, tuned)
    assert v["status"] == "yes" and v["text"].startswith("Accuracy trap: YES") and "nats/step" in v["text"]
    assert v["tests"]["accuracy"]["verdict"] == "reproduced"
    # information gain up: no trap
    risen = [dict(t, ig_mean=t["ig_mean"] + 0.5) for t in tuned]
    assert comparison_verdict(base, risen)["status"] == "no"
    # accuracy up by less than the 5-point SESOI, with a tight interval: no trap either
    barely = [dict(b, correct=1.0 if i == 0 else b["correct"]) for i, b in enumerate(base)]
    assert comparison_verdict(base, barely)["status"] in ("no", "n/a")
    assert trap_verdict([1.0] * 40)["status"] == "n/a"  # no reasoning metric measured


def test_audit_on_two_processes_equals_one(tmp_path, world_splits, tiny_saved, trained_nano):
    """``accelerate launch`` with two CPU processes (gloo): each rank generates and scores half the
    examples into its own cache file, rank 0 merges and reports; the results equal a one-process run."""
    import os
    import subprocess
    import sys

    launcher = Path(sys.executable).parent / "accelerate"
    if not launcher.exists():
        pytest.skip("accelerate is not installed: the multi-process audit is not tested")
    w, _ = world_splits
    data = tmp_path / "lab" / "data"
    atomic_write_json(data / "world.json", w.to_dict())
    write_jsonl(data / "test.jsonl", trained_nano.seen[:6] + trained_nano.unseen[:6])
    args = ["audit", "--base", str(tiny_saved), "--tuned", str(trained_nano.path), "--data", str(data / "test.jsonl"),
            "--max-new-tokens", "72", "--batch-size", "4", "--no-progress", "--no-faithfulness"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                        "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "sftlens", *args,
                        "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    one, two = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("one", "two"))
    assert two["run"]["ranks"] == 2 and two["run"]["generated_new"] == one["run"]["generated_new"] == 24
    for key in ("models", "comparisons", "verdict"):
        assert one[key] == two[key], key
    assert one["models"]["tuned"]["metrics"]["correct"]["mean"] == 0.5  # a model that answers: the check bites
    assert sorted(p.name for p in (tmp_path / "two").iterdir() if "rank" in p.name) == []  # rank files merged
