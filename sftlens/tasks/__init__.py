"""Tasks: what sftlens knows about each kind of data, behind one contract (:class:`~.base.Task`).

- :mod:`.base`: the :class:`~.base.Task` protocol, :class:`~.base.StepCheck`, :class:`~.base.TaskError`;
- :mod:`.registry`: :func:`register_task`, :func:`get_task`, :func:`task_names`, :func:`task_for`
  (the one rule that picks the task of some examples) and :func:`verifier_for`;
- one file per task: :mod:`.shop` (``shop``), :mod:`.gsm8k` (``gsm8k``), :mod:`.maze` (``maze``),
  :mod:`.packing` (``packing``, answered as JSON: :mod:`.jsonout` reads and schema-checks such answers),
  :mod:`.judge` (``judge``: carts judged acceptable or not by a store's named criteria),
  :mod:`.text` (``text``, the fallback).

A new task is one file with a class decorated ``@register_task("name")`` plus its import below
(the import order is the order in which :func:`task_for` asks the tasks). This package imports only
:mod:`sftlens.core`.
"""

from __future__ import annotations

from .base import StepCheck, Task, TaskError, Verifier
from .registry import get_task, register_task, task_for, task_names, verifier_for

from . import shop  # registers "shop" (asked first)
from . import gsm8k  # registers "gsm8k"
from . import maze  # registers "maze" (claims only maze.* examples)
from . import packing  # registers "packing" (claims only packing.* examples)
from . import judge  # registers "judge" (claims only judge.* examples)
from . import text  # registers "text", the fallback

__all__ = ["StepCheck", "Task", "TaskError", "Verifier", "get_task", "gsm8k", "judge", "maze", "packing", "register_task", "shop", "task_for",
           "task_names", "text", "verifier_for"]
