"""Curation (quality filters, k-center diversity), and the C3 / C10 lab pieces."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sftlens.cli import main
from sftlens.data.curate import CurateConfig, curate, k_center, random_subset, tfidf_vectors
from sftlens.data.ops import corrupt_steps, label_noise
from sftlens.core.record import Example, atomic_write_json, read_jsonl, write_jsonl
from sftlens.lab.claims.curation import compare_curation, curation_sets
from sftlens.lab.claims.instructions import compare_instructions, instruction_sets, output_space_baseline
from sftlens.tasks.shop import ShopConfig, ShopWorld, load_world, make_splits
from sftlens.paths import GSM8K_DIR

GSM8K_TRAIN = GSM8K_DIR / "train.jsonl"


@pytest.fixture(scope="module")
def shop():
    w = ShopWorld(ShopConfig(seed=0))
    return w, make_splits(w, 10, 80, 40, 4, seed=0)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 12), st.integers(0, 1000))
def test_k_center_picks_distinct_points_with_shrinking_radius(n, k, seed):
    X = np.random.default_rng(seed).normal(size=(n, 5))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    idx, radii = k_center(X, k, seed=seed)
    assert len(idx) == min(n, k) == len(set(idx))
    assert all(a >= b - 1e-9 for a, b in zip(radii[1:], radii[2:]))  # farthest-first: radii never grow
    if len(idx) > 1:  # each pick was the farthest point from the earlier picks
        j = idx[1]
        d = 1 - X @ X[idx[0]]
        assert math.isclose(d[j], d.max(), abs_tol=1e-9)


def test_sparse_and_dense_k_center_agree():
    texts = [f"tom buys {i % 7} lamp and {i % 5} cup" if i % 3 else f"ann carries {i} rope" for i in range(60)]
    X = tfidf_vectors(texts)
    assert k_center(X, 12, seed=4)[0] == k_center(X.toarray(), 12, seed=4)[0]


def test_curate_drops_corrupted_and_noisy_shop_examples(shop, tmp_path):
    w, sp = shop
    bad_steps = corrupt_steps(sp.train[:10], seed=0, rate=0.5, world=w)
    noisy = [e for e in label_noise(sp.train[10:20], seed=0, p=1.0)]
    for i, e in enumerate(bad_steps + noisy):
        e.id = f"bad{i}"
    dup = Example(id="dup", task=sp.train[30].task, question=sp.train[30].question.upper() + " ",
                  steps=list(sp.train[30].steps), answer=sp.train[30].answer, instruction=sp.train[30].instruction)
    pool = sp.train[20:] + bad_steps + noisy + [dup]
    res = curate(pool, CurateConfig(k=25, seed=1), world=w)
    r = res.report
    assert r["dropped"]["invalid_steps"] == 10 and r["dropped"]["answer_mismatch"] == 10 and r["dropped"]["duplicate"] == 1
    assert r["kept"] == 25 and sum(r["dropped"].values()) + r["not_selected"] + r["kept"] == len(pool)
    assert not any(e.id.startswith("bad") or e.id == "dup" for e in res.kept)
    # without the world the shop steps cannot be checked, and the report says so
    r2 = curate(pool, CurateConfig(k=25, seed=1)).report
    assert r2["dropped"]["invalid_steps"] == 0 and r2["unverified"] == r2["passed_filters"]
    # the world round-trips through the lab's world.json
    atomic_write_json(tmp_path / "world.json", w.to_dict())
    assert load_world(tmp_path / "world.json").facts == w.facts


def test_diverse_selection_covers_more_than_random(shop):
    w, sp = shop
    X = tfidf_vectors([e.question for e in sp.train])
    cur = [int(e.id.removeprefix("train")) for e in curate(sp.train, CurateConfig(k=10, seed=0), world=w).kept]
    rnd = [int(e.id.removeprefix("train")) for e in random_subset(sp.train, 10, seed=0)]

    def radius(sel):
        return float((1 - (X @ X[sel].T).toarray()).min(axis=1).max())

    assert radius(cur) <= radius(rnd)


@pytest.mark.skipif(not GSM8K_TRAIN.exists(), reason="GSM8K train not present")
def test_curate_gsm8k_train_is_deterministic_and_counts_add_up(tmp_path, capsys):
    out = tmp_path / "cur.jsonl"
    assert main(["data", "curate", "--k", "1000", "--seed", "0", str(GSM8K_TRAIN), str(out)]) == 0
    assert "kept" in capsys.readouterr().out
    report = json.loads((tmp_path / "cur.report.json").read_text())
    assert report["n_input"] == 7473
    assert sum(report["dropped"].values()) + report["not_selected"] + report["kept"] == 7473
    kept = read_jsonl(out)
    assert len(kept) == report["kept"] == 1000 and len({e.id for e in kept}) == 1000
    first = out.read_text()
    out2 = tmp_path / "cur2.jsonl"
    assert main(["data", "curate", "--k", "1000", "--seed", "0", "--quiet", str(GSM8K_TRAIN), str(out2)]) == 0
    assert out2.read_text() == first
    out3 = tmp_path / "cur3.jsonl"
    assert main(["data", "curate", "--k", "1000", "--seed", "1", "--quiet", str(GSM8K_TRAIN), str(out3)]) == 0
    assert out3.read_text() != first


def test_curate_cli_errors(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    write_jsonl(src, [Example(id="1", task="t", question="q", steps=["s"], answer="1")])
    assert main(["data", "curate", "--k", "0", str(src), str(tmp_path / "o.jsonl")]) == 2
    assert "k must be at least 1" in capsys.readouterr().err
    assert main(["data", "curate", "--diversity", "hidden", str(src), str(tmp_path / "o.jsonl")]) == 2
    assert "needs --model" in capsys.readouterr().err
    assert main(["data", "curate", "--world", str(tmp_path / "w.json"), str(src), str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "--world" in err and "no such file" in err
    assert not (tmp_path / "o.jsonl").exists()


def _instructions(*args, **kwargs) -> dict:
    return compare_instructions(*args, **kwargs).to_dict()


def _curation(*args, **kwargs) -> dict:
    return compare_curation(*args, **kwargs).to_dict()


# ---- C3 ------------------------------------------------------------------------------------------
def test_c3_training_sets_and_baseline(shop):
    _, sp = shop
    sets = instruction_sets(sp.train, seed=0)
    assert set(sets) == {"instr_empty", "instr_wrong", "instr_random"}
    for name, rows in sets.items():
        assert [e.id for e in rows] == [e.id for e in sp.train]
        assert all((a.question, a.steps, a.answer) == (b.question, b.steps, b.answer) for a, b in zip(sp.train, rows))
    assert all(len(a.instruction.split()) == len(b.instruction.split()) != 0
               for a, b in zip(sp.train, sets["instr_random"]))
    base = output_space_baseline(sp.train, sp.test, seed=0)
    assert base == output_space_baseline(sp.train, sp.test, seed=0) and len(base) == len(sp.test)
    assert set(base) <= {0.0, 1.0}
    # the baseline's expected accuracy is the overlap of the answer distributions
    many = np.mean([np.mean(output_space_baseline(sp.train, sp.test, seed=s)) for s in range(200)])
    expect = np.mean([sum(t.answer == e.answer for t in sp.train if t.task == e.task)
                      / sum(t.task == e.task for t in sp.train) for e in sp.test])
    assert abs(many - expect) < 0.02


def _rows(correct):
    return [{"id": str(i), "correct": float(c)} for i, c in enumerate(correct)]


def test_analyze_c3_verdicts():
    rng = np.random.default_rng(0)
    ref = (rng.random(600) < 0.6).astype(float)
    flip = lambda share, seed: np.where(np.random.default_rng(seed).random(600) < share, 1 - ref, ref)  # noqa: E731
    base = list((rng.random(600) < 0.1).astype(float))
    same = {"correct": _rows(ref), **{c: _rows(flip(0.01, i)) for i, c in enumerate(["instr_empty", "instr_wrong", "instr_random"])}}
    r = _instructions(same, base, seed=0)
    assert r["verdict"] == "reproduced" and set(r) >= {"claim", "rule", "effect", "per_condition", "per_model", "notes"}
    assert r["per_model"]["correct"]["vs_baseline"]["lo"] > 0
    worse = dict(same, instr_wrong=_rows(np.zeros(600)))
    r = _instructions(worse, base, seed=0)
    assert r["verdict"] == "not reproduced" and "instr_wrong" in r["effect"]["name"] and r["effect"]["hi"] < -0.05
    small = {m: v[:30] for m, v in same.items()}
    small["instr_random"] = _rows(flip(0.3, 9)[:30])
    r = _instructions(small, base[:30], seed=0)
    assert r["verdict"] == "inconclusive" and any("paired test examples" in n for n in r["notes"])
    with pytest.raises(ValueError, match="same test examples"):
        _instructions({"correct": _rows(ref), "instr_empty": _rows(ref[:10])}, base)


# ---- C10 -----------------------------------------------------------------------------------------
def test_curation_sets(shop):
    w, sp = shop
    sets = curation_sets(sp.train, w, k=12, seed=0)
    assert len(sets["curated_k"]) == len(sets["random_k"]) == 12
    assert sets == curation_sets(sp.train, w, k=12, seed=0)
    ids = {e.id for e in sp.train}
    assert {e.id for e in sets["curated_k"]} <= ids and {e.id for e in sets["random_k"]} <= ids


def test_analyze_c10_verdicts():
    rng = np.random.default_rng(1)
    full = (rng.random(800) < 0.7).astype(float)
    flip = lambda arr, share, seed: np.where(np.random.default_rng(seed).random(800) < share, 1 - arr, arr)  # noqa: E731
    ig = list(rng.normal(0.1, 0.05, 800))
    cur = flip(full, 0.01, 2)
    rnd = np.where(np.random.default_rng(3).random(800) < 0.3, 0.0, full)
    rows = lambda acc: [{"id": str(i), "correct": float(a), "ig_mean": g if i % 7 else math.nan}  # noqa: E731
                        for i, (a, g) in enumerate(zip(acc, ig))]
    r = _curation({"curated_k": rows(cur), "random_k": rows(rnd), "bulk": rows(full)})
    assert r["verdict"] == "reproduced"
    assert not math.isnan(r["per_model"]["curated_k"]["ig_mean"]["mean"])
    assert r["per_model"]["curated_k"]["ig_mean"]["n"] == sum(1 for i in range(800) if i % 7)
    r = _curation({"curated_k": rows(cur), "random_k": rows(flip(full, 0.01, 5)), "bulk": rows(full)})
    assert r["verdict"] == "not reproduced"  # random k is as good: curation is not why
    r = _curation({"curated_k": rows(np.zeros(800)), "random_k": rows(rnd), "bulk": rows(full)})
    assert r["verdict"] == "not reproduced" and r["effect"]["hi"] < -0.05
    r = _curation({"curated_k": rows(cur), "bulk": rows(full)})
    assert r["verdict"] == "inconclusive" and "random_k" in r["notes"][0]


def test_hidden_state_diversity_with_a_tiny_model(shop):
    from sftlens.core.format import completion_text, prompt_text
    from sftlens.models.lm import lm_from_model
    from sftlens.models.tiny import build_tokenizer, make_model

    _, sp = shop
    tok = build_tokenizer([prompt_text(e) + completion_text(e) for e in sp.train])
    lm = lm_from_model(make_model(tok, "nano"), tok, "nano")
    a = curate(sp.train[:30], CurateConfig(k=8, seed=2, diversity="hidden"), lm=lm)
    b = curate(sp.train[:30], CurateConfig(k=8, seed=2, diversity="hidden"), lm=lm)
    assert [e.id for e in a.kept] == [e.id for e in b.kept] and len(a.kept) == 8
    radii = sorted((e.meta["ops"][-1]["rank"], e.meta["ops"][-1]["radius"]) for e in a.kept)
    assert radii[0][1] is None and all(x[1] >= y[1] - 1e-6 for x, y in zip(radii[1:], radii[2:]))
    with pytest.raises(ValueError, match="needs a model"):
        curate(sp.train[:30], CurateConfig(k=8, diversity="hidden"))
