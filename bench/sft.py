"""Benchmark: SFT through TRL's ``SFTTrainer`` (as ``sftlens.train.sft`` configures it) vs a bare torch loop.

Both train the same starting model on the same batches (``trainer.get_train_dataloader()``), with the
same AdamW, learning-rate schedule and completion-only loss, on the lab's ``tiny`` model and quick-size
shop problems, one thread. Prints per-step times, the set-up time of the trainer and the tokens/s
ratio TRL / bare loop, then one JSON line. Run: ``make bench`` or ``python bench/sft.py``.
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
import time

import torch

from sftlens.core.format import completion_text, prompt_text
from sftlens.models.tiny import build_tokenizer, make_model
from sftlens.tasks.shop import ShopConfig, ShopWorld
from sftlens.train.sft import SFTSettings, build_trainer


def bare_loop(model, batches, settings: SFTSettings, steps: int) -> float:
    """Seconds for ``steps`` optimizer steps of a plain loop on ``batches`` (same optimizer and schedule)."""
    from transformers import get_cosine_schedule_with_warmup

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    sched = get_cosine_schedule_with_warmup(opt, max(1, int(settings.warmup_ratio * steps)), steps)
    t = time.perf_counter()
    for batch in batches[:steps]:
        loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t


def main(steps: int = 60, batch_size: int = 64) -> dict:
    torch.set_num_threads(1)
    w = ShopWorld(ShopConfig(seed=0, n_items=24))
    exs = w.problems(steps * batch_size, seed=1, items_range=(2, 3))
    tok = build_tokenizer([prompt_text(e) + completion_text(e) for e in exs] + w.fact_corpus())
    start = make_model(tok, "tiny", seed=0)
    settings = SFTSettings(steps=steps, batch_size=batch_size, lr=6e-3)
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        trainer = build_trainer(copy.deepcopy(start), tok, exs, settings, d)
        t_setup = time.perf_counter() - t
        batches = list(trainer.get_train_dataloader())[:steps]
        tokens = sum(int(b["attention_mask"].sum()) for b in batches)
        t = time.perf_counter()
        trainer.train()
        t_trl = time.perf_counter() - t
    t_bare = bare_loop(copy.deepcopy(start), batches, settings, steps)
    ratio = (tokens / t_trl) / (tokens / t_bare)
    print(f"SFT, {steps} steps of {batch_size} ({tokens} tokens), tiny model, 1 thread: TRL {t_trl:.2f} s "
          f"({1000 * t_trl / steps:.0f} ms/step, + {t_setup:.2f} s to build the trainer), bare loop {t_bare:.2f} s "
          f"({1000 * t_bare / steps:.0f} ms/step); TRL runs at {ratio:.2f}x the bare loop's tokens/s")
    out = {"bench": "sft", "ratio": round(ratio, 3), "trl_s": round(t_trl, 3), "bare_s": round(t_bare, 3),
           "setup_s": round(t_setup, 3), "steps": steps, "batch_size": batch_size, "tokens": tokens}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
