"""The SFT loss mask on the real collator: the batch TRL trains on, against token counts computed here.

``sft`` trains through ``build_trainer``; this takes one batch from that trainer's own dataloader
and checks every position of every row: -100 on the prompt (BOS, instruction, question) and on the
padding, the token id itself on the completion (steps, ``A: answer``, EOS). The prompt length is
counted independently by tokenizing ``prompt_text(example)``. The same batch with
``completion_only_loss=False`` must differ exactly on the prompt, so the check tells the two apart.
"""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sftlens.core.format import completion_text, prompt_text
from sftlens.train.sft import SFTSettings, build_trainer

N = 8  # one batch holds every example, so every example is checked


def _batch(tiny_saved, examples, tmp_path, **config):
    tok = AutoTokenizer.from_pretrained(tiny_saved)
    model = AutoModelForCausalLM.from_pretrained(tiny_saved)
    trainer = build_trainer(model, tok, examples, SFTSettings(steps=1, batch_size=N), str(tmp_path), **config)
    return tok, next(iter(trainer.get_train_dataloader()))


def _expected(tok, examples):
    """Per example: the full token ids TRL should train on and how many of them are prompt."""
    out = {}
    for ex in examples:
        prompt_ids = tok(prompt_text(ex))["input_ids"]
        ids = tok(prompt_text(ex) + completion_text(ex))["input_ids"] + [tok.eos_token_id]
        assert ids[:len(prompt_ids)] == prompt_ids  # the prompt ends on a token boundary ("\n")
        assert len(ids) > len(prompt_ids) + 1  # a completion with more than the EOS
        out[tuple(ids)] = len(prompt_ids)
    return out


@pytest.mark.parametrize("completion_only", [True, False])
def test_sft_batch_masks_exactly_the_prompt_and_the_padding(tiny_saved, world_splits, tmp_path, completion_only):
    _, sp = world_splits
    examples = sp.train[:N]
    tok, batch = _batch(tiny_saved, examples, tmp_path,
                        **({} if completion_only else {"completion_only_loss": False}))
    expected = _expected(tok, examples)
    ids, labels, attn = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert ids.shape == labels.shape == attn.shape and ids.shape[0] == N
    assert (attn == 0).any(), "examples of one length: the padding check would be vacuous"
    assert tok.pad_token_id != tok.eos_token_id

    seen = set()
    for row in range(N):
        n = int(attn[row].sum())
        assert attn[row, :n].all() and not attn[row, n:].any()  # right padding, one block
        key = tuple(ids[row, :n].tolist())
        assert key in expected, "a training row that is not prompt + completion + EOS of any example"
        seen.add(key)
        p = expected[key]
        assert p > 0
        assert (ids[row, n:] == tok.pad_token_id).all()
        assert (labels[row, n:] == -100).all()  # padding never trains
        assert torch.equal(labels[row, p:n], ids[row, p:n])  # steps, answer and EOS all train
        assert labels[row, n - 1] == tok.eos_token_id
        if completion_only:
            assert (labels[row, :p] == -100).all()
        else:  # the same positions train when the completion-only loss is off
            assert torch.equal(labels[row, :p], ids[row, :p])
    assert seen == set(expected)
    assert (labels != -100).any()
