"""The task registry: a decorator to register a task class, lookups, and the one rule that picks the
task for a set of examples.

    @register_task("shop")
    class ShopTask: ...

    get_task("gsm8k").corrupter(step, rng)
    task_for(examples, world).verifier

:func:`task_for` asks the tasks in registration order, which is the order of the imports in
:mod:`sftlens.tasks` (``shop``, then ``gsm8k``); the first task that claims any of the examples
wins, and the fallback (``text``) takes the rest.
"""

from __future__ import annotations

from typing import Callable, Iterable

from ..core.record import Example
from .base import Task, TaskError, Verifier

_TASKS: dict[str, type] = {}
_FALLBACK: list[str] = []


def register_task(name: str, *, fallback: bool = False) -> Callable[[type], type]:
    """Class decorator: register a :class:`~sftlens.tasks.base.Task` implementation under ``name``
    (and set its ``name``). ``fallback=True`` marks the task :func:`task_for` picks when no other
    claims the examples (there is one: ``text``)."""

    def wrap(cls: type) -> type:
        if name in _TASKS and _TASKS[name] is not cls:
            raise TaskError(f"task '{name}' is registered twice ({_TASKS[name].__qualname__}, {cls.__qualname__})")
        cls.name = name
        _TASKS[name] = cls
        if fallback and name not in _FALLBACK:
            _FALLBACK.append(name)
        return cls

    return wrap


def task_names() -> list[str]:
    """The registered task names in the order :func:`task_for` asks them (the fallback last)."""
    return [n for n in _TASKS if n not in _FALLBACK] + [n for n in _TASKS if n in _FALLBACK]


def get_task(name: str, world=None) -> Task:
    """A new instance of task ``name`` (``world``: the shop's fact table, ignored by other tasks);
    :class:`~sftlens.tasks.base.TaskError` naming the valid names when ``name`` is unknown."""
    if name not in _TASKS:
        raise TaskError(f"unknown task '{name}' (valid: {', '.join(task_names()) or 'none registered'})")
    return _TASKS[name](world=world)


def task_for(examples: Iterable[Example], world=None) -> Task:
    """The task of ``examples``: the first registered task that claims any of them, else the fallback.

    With the stock tasks: ``shop`` when a ``world`` is given and an example's task starts with
    ``shop.``; else ``gsm8k`` when an example's task is ``gsm8k`` or one of its steps holds ``<<``
    (a ``<<expr=result>>`` annotation); else ``text``. Shop examples without their world fall
    through to the later rules: without the fact table nothing shop-specific can be checked.
    """
    examples = list(examples)
    for name in task_names():
        cls = _TASKS[name]
        if name not in _FALLBACK and any(cls.claims(e, world) for e in examples):
            return cls(world=world)
    if not _FALLBACK:
        raise TaskError(f"no task claims these examples and no fallback task is registered "
                        f"(registered: {', '.join(task_names()) or 'none'})")
    return _TASKS[_FALLBACK[0]](world=world)


def verifier_for(examples: Iterable[Example], world=None) -> Verifier:
    """The step verifier for ``examples``: the world's (its :meth:`~sftlens.tasks.shop.ShopWorld.verify`)
    whenever a world is given, else :func:`task_for`'s (the ``<<expr=result>>`` annotation checker
    for GSM8K and plain text). This is the audit's rule (``sftlens.audit.pick_verifier``) once it has
    decided whether to load a world file."""
    if world is not None:
        return world
    verifier = task_for(examples).verifier
    if verifier is None:  # pragma: no cover - only a task that needs a world has none, and none was given
        raise TaskError("the task of these examples cannot verify steps without its world")
    return verifier
