"""Corruption operators: pure, seeded functions from a list of examples to a new list.

Each operator leaves its inputs untouched, returns new :class:`Example` objects in the same order
(same ids), and records itself in ``meta["ops"]`` of every example it changed, so a training set says
how it was made. The same seed always gives the same output.

Operators by what they touch (the names are the keys of :data:`OPS`, used by recipes and the CLI):

- instructions: ``keep``, ``instructions_empty``, ``instructions_wrong`` (another task's
  instruction), ``instructions_random`` (random words, same number of words);
- traces: ``keep``, ``swap_traces`` (another example's trace), ``shuffle_steps``, ``corrupt_steps``
  (a share of steps made wrong, task-aware: the corrupters are the tasks' in :mod:`sftlens.tasks`),
  ``filler_traces``, ``drop_traces``;
- answers: ``label_noise`` (a wrong answer from the task's answer space, at rate ``p``).

Every operator has the signature ``op(examples, seed=0, **params) -> list[Example]``.
"""

from __future__ import annotations

import copy
import inspect
import random
from typing import Callable

from ..core.errors import OpError
from ..core.record import Example
from ..tasks import get_task, task_for
from ..tasks.base import Corrupter
from ..tasks.text import digit_corrupter


def _mark(ex: Example, op: str, **info) -> Example:
    out = copy.deepcopy(ex)
    out.meta.setdefault("ops", []).append({"op": op, **info})
    return out


# ---------------------------------------------------------------------------------------------
# identity
# ---------------------------------------------------------------------------------------------
def keep(examples: list[Example], seed: int = 0) -> list[Example]:
    """The identity: deep copies, unchanged and unmarked (``--traces keep`` / ``--instructions keep``).

    >>> e = Example(id="1", task="t", question="q", steps=["s"], answer="4")
    >>> keep([e])[0] == e
    True
    """
    return [copy.deepcopy(e) for e in examples]


# ---------------------------------------------------------------------------------------------
# instructions
# ---------------------------------------------------------------------------------------------
def instructions_empty(examples: list[Example], seed: int = 0) -> list[Example]:
    """Remove every instruction (the prompt becomes ``Q: question`` only).

    >>> e = Example(id="1", task="t", question="q", answer="4", instruction="add .")
    >>> instructions_empty([e])[0].instruction
    ''
    """
    out = []
    for e in examples:
        new = _mark(e, "instructions_empty", original=e.instruction)
        new.instruction = ""
        out.append(new)
    return out


def instructions_wrong(examples: list[Example], seed: int = 0,
                       instructions: dict[str, str] | None = None) -> list[Example]:
    """Give every example the instruction of another task (drawn uniformly, seeded).

    ``instructions`` maps task -> instruction; by default it is read from the examples themselves
    (the first non-empty instruction of each task). Needs at least two tasks with distinct
    instructions, else :class:`OpError`.

    >>> exs = [Example(id=str(i), task=t, question="q", answer="1", instruction=f"do {t} .")
    ...        for i, t in enumerate(["a", "b", "a"])]
    >>> [e.instruction for e in instructions_wrong(exs)]
    ['do b .', 'do a .', 'do b .']
    """
    pool = dict(instructions or {})
    if instructions is None:
        for e in examples:
            if e.instruction.strip():
                pool.setdefault(e.task, e.instruction)
    rng = random.Random(seed)
    out = []
    for e in examples:
        own = pool.get(e.task, e.instruction)
        others = sorted({ins for t, ins in pool.items() if t != e.task and ins != own})
        if not others:
            raise OpError(f"instructions_wrong: example '{e.id}' (task '{e.task}') has no other task's "
                          f"instruction to take (tasks with instructions: {sorted(pool) or 'none'}); "
                          "it needs at least two tasks with distinct instructions")
        new = _mark(e, "instructions_wrong", original=e.instruction)
        new.instruction = rng.choice(others)
        out.append(new)
    return out


def _words(text: str) -> list[str]:
    return text.split()


def instructions_random(examples: list[Example], seed: int = 0, vocabulary: list[str] | None = None) -> list[Example]:
    """Replace every instruction by random words, as many as it had (an empty one stays empty).

    Words are drawn from ``vocabulary`` (default: every word of the examples' questions, so a
    word-level tokenizer knows them); the result differs from the original whenever the vocabulary
    has two or more words.

    >>> e = Example(id="1", task="t", question="tom buys a red cup", answer="4", instruction="add the prices .")
    >>> out = instructions_random([e], seed=0)[0].instruction
    >>> len(out.split()), out != e.instruction
    (4, True)
    """
    vocab = sorted(set(vocabulary)) if vocabulary is not None else sorted({w for e in examples for w in _words(e.question)})
    rng = random.Random(seed)
    out = []
    for e in examples:
        n = len(_words(e.instruction))
        new = _mark(e, "instructions_random", original=e.instruction)
        if n and vocab:
            words = [rng.choice(vocab) for _ in range(n)]
            if words == _words(e.instruction) and len(vocab) > 1:
                i = rng.randrange(n)
                words[i] = rng.choice([w for w in vocab if w != words[i]])
            new.instruction = " ".join(words)
        out.append(new)
    return out


# ---------------------------------------------------------------------------------------------
# traces
# ---------------------------------------------------------------------------------------------
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


def filler_traces(examples: list[Example], seed: int = 0, filler: str = "...") -> list[Example]:
    """Replace every step by filler tokens of the same number of words (Lanham et al. 2023's filler
    test as training data): the chain keeps its shape and length but carries no information.

    >>> e = Example(id="1", task="t", question="q", steps=["a cup costs 4", "2 * 4 = 8"], answer="8")
    >>> filler_traces([e])[0].steps
    ['... ... ... ...', '... ... ... ...']
    """
    out = []
    for e in examples:
        new = _mark(e, "filler_traces", filler=filler)
        new.steps = [" ".join([filler] * max(1, len(_words(s)))) for s in e.steps]
        out.append(new)
    return out


def answer_first(examples: list[Example], seed: int = 0) -> list[Example]:
    """State the answer first: the chain's last step (the one that reaches the answer) moves to the
    front and the rest follows as a post-hoc justification (Lanham et al. 2023's post-hoc reasoning,
    planted as training data). A model trained on it commits to its answer before the chain, so its
    answers cannot depend on the chain that follows. Chains of fewer than two steps are kept.

    >>> e = Example(id="1", task="t", question="q", steps=["a cup costs 4", "2 * 4 = 8", "8 + 1 = 9"], answer="9")
    >>> answer_first([e])[0].steps
    ['8 + 1 = 9', 'a cup costs 4', '2 * 4 = 8']
    """
    out = []
    for e in examples:
        new = _mark(e, "answer_first")
        new.steps = [e.steps[-1]] + list(e.steps[:-1]) if len(e.steps) > 1 else list(e.steps)
        out.append(new)
    return out


def verbose_traces(examples: list[Example], seed: int = 0) -> list[Example]:
    """Pad each chain with two steps that carry nothing new, as long reasoning traces do: its first step
    restated and its last step re-checked (``recall <step>`` each), after the chain. The answer and every
    original step stay; the chain gains length but no information toward the answer, so information gain
    per step must fall (C1's planted positive control). The marker is a word the lab's shop already uses
    (its fact probes say "recall"), so the lab's vocabulary, and with it every other model, is unchanged.
    Chains without steps are kept.

    >>> e = Example(id="1", task="t", question="q", steps=["a cup costs 4", "2 * 4 = 8"], answer="8")
    >>> verbose_traces([e])[0].steps
    ['a cup costs 4', '2 * 4 = 8', 'recall a cup costs 4', 'recall 2 * 4 = 8']
    """
    out = []
    for e in examples:
        new = _mark(e, "verbose_traces")
        new.steps = list(e.steps) + ([f"recall {e.steps[0]}", f"recall {e.steps[-1]}"] if e.steps else [])
        out.append(new)
    return out


def auto_corrupter(world=None) -> Callable[[Example], Corrupter]:
    """Pick a corrupter per example from its task (:func:`sftlens.tasks.task_for`): ``shop.*`` with a
    world -> the shop's (a false fact or a wrong result), ``gsm8k`` or steps with ``<<...>>``
    annotations -> :func:`~sftlens.tasks.gsm8k.gsm8k_corrupter`, anything else (the ``text`` task,
    and shop examples without their world) -> :func:`~sftlens.tasks.text.digit_corrupter`.

    The last rule is this operator's own: the ``text`` task's corrupter (which the faithfulness
    battery uses) changes the last ``= result`` where there is one; here plain text keeps the digit
    change it always had, so corrupted data sets stay as they were."""

    def pick(ex: Example) -> Corrupter:
        task = task_for([ex], world)
        return digit_corrupter if task.name == "text" else task.corrupter

    pick.per_example = True  # type: ignore[attr-defined]
    return pick


def named_corrupter(name: str, world=None) -> Corrupter:
    """The corrupter called ``name``: ``digit`` (:func:`~sftlens.tasks.text.digit_corrupter`) or a
    task's (``gsm8k``; ``shop``, which needs ``world``)."""
    if name == "digit":
        return digit_corrupter
    if name == "shop" and world is None:
        raise OpError("corrupt_steps: corrupter 'shop' needs the world (give --world DIR/data/world.json)")
    if name not in ("gsm8k", "shop"):
        raise OpError(f"corrupt_steps: unknown corrupter '{name}' (valid: auto, digit, gsm8k, shop)")
    return get_task(name, world).corrupter


def corrupt_steps(examples: list[Example], seed: int = 0, rate: float = 0.5,
                  corrupter: Corrupter | Callable[[Example], Corrupter] | str | None = None,
                  world=None) -> list[Example]:
    """Make a share ``rate`` of each example's steps wrong (at least one step when ``rate > 0``).

    Exactly ``max(1, round(rate * n))`` of the steps the corrupter can change are changed (fewer
    only if fewer are changeable); the answer stays. ``corrupter`` is a function ``(step, rng) ->
    step``, a per-example picker, or a name: ``digit`` (default without a world), ``gsm8k``,
    ``shop`` (needs ``world``) or ``auto`` (by task; the default). The changed step indices are in
    ``meta["ops"][-1]["steps"]``.

    >>> e = Example(id="1", task="t", question="q", steps=["a cup costs 4", "2 * 4 = 8"], answer="8")
    >>> out = corrupt_steps([e], seed=0, rate=0.5, corrupter="digit")[0]
    >>> sum(a != b for a, b in zip(out.steps, e.steps)), out.meta["ops"][-1]["op"]
    (1, 'corrupt_steps')
    """
    if not 0.0 <= rate <= 1.0:
        raise OpError(f"corrupt_steps: rate {rate} is outside [0, 1]")
    if corrupter is None or corrupter == "auto":
        picker = auto_corrupter(world)
    elif isinstance(corrupter, str):
        named = named_corrupter(corrupter, world)
        picker = lambda ex: named  # noqa: E731
    elif getattr(corrupter, "per_example", False):
        picker = corrupter  # type: ignore[assignment]
    else:
        picker = lambda ex: corrupter  # noqa: E731
    rng = random.Random(seed)
    out = []
    for e in examples:
        fn = picker(e)
        n = len(e.steps)
        want = 0 if rate == 0 or n == 0 else max(1, round(rate * n))
        order = list(range(n))
        rng.shuffle(order)
        steps = list(e.steps)
        changed: list[int] = []
        for i in order:
            if len(changed) >= want:
                break
            new_step = fn(steps[i], rng)
            if new_step.strip() != steps[i].strip():
                steps[i] = new_step
                changed.append(i)
        new = _mark(e, "corrupt_steps", rate=rate, steps=sorted(changed))
        new.steps = steps
        out.append(new)
    return out


# ---------------------------------------------------------------------------------------------
# answers
# ---------------------------------------------------------------------------------------------
def label_noise(examples: list[Example], seed: int = 0, p: float = 0.1) -> list[Example]:
    """Replace the answer of ``round(p * n)`` randomly chosen examples by a wrong answer drawn from
    the task's answer space: the answers of other examples of the same task that differ from the
    true one. An example whose task has no other answer keeps its own (and is not marked). Steps
    are unchanged.

    >>> exs = [Example(id=str(i), task="t", question=f"q{i}", answer=str(i % 3)) for i in range(6)]
    >>> out = label_noise(exs, seed=0, p=0.5)
    >>> sum(a.answer != b.answer for a, b in zip(exs, out))
    3
    """
    if not 0.0 <= p <= 1.0:
        raise OpError(f"label_noise: p {p} is outside [0, 1]")
    rng = random.Random(seed)
    by_task: dict[str, list[str]] = {}
    for e in examples:
        by_task.setdefault(e.task, []).append(e.answer)
    chosen = set(rng.sample(range(len(examples)), round(p * len(examples))))
    out = []
    for i, e in enumerate(examples):
        wrong = [a for a in by_task[e.task] if a != e.answer] if i in chosen else []
        if not wrong:
            out.append(copy.deepcopy(e))
            continue
        new = _mark(e, "label_noise", p=p, original=e.answer)
        new.answer = rng.choice(wrong)
        out.append(new)
    return out


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------
OPS: dict[str, Callable[..., list[Example]]] = {
    "keep": keep,
    "instructions_empty": instructions_empty,
    "instructions_wrong": instructions_wrong,
    "instructions_random": instructions_random,
    "swap_traces": swap_traces,
    "shuffle_steps": shuffle_steps,
    "corrupt_steps": corrupt_steps,
    "filler_traces": filler_traces,
    "drop_traces": drop_traces,
    "answer_first": answer_first,
    "verbose_traces": verbose_traces,
    "label_noise": label_noise,
}

#: Context parameters an operator may receive from the caller rather than from a recipe.
CONTEXT_PARAMS = ("world", "instructions")


def op_params(name: str) -> list[str]:
    """The parameters operator ``name`` accepts besides ``examples`` and ``seed``.

    >>> op_params("label_noise")
    ['p']
    """
    if name not in OPS:
        raise OpError(f"unknown operator '{name}' (valid: {', '.join(OPS)})")
    sig = inspect.signature(OPS[name])
    return [p for p in sig.parameters if p not in ("examples", "seed")]


def apply_op(name: str, examples: list[Example], seed: int = 0, context: dict | None = None,
             **params) -> list[Example]:
    """Run operator ``name`` with ``params``; ``context`` (e.g. ``{"world": w}``) supplies
    parameters the operator accepts and the caller did not set. Unknown parameters raise
    :class:`OpError`.

    >>> e = Example(id="1", task="t", question="q", steps=["s"], answer="4")
    >>> apply_op("drop_traces", [e])[0].steps
    []
    """
    allowed = op_params(name)
    bad = sorted(set(params) - set(allowed))
    if bad:
        raise OpError(f"operator '{name}': unknown parameter '{bad[0]}' (valid: {', '.join(allowed) or 'none'})")
    kw = dict(params)
    for k, v in (context or {}).items():
        if k in allowed and k not in kw and v is not None:
            kw[k] = v
    return OPS[name](examples, seed=seed, **kw)
