"""Seeded sampling in ``LM.generate``: the same seed gives the same completions, another seed others.

An untrained nano model answers every prompt with the same newlines under greedy decoding, so the
model here is the shared ``trained_nano`` (conftest), and the test shows that its greedy outputs differ
across prompts before relying on it.
"""

import pytest
import torch

from sftlens.core.format import prompt_text
from sftlens.models.lm import load_lm


@pytest.fixture(scope="module")
def trained_lm(trained_nano):
    return load_lm(str(trained_nano.path), device="cpu")


def test_seeded_sampling_is_reproducible_and_differs_across_seeds(trained_lm, trained_nano):
    prompts = [prompt_text(e) for e in trained_nano.seen[:3] + trained_nano.unseen[:3]]
    gen = {"max_new_tokens": 16, "stop_after_answer": False}
    greedy = trained_lm.generate(prompts, **gen)
    assert len(set(greedy)) > 1, "greedy outputs are the same for every prompt: the model is too weak to test with"
    assert trained_lm.generate(prompts, **gen) == greedy

    torch.manual_seed(123)  # the global RNG's state must not matter, only ``seed``
    a = trained_lm.generate(prompts, temperature=1.0, seed=7, **gen)
    torch.manual_seed(456)
    b = trained_lm.generate(prompts, temperature=1.0, seed=7, **gen)
    c = trained_lm.generate(prompts, temperature=1.0, seed=8, **gen)
    assert a == b
    assert a != c and sum(x != y for x, y in zip(a, c)) >= 2
    assert a != greedy  # temperature > 0 really samples
    # across several batches each batch draws its own seed from ``seed``: still reproducible
    assert (trained_lm.generate(prompts, temperature=1.0, seed=7, batch_size=2, **gen)
            == trained_lm.generate(prompts, temperature=1.0, seed=7, batch_size=2, **gen))
