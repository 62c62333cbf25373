"""The task contract: what sftlens knows about one kind of data, and the verdict type of its verifier.

A task (shop, GSM8K, the plain-text fallback, ...) lives in one file of ``sftlens/tasks`` and is
registered with :func:`sftlens.tasks.registry.register_task`; metrics and data operators ask the
registry (:func:`~sftlens.tasks.registry.task_for`) instead of testing task names or step text.
Nothing here imports a model or any part of sftlens outside :mod:`sftlens.core`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Protocol

from ..core.errors import SftlensError
from ..core.record import Example

#: ``(step, rng) -> a wrong version of the step`` (the step itself when it cannot be broken).
Corrupter = Callable[[str, random.Random], str]
#: ``(step, rng) -> the same meaning in other words`` (the step itself when there is nothing to reword).
Paraphraser = Callable[[str, random.Random], str]


class TaskError(SftlensError, ValueError):
    """An unknown task name, or a task asked for something it does not offer (e.g. variants)."""


@dataclass
class StepCheck:
    """The verifier's verdict on one step.

    ``kind`` is ``knowledge``, ``arithmetic`` or ``other``; ``valid`` means a true fact or correct
    arithmetic, ``None`` when the verifier cannot tell (e.g. free text without annotation); ``feeds``
    means the step's value is used by a later step or is the final answer.
    """

    kind: str
    valid: bool | None
    feeds: bool
    reason: str = ""


class Verifier(Protocol):
    """Checks a chain step by step: one :class:`StepCheck` per step. A verifier whose examples each
    carry their own facts (a maze) may also offer ``for_example(example) -> Verifier``; scoring asks
    for it when present."""

    def verify(self, steps: list[str], answer: str | None = None) -> list[StepCheck]: ...


class Task(Protocol):
    """One kind of data. Implementations take ``world`` (the shop's fact table; ignored by tasks
    without one) in their constructor; ``corrupter`` and ``paraphraser`` may be attributes holding
    a function or methods with the same signature.

    Attributes:
        name: the registry key (set by :func:`~sftlens.tasks.registry.register_task`).
        verifier: checks chains step by step; ``None`` when this instance cannot (the shop without
            its world).
        corrupter: one wrong step, ``(step, rng) -> step``.
        paraphraser: the same step in other words, ``(step, rng) -> step``.

    Optional: ``output_levels``, the levels (e.g. parses, schema-valid, feasible, optimal) a task
    answered as structured output checks per example: its verifier's ``for_example(example)`` then
    offers ``check_output(completion) -> dict`` (:mod:`sftlens.tasks.packing`).
    """

    name: str
    verifier: Verifier | None
    corrupter: Corrupter
    paraphraser: Paraphraser

    @classmethod
    def claims(cls, example: Example, world=None) -> bool:
        """Whether ``example`` belongs to this task (used by :func:`~sftlens.tasks.registry.task_for`)."""
        ...

    def variants(self, test: list[Example], n: int, seed: int,
                 exclude: set[str] | None = None) -> dict[str, list[Example]]:
        """Out-of-distribution test sets built from ``test`` (name -> examples); :class:`TaskError`
        when the task has no variant builder."""
        ...


@dataclass
class Splits:
    """Everything the lab needs from a world, generated deterministically from a seed: pretraining
    problems (simpler worked problems the base sees), the SFT pool, the test set, the variant sets
    (name -> examples) and the fact probes (knowledge retention; empty for worlds without facts)."""

    pretrain_problems: list[Example] = field(default_factory=list)
    train: list[Example] = field(default_factory=list)
    test: list[Example] = field(default_factory=list)
    variants: dict[str, list[Example]] = field(default_factory=dict)
    facts: list[Example] = field(default_factory=list)


def draw_distinct(n: int, draw: Callable[[int], Example], seen: set[str], max_tries: int,
                  too_few: Callable[[int], str], keep: Callable[[Example], bool] | None = None) -> list[Example]:
    """``n`` examples from ``draw(i)`` (``i``: how many are kept so far), each with a question not in
    ``seen`` (updated in place); ``keep`` may still reject a drawn example once its question is marked
    seen (e.g. a text over a length cap). After ``max_tries`` draws: ``RuntimeError(too_few(kept))``.

    >>> import itertools
    >>> counter = itertools.count()
    >>> draw = lambda i: Example(id=str(i), task="t", question=f"q{next(counter) % 3}", answer="a")
    >>> [e.question for e in draw_distinct(3, draw, set(), 10, str)]
    ['q0', 'q1', 'q2']
    """
    out: list[Example] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > max_tries:
            raise RuntimeError(too_few(len(out)))
        ex = draw(len(out))
        if ex.question in seen:
            continue
        seen.add(ex.question)
        if keep is None or keep(ex):
            out.append(ex)
    return out


def draw_disjoint(world, n_train: int, n_test: int, n_variant: int,
                  seed: int) -> tuple[list[Example], dict[str, list[Example]], list[Example], set[str]]:
    """The test set, its variant sets and the SFT pool of a generating world, disjoint by question
    (drawn in that order, with the seeds every lab world uses), and every question taken. The world
    offers ``problems(n, seed, prefix=, exclude=, split=)`` and ``variants(test, n, seed, exclude=)``;
    its pretraining problems are drawn afterwards, avoiding the returned questions."""
    test = world.problems(n_test, seed + 11, prefix="test", split="test")
    seen = {e.question for e in test}
    variants = world.variants(test, n_variant, seed + 13, exclude=seen)
    for v in variants.values():
        seen |= {e.question for e in v}
    train = world.problems(n_train, seed + 17, prefix="train", exclude=seen, split="train")
    seen |= {e.question for e in train}
    return test, variants, train, seen


def no_variants(task_name: str) -> TaskError:
    """The error of a task without a variant builder."""
    return TaskError(f"task '{task_name}' has no variant builder; give variant sets as files instead "
                     "(only the shop world builds them)")
