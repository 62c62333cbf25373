"""Shared fixtures: a small shop world and a tiny model saved and reloaded the real way."""

from __future__ import annotations


import os

# Tests run on the CPU in fp32 even on a GPU host: exact-equality checks (determinism, batched vs
# single) are about our code, not about a device's kernels. GPU paths are checked by scripts/gpu_check.sh.
os.environ["CUDA_VISIBLE_DEVICES"] = ""

import pytest  # noqa: E402
import torch  # noqa: E402

# one thread: tiny models gain nothing from more, and oversubscribed cores slow them badly
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def world_splits():
    from sftlens.tasks.shop import ShopConfig, ShopWorld, make_splits

    w = ShopWorld(ShopConfig(seed=0, n_items=12))
    return w, make_splits(w, 100, 200, 40, 20, seed=0)


@pytest.fixture(scope="session")
def tiny_saved(tmp_path_factory, world_splits):
    """A nano Llama + word tokenizer for the shop world, saved with save_pretrained."""
    from sftlens.core.format import completion_text, prompt_text
    from sftlens.models.tiny import build_tokenizer, make_model

    w, sp = world_splits
    exs = sp.train + sp.test + sp.facts + [e for v in sp.variants.values() for e in v]
    tok = build_tokenizer([prompt_text(e) + completion_text(e) for e in exs] + w.fact_corpus())
    model = make_model(tok, "nano", seed=0)
    d = tmp_path_factory.mktemp("nano")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def trained_nano(tmp_path_factory, tiny_saved, world_splits):
    """``tiny_saved``'s model trained ~5 s until it has memorised 16 training problems (chains and answers).

    The fixture behind every test of generation, profiling, the audit and the battery: its outputs
    differ from prompt to prompt and it answers the memorised problems right and the unseen ones wrong,
    so a check on it can fail (an untrained model writes the same newlines for every prompt, and a
    version of ``generate`` that ignores the attention mask would still pass on it). Returns
    ``SimpleNamespace(path, seen, unseen)``: the saved folder, the 16 memorised examples, 16 unseen ones.
    """
    from types import SimpleNamespace

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sftlens.core.format import completion_text, prompt_text
    from sftlens.train.pretrain import PretrainConfig, pretrain

    _, sp = world_splits
    seen, unseen = sp.train[:16], sp.test[:16]
    tok = AutoTokenizer.from_pretrained(tiny_saved)
    model = AutoModelForCausalLM.from_pretrained(tiny_saved)
    pretrain(model, tok, [prompt_text(e) + completion_text(e) for e in seen],
             PretrainConfig(steps=200, batch_size=16, lr=1e-2, warmup=10, seed=0))
    d = tmp_path_factory.mktemp("nano_trained")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return SimpleNamespace(path=d, seen=seen, unseen=unseen)


@pytest.fixture(scope="session")
def micro_run(tmp_path_factory):
    """One finished micro lab run (seed 0), shared by the lab and verdict tests: ``(folder, results)``."""
    from sftlens.lab.runner import run_lab

    out = tmp_path_factory.mktemp("lab") / "micro"
    return out, run_lab(out, preset="micro", seed=0)


@pytest.fixture(scope="session")
def micro_results(micro_run):
    return micro_run[1]
