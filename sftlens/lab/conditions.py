"""The lab's data conditions: how each SFT training set is made from the clean one.

A condition is a named operator over the clean training set plus (optionally) its own SFT settings
and the way its model is asked at test time. The standard condition, ``correct``, lives here; every
other condition is registered by the claim file that needs it (``register_condition``), so adding a
claim never edits this file. The run trains the conditions its claims ask for, in registration order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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


@dataclass
class Condition:
    """A data condition: ``build(context)`` returns its SFT set (see :class:`BuildContext`)."""

    name: str
    description: str
    build: Callable[[BuildContext], list[Example]]
    sft_settings: Callable[[object], SFTSettings] | None = None
    # how this condition's model is asked at test time (default: the clean test problems)
    eval_transform: Callable[[list[Example], int], list[Example]] | None = None

    def settings(self, preset) -> SFTSettings:
        """SFT settings for this condition (the preset's unless the condition overrides them)."""
        return self.sft_settings(preset) if self.sft_settings else preset.sft


CONDITIONS: dict[str, Condition] = {}


def register_condition(condition: Condition) -> Condition:
    """Add a condition to :data:`CONDITIONS` (a name may be registered once)."""
    if condition.name in CONDITIONS:
        raise ValueError(f"condition '{condition.name}' is already registered")
    CONDITIONS[condition.name] = condition
    return condition


register_condition(Condition("correct", "the clean, correct worked solutions", lambda c: list(c.train)))
