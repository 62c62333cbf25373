"""Benchmark: information gain for all prefixes of a chain — one shared pass vs one pass per prefix.

Prints both timings and the speedup for chains of 5-8 steps on a Llama of the lab's sizes (CPU), and
checks that the two agree. The goal it is held to: at least 1.5·k times faster for chains of k steps
on a model where compute matters (``--size small`` or larger), printed as ``goal``. Run: ``make bench``
or ``python bench/infogain.py [--size tiny|small|base] [--chains N] [--threads T]``.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from sftlens.core.format import completion_text, prompt_text
from sftlens.metrics.infogain import prefix_scores, prefix_scores_naive
from sftlens.models.tiny import build_tokenizer, make_model
from sftlens.tasks.shop import ShopConfig, ShopWorld


def main(n_chains: int = 24, size: str = "tiny", threads: int = 2) -> None:
    torch.set_num_threads(threads)
    w = ShopWorld(ShopConfig(seed=0))
    # 2-3 items per problem -> 5 or 8 steps (fact, product per item; a sum per extra item)
    exs = w.problems(n_chains, seed=1, items_range=(2, 3))
    tok = build_tokenizer([prompt_text(e) + completion_text(e) for e in exs])
    model = make_model(tok, size, seed=0).eval()
    items = [(e, e.steps, e.answer) for e in exs]
    prefix_scores(model, tok, items[:4])  # warm-up
    prefix_scores_naive(model, tok, items[:2])
    t = time.perf_counter()
    fast = prefix_scores(model, tok, items, batch_size=16)
    t_fast = time.perf_counter() - t
    t = time.perf_counter()
    slow = prefix_scores_naive(model, tok, items)
    t_slow = time.perf_counter() - t
    err = max(abs(a - b) for f, s in zip(fast, slow) for a, b in zip(f.logp, s.logp))
    steps = sorted({len(e.steps) for e in exs})
    k = sum(len(e.steps) for e in exs) / len(exs)
    print(f"information gain ({size} model, {threads} thread(s)): per-prefix {t_slow:.2f} s, shared prefix "
          f"{t_fast:.2f} s, speedup {t_slow / t_fast:.1f}x ({n_chains} chains, {steps[0]}-{steps[-1]} steps, "
          f"mean k {k:.1f}: goal 1.5k = {1.5 * k:.1f}x; max |diff| {err:.1e})")
    print(json.dumps({"bench": "infogain", "ratio": round(t_slow / t_fast, 3), "per_prefix_s": round(t_slow, 4),
                      "shared_s": round(t_fast, 4), "chains": n_chains, "steps": [steps[0], steps[-1]],
                      "size": size, "threads": threads, "goal": round(1.5 * k, 2), "max_abs_diff": err}))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chains", type=int, default=24, help="chains (shop problems of 2-3 items) to score")
    ap.add_argument("--size", default="tiny", help="model size of sftlens.models.tiny: nano, tiny, small, base")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    a = ap.parse_args()
    main(a.chains, a.size, a.threads)
