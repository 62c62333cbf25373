"""The lab's worlds: where a claim (or one of its controls) is measured.

A world is a task that can generate itself (a seeded config, a generator of disjoint splits, a
step verifier) plus how the lab sizes it for a preset. The shop is the lab's own world and lives
at the top of a run folder; every other world a claim asks for (see
:class:`sftlens.lab.claims.Arm`) is a run of its own in ``DIR/worlds/<name>/``, with its own
tokenizer, base model and SFT conditions, trained with the same seed.

Adding a world is one entry here (:func:`register_world`) over a task file in ``sftlens/tasks``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

from ..tasks.base import Splits
from ..tasks.judge import JudgeConfig, JudgeWorld, make_judge_splits
from ..tasks.maze import MazeConfig, MazeWorld, make_maze_splits
from ..tasks.packing import PackingConfig, PackingWorld, make_packing_splits
from ..tasks.shop import ShopWorld
from ..tasks.shop import make_splits as make_shop_splits

PRIMARY_WORLD = "shop"


@dataclass(frozen=True)
class LabWorld:
    """How the lab builds and sizes one world.

    ``adapt(preset)`` returns the preset this world runs under (its own world config in
    ``preset.world``, and any size the world needs changed); ``make(config)`` builds the world from
    that config; ``splits(world, preset, seed)`` generates the data; ``vocabulary(world)`` lists words
    the tokenizer must know beyond the generated texts; ``drills(world, preset, seed)`` adds
    pretraining lines (skills a pretrained model brings); ``faithfulness``: whether the C2 battery runs
    on this world's models (it needs fact and arithmetic steps to corrupt and paraphrase)."""

    name: str
    description: str
    adapt: Callable[[Any], Any]
    make: Callable[[Any], Any]
    splits: Callable[[Any, Any, int], Splits]
    vocabulary: Callable[[Any], list[str]]
    faithfulness: bool = False
    # texts the tokenizer must cover beyond the generated data (world) -> lines
    tokenizer_texts: Callable[[Any], list[str]] = lambda world: []
    # extra pretraining texts (world, preset, seed) -> lines, e.g. the shop's arithmetic drills
    drills: Callable[[Any, Any, int], list[str]] = lambda world, preset, seed: []


WORLDS: dict[str, LabWorld] = {}


def register_world(world: LabWorld) -> LabWorld:
    """Add a world to :data:`WORLDS` (a name may be registered once)."""
    if world.name in WORLDS:
        raise ValueError(f"world '{world.name}' is already registered")
    WORLDS[world.name] = world
    return world


def sized(make_splits: Callable) -> Callable[[Any, Any, int], Splits]:
    """A world's ``splits(world, preset, seed)`` from its task's ``make_splits(world, n_pretrain, n_train,
    n_test, n_variant, seed=...)``, sized by the preset."""
    return lambda world, p, seed: make_splits(world, p.n_pretrain, p.n_train, p.n_test, p.n_variant, seed=seed)


def get_world(name: str) -> LabWorld:
    if name not in WORLDS:
        raise ValueError(f"unknown lab world '{name}' (valid: {', '.join(WORLDS)})")
    return WORLDS[name]


# ---- the shop: the lab's own world ---------------------------------------------------------------
register_world(LabWorld(
    name="shop", description="the shop: item facts (price, weight), worked purchase problems, every step checkable",
    adapt=lambda p: p, make=ShopWorld, splits=sized(make_shop_splits), vocabulary=lambda w: list(w.items),
    faithfulness=True,
    drills=lambda w, p, seed: w.arithmetic_drills(p.n_pretrain, seed=seed + 31)))


# ---- the judgement world: carts judged by a store's named criteria (C6, Wachsmuth et al. 2024) ----------
def _judge_adapt(p):
    # checking written rules against a cart is slow to learn (a 2-layer model answers one bit per cart):
    # the base gets 2.5x the shop's pretraining steps at a third of its learning rate (3e-3 never learned
    # to match words in a probe); a nano model learns nothing here at any affordable length, so micro's
    # base stays short. Texts (judgement drills) are under 100 tokens, answered yes/no.
    steps = max(p.pretrain.steps // 2, 1) if p.size == "nano" else p.pretrain.steps * 5 // 2
    pretrain = replace(p.pretrain, steps=steps, lr=p.pretrain.lr / 3)
    # SFT with labels reaches 100% of the in-distribution test carts at a third of the shop's SFT steps
    # (standard seeds 0 and 1): the plateau, so a third it stays
    sft = replace(p.sft, steps=max(p.sft.steps // 3, 1))
    return replace(p, world=JudgeConfig(seed=p.world.seed), pretrain=pretrain, sft=sft, max_new_tokens=8,
                   max_positions=128)


register_world(LabWorld(
    name="judge", description="carts judged acceptable or not by a store's named criteria (budget, needs, forbidden "
                              "pair), item types held out of training",
    adapt=_judge_adapt, make=JudgeWorld, splits=sized(make_judge_splits), vocabulary=lambda w: [],
    tokenizer_texts=lambda w: w.tokenizer_corpus(),
    drills=lambda w, p, seed: w.drills(p.n_pretrain, seed=seed + 31)))


# ---- mazes: A* search traces, the plan as the answer (C4, Stechly et al. 2025) -----------------------
MAZE_MAX_TOKENS = 180


def _maze_adapt(p):
    # mazes whose prompt and A* trace fit 180 tokens (the search of a 5x5 maze is up to ~25 events): a
    # CPU budget — SFT cost grows with the longest text of a batch — that keeps two thirds of the mazes
    cfg = MazeConfig(seed=p.world.seed, max_tokens=MAZE_MAX_TOKENS)
    # the base only needs the maze language (its 4x4 pretraining problems): half the shop's steps
    pretrain = replace(p.pretrain, steps=max(p.pretrain.steps // 2, 1))
    # SFT on correct traces is no better at the shop's 900 steps than at a third of them (seed 3: 7.5% of
    # the test mazes at 300, 10% at 900, training loss 0.10): the maze is bound by the model, not the steps
    sft = replace(p.sft, steps=max(p.sft.steps // 3, 1))
    return replace(p, world=cfg, pretrain=pretrain, sft=sft, max_new_tokens=MAZE_MAX_TOKENS - 40, max_positions=256)


register_world(LabWorld(
    name="maze", description="grid mazes with walls: A* traces (create/close events with g and h), the plan as the "
                             "answer — the plan can be found without the trace",
    adapt=_maze_adapt, make=MazeWorld, splits=sized(make_maze_splits), vocabulary=lambda w: [],
    tokenizer_texts=lambda w: w.tokenizer_corpus()))


# ---- packing: constrained optimisation answered as JSON (C5, Bernier et al. 2026) -----------------------
PACKING_MAX_NEW_TOKENS = 48  # the longest answer (7 items in 2 bins) is 37 tokens


def _packing_adapt(p, loose: bool = False):
    # texts are under 110 tokens; the base learns the problem language and JSON on one-bin problems: half
    # the shop's pretraining steps, as the mazes
    # SFT keeps the shop's steps: SFT on optimal packings solved 1.7% of the test problems optimally at 300
    # steps and 16% at 900 (seed 0, training loss 0.12 and falling)
    cfg = PackingConfig(seed=p.world.seed, loose=loose, unique_optimum=not loose)
    pretrain = replace(p.pretrain, steps=max(p.pretrain.steps // 2, 1))
    return replace(p, world=cfg, pretrain=pretrain, max_new_tokens=PACKING_MAX_NEW_TOKENS, max_positions=128)


register_world(LabWorld(
    name="packing", description="items into bins under capacities for the most value, the answer one line of JSON "
                                "(four levels: parses, schema-valid, feasible, optimal)",
    adapt=_packing_adapt, make=PackingWorld, splits=sized(make_packing_splits), vocabulary=lambda w: [],
    tokenizer_texts=lambda w: w.tokenizer_corpus()))
register_world(LabWorld(
    name="packing_loose", description="packing where every bin holds all the items: any answer of the right form is "
                                      "feasible (C5's negative control)",
    adapt=lambda p: _packing_adapt(p, loose=True), make=PackingWorld, splits=sized(make_packing_splits),
    vocabulary=lambda w: [], tokenizer_texts=lambda w: w.tokenizer_corpus()))


__all__ = ["LabWorld", "PRIMARY_WORLD", "WORLDS", "get_world", "register_world", "sized"]
