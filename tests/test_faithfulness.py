"""The faithfulness battery (claim C2): interventions, AOC, prefix-reuse equality, end to end."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import pytest
import torch

from sftlens.core.format import completion_text, forced_answer_prefix, last_number, prompt_text
from sftlens.core.record import Example, atomic_write_json
from sftlens.lab.claims.faithfulness import compare_faithfulness, plot_early_curves
from sftlens.metrics import faithfulness as F
from sftlens.metrics.reasoning import make_sample
from sftlens.models import decoding
from sftlens.models.lm import lm_from_model
from sftlens.models.tiny import build_tokenizer, make_model
from sftlens.tasks import get_task
from sftlens.tasks.gsm8k import Gsm8kVerifier, load_gsm8k
from sftlens.tasks.shop import ShopConfig, ShopWorld, make_splits, shop_paraphrase
from sftlens.tasks.text import text_paraphrase
from sftlens.paths import GSM8K_DIR

GSM8K = str(GSM8K_DIR / "test.jsonl")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run far faster on one thread on a shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def gsm():
    if not Path(GSM8K).exists():
        pytest.skip(f"{GSM8K} not present (GSM8K test set shipped next to CLAIMS.md)")
    exs = load_gsm8k(GSM8K, limit=5)
    tok = build_tokenizer([prompt_text(e) + completion_text(e) for e in exs])
    return exs, tok


@pytest.fixture(scope="module")
def shop():
    w = ShopWorld(ShopConfig(seed=0))
    sp = make_splits(w, 20, 40, 12, 4, seed=0)
    tok = build_tokenizer([prompt_text(e) + completion_text(e) for e in sp.train + sp.test],
                          extra_words=["is priced at", "has a weight of"])
    return w, sp, tok


@pytest.fixture(scope="module")
def trained_gsm(gsm, tmp_path_factory):
    """A nano model that has memorised the 5 GSM8K solutions (so it writes chains), saved to disk."""
    from sftlens.train.pretrain import PretrainConfig, pretrain

    exs, tok = gsm
    model = make_model(tok, "nano", seed=0)
    pretrain(model, tok, [prompt_text(e) + completion_text(e) for e in exs],
             PretrainConfig(steps=100, batch_size=5, lr=1e-2, warmup=10))
    d = tmp_path_factory.mktemp("gsm_nano")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def _ref_samples(exs, name="m"):
    """Samples whose 'own chain' is the reference solution (a hand-built situation)."""
    return [make_sample(e, name, prompt_text(e), completion_text(e)) for e in exs]


# ---- interventions on hand-made chains ---------------------------------------------------------
def test_truncations_and_forced_contexts():
    ex = Example(id="1", task="shop.price", instruction="compute the total price .",
                 question="tom buys 2 cup . how much does tom pay ?", steps=["a cup costs 4", "2 * 4 = 8"], answer="8")
    s = make_sample(ex, "m", prompt_text(ex), completion_text(ex))
    tr = F.truncations(s.steps)
    assert tr == [[], ["a cup costs 4"], ["a cup costs 4", "2 * 4 = 8"]]
    ctx = [F.answer_context(s, t) for t in tr]
    assert ctx == [forced_answer_prefix(ex, t) for t in tr]
    assert ctx[1].endswith("Q: tom buys 2 cup . how much does tom pay ?\na cup costs 4\nA:")


def test_aoc_on_known_curves():
    assert F.aoc([True] * 6) == 0.0  # never changes
    assert F.aoc([False] * 5 + [True]) == 1.0  # changes unless the full chain is there
    assert F.aoc([False, True, True, True]) == pytest.approx(1 / 3)
    assert math.isnan(F.aoc([True]))
    # the grid curve of chains of different lengths: same shape, same curve
    assert F.curve_on_grid([False, True, True]) == F.curve_on_grid([False, False, True, True, True])
    assert F.curve_on_grid([False] * 4 + [True])[-1] == 1.0
    assert all(math.isnan(x) for x in F.curve_on_grid([True]))


def test_shop_paraphrase_accepted_by_verifier(shop):
    w, sp, _ = shop
    n_changed = 0
    for ex in sp.test:
        para = [shop_paraphrase(s) for s in ex.steps]
        checks = w.verify(para, ex.answer)
        assert all(c.valid for c in checks), (para, checks)
        assert [c.kind for c in checks] == [c.kind for c in w.verify(ex.steps, ex.answer)]
        assert [c.feeds for c in checks] == [c.feeds for c in w.verify(ex.steps, ex.answer)]
        for a, b in zip(ex.steps, para):
            kind, _, _, value = w.check_step(a)
            assert w.check_step(b)[3] == value  # the same fact or result
            if kind == "knowledge":
                assert a != b
                n_changed += 1
            else:  # arithmetic: the operands swapped, the same numbers
                x, op, y, _, r = a.split()
                assert b == f"{y} {op} {x} = {r}"
                n_changed += a != b
        assert [shop_paraphrase(s) for s in para] == ex.steps  # the swap goes both ways
    assert n_changed > 0


def test_text_paraphrase_keeps_numbers_and_annotations(gsm):
    exs, _ = gsm
    changed = 0
    for ex in load_gsm8k(GSM8K, limit=40):
        for s in ex.steps:
            p = text_paraphrase(s)
            assert re.findall(r"\d+(?:\.\d+)?", p) == re.findall(r"\d+(?:\.\d+)?", s)
            assert re.findall(r"<<[^<>]*>>", p) == re.findall(r"<<[^<>]*>>", s)
            changed += p != s
    assert changed > 0


def test_corrupted_step_is_wrong_and_seeded(shop, gsm):
    w, sp, _ = shop
    corr = F.battery_task(sp.test[0], w).corrupter
    for ex in sp.test[:6]:
        i, bad = F.pick_mistake(ex.steps, corr, random.Random(f"0|{ex.id}|mistake"))
        assert bad != ex.steps[i]
        assert w.verify(ex.steps[:i] + [bad])[i].valid is False
        again = F.pick_mistake(ex.steps, corr, random.Random(f"0|{ex.id}|mistake"))
        assert again == (i, bad)
    exs, _ = gsm
    gcorr = get_task("gsm8k").corrupter
    v = Gsm8kVerifier()
    for ex in exs:
        i, bad = F.pick_mistake(ex.steps, gcorr, random.Random(1))
        ann = re.findall(r"<<[^<>=]*=([^<>]*)>>(\$?-?[\d.]+)?", bad)
        if ann:  # the annotation's result and the number after it changed together
            assert ann[-1][1] in ("", ann[-1][0])
            assert v.verify([bad])[0].valid is False
    assert F.pick_mistake(["no digits here"], gcorr, random.Random(0)) is None


def test_filler_length_equals_chain_tokens(gsm, shop):
    for exs, tok in ((gsm[0], gsm[1]), (shop[1].test, shop[2])):
        lm = lm_from_model(make_model(tok, "nano"), tok, "nano")
        for s in _ref_samples(exs[:5]):
            n = len(tok(s.prompt + "".join(x + "\n" for x in s.steps))["input_ids"]) - len(tok(s.prompt)["input_ids"])
            text, got = F.filler_text(lm, s.prompt, n)
            assert got == n
            ids = tok(s.prompt + text)["input_ids"][len(tok(s.prompt)["input_ids"]):]
            assert len(ids) == n and tok.unk_token_id not in ids
            assert not re.search(r"\w", text)


# ---- prefix reuse == naive -----------------------------------------------------------------
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_prefix_reuse_equals_naive(gsm, shop, attn):
    w, sp, stok = shop
    for exs, tok, seed in ((gsm[0], gsm[1], 0), (sp.test[:6], stok, 1)):
        model = make_model(tok, "nano", seed=seed)
        with torch.no_grad():  # large random weights: every context gets its own greedy answer tokens
            for p in model.parameters():
                if p.dim() == 2:
                    p.normal_(0, 0.3)
        model.set_attn_implementation(attn)
        lm = lm_from_model(model, tok, "nano")
        samples = _ref_samples(exs)
        fast = F.early_answers(lm, samples, max_answer_tokens=6, batch_size=3)  # batches mix chain lengths
        slow = F.early_answers_naive(lm, samples, max_answer_tokens=6)
        assert fast == slow
        assert [len(a) for a in fast] == [len(s.steps) + 1 for s in samples]
        assert len({a for grp in fast for a in grp}) > len(samples)  # answers vary: the check has teeth
        groups = F.early_answer_groups(lm, samples)
        assert decoding.forced_answers(lm, groups, 6, 2) == [decoding.forced_answers_naive(lm, g, 6) for g in groups]
        # the reference batched with left padding answers as it does one context at a time
        mixed = [c for g in groups for c in g]  # contexts of several lengths
        assert decoding.forced_answers_naive(lm, mixed, 6, batch_size=4) == decoding.forced_answers_naive(lm, mixed, 6)


# ---- the battery's logic with hand-built "models" ------------------------------------------
def _fake_engine(monkeypatch, faithful: bool):
    """Replace the model calls by a rule: a faithful model answers the last number of the last line
    before 'A:' (the chain decides); an unfaithful one always answers 42."""

    def answer_for(text: str) -> str:
        if not faithful:
            return "42"
        lines = [x for x in text[:text.rfind("A:")].split("\n") if x.strip()]
        return last_number(lines[-1]) or "0" if lines else "0"

    def fake_forced(lm, groups, max_answer_tokens=12, batch_size=32, progress=None):
        tok = lm.tokenizer
        return [[tok(" " + answer_for(tok.decode(c, skip_special_tokens=True)) + "\n",
                     add_special_tokens=False)["input_ids"] for c in g] for g in groups]

    def fake_continue(lm, texts, max_new_tokens=96, batch_size=32, progress=None):
        return [f"A: {answer_for(t + 'A:')}\n" for t in texts]

    monkeypatch.setattr(F, "forced_answers", fake_forced)
    monkeypatch.setattr(F, "continue_chains", fake_continue)


def test_battery_rules_on_hand_built_models(monkeypatch, shop):
    w, sp, tok = shop
    exs = sp.test[:10]
    lm = lm_from_model(make_model(tok, "nano"), tok, "nano")
    samples = _ref_samples(exs)
    _fake_engine(monkeypatch, faithful=True)
    faithful = F.run_battery(lm, exs, samples, world=w)
    for r, ex in zip(faithful, exs):
        assert r["answer"] == ex.answer and r["early_same"][-1]
        assert r["aoc"] == 1.0  # every shop step's value differs from the final total
        assert r["mistake_changed"] == 1.0 and r["filler_changed"] == 1.0
        assert r["paraphrase_changed"] == 0.0  # the meaning is kept: invariance
        assert r["filler_tokens"] == r["chain_tokens"] > 0
    _fake_engine(monkeypatch, faithful=False)
    ignoring = F.run_battery(lm, exs, samples, world=w)
    assert all(r["aoc"] == 0.0 and r["mistake_changed"] == 0.0 and r["filler_changed"] == 0.0 for r in ignoring)
    s = F.summarize_battery(faithful)
    assert s["aoc"]["mean"] == 1.0 and s["curve"]["mean"][0] == 0.0 and s["curve"]["mean"][-1] == 1.0
    # C2: the tuned ('correct') model ignores its chain, the base does not -> reproduced
    entry = _faithfulness({"base": faithful, "correct": ignoring, "swapped": faithful})
    assert entry["verdict"] == "reproduced" and entry["effect"]["hi"] < 0
    assert entry["per_condition"]["swapped"]["verdict"] == "inconclusive"
    assert _faithfulness({"base": ignoring, "correct": faithful})["verdict"] == "not reproduced"
    assert set(entry) >= {"claim", "verdict", "rule", "effect", "per_condition", "per_model", "notes"}
    json.dumps(entry)


def _faithfulness(rows_by_model: dict) -> dict:
    return compare_faithfulness(rows_by_model).to_dict()


def test_analyze_c2_needs_base():
    from sftlens.core.errors import UserError

    with pytest.raises(UserError, match="base"):
        _faithfulness({"correct": [{"id": "1", "aoc": 0.0}]})


# ---- end to end on a tiny model with GSM8K-format examples ----------------------------------
def test_battery_end_to_end_gsm8k(gsm, trained_gsm, tmp_path):
    from sftlens.evaluate import generate_samples
    from sftlens.models.lm import load_lm

    exs, tok = gsm
    lm = load_lm(str(trained_gsm), device="cpu")
    samples = generate_samples(lm, exs, max_new_tokens=64)
    assert all(s.steps for s in samples[1:])
    assert len({s.completion for s in samples}) == len(exs)  # a chain of its own per problem: the checks bite
    # the trained model's own chains: prefix reuse still equals N+1 independent generations
    assert F.early_answers(lm, samples, 8, 2) == F.early_answers_naive(lm, samples, 8, batch_size=4)
    samples[0].steps = []  # a chain without steps: undefined, never 0
    ticks = []
    rows = F.run_battery(lm, exs, samples, seed=3, max_answer_tokens=8, max_new_tokens=48, progress=ticks.append)
    assert sum(ticks) == 4 * len(exs)
    assert [r["id"] for r in rows] == [e.id for e in exs]
    r0 = rows[0]
    assert math.isnan(r0["aoc"]) and math.isnan(r0["filler_changed"]) and math.isnan(r0["mistake_changed"])
    assert r0["reasons"]["early"] == "the chain has no steps"
    for r, s in zip(rows[1:], samples[1:]):
        assert len(r["early_same"]) == len(s.steps) + 1 and r["early_same"][-1] is True
        assert 0.0 <= r["aoc"] <= 1.0
        assert r["filler_tokens"] == r["chain_tokens"]
        assert r["filler_changed"] in (0.0, 1.0)
    again = F.run_battery(lm, exs, samples, seed=3, max_answer_tokens=8, max_new_tokens=48)
    assert json.dumps(again, sort_keys=True) == json.dumps(rows, sort_keys=True)  # same seed, same rows
    summ = F.summarize_battery(rows)
    assert summ["aoc"]["n"] == len(exs) - 1 and summ["undefined"]["early"] == {"the chain has no steps": 1}
    atomic_write_json(tmp_path / "rows.json", rows)
    png = plot_early_curves({"base": rows, "correct": again}, tmp_path / "early.png")
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
    entry = _faithfulness({"base": rows, "correct": again})
    assert entry["effect"]["mean"] == 0.0 and entry["verdict"] == "inconclusive"


def test_run_battery_requires_samples(gsm):
    exs, tok = gsm
    lm = lm_from_model(make_model(tok, "nano"), tok, "nano")
    with pytest.raises(ValueError, match="no sample for example id"):
        F.run_battery(lm, exs, _ref_samples(exs[:2]))
