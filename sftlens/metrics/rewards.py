"""GRPO rewards from a task's verifier, in TRL's reward-function shape.

TRL's ``GRPOTrainer`` calls each reward function once per generation batch with keyword arguments:
``prompts`` and ``completions`` (one entry per completion: each prompt repeated ``num_generations``
times, its group side by side), ``completion_ids``, and every other column of the training dataset as
a list of the same length (here ``id``: the example each completion answers). It wants one float
per completion back. The functions here are built for one set of examples (looked up by ``id``):

- ``correct``: 1.0 when the answer the completion marks as final (an ``A:`` line, ``#### N``, ...;
  a ``<think>`` block removed) equals the reference, judged by math-verify or by exact match
  (:mod:`sftlens.metrics.equivalence`, the audit's judges), else 0.0;
- ``format``: 1.0 when the completion has the shape sftlens trains: the steps (at least one when the
  example has steps), then one ``A:`` line with an answer, then nothing;
- ``steps``: the share of steps the task's verifier judges valid among those it can judge
  (0.0 when it can judge none: an unverifiable chain earns no credit).

:func:`parse_reward_spec` reads ``--reward correct=1,format=0.1`` into names and TRL's
``reward_weights``.
"""

from __future__ import annotations

import math
from typing import Callable

from ..core.errors import UserError
from ..core.format import ANSWER_MARK, marked_answer, parse_completion, split_thinking
from ..core.record import Example
from .equivalence import equivalent, reference_text

#: the reward names ``--reward`` accepts, in the order they are documented
REWARDS = ("correct", "format", "steps")

RewardFunc = Callable[..., list[float]]


def correct_reward(examples: dict[str, Example], equivalence: str = "math") -> RewardFunc:
    """The ``correct`` reward over ``examples`` (id -> example): 1.0 for a right final answer.

    >>> ex = Example(id="1", task="t", question="2 + 2 ?", answer="4")
    >>> correct = correct_reward({"1": ex})
    >>> correct(prompts=["Q: 2 + 2 ?\\n"] * 4, completions=["2 + 2 = 4\\nA: 4", "A: 5", "so 4", "A: 4.0"], id=["1"] * 4)
    [1.0, 0.0, 0.0, 1.0]
    >>> correct.__name__
    'correct'
    """
    def correct(prompts, completions, id, **kwargs) -> list[float]:
        out = []
        for completion, key in zip(completions, id, strict=True):
            ex = examples[key]
            answer = marked_answer(split_thinking(completion)[1])
            out.append(float(equivalent(answer, reference_text(ex) if equivalence == "math" else ex.answer,
                                        equivalence)))
        return out

    return correct


def well_formed(completion: str, need_steps: bool) -> bool:
    """Whether ``completion`` is steps (at least one when ``need_steps``), one ``A:`` line with an
    answer, and nothing after it but white space.

    >>> [well_formed(c, True) for c in ("2 + 2 = 4\\nA: 4", "A: 4", "2 + 2 = 4\\nA: 4\\nQ: 3 + 3 ?", "2 + 2 = 4\\nA:")]
    [True, False, False, False]
    >>> well_formed("A: 4\\n", False)
    True
    """
    steps, answer = parse_completion(completion)
    if not answer or (need_steps and not steps):
        return False
    lines = completion.strip().split("\n")
    return lines[-1].strip().startswith(ANSWER_MARK) and sum(line.strip().startswith(ANSWER_MARK) for line in lines) == 1


def format_reward(examples: dict[str, Example]) -> RewardFunc:
    """The ``format`` reward: 1.0 when :func:`well_formed` (steps required where the example has them).

    >>> ex = Example(id="1", task="t", question="q", steps=["2 + 2 = 4"], answer="4")
    >>> format_reward({"1": ex})(prompts=["Q: q\\n"] * 3, completions=["2 + 2 = 4\\nA: 5", "A: 4", "2 + 2"], id=["1"] * 3)
    [1.0, 0.0, 0.0]
    """
    def format(prompts, completions, id, **kwargs) -> list[float]:  # noqa: A001 - TRL logs the function's name
        return [float(well_formed(c, bool(examples[key].steps))) for c, key in zip(completions, id, strict=True)]

    return format


def steps_reward(examples: dict[str, Example], verifier) -> RewardFunc:
    """The ``steps`` reward: the share of judged steps that ``verifier`` finds valid (0.0 if none is
    judged). A verifier with ``for_example`` (a maze) checks each completion against its own example.

    >>> from sftlens.tasks.gsm8k import Gsm8kVerifier
    >>> ex = Example(id="1", task="gsm8k", question="q", answer="6")
    >>> steps = steps_reward({"1": ex}, Gsm8kVerifier())
    >>> steps(prompts=["Q: q\\n"] * 3, id=["1"] * 3,
    ...       completions=["2*3 = <<2*3=6>>6\\nA: 6", "2*3 = <<2*3=6>>6\\n6+1 = <<6+1=8>>8\\nA: 8", "six\\nA: 6"])
    [1.0, 0.5, 0.0]
    """
    def steps(prompts, completions, id, **kwargs) -> list[float]:
        out = []
        for completion, key in zip(completions, id, strict=True):
            ex = examples[key]
            v = verifier.for_example(ex) if hasattr(verifier, "for_example") else verifier
            chain, answer = parse_completion(split_thinking(completion)[1])
            judged = [c.valid for c in v.verify(chain, answer) if c.valid is not None]
            out.append(sum(judged) / len(judged) if judged else 0.0)
        return out

    return steps


def parse_reward_spec(spec: str, option: str = "--reward") -> list[tuple[str, float]]:
    """``"correct=1,format=0.1"`` as ``[(name, weight), ...]``; a bare name weighs 1.

    >>> parse_reward_spec("correct=1,format=0.1")
    [('correct', 1.0), ('format', 0.1)]
    >>> parse_reward_spec("correct, steps=0.5")
    [('correct', 1.0), ('steps', 0.5)]
    >>> parse_reward_spec("correct=1,lenght=2")
    Traceback (most recent call last):
    ...
    sftlens.core.errors.UserError: --reward 'correct=1,lenght=2': unknown reward 'lenght' (valid: correct, format, steps)
    """
    out: list[tuple[str, float]] = []
    for part in spec.split(","):
        name, sep, weight = (s.strip() for s in part.partition("="))
        if not name:
            raise UserError(f"{option} '{spec}': an empty reward name (write NAME=WEIGHT pairs separated by "
                            f"commas, e.g. correct=1,format=0.1)")
        if name not in REWARDS:
            raise UserError(f"{option} '{spec}': unknown reward '{name}' (valid: {', '.join(REWARDS)})")
        if name in (n for n, _ in out):
            raise UserError(f"{option} '{spec}': reward '{name}' is given twice; give each reward once")
        try:
            w = float(weight) if sep else 1.0
        except ValueError:
            w = math.nan
        if not math.isfinite(w):
            raise UserError(f"{option} '{spec}': the weight of '{name}' must be a finite number, got '{weight}'")
        out.append((name, w))
    return out


def build_rewards(spec: list[tuple[str, float]], examples: list[Example], verifier=None,
                  equivalence: str = "math") -> tuple[list[RewardFunc], list[float]]:
    """The reward functions and TRL ``reward_weights`` for a parsed spec over ``examples``.
    ``steps`` needs a ``verifier`` (the task's, from :func:`sftlens.tasks.verifier_for`)."""
    by_id = {e.id: e for e in examples}
    makers = {"correct": lambda: correct_reward(by_id, equivalence), "format": lambda: format_reward(by_id),
              "steps": lambda: steps_reward(by_id, verifier)}
    if any(n == "steps" for n, _ in spec) and verifier is None:
        raise UserError("--reward steps: this task cannot check steps without its world; give --world")
    return [makers[n]() for n, _ in spec], [w for _, w in spec]


__all__ = ["REWARDS", "build_rewards", "correct_reward", "format_reward", "parse_reward_spec", "steps_reward",
           "well_formed"]
