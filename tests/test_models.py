import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sftlens.core.format import completion_text, prompt_text
from sftlens.models.lm import ModelLoadError, load_lm


def test_tokenizer_roundtrip_and_single_digits(tiny_saved, world_splits):
    tok = AutoTokenizer.from_pretrained(tiny_saved)
    _, sp = world_splits
    for e in sp.test[:10]:
        text = prompt_text(e) + completion_text(e)
        ids = tok(text)["input_ids"]
        assert tok.unk_token_id not in ids
        assert tok.decode(ids, skip_special_tokens=True) == text
    pieces = tok.tokenize("12 + 345 = 357")
    assert all(len(p.strip("▁")) == 1 for p in pieces if p.strip("▁").isdigit() or any(ch.isdigit() for ch in p))


def test_model_save_load_same_logits(tiny_saved, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_saved)
    m = AutoModelForCausalLM.from_pretrained(tiny_saved)
    ids = torch.tensor([tok("Q: tom buys 3")["input_ids"]])
    m.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    m2 = AutoModelForCausalLM.from_pretrained(tmp_path)
    with torch.no_grad():
        assert torch.equal(m(input_ids=ids).logits, m2(input_ids=ids).logits)
    lm = load_lm(str(tmp_path))
    assert lm.identity == load_lm(str(tiny_saved)).identity


def test_load_errors(tmp_path):
    import pytest

    with pytest.raises(ModelLoadError, match="does not exist"):
        load_lm(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="not a saved model"):
        load_lm(str(tmp_path / "empty"))


def test_generate_is_batched_and_deterministic(trained_nano):
    from sftlens.metrics.reasoning import make_sample

    lm = load_lm(str(trained_nano.path))
    exs = trained_nano.seen[:5] + trained_nano.unseen[:5]
    prompts = [prompt_text(e) for e in exs]
    a = lm.generate(prompts, max_new_tokens=72, batch_size=4)
    # teeth: the outputs differ across prompts and the memorised problems are answered right,
    # so a batched decoder that mixed rows up or ignored the padding could not pass the equality below
    assert len(set(a)) == len(a)
    right = [make_sample(e, "m", p, o).correct for e, p, o in zip(exs, prompts, a)]
    assert right[:5] == [True] * 5 and not all(right[5:])
    b = [lm.generate([p], max_new_tokens=72)[0] for p in prompts]
    assert a == b  # left padding does not change greedy outputs
    assert lm.generate(prompts, max_new_tokens=72, batch_size=3) == a
