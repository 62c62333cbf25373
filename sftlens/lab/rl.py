"""Lab conditions trained by reinforcement learning: GRPO (TRL, :mod:`sftlens.train.grpo`) from another
condition's model, on one difficulty band of a fresh pool of problems.

The pool (:func:`rl_pool`) is ``preset.rl_pool`` problems of the SFT distribution that no other split
holds. The bands are ``sftlens data profile``'s (:mod:`sftlens.data.difficulty`): each pool problem's
pass rate over ``preset.profile_k`` samples of the **start** model, the one GRPO trains, so "too hard"
means too hard for that model. The run profiles the start model once per data set and caches it
(:meth:`sftlens.lab.training.RunTraining.profile`), so every band's condition trains on the same split.

Every band trains on the **same number of distinct problems** (:func:`matched_count`): the smallest
trainable band's size, at most ``preset.rl_band``, drawn from each band by the run's seed. With the same
steps, a small band would otherwise be seen many more times per problem than a large one, and repetition
(memorising a few answers) would stand in for difficulty.

A band with fewer problems than one optimizer step's groups is not trained on: the condition saves the
start model unchanged and says so (``trained: false``), and a claim reading it must guard on that.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Callable

from ..core.record import Example
from .conditions import BuildContext, TrainContext, Trained

POOL = "rl_pool"  # the profile's name: eval/<start>/profile_rl_pool.jsonl

#: ``rewards(examples, ctx) -> (reward functions, weights, description)``
RewardMaker = Callable[[list[Example], TrainContext], tuple[list, list[float], str]]


def rl_pool(c: BuildContext) -> list[Example]:
    """``preset.rl_pool`` fresh problems of the SFT distribution, none a train, test or variant question.

    >>> from types import SimpleNamespace
    >>> from sftlens.tasks.shop import ShopConfig, ShopWorld, make_splits
    >>> w = ShopWorld(ShopConfig(seed=0)); sp = make_splits(w, 5, 30, 10, 3, seed=0)
    >>> held = frozenset(e.question for e in sp.test)
    >>> pool = rl_pool(BuildContext(sp.train, w, 0, SimpleNamespace(rl_pool=20), held))
    >>> len(pool), {e.question for e in pool} & (held | {e.question for e in sp.train})
    (20, set())
    """
    taken = set(c.heldout) | {e.question for e in c.train}
    return c.world.problems(c.preset.rl_pool, c.seed + 41, prefix="rl", exclude=taken, split="rl_pool")


def correct_rewards(examples: list[Example], ctx: TrainContext) -> tuple[list, list[float], str]:
    """The verifiable reward: 1.0 for a right final answer (exact match, as the lab scores)."""
    from ..metrics.rewards import build_rewards

    funcs, weights = build_rewards([("correct", 1.0)], examples, equivalence="strict")
    return funcs, weights, "correct answer (1.0), exact match"


def modal_answer(answers: list[str | None], fallback: str) -> str:
    """The most common answer (ties: the first seen), ``fallback`` when none was given.

    >>> modal_answer(["12", None, "7", "12"], "0"), modal_answer([None], "0")
    ('12', '0')
    """
    counts = Counter(a for a in answers if a)
    return counts.most_common(1)[0][0] if counts else fallback


def matched_count(counts: dict[str, int], groups: int, cap: int | None) -> int:
    """How many problems each band trains on: the smallest band that can train (at least ``groups``
    problems, one optimizer step's prompts), at most ``cap`` (``None``: no cap).

    >>> matched_count({"too_easy": 759, "learnable": 221, "too_hard": 20}, groups=4, cap=64)
    20
    >>> matched_count({"too_easy": 3000, "learnable": 900, "too_hard": 100}, groups=4, cap=64)
    64
    >>> matched_count({"too_easy": 0, "learnable": 1, "too_hard": 16}, groups=2, cap=None)  # bands too small to train do not count
    16
    """
    sizes = [n for n in counts.values() if n >= groups]
    return min(sizes + ([cap] if cap is not None else [])) if sizes else 0


def draw(examples: list[Example], n: int, seed: int) -> list[Example]:
    """``n`` of ``examples`` drawn by ``seed``, in their original order (all of them when ``n`` is larger).

    >>> [e.id for e in draw([Example(id=str(i), task="t", question="q", answer="1") for i in range(6)], 3, seed=0)]
    ['0', '3', '5']
    """
    import random

    if n >= len(examples):
        return list(examples)
    keep = set(random.Random(seed).sample(range(len(examples)), n))
    return [e for i, e in enumerate(examples) if i in keep]


def band_trainer(band: str, rewards: RewardMaker = correct_rewards, seed_offset: int = 0,
                 also_profile: tuple[str, ...] = ()) -> Callable[[TrainContext], Trained]:
    """A condition's ``train`` function: GRPO of the start model on the pool problems of ``band``
    (``preset.grpo`` settings, the seed moved by ``seed_offset`` for a replicate), with ``rewards``.
    ``also_profile`` names data sets the start model is profiled on as well (a claim's analysis reads
    them with ``run.profiled``)."""

    def train(ctx: TrainContext) -> Trained:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from ..data.difficulty import band_counts

        profiled = ctx.profile(POOL, ctx.examples)
        for name in also_profile:
            ctx.profile(name, ctx.load(name))
        in_band = [e for e in profiled if e.meta["band"] == band]
        settings = replace(ctx.preset.grpo, seed=ctx.preset.grpo.seed + seed_offset)
        groups = settings.batch_size // settings.num_generations
        # the same problems for a replicate (seed_offset moves GRPO's seed only): a control differs in one thing
        kept = draw(in_band, matched_count(band_counts(profiled), groups, ctx.preset.rl_band), ctx.seed + 43)
        if len(in_band) < groups:
            kept = in_band
        tok = AutoTokenizer.from_pretrained(ctx.start)
        model = AutoModelForCausalLM.from_pretrained(ctx.start, attn_implementation="eager")
        info = {"kind": "grpo", "band": band, "band_size": len(in_band), "trained_on": len(kept),
                "bands": band_counts(profiled),
                "pool": len(profiled), "profile_k": ctx.preset.profile_k, "steps": settings.steps, "lr": settings.lr,
                "num_generations": settings.num_generations, "batch_size": settings.batch_size,
                "seed": settings.seed}
        if len(kept) < groups:
            return Trained(model, tok, kept, {**info, "trained": False,
                                              "why": f"the '{band}' band holds {len(kept)} problems, fewer than the "
                                                     f"{groups} groups of one step: the start model is kept"})
        funcs, weights, described = rewards(kept, ctx)
        model, history = _grpo(model, tok, kept, funcs, weights, settings, ctx)
        return Trained(model, tok, kept, {**info, "trained": True, "reward": described, **summarize(history)})

    return train


def _grpo(model, tok, examples, funcs, weights, settings, ctx: TrainContext):
    from ..train.grpo import grpo

    def on_step(step: int, logs: dict) -> None:
        ctx.on_step(step, settings.steps, f"reward {logs.get('reward', float('nan')):.3f}")

    return grpo(model, tok, examples, funcs, weights, settings, on_step=on_step)


def summarize(history: list[dict]) -> dict:
    """What a GRPO log says per step (reward, share of groups with one reward, completion length)
    and over the run (lone successes and their mean advantage), for ``sftlens.json``.

    >>> s = summarize([{"loss": 0.1, "reward": 0.5, "frac_reward_zero_std": 0.5, "completions/mean_length": 9.0,
    ...                 "lone_success_advantages": [1.5, 1.5]}, {"train_runtime": 3.0}])
    >>> s["per_step"][0]["reward"], s["lone_successes"], s["lone_success_advantage"], s["updated"]
    (0.5, 2, 1.5, True)
    """
    steps = [h for h in history if "loss" in h]
    lone = [a for h in steps for a in h.get("lone_success_advantages", [])]
    per_step = [{"reward": h.get("reward"), "frac_reward_zero_std": h.get("frac_reward_zero_std"),
                 "mean_length": h.get("completions/mean_length")} for h in steps]
    zero = [p["frac_reward_zero_std"] for p in per_step if p["frac_reward_zero_std"] is not None]
    return {"per_step": per_step, "lone_successes": len(lone),
            "lone_success_advantage": sum(lone) / len(lone) if lone else None,
            "frac_reward_zero_std": sum(zero) / len(zero) if zero else None,
            # every sampled group of every step had one reward: zero advantages, no update (beta 0)
            "updated": not zero or min(zero) < 1.0}


__all__ = ["POOL", "band_trainer", "correct_rewards", "draw", "matched_count", "modal_answer", "rl_pool", "summarize"]
