"""Shared fixtures: a small shop world and a tiny model saved and reloaded the real way."""

from __future__ import annotations


import os
import subprocess
import sys
import threading

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


class BackgroundLab:
    """Micro lab runs in a second process, one after another, on the core the suite leaves idle.

    The suite runs on one thread; two of its tests need whole extra micro runs (the same seed again in
    a fresh process, and seed 1 for pooling), about 100 s each. They start with the session, so by the
    time those tests ask for them (:meth:`wait`) they are done or nearly. Each run is
    ``run_lab(folder, preset="micro", seed=s)`` in a new interpreter on one thread, as the suite runs.
    """

    CODE = ("import sys, torch; torch.set_num_threads(1); from sftlens.lab.runner import run_lab; "
            "run_lab(sys.argv[1], preset='micro', seed=int(sys.argv[2]))")

    def __init__(self, root, runs: dict[str, int]):
        self.folders = {name: root / name for name in runs}
        self.done = {name: threading.Event() for name in runs}
        self.errors: dict[str, str] = {}
        self.procs: list[subprocess.Popen] = []
        self.stopped = False
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

        def work():
            for name, seed in runs.items():
                if not self.stopped:
                    p = subprocess.Popen([sys.executable, "-c", self.CODE, str(self.folders[name]), str(seed)],
                                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                    self.procs.append(p)
                    err = p.communicate()[1]
                    if p.returncode != 0:
                        self.errors[name] = err[-3000:]
                self.done[name].set()

        self.thread = threading.Thread(target=work, daemon=True)
        self.thread.start()

    def wait(self, name: str):
        """The folder of the finished run ``name`` (fails the test with the run's stderr if it failed)."""
        self.done[name].wait()
        if name in self.errors:
            pytest.fail(f"background micro run '{name}' failed:\n{self.errors[name]}")
        return self.folders[name]

    def stop(self):
        self.stopped = True
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        self.thread.join()


@pytest.fixture(scope="session", autouse=True)
def _background_lab(request, tmp_path_factory):
    """Starts :class:`BackgroundLab` when a collected test asks for ``background_lab``; else nothing."""
    if not any("background_lab" in getattr(item, "fixturenames", ()) for item in request.session.items):
        yield None
        return
    bg = BackgroundLab(tmp_path_factory.mktemp("lab_bg"), {"again": 0, "seed_1": 1})
    yield bg
    bg.stop()


@pytest.fixture(scope="session")
def background_lab(_background_lab):
    """The :class:`BackgroundLab` of this session: ``.wait("again")`` (seed 0 rerun), ``.wait("seed_1")``."""
    return _background_lab


@pytest.fixture(scope="session")
def micro_results(micro_run):
    return micro_run[1]
