"""The shop paraphrases of the faithfulness battery are in words the lab's base model knows.

The paraphrasing test asks whether a reworded chain gives the same answer; a rewording the
tokenizer turns into ``<unk>`` measures ``<unk>``, not rewording. The tokenizer and the pretraining
text are built here exactly as :meth:`sftlens.lab.runner.Lab.stage_base` builds them (its data from
the real ``stage_data``), without training.
"""

from __future__ import annotations

import random

import pytest

from sftlens.core.format import ANSWER_MARK, completion_text, prompt_text, steps_text
from sftlens.lab.presets import get_preset
from sftlens.lab.runner import Lab
from sftlens.models.tiny import build_tokenizer
from sftlens.tasks.shop import shop_paraphrase


@pytest.fixture(scope="module")
def micro_lab_text(tmp_path_factory):
    """``(lab, tokenizer, pretraining texts)`` of a micro lab (seed 0), as ``stage_base`` makes them."""
    lab = Lab(out=tmp_path_factory.mktemp("lab") / "micro", preset=get_preset("micro", 0), seed=0)
    lab.check_config()
    lab.stage_data()
    p, w = lab.preset, lab.world()
    # --- the same lines as Lab.stage_base, up to the model ---
    pre = lab.load("pretrain")
    facts = lab.load("facts")
    every = [e for n in ["pretrain", "train", "test", "facts"] + [f"variant_{v}" for v in lab.variant_names()]
             for e in lab.load(n)]
    corpus = [prompt_text(e) + completion_text(e) for e in every] + w.fact_corpus()
    for c in lab.conditions():
        corpus += [prompt_text(e) + completion_text(e) for e in lab.training_set(c)]
    tok = build_tokenizer(corpus, extra_words=w.items)
    texts = (w.fact_corpus() * p.fact_repeats
             + [prompt_text(e) + completion_text(e) for e in facts] * p.probe_repeats
             + [prompt_text(e) + completion_text(e) for e in pre])
    return lab, tok, texts


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def test_paraphrased_chains_have_no_unk_and_only_pretrained_words(micro_lab_text):
    lab, tok, texts = micro_lab_text
    w = lab.world()
    # what the models the battery tests were trained on: the base's pretraining text, then SFT chains
    # (the one-item pretraining problems have no '+' step, nor a bare '9' as in '29': SFT brings them)
    known = {i for t in texts for i in _ids(tok, t)} | {i for e in lab.load("train") for i in _ids(tok, steps_text(e.steps))}
    chains = lab.load("train") + lab.load("test")
    changed = 0
    for e in chains:
        para = [shop_paraphrase(s, random.Random(0)) for s in e.steps]
        # the forced-answer context the battery builds (answer_context) for this chain
        ids = _ids(tok, prompt_text(e) + steps_text(para) + ANSWER_MARK)
        assert tok.unk_token_id not in ids, (e.id, para, tok.convert_ids_to_tokens(ids))
        # every token the rewording brings in was in the training text
        new = set(_ids(tok, steps_text(para))) - set(_ids(tok, steps_text(e.steps)))
        assert new <= known, (e.id, tok.convert_ids_to_tokens(sorted(new - known)))
        # and the verifier reads the same chain: same kinds, validity and feeding
        before, after = w.verify(e.steps, e.answer), w.verify(para, e.answer)
        assert [(c.kind, c.valid, c.feeds) for c in after] == [(c.kind, c.valid, c.feeds) for c in before]
        changed += any(a != b for a, b in zip(e.steps, para))
    assert changed >= 0.9 * len(chains)  # not vacuous: nearly every chain is reworded


def test_both_fact_wordings_are_pretraining_text(micro_lab_text):
    lab, _, texts = micro_lab_text
    w = lab.world()
    for item in w.items:
        for attr in ("price", "weight"):
            for para in (False, True):
                assert w.fact_sentence(item, attr, paraphrase=para) + " ." in texts
