"""Packing: items with weights and values put into bins with capacities, answered as JSON (claim C5).

A constrained-optimisation task after Bernier et al. 2026 ("Can Large Language Models Reason and
Optimize Under Constraints?", arXiv 2603.23004), small enough that brute force is exact: a few
items (``name weight value``) and bins (capacities); pack each item into at most one bin, no bin
over its capacity, for the most total value (the multiple knapsack problem). The answer is one
line of JSON, one list of item names per bin in the question's order::

    pack the items : most value , no bin over its capacity .
    Q: bins 9 6 ; items "a" 4 7 , "b" 5 3 , "c" 6 8 , "d" 2 2
    A: {"bins":[["a","b"],["c"]]}

Item names are letters (no digits: answers compare as text). :func:`check_answer` checks four
levels, each requiring the one before: **parses** as JSON; **schema-valid** (:data:`SCHEMA`, by
``jsonschema``); **feasible** (one list per bin, known items, none twice, no bin over capacity — each
failure named); **optimal** (value equals the exact solver's, :func:`solve`). Tight instances (the
default) weigh more than the bins hold and have one optimal packing (exact match is optimality);
``loose=True`` makes every bin hold all the items: any answer of the right form is feasible.

The base model's pretraining problems have one bin and answer in another JSON shape
(``{"take":["a","c"]}``): it brings JSON and the domain, as a pretrained model does, but not this
task's schema, which SFT must teach. :func:`with_answers` writes the SFT conditions' answers:
optimal, format-perfect but infeasible (every item packed: more than the bins hold), feasible but
suboptimal (one packed item left out). Nothing here imports a model.
"""

from __future__ import annotations

import functools
import itertools
import json
import random
import re
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ..core.record import Example
from .base import Splits, StepCheck, TaskError, draw_disjoint, draw_distinct
from .jsonout import answer_text, check_json, validator_for
from .registry import register_task
from .text import digit_corrupter

INSTRUCTION = "pack the items : most value , no bin over its capacity ."
TASK = "packing.json"
NAMES = "abcdefgh"
LEVELS = ("json_parses", "schema_valid", "feasible", "optimal")
#: The answer's shape, task-wide (the instance's own constraints are feasibility, not schema).
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "packing answer: one list of item names per bin",
    "type": "object",
    "properties": {"bins": {"type": "array", "items": {"type": "array", "items": {"type": "string",
                                                                                     "pattern": "^[a-z]+$"}}}},
    "required": ["bins"],
    "additionalProperties": False,
}
_Q_RE = re.compile(r'^bins ((?:\d+ ?)+); items (.+)$')
_ITEM_RE = re.compile(r'^"([a-z]+)" (\d+) (\d+)$')


@dataclass(frozen=True)
class Instance:
    """One problem: bin capacities, item names, weights and values (in question order)."""

    capacities: tuple[int, ...]
    names: tuple[str, ...]
    weights: tuple[int, ...]
    values: tuple[int, ...]

    def question(self) -> str:
        """The question text.

        >>> Instance((9, 6), ("a", "b"), (4, 5), (7, 3)).question()
        'bins 9 6 ; items "a" 4 7 , "b" 5 3'
        """
        items = " , ".join(f'"{n}" {w} {v}' for n, w, v in zip(self.names, self.weights, self.values))
        return f"bins {' '.join(map(str, self.capacities))} ; items {items}"

    def meta(self) -> dict:
        return {"capacities": list(self.capacities),
                "items": [[n, w, v] for n, w, v in zip(self.names, self.weights, self.values)]}


def parse_question(question: str) -> Instance:
    """The instance a question states; ``ValueError`` naming what does not fit the format.

    >>> parse_question('bins 9 6 ; items "a" 4 7 , "b" 5 3').weights
    (4, 5)
    """
    m = _Q_RE.match(question.strip())
    if not m:
        raise ValueError(f"question {question[:60]!r}: expected 'bins C ... ; items \"name\" weight value , ...'")
    items = [_ITEM_RE.match(s.strip()) for s in m.group(2).split(" , ")]
    if not all(items):
        raise ValueError(f"question {question[:60]!r}: an item is not '\"name\" weight value'")
    return Instance(tuple(int(c) for c in m.group(1).split()), tuple(i.group(1) for i in items),
                    tuple(int(i.group(2)) for i in items), tuple(int(i.group(3)) for i in items))


def instance_of(x) -> Instance:
    """The instance of an :class:`Instance`, an example, its meta or its question."""
    if isinstance(x, Instance):
        return x
    if isinstance(x, Example):
        return instance_of(x.meta) if "items" in x.meta else parse_question(x.question)
    if isinstance(x, dict) and "items" in x and "capacities" in x:
        names, weights, values = zip(*x["items"]) if x["items"] else ((), (), ())
        return Instance(tuple(x["capacities"]), tuple(names), tuple(weights), tuple(values))
    if isinstance(x, str):
        return parse_question(x)
    raise ValueError(f"cannot read a packing instance from {type(x).__name__}")


# ---- the exact solver ------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def assignments(n_items: int, n_bins: int) -> np.ndarray:
    """Every assignment of ``n_items`` items to ``n_bins`` bins or none, shape ``((n_bins+1)^n_items,
    n_items)``: 0 = not packed, ``j`` = bin ``j`` (1-based), in ``itertools.product`` order."""
    if (n_bins + 1) ** n_items > 2_000_000:
        raise ValueError(f"{n_items} items in {n_bins} bins: too many assignments for brute force")
    return np.array(list(itertools.product(range(n_bins + 1), repeat=n_items)), dtype=np.int8).reshape(-1, n_items)


@dataclass(frozen=True)
class Solution:
    """The optimum value, the reference assignment (the most even of the optimal ones: least sum of
    squared bin loads, then the first) and how many assignments reach the optimum."""

    value: int
    assignment: tuple[int, ...]
    n_optimal: int


def solve(inst: Instance) -> Solution:
    """Exact optimum by brute force over every assignment (numpy, vectorised).

    >>> solve(Instance((9, 6), ("a", "b", "c", "d"), (4, 5, 6, 2), (7, 3, 8, 2)))
    Solution(value=18, assignment=(1, 1, 2, 0), n_optimal=1)
    """
    a = assignments(len(inst.names), len(inst.capacities))
    w, v = np.asarray(inst.weights, np.int64), np.asarray(inst.values, np.int64)
    loads = np.stack([(a == j + 1).astype(np.int64) @ w for j in range(len(inst.capacities))], axis=1)
    ok = (loads <= np.asarray(inst.capacities)).all(axis=1)
    vals = (a > 0).astype(np.int64) @ v
    best = int(vals[ok].max())  # packing nothing is always feasible
    opt = np.flatnonzero(ok & (vals == best))
    ref = opt[int(np.argmin((loads[opt] ** 2).sum(axis=1)))]
    return Solution(best, tuple(int(x) for x in a[ref]), int(opt.size))


def bins_of(inst: Instance, assignment) -> list[list[str]]:
    """An assignment as lists of item names per bin (question order within a bin)."""
    return [[n for n, a in zip(inst.names, assignment) if a == j + 1] for j in range(len(inst.capacities))]


def answer_json(bins, key: str = "bins") -> str:
    """The canonical one-line JSON answer.

    >>> answer_json([["a", "b"], ["c"]])
    '{"bins":[["a","b"],["c"]]}'
    """
    return json.dumps({key: bins}, separators=(",", ":"))


# ---- the checker -----------------------------------------------------------------------------
@dataclass
class OutputCheck:
    """The four levels of one output (each requires the one before), its value when feasible, and
    why the first level not reached failed (every failed constraint, for feasibility)."""

    parses: bool = False
    schema_valid: bool = False
    feasible: bool = False
    optimal: bool = False
    value: int | None = None
    failed: list[str] = field(default_factory=list)

    def levels(self) -> dict[str, float]:
        return dict(zip(LEVELS, map(float, (self.parses, self.schema_valid, self.feasible, self.optimal))))


@functools.lru_cache(maxsize=1)
def schema_validator():
    return validator_for(SCHEMA, "packing.SCHEMA")


def constraint_failures(inst: Instance, bins: list[list[str]]) -> list[str]:
    """Every constraint a schema-valid packing breaks (empty: feasible).

    >>> constraint_failures(Instance((9, 6), ("a", "b", "c"), (4, 5, 6), (1, 1, 1)), [["a", "b", "x"], ["a", "c"]])
    ["unknown item 'x' in bin 1", "item 'a' packed twice (bins 1 and 2)", 'bin 2 holds weight 10 > capacity 6']
    """
    out = [f"bins: {len(bins)} lists for {len(inst.capacities)} bins"] if len(bins) != len(inst.capacities) else []
    weight = dict(zip(inst.names, inst.weights))
    seen: dict[str, int] = {}
    for j, b in enumerate(bins, 1):
        for name in b:
            if name not in weight:
                out.append(f"unknown item '{name}' in bin {j}")
            elif name in seen:
                out.append(f"item '{name}' packed twice (bins {seen[name]} and {j})")
            else:
                seen[name] = j
    for j, (b, cap) in enumerate(zip(bins, inst.capacities), 1):
        load = sum(weight.get(n, 0) for n in b)
        if load > cap:
            out.append(f"bin {j} holds weight {load} > capacity {cap}")
    return out


def check_answer(inst: Instance, text: str, optimum: int | None = None) -> OutputCheck:
    """The four levels of an answer ``text`` (``optimum``: the solver's value, computed when ``None``).

    >>> inst = Instance((9, 6), ("a", "b", "c", "d"), (4, 5, 6, 2), (7, 3, 8, 2))
    >>> [check_answer(inst, t).levels()["optimal"] for t in ('{"bins":[["a","b"],["c"]]}', '{"bins":[["a"],["c"]]}')]
    [1.0, 0.0]
    >>> check_answer(inst, '{"bins":[["a","b","c"],[]]}').failed
    ['bin 1 holds weight 15 > capacity 9']
    """
    j = check_json(text, schema_validator())
    if not j.schema_valid:
        return OutputCheck(parses=j.parses, failed=j.failed)
    bins = j.value["bins"]
    failed = constraint_failures(inst, bins)
    if failed:
        return OutputCheck(True, True, failed=failed)
    value = sum(v for n, v in zip(inst.names, inst.values) if any(n in b for b in bins))
    best = solve(inst).value if optimum is None else optimum
    return OutputCheck(True, True, True, value == best, value,
                       [] if value == best else [f"value {value} < optimum {best}"])


def no_steps(steps: list[str]) -> list[StepCheck]:
    """A packing answer has no steps: any line before it is ``other``, unchecked."""
    return [StepCheck("other", None, False, "a packing answer has no steps to check") for _ in steps]


class PackingChecker:
    """The verifier of one example: no steps to check; :meth:`check_output` adds the four levels
    (and ``output_check``, why the first level not reached failed) to the example's metric row."""

    def __init__(self, inst: Instance, optimum: int | None = None):
        self.instance, self.optimum = inst, optimum

    def verify(self, steps: list[str], answer: str | None = None) -> list[StepCheck]:
        return no_steps(steps)

    def check(self, completion: str) -> OutputCheck:
        return check_answer(self.instance, answer_text(completion), self.optimum)

    def check_output(self, completion: str) -> dict:
        c = self.check(completion)
        return {**c.levels(), "output_check": "; ".join(c.failed) or "optimal"}


# ---- the world -----------------------------------------------------------------------------------
@dataclass
class PackingConfig:
    """Knobs of the world: ``items`` per problem (a range), ``n_bins``, weights, values and capacities
    drawn uniformly from their ranges; ``loose``: each bin holds every item at once (capacity at
    least the total weight), else the items weigh more than all bins hold; ``unique_optimum`` keeps
    only tight instances with one optimal packing; the base pretrains on ``pretrain_items`` items in
    one bin; the ``more_items`` variant has that many items."""

    seed: int = 0
    items: tuple[int, int] = (4, 6)
    n_bins: int = 2
    weights: tuple[int, int] = (1, 9)
    values: tuple[int, int] = (1, 9)
    capacities: tuple[int, int] = (4, 14)
    loose: bool = False
    unique_optimum: bool = True
    pretrain_items: tuple[int, int] = (3, 5)
    more_items: int = 7

    def __post_init__(self):
        for name in ("items", "weights", "values", "capacities", "pretrain_items"):
            v = getattr(self, name)
            if not (isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(x, int) for x in v)
                    and 1 <= v[0] <= v[1]):
                raise ValueError(f"{name}={v!r}: must be a pair (low, high) of integers, 1 <= low <= high")
            setattr(self, name, tuple(v))
        top = max(self.items[1], self.pretrain_items[1], self.more_items)
        if top > len(NAMES) or not 1 <= self.n_bins <= 3:
            raise ValueError(f"items up to {top} and n_bins={self.n_bins}: at most {len(NAMES)} items and 1-3 bins "
                             "(brute force stays exact and quick)")
        if self.weights[1] > 9 or self.values[1] > 9:
            raise ValueError("weights and values: at most 9 (one digit each)")
        if self.loose and self.unique_optimum:
            raise ValueError("loose=True: every packing of all items is optimal; set unique_optimum=False")


class PackingWorld:
    """A seeded generator of packing problems plus the checker (the world holds no facts)."""

    def __init__(self, config: PackingConfig | None = None):
        self.config = config or PackingConfig()

    def sample(self, rng: random.Random, n_items: int, n_bins: int, max_tries: int = 10_000) -> tuple[Instance, Solution]:
        """One instance (tight or loose as configured) whose optimum packs something."""
        c = self.config
        for _ in range(max_tries):
            w = tuple(rng.randint(*c.weights) for _ in range(n_items))
            caps = tuple(sum(w) + rng.randint(0, 9) if c.loose else rng.randint(*c.capacities) for _ in range(n_bins))
            if not c.loose and sum(w) <= sum(caps):
                continue
            inst = Instance(caps, tuple(NAMES[:n_items]), w, tuple(rng.randint(*c.values) for _ in range(n_items)))
            sol = solve(inst)
            if sol.value > 0 and (not c.unique_optimum or sol.n_optimal == 1):
                return inst, sol
        raise RuntimeError(f"no {n_items}-item, {n_bins}-bin instance in {max_tries} tries; widen the ranges")

    def to_example(self, inst: Instance, sol: Solution, id: str, key: str = "bins", **meta) -> Example:
        bins = bins_of(inst, sol.assignment)
        return Example(id=id, task=TASK, instruction=INSTRUCTION, question=inst.question(),
                       answer=answer_json(bins if key == "bins" else bins[0], key),
                       meta={**inst.meta(), "optimum": sol.value, "assignment": list(sol.assignment),
                             "answer_kind": "optimal", **meta})

    def problems(self, n: int, seed: int, prefix: str = "p", exclude: set[str] | None = None,
                 items: tuple[int, int] | None = None, n_bins: int | None = None, key: str = "bins",
                 **meta) -> list[Example]:
        """``n`` distinct problems (by question) with their optimal answers; ``items`` and ``n_bins``
        default to the config's; ``key="take"`` writes the one-bin pretraining answer shape."""
        lo, hi = items or self.config.items
        bins = n_bins or self.config.n_bins
        rng = random.Random(seed)

        def draw(i: int) -> Example:
            return self.to_example(*self.sample(rng, rng.randint(lo, hi), bins), id=f"{prefix}{i:05d}", key=key, **meta)

        return draw_distinct(n, draw, set(exclude or ()), 50 * n + 1000,
                             lambda k: f"only {k} distinct packing problems of {n} could be drawn; ask for fewer")

    def variants(self, test: list[Example], n: int, seed: int, exclude: set[str] | None = None) -> dict[str, list[Example]]:
        """``more_items``: problems with ``config.more_items`` items (``test`` is not used)."""
        k = self.config.more_items
        return {"more_items": self.problems(n, seed + 1, prefix="more", exclude=exclude, items=(k, k),
                                            variant="more_items")}

    def fact_probes(self) -> list[Example]:  # no facts to recall, nothing to pretrain but the problems
        return []

    fact_corpus = fact_probes

    def vocabulary(self) -> list[str]:
        """Every word of this world's texts (prompt and completion).

        >>> PackingWorld().vocabulary()[:6]
        ['"', ',', '.', '0', '1', '2']
        """
        words = set(INSTRUCTION.split()) | {"bins", "items", "take", ";", ",", '"', "{", "}", "[", "]", ":", "Q:", "A:"}
        return sorted(words | set(NAMES) | {str(d) for d in range(10)})

    def tokenizer_corpus(self) -> list[str]:
        """Every piece of :meth:`vocabulary` at a line's start and after a space (as the maze world)."""
        words = self.vocabulary()
        return words + ["".join(" " + w for w in words)]

    def verify(self, steps: list[str], answer: str | None = None) -> list[StepCheck]:
        """No steps to check (:meth:`for_example` gives an example's output checker)."""
        return no_steps(steps)

    def for_example(self, example: Example) -> PackingChecker:
        """The example's checker (:func:`sftlens.evaluate.score_samples` asks for it)."""
        return PackingChecker(instance_of(example), example.meta.get("optimum"))

    def to_dict(self) -> dict:
        return {"world": "packing", "config": asdict(self.config)}

    @classmethod
    def from_dict(cls, d: dict) -> PackingWorld:
        """Rebuild from :meth:`to_dict`; ``ValueError`` naming a bad field."""
        if not isinstance(d, dict) or not isinstance(d.get("config"), dict):
            raise ValueError("field 'config': missing (expected PackingWorld.to_dict() output)")
        known = PackingConfig.__dataclass_fields__
        try:
            return cls(PackingConfig(**{k: tuple(v) if isinstance(v, list) else v
                                        for k, v in d["config"].items() if k in known}))
        except TypeError as e:
            raise ValueError(f"field 'config': {e}") from None


# ---- the SFT conditions' answers ---------------------------------------------------------------
def infeasible_assignment(inst: Instance, sol: Solution, rng: random.Random) -> tuple[int, ...]:
    """Form without content: the optimum plus every item it leaves out, each in a random bin (a tight
    instance weighs more than its bins hold, so some bin overflows)."""
    a = tuple(x or rng.randint(1, len(inst.capacities)) for x in sol.assignment)
    if not constraint_failures(inst, bins_of(inst, a)):
        raise ValueError(f"{inst.question()!r}: every item fits, no infeasible packing by overfilling (a loose instance)")
    return a


def suboptimal_assignment(inst: Instance, sol: Solution, rng: random.Random) -> tuple[int, ...]:
    """Feasible but suboptimal: the optimum with one packed item left out (values are at least 1)."""
    i = rng.choice([k for k, x in enumerate(sol.assignment) if x])
    return tuple(0 if k == i else x for k, x in enumerate(sol.assignment))


def with_answers(examples: list[Example], kind: str, seed: int) -> list[Example]:
    """The examples with ``optimal``, ``infeasible`` or ``suboptimal`` answers (``meta["answer_kind"]``).

    >>> ex = PackingWorld().problems(2, seed=0)
    >>> [check_answer(instance_of(e), e.answer).feasible for e in with_answers(ex, "infeasible", seed=0)]
    [False, False]
    """
    make = {"optimal": None, "infeasible": infeasible_assignment, "suboptimal": suboptimal_assignment}
    if kind not in make:
        raise ValueError(f"kind '{kind}': valid are {', '.join(make)}")
    rng, out = random.Random(seed), []
    for e in examples:
        inst = instance_of(e)
        sol = Solution(e.meta["optimum"], tuple(e.meta["assignment"]), 1) if "assignment" in e.meta else solve(inst)
        a = sol.assignment if make[kind] is None else make[kind](inst, sol, rng)
        out.append(replace(e, answer=answer_json(bins_of(inst, a)), meta={**e.meta, "answer_kind": kind}))
    return out


@register_task("packing")
class PackingTask:
    """The packing world as a task. Claims ``packing.*`` examples (each carries its instance); the
    verifier is the world, whose :meth:`~PackingWorld.for_example` checks an example's output at the
    four levels. No steps to corrupt or reword (the digit corrupter and the identity stand in)."""

    name = "packing"
    output_levels = LEVELS  # its verifier's check_output gives these per example (sftlens audit --checker packing)

    def __init__(self, world=None):
        self.world = world if isinstance(world, PackingWorld) else None
        self.verifier = self.world if self.world is not None else PackingWorld()
        self.corrupter = digit_corrupter
        self.paraphraser = lambda step, rng=None: step

    @classmethod
    def claims(cls, example: Example, world=None) -> bool:
        return example.task.startswith("packing.")

    def variants(self, test: list[Example], n: int, seed: int,
                 exclude: set[str] | None = None) -> dict[str, list[Example]]:
        if self.world is None:
            raise TaskError("task 'packing' builds variants from its world's config; none was given")
        return self.world.variants(test, n, seed, exclude=exclude)


def make_packing_splits(world: PackingWorld, n_pretrain: int, n_train: int, n_test: int, n_variant: int,
                        seed: int) -> Splits:
    """Disjoint (by question) pretraining problems (one bin, the ``take`` answer shape), SFT train,
    test and variant sets; no fact probes. Same seed offsets as the other worlds.

    >>> sp = make_packing_splits(PackingWorld(), 3, 4, 2, 1, seed=0)
    >>> [len(sp.pretrain_problems), len(sp.train), len(sp.test), sorted(sp.variants), sp.pretrain_problems[0].answer[:9]]
    [3, 4, 2, ['more_items'], '{"take":[']
    """
    test, variants, train, seen = draw_disjoint(world, n_train, n_test, n_variant, seed)
    pre = world.problems(n_pretrain, seed + 19, prefix="pre", exclude=seen, items=world.config.pretrain_items,
                         n_bins=1, key="take", split="pretrain")
    return Splits(pretrain_problems=pre, train=train, test=test, variants=variants, facts=[])


__all__ = ["INSTRUCTION", "Instance", "LEVELS", "OutputCheck", "PackingChecker", "PackingConfig", "PackingTask",
           "PackingWorld", "SCHEMA", "Solution", "TASK", "answer_json", "assignments", "bins_of", "check_answer",
           "constraint_failures", "infeasible_assignment", "instance_of", "make_packing_splits", "parse_question",
           "solve", "suboptimal_assignment", "with_answers"]
