"""Benchmark: information gain for all prefixes of a chain — one shared pass vs one pass per prefix.

Prints both timings and the speedup for chains of 5-8 steps on a tiny Llama (CPU), and checks that
the two agree. Run: ``make bench`` or ``python bench/infogain.py``.
"""

from __future__ import annotations

import json
import time

import torch

from sftlens.core.format import completion_text, prompt_text
from sftlens.metrics.infogain import prefix_scores, prefix_scores_naive
from sftlens.models.tiny import build_tokenizer, make_model
from sftlens.tasks.shop import ShopConfig, ShopWorld


def main(n_chains: int = 24) -> None:
    torch.set_num_threads(2)
    w = ShopWorld(ShopConfig(seed=0))
    # 2-3 items per problem -> 5 or 8 steps (fact, product per item; a sum per extra item)
    exs = w.problems(n_chains, seed=1, items_range=(2, 3))
    tok = build_tokenizer([prompt_text(e) + completion_text(e) for e in exs])
    model = make_model(tok, "tiny", seed=0).eval()
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
    print(f"information gain: per-prefix {t_slow:.2f} s, shared prefix {t_fast:.2f} s, "
          f"speedup {t_slow / t_fast:.1f}x ({n_chains} chains, {steps[0]}-{steps[-1]} steps, max |diff| {err:.1e})")
    print(json.dumps({"bench": "infogain", "ratio": round(t_slow / t_fast, 3), "per_prefix_s": round(t_slow, 4),
                      "shared_s": round(t_fast, 4), "chains": n_chains, "steps": [steps[0], steps[-1]],
                      "max_abs_diff": err}))


if __name__ == "__main__":
    main()
