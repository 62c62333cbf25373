"""The lab's data conditions: how each training set is made, and how its model is trained.

A condition is a named operator over the clean training set plus (optionally) its own SFT settings
and the way its model is asked at test time. The standard condition, ``correct``, lives here; every
other condition is registered by the claim file that needs it (``register_condition``), so adding a
claim never edits this file. The run trains the conditions its claims ask for, in registration order.

Most conditions are SFT of the base on their set. A condition may instead ``start`` from another
condition's model (registered before it: C7's reinforcement learning starts from the SFT model, which
has skills to lose) and bring its own ``train`` function (GRPO, :mod:`sftlens.lab.rl`), given a
:class:`TrainContext`; the run then trains the start model first, whichever claim asked for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..core.record import Example
from ..train.sft import SFTSettings


@dataclass(frozen=True)
class BuildContext:
    """What a condition's builder may use: the clean SFT pool, the run's world, seed and preset, and
    ``heldout`` — every question of the run's test and variant sets, which a builder that draws new
    problems must never train on."""

    train: list[Example]
    world: object
    seed: int
    preset: object
    heldout: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TrainContext:
    """What a condition's own ``train`` function gets from the run.

    ``examples`` is the condition's built set; ``start`` the folder of the model it starts from
    (``start_name`` in the run). ``profile(name, examples)`` gives the start model's pass rate and
    difficulty band of each example (``sftlens data profile``'s code, cached per model in
    ``eval/<start>/profile_<name>.jsonl`` so conditions share one profile); ``load(name)`` reads a data
    set of the run (``test``, ...); ``on_step(done, total, info)`` reports progress."""

    examples: list[Example]
    start: Path
    start_name: str
    world: object
    seed: int
    preset: object
    profile: Callable[[str, list[Example]], list[Example]]
    load: Callable[[str], list[Example]]
    on_step: Callable[[int, int, str], None] = lambda done, total, info: None


@dataclass
class Trained:
    """What a ``train`` function returns: the model and tokenizer to save, what it trained on (written
    to ``data/conditions/<name>.jsonl``) and how (merged into ``models/<name>/sftlens.json``)."""

    model: Any
    tokenizer: Any
    examples: list[Example]
    info: dict


@dataclass
class Condition:
    """A data condition: ``build(context)`` returns its training set (see :class:`BuildContext`)."""

    name: str
    description: str
    build: Callable[[BuildContext], list[Example]]
    sft_settings: Callable[[object], SFTSettings] | None = None
    # how this condition's model is asked at test time (default: the clean test problems)
    eval_transform: Callable[[list[Example], int], list[Example]] | None = None
    start: str = "base"  # the model it is trained from: the base or an earlier condition's model
    train: Callable[[TrainContext], Trained] | None = None  # None: SFT (TRL) on the built set

    def settings(self, preset) -> SFTSettings:
        """SFT settings for this condition (the preset's unless the condition overrides them)."""
        return self.sft_settings(preset) if self.sft_settings else preset.sft


CONDITIONS: dict[str, Condition] = {}


def register_condition(condition: Condition) -> Condition:
    """Add a condition to :data:`CONDITIONS` (a name may be registered once; a condition that starts
    from another model must come after it, so registration order is a training order).

    >>> register_condition(Condition("x_demo", "d", lambda c: [], start="no_such"))
    Traceback (most recent call last):
    ...
    ValueError: condition 'x_demo' starts from 'no_such', which is neither 'base' nor a condition registered before it
    """
    if condition.name in CONDITIONS:
        raise ValueError(f"condition '{condition.name}' is already registered")
    if condition.start != "base" and condition.start not in CONDITIONS:
        raise ValueError(f"condition '{condition.name}' starts from '{condition.start}', which is neither 'base' nor "
                         "a condition registered before it")
    CONDITIONS[condition.name] = condition
    return condition


def with_starts(names: set[str]) -> list[str]:
    """``names`` and every condition they start from (recursively), in registration order.

    >>> with_starts({"correct"})
    ['correct']
    """
    wanted, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in wanted or name == "base":
            continue
        wanted.add(name)
        if name in CONDITIONS:
            todo.append(CONDITIONS[name].start)
    return [c for c in CONDITIONS if c in wanted]


register_condition(Condition("correct", "the clean, correct worked solutions", lambda c: list(c.train)))
