"""Proxy-tuning (``sftlens.models.proxy``): the logit identities, KV-cached generation (batched, greedy
and sampled), the tokenizer check, gap closed on the paper's numbers, ``sftlens proxy`` and the audit's
``--tuned proxy:...``.

The models: ``tiny_saved`` (untrained nano, seed 0), ``trained_nano`` (it, trained until it answers 16
memorised problems) and ``other`` (an untrained nano from seed 1, same tokenizer). Each identity test
first shows that the two sides it equates differ without proxy-tuning, so no equality is trivial.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from sftlens.cli import main
from sftlens.core.errors import ModelLoadError
from sftlens.core.format import prompt_text
from sftlens.core.record import atomic_write_json, write_jsonl
from sftlens.metrics.gap import gap_closed
from sftlens.metrics.reasoning import make_sample
from sftlens.models.lm import load_lm
from sftlens.models.proxy import check_same_vocab, first_vocab_difference, load_proxy


@pytest.fixture(scope="module")
def paths(tmp_path_factory, tiny_saved, trained_nano):
    """Model folders: ``untrained`` and ``untrained_copy`` (the same weights in two folders, so an
    identity never rests on two names for one object), ``trained``, ``other`` (seed 1)."""
    from transformers import AutoTokenizer

    from sftlens.models.tiny import make_model

    d = tmp_path_factory.mktemp("proxy")
    shutil.copytree(tiny_saved, d / "untrained_copy")
    tok = AutoTokenizer.from_pretrained(tiny_saved)
    other = make_model(tok, "nano", seed=1)
    other.save_pretrained(d / "other"), tok.save_pretrained(d / "other")
    return {"untrained": str(tiny_saved), "untrained_copy": str(d / "untrained_copy"),
            "trained": str(trained_nano.path), "other": str(d / "other")}


@pytest.fixture(scope="module")
def prompts(trained_nano):
    examples = trained_nano.seen[:5] + trained_nano.unseen[:5]
    return examples, [prompt_text(e) for e in examples]


def _batch(lm, prompts):
    """A left-padded batch of prompts of different lengths."""
    enc = lm.tokenizer(prompts, return_tensors="pt", padding=True)
    assert (enc["attention_mask"] == 0).any()  # padding is really there
    return enc


@torch.no_grad()
def test_expert_equal_to_anti_expert_gives_the_base(paths, prompts):
    """expert == anti-expert (two folders, same weights): the proxy's logits are the base's, to 1e-6."""
    examples, texts = prompts
    base = load_lm(paths["trained"])
    expert = load_lm(paths["untrained"])
    proxy = load_proxy(paths["trained"], paths["untrained"], paths["untrained_copy"], alpha=1.0)
    enc = _batch(base, texts)
    base_logits = base.model(**enc).logits
    assert (expert.model(**enc).logits - base_logits).abs().max() > 0.1  # the expert does pull elsewhere
    assert (proxy.model(**enc).logits - base_logits).abs().max() <= 1e-6
    out = proxy.generate(texts, max_new_tokens=72, batch_size=4)
    assert out == base.generate(texts, max_new_tokens=72, batch_size=4)
    assert [make_sample(e, "m", p, o).correct for e, p, o in zip(examples, texts, out)][:5] == [True] * 5


@torch.no_grad()
def test_base_equal_to_anti_expert_with_alpha_1_gives_the_expert(paths, prompts):
    """base == anti-expert, alpha 1: the proxy is the expert, in one forward pass, step by step through
    the KV caches of ``generate``, and in the faithfulness battery's forced answers (4D mask, cache)."""
    from sftlens.models.decoding import (
        encode_contexts,
        forced_answers,
        forced_answers_naive,
    )

    _, texts = prompts
    expert = load_lm(paths["trained"])
    proxy = load_proxy(paths["untrained"], paths["trained"], paths["untrained_copy"], alpha=1.0)
    enc = _batch(expert, texts)
    expert_logits = expert.model(**enc).logits
    assert (proxy.model.base(**enc).logits - expert_logits).abs().max() > 0.1  # base and expert differ
    assert (proxy.model(**enc).logits - expert_logits).abs().max() <= 1e-6

    kw = dict(max_new_tokens=30, do_sample=False, pad_token_id=expert.tokenizer.pad_token_id,
              return_dict_in_generate=True, output_scores=True, output_logits=True)
    mine, theirs = proxy.model.generate(**enc, **kw), expert.model.generate(**enc, **kw)
    assert torch.equal(mine.sequences, theirs.sequences)
    assert len(mine.scores) == 30
    assert max((a - b).abs().max().item() for a, b in zip(mine.scores, theirs.logits)) <= 1e-6
    assert max((a - b).abs().max().item() for a, b in zip(mine.logits, theirs.logits)) > 0.1  # base's own logits

    contexts = encode_contexts(expert, [t + "a" for t in texts[:4]])
    groups = [[c[:n] for n in range(len(c) - 3, len(c) + 1)] for c in contexts]
    flat = [c for g in groups for c in g]
    assert forced_answers(proxy, groups, 6) == forced_answers(expert, groups, 6)
    assert [x for g in forced_answers(proxy, groups, 6) for x in g] == forced_answers_naive(proxy, flat, 6, 4)


def test_batched_left_padded_generation_equals_one_at_a_time(paths, prompts):
    """A real mixture (base from another seed, alpha 0.5): batches of 4 give what single prompts give."""
    examples, texts = prompts
    proxy = load_proxy(paths["other"], paths["trained"], paths["untrained"], alpha=0.5)
    batched = proxy.generate(texts, max_new_tokens=72, batch_size=4)
    assert len(set(batched)) == len(batched)  # every prompt gets its own text: rows cannot be swapped unseen
    assert batched != load_lm(paths["other"]).generate(texts, max_new_tokens=72, batch_size=4)
    assert any(make_sample(e, "m", p, o).correct for e, p, o in zip(examples, texts, batched))
    assert [proxy.generate([t], max_new_tokens=72)[0] for t in texts] == batched


def test_sampling_combines_before_the_temperature(paths, prompts):
    """base == anti-expert, alpha 1, temperature 0.7: sampling draws from softmax(expert / 0.7), the
    expert's own samples with the same seed (dividing the base alone by T would not)."""
    _, texts = prompts
    expert = load_lm(paths["trained"])
    proxy = load_proxy(paths["untrained"], paths["trained"], paths["untrained_copy"], alpha=1.0)
    kw = dict(max_new_tokens=72, batch_size=4, temperature=0.7)
    sampled = proxy.generate(texts, seed=3, **kw)
    assert sampled == expert.generate(texts, seed=3, **kw)
    assert sampled != proxy.generate(texts, max_new_tokens=72, batch_size=4)  # not greedy in disguise
    assert sampled != proxy.generate(texts, seed=4, **kw)
    assert sampled == proxy.generate(texts, seed=3, **kw)


def test_mismatched_tokenizers_are_refused(paths, tmp_path, capsys):
    """An expert with another vocabulary: one sentence naming both models and the first differing id."""
    from transformers import AutoTokenizer

    from sftlens.models.tiny import build_tokenizer, make_model

    tok = build_tokenizer(["a zebra costs 7", "Q: how much"])
    make_model(tok, "nano", seed=0).save_pretrained(tmp_path / "foreign")
    tok.save_pretrained(tmp_path / "foreign")
    ours = AutoTokenizer.from_pretrained(paths["untrained"]).get_vocab()
    token_id, ours_token, theirs_token = first_vocab_difference(ours, tok.get_vocab())
    assert {t: i for t, i in ours.items() if i < token_id} == {t: i for t, i in tok.get_vocab().items() if i < token_id}
    with pytest.raises(ModelLoadError) as err:
        load_proxy(paths["untrained"], str(tmp_path / "foreign"), paths["untrained"])
    assert str(err.value).startswith(f"the tokenizers of the base '{paths['untrained']}' and the expert "
                                     f"'{tmp_path / 'foreign'}' differ: token id {token_id} is {ours_token!r} in the "
                                     f"first and {theirs_token!r} in the second")
    check_same_vocab([("a", tok), ("b", tok)])  # the same vocabulary passes
    out = tmp_path / "preds.jsonl"
    data = tmp_path / "d.jsonl"
    argv = ["proxy", "--base", paths["untrained"], "--expert", paths["trained"], "--anti-expert",
            str(tmp_path / "foreign"), "--data", str(data), "--out", str(out), "--no-progress"]
    data.write_text(json.dumps({"question": "q", "answer": "#### 1"}) + "\n")
    assert main(argv) == 2
    assert "the tokenizers of the base" in capsys.readouterr().err and not out.exists()


# The authors' released numbers (github.com/alisawuffles/proxy-tuning, results/<task>/<model>/metrics.json:
# AlpacaFarm win_rate, GSM exact_match, ToxiGen overall % toxic, TruthfulQA mc acc and open
# "GPT-true-info acc"), the five columns of the paper's Table 1, for Llama2 base, proxy-tuned
# ("dexperts") and directly tuned (chat). The repository has no ToxiGen file for the 70B proxy: its 0.0
# is from a summary of the paper (bnnbreaking.com, 2024-01-21: proxy-tuning "nullified toxicity to 0%");
# any value up to 0.3 still gives 88.0-88.1%. The paper's Table 1 itself could not be read here.
PAPER = {
    "13B": {"base": [2.111801242236025, 6.595905989385899, 70.35714285714286, 38.578680203045684, 49.08200734394125],
            "proxy": [83.35403726708076, 26.383623957543595, 0.14285714285714286, 56.61764705882353,
                      82.00734394124847],
            "tuned": [87.32919254658385, 32.44882486732373, 0.035714285714285714, 61.56670746634026,
                      80.41615667074663]},
    "70B": {"base": [3.7267080745341614, 9.628506444275967, 67.35714285714286, 42.31311706629055,
                     53.85556915544676],
            "proxy": [87.95031055900621, 33.510235026535257, 0.0, 59.19117647058824, 85.06731946144431],
            "tuned": [90.37267080745342, 51.78165276724791, 0.0, 68.25980392156863, 79.5593635250918]},
}
COLUMNS = ["alpacafarm_win", "gsm_acc", "toxigen_toxic", "truthfulqa_mc", "truthfulqa_open"]


@pytest.mark.parametrize("size, reported", [("13B", 0.911), ("70B", 0.881)])
def test_gap_closed_recomputes_the_papers_91_and_88_percent(size, reported):
    """The paper: proxy-tuning closes 91.1% of the gap at 13B and 88.1% at 70B."""
    rows = {role: dict(zip(COLUMNS, values)) for role, values in PAPER[size].items()}
    r = gap_closed(rows["base"], rows["proxy"], rows["tuned"])
    assert round(r["mean"], 3) == reported and r["n"] == 5 and r["undefined"] == []
    assert r["per_metric"]["truthfulqa_open"] > 1  # the proxy beat direct tuning there, and it counts
    rounded = {role: {k: round(v, 1) for k, v in row.items()} for role, row in rows.items()}  # as printed
    assert round(gap_closed(rounded["base"], rounded["proxy"], rounded["tuned"])["mean"], 3) == reported


def test_proxy_command_and_audit_of_a_proxy_model(paths, trained_nano, world_splits, tmp_path, capsys):
    """``sftlens proxy`` writes predictions the predictions audit reads; ``--tuned proxy:...`` audits
    the same generations with every metric (faithfulness battery included)."""
    from sftlens.audit import faithfulness_module

    w, _ = world_splits
    data = tmp_path / "data" / "test.jsonl"
    examples = trained_nano.seen[:4] + trained_nano.unseen[:4]
    write_jsonl(data, examples)
    atomic_write_json(data.parent / "world.json", w.to_dict())
    preds = tmp_path / "preds.jsonl"
    assert main(["proxy", "--base", paths["other"], "--expert", paths["trained"], "--anti-expert",
                 paths["untrained"], "--alpha", "0.5", "--data", str(data), "--out", str(preds), "--with-base",
                 "--max-new-tokens", "72", "--batch-size", "3", "--no-progress"]) == 0
    assert "wrote 16 predictions (base, proxy; alpha 0.5)" in capsys.readouterr().out
    lines = [json.loads(x) for x in preds.read_text().splitlines()]
    assert [x["model"] for x in lines] == ["base"] * 8 + ["proxy"] * 8
    proxy_out = {x["id"]: x["completion"] for x in lines if x["model"] == "proxy"}
    assert main(["audit", "--predictions", str(preds), "--out", str(tmp_path / "scored")]) == 0
    scored = json.loads((tmp_path / "scored" / "results.json").read_text())
    assert set(scored["models"]) == {"base", "proxy"}

    spec = f"proxy:{paths['other']},{paths['trained']},{paths['untrained']},0.5"
    out = tmp_path / "audit"
    assert main(["audit", "--base", paths["other"], "--tuned", spec, "--data", str(data), "--out", str(out),
                 "--max-new-tokens", "72", "--batch-size", "4", "--no-progress"]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["inputs"]["tuned"] == spec
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    tuned = {s["id"]: s["completion"] for s in samples if s["role"] == "tuned"}
    assert tuned == proxy_out  # one decoder behind both commands
    assert r["models"]["tuned"]["metrics"]["correct"]["mean"] > r["models"]["base"]["metrics"]["correct"]["mean"]
    if faithfulness_module() is not None:
        assert (out / "faithfulness_tuned.json").exists()
    # another alpha is another model: nothing is reused from the cache
    assert load_proxy(*spec.removeprefix("proxy:").split(",")[:3], alpha=1.0).identity != \
        load_proxy(*spec.removeprefix("proxy:").split(",")[:3], alpha=0.5).identity
