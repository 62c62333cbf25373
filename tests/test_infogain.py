import math

from transformers import AutoModelForCausalLM, AutoTokenizer

from sftlens.metrics.infogain import ChainScore, prefix_scores, prefix_scores_naive


def test_shared_prefix_equals_one_pass_per_prefix(tiny_saved, world_splits):
    tok = AutoTokenizer.from_pretrained(tiny_saved)
    model = AutoModelForCausalLM.from_pretrained(tiny_saved)
    _, sp = world_splits
    items = [(e, e.steps, e.answer) for e in sp.test[:12]]
    items.append((sp.test[0], [], sp.test[0].answer))               # no steps
    items.append((sp.test[1], sp.test[2].steps, sp.test[1].answer))  # someone else's chain
    fast = prefix_scores(model, tok, items, batch_size=5)
    slow = prefix_scores_naive(model, tok, items)
    for f, s in zip(fast, slow):
        assert len(f.logp) == len(s.logp)
        assert max(abs(a - b) for a, b in zip(f.logp, s.logp)) < 1e-5
        assert max(abs(a - b) / b for a, b in zip(f.ppl, s.ppl)) < 1e-5


def test_chain_score_quantities():
    s = ChainScore(logp=[-3.0, -2.0, -2.5, -0.5], ppl=[4.0, 3.0, 2.0, 1.0])
    assert s.gains == [1.0, -0.5, 2.0]
    assert s.mean_gain == 2.5 / 3 and s.min_gain == -0.5 and s.total == 2.5
    assert s.ppl_infogain == 3.0 / 4
    assert math.isnan(ChainScore(logp=[-1.0]).mean_gain)


def _metaspace_bpe(texts):
    """A SentencePiece-style BPE tokenizer trained here with `tokenizers`: a '▁' starts every text, so
    " 40" alone is '▁' + '▁40' while after "A:" it is '▁40'."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.normalizer = normalizers.Prepend("▁")  # as Llama's tokenizer.json: every text starts with '▁'
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    tk.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tk.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>", "<pad>"]))
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")


def test_answers_are_tokenized_in_context_with_a_sentencepiece_style_bpe(world_splits):
    from sftlens.core.format import ANSWER_MARK, completion_text, prompt_text, steps_text
    from sftlens.metrics.infogain import _layouts, answer_in_context
    from sftlens.models.tiny import make_model

    _, sp = world_splits
    exs = sp.test[:8]
    tok = _metaspace_bpe([prompt_text(e) + completion_text(e) for e in sp.train + sp.test])
    e = exs[0]
    ctx = prompt_text(e) + steps_text(e.steps) + ANSWER_MARK
    alone = tok(" " + e.answer, add_special_tokens=False)["input_ids"]
    in_ctx = answer_in_context(tok, ctx, e.answer)
    # the case this guards: alone, the leading space becomes an extra '▁' piece the model never sees there
    assert alone != in_ctx and tok(ctx + " " + e.answer)["input_ids"][-len(in_ctx):] == in_ctx
    items = [(x, x.steps, x.answer) for x in exs]
    assert all(lay.answer_ids == answer_in_context(tok, prompt_text(x) + steps_text(x.steps) + ANSWER_MARK, x.answer)
               for lay, x in zip(_layouts(tok, items), exs) if lay is not None)
    model = make_model(tok, "nano", seed=0).eval()
    fast, slow = prefix_scores(model, tok, items, batch_size=3), prefix_scores_naive(model, tok, items)
    for f, s in zip(fast, slow):
        assert max(abs(a - b) for a, b in zip(f.logp, s.logp)) < 1e-5
