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
    """Micro lab runs in other processes, one after another, on the core the suite leaves idle.

    The suite runs on one thread; some tests need whole extra micro runs (the same seed again through
    another executor, seed 1 for pooling), 1-2 minutes each. They start with the session, so by the time
    those tests ask for them (:meth:`wait`) they are done or nearly. Each is ``sftlens lab --preset micro
    --quiet`` with its own options, in a new process; every job runs on one thread, as the suite does.
    """

    def __init__(self, root, runs: dict[str, list[str]]):
        self.folders = {name: root / name for name in runs}
        self.done = {name: threading.Event() for name in runs}
        self.errors: dict[str, str] = {}
        self.procs: list[subprocess.Popen] = []
        self.stopped = False
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        code = "import sys; from sftlens.cli import main; sys.exit(main(sys.argv[1:]))"

        def work():
            for name, options in runs.items():
                if not self.stopped:
                    argv = ["lab", "--preset", "micro", "--quiet", "--out", str(self.folders[name]), *options]
                    p = subprocess.Popen([sys.executable, "-c", code, *argv], env=env,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
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


def ray_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


@pytest.fixture(scope="session", autouse=True)
def _background_lab(request, tmp_path_factory):
    """Starts :class:`BackgroundLab` when a collected test asks for ``background_lab``; else nothing."""
    wanted = {n for item in request.session.items for n in getattr(item, "fixturenames", ())}
    if "background_lab" not in wanted:
        yield None
        return
    # seed 0 again on a local Ray instance (on two worker processes where Ray is not installed), seed 1 on
    # two worker processes: each executor's run is compared with, or pooled with, the in-process micro run
    again = "ray" if ray_installed() else "process"
    runs = {"again": ["--seed", "0", "--executor", again, "--workers", "2"],
            "seed_1": ["--seed", "1", "--executor", "process", "--workers", "2"]}
    bg = BackgroundLab(tmp_path_factory.mktemp("lab_bg"), runs)
    bg.executor = {"again": again, "seed_1": "process"}
    yield bg
    bg.stop()


@pytest.fixture(scope="session")
def background_lab(_background_lab):
    """The :class:`BackgroundLab` of this session: ``.wait("again")`` (seed 0 on Ray, or on two worker
    processes without Ray: ``.executor["again"]`` says which), ``.wait("seed_1")`` (two worker processes)."""
    return _background_lab


@pytest.fixture(scope="session")
def micro_results(micro_run):
    return micro_run[1]
