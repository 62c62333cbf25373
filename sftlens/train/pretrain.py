"""Pretraining a tiny model from scratch: a plain causal-LM loop over short texts.

Pretraining is not SFT, so it does not go through TRL: a minimal loop (AdamW, linear warm-up,
cosine decay, length-bucketed batches) is the fastest honest way to teach a 0.1M-parameter model the
world's facts and simple worked problems on two CPU cores.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable

import torch


@dataclass
class PretrainConfig:
    """Optimisation settings for :func:`pretrain`."""

    steps: int = 1500
    batch_size: int = 64
    lr: float = 3e-3
    warmup: int = 50
    weight_decay: float = 0.01
    seed: int = 0


def tokenize_texts(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids for each text with BOS and EOS (tokenize once, reuse every epoch)."""
    eos = tokenizer.eos_token_id
    return [ids + [eos] for ids in tokenizer(texts)["input_ids"]]


def pretrain(model, tokenizer, texts: list[str], config: PretrainConfig,
             on_step: Callable[[int, float], None] | None = None) -> list[float]:
    """Train ``model`` in place on ``texts`` (loss on every token); returns the loss per step.

    Batches group texts of similar length (less padding); order is seeded by ``config.seed``.
    """
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    data = tokenize_texts(tokenizer, texts)
    pad = tokenizer.pad_token_id
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                            betas=(0.9, 0.98))

    def lr_at(step: int) -> float:
        if step < config.warmup:
            return config.lr * (step + 1) / config.warmup
        t = (step - config.warmup) / max(1, config.steps - config.warmup)
        return config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))

    def batches():
        while True:
            idx = list(range(len(data)))
            rng.shuffle(idx)
            chunk = config.batch_size * 16  # sort within chunks of 16 batches
            for c in range(0, len(idx), chunk):
                part = sorted(idx[c:c + chunk], key=lambda i: len(data[i]))
                bs = [part[b:b + config.batch_size] for b in range(0, len(part), config.batch_size)]
                rng.shuffle(bs)
                yield from bs

    model.train()
    losses: list[float] = []
    it = batches()
    for step in range(config.steps):
        ids = [data[i] for i in next(it)]
        L = max(map(len, ids))
        x = torch.full((len(ids), L), pad, dtype=torch.long)
        mask = torch.zeros((len(ids), L), dtype=torch.long)
        for r, seq in enumerate(ids):
            x[r, :len(seq)] = torch.tensor(seq)
            mask[r, :len(seq)] = 1
        labels = x.masked_fill(mask == 0, -100)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss = model(input_ids=x, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if on_step:
            on_step(step, losses[-1])
    model.eval()
    return losses
