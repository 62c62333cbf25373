"""Corruption operators: pure, seeded functions from a list of examples to a new list.

Each operator leaves its inputs untouched, returns new :class:`Example` objects in the same order,
and records itself in ``meta["ops"]`` of every example it changed, so a training set says how it was
made. The same seed always gives the same output.
"""

from __future__ import annotations

import copy
import random

from .record import Example


def _mark(ex: Example, op: str, **info) -> Example:
    out = copy.deepcopy(ex)
    out.meta.setdefault("ops", []).append({"op": op, **info})
    return out


def swap_traces(examples: list[Example], seed: int = 0) -> list[Example]:
    """Give every example the steps of another example (a derangement), keeping its own answer.

    The multiset of traces and every answer are unchanged; with two or more distinct traces no
    example keeps its own trace.

    >>> exs = [Example(id=str(i), task="t", question=f"q{i}", steps=[f"s{i}"], answer=str(i)) for i in range(3)]
    >>> out = swap_traces(exs, seed=1)
    >>> sorted(s for e in out for s in e.steps), [e.answer for e in out]
    (['s0', 's1', 's2'], ['0', '1', '2'])
    >>> any(e.steps == o.steps for e, o in zip(exs, out))
    False
    """
    n = len(examples)
    if n < 2:
        return [_mark(e, "swap_traces", source=e.id) for e in examples]
    rng = random.Random(seed)
    perm = list(range(n))
    # Sattolo's algorithm: a uniformly random cyclic permutation, so no index maps to itself.
    for i in range(n - 1, 0, -1):
        j = rng.randrange(i)
        perm[i], perm[j] = perm[j], perm[i]
    out = []
    for i, e in enumerate(examples):
        src = examples[perm[i]]
        new = _mark(e, "swap_traces", source=src.id)
        new.steps = list(src.steps)
        out.append(new)
    return out


def drop_traces(examples: list[Example], seed: int = 0) -> list[Example]:
    """Answer only: remove every step, keep the answer.

    >>> drop_traces([Example(id="1", task="t", question="q", steps=["s"], answer="4")])[0].steps
    []
    """
    out = []
    for e in examples:
        new = _mark(e, "drop_traces")
        new.steps = []
        out.append(new)
    return out


def shuffle_steps(examples: list[Example], seed: int = 0) -> list[Example]:
    """Shuffle the order of each example's steps (same steps, same answer).

    >>> e = Example(id="1", task="t", question="q", steps=["a", "b", "c", "d"], answer="4")
    >>> sorted(shuffle_steps([e], seed=3)[0].steps)
    ['a', 'b', 'c', 'd']
    """
    rng = random.Random(seed)
    out = []
    for e in examples:
        new = _mark(e, "shuffle_steps")
        steps = list(e.steps)
        if len(set(steps)) > 1:
            orig = list(steps)
            while steps == orig:
                rng.shuffle(steps)
        new.steps = steps
        out.append(new)
    return out
