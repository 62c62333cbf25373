"""The shop: a synthetic world whose every reasoning step can be checked.

A seeded fact table gives each item a price and a weight. Word problems ask for the total price of
a purchase (``shop.price``) or the total weight of a load (``shop.weight``). Solutions mix
*knowledge steps* that recall a fact and *arithmetic steps*::

    compute the total price .
    Q: tom buys 3 lamp and 2 cup . how much does tom pay ?
    a lamp costs 7
    3 * 7 = 21
    a cup costs 4
    2 * 4 = 8
    21 + 8 = 29
    A: 29

:meth:`ShopWorld.verify` labels and checks every step; :meth:`ShopWorld.variants` builds the
out-of-distribution test sets of claim C8 (longer chains, one element removed, unseen item
combinations, unseen quantity ranges); :meth:`ShopWorld.fact_probes` asks one question per fact.
:class:`ShopTask` is the registered task (``shop``): the world's verifier, :func:`corrupt_step`,
:func:`shop_paraphrase` (other fact wording, swapped operands) and the variants. Nothing here imports a model.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import random
import re
from dataclasses import asdict, dataclass

from ..core.record import Example, RecordError
from .base import Splits, StepCheck, TaskError, draw_disjoint, draw_distinct
from .registry import register_task
from .text import digit_corrupter

ITEM_NAMES = [
    "lamp", "cup", "book", "pen", "hat", "shoe", "bag", "sock", "fork", "bowl", "kite", "drum",
    "rope", "soap", "comb", "fan", "jar", "key", "map", "mug", "nail", "pot", "ring", "saw",
    "tent", "vase", "bell", "coat", "desk", "doll", "egg", "flag", "glove", "horn", "lock", "mask",
]
PEOPLE = ["tom", "ann", "bob", "eve", "sam", "kim", "lea", "max"]

TASKS = {
    "shop.price": {
        "attr": "price",
        "instruction": "compute the total price .",
        "verb": "buys",
        "ask": "how much does {p} pay ?",
        "fact": "a {item} costs {v}",
        "probe": "how much does a {item} cost ?",
    },
    "shop.weight": {
        "attr": "weight",
        "instruction": "compute the total weight .",
        "verb": "carries",
        "ask": "how heavy is the load of {p} ?",
        "fact": "a {item} weighs {v}",
        "probe": "how heavy is a {item} ?",
    },
}
# Alternative wordings with identical meaning (paraphrases; the verifier accepts both, and
# ShopWorld.fact_corpus puts both in the pretraining text).
PARAPHRASE = {"costs": "is priced at", "weighs": "has a weight of"}

_FACT_RE = re.compile(r"^an? (\w+) (costs|weighs|is priced at|has a weight of) (\d+)$")
_ARITH_RE = re.compile(r"^(-?\d+) ([*+-]) (-?\d+) = (-?\d+)$")
_ATTR_OF_VERB = {"costs": "price", "is priced at": "price", "weighs": "weight", "has a weight of": "weight"}


@dataclass
class ShopConfig:
    """Knobs of the world. Quantities and items-per-problem control difficulty."""

    seed: int = 0
    n_items: int = 24
    value_range: tuple[int, int] = (1, 9)
    qty_range: tuple[int, int] = (1, 5)          # quantities seen in training
    unseen_qty_range: tuple[int, int] = (6, 9)   # the "unseen number range" variant
    items_per_problem: tuple[int, int] = (2, 3)  # the SFT target distribution
    pretrain_items: tuple[int, int] = (1, 1)     # simpler worked problems the base sees (no variant set's counts)
    long_items: int = 4                          # the "longer chains" variant
    heldout_pair_frac: float = 0.12              # item pairs never seen together in training


@dataclass
class Problem:
    task: str
    person: str
    items: list[tuple[str, int]]  # (item, quantity)


class ShopWorld:
    """A seeded fact table plus problem generators and a step verifier."""

    def __init__(self, config: ShopConfig | None = None):
        self.config = config or ShopConfig()
        rng = random.Random(self.config.seed)
        if self.config.n_items > len(ITEM_NAMES):
            raise ValueError(f"n_items={self.config.n_items}: at most {len(ITEM_NAMES)} items exist")
        names = rng.sample(ITEM_NAMES, self.config.n_items)
        lo, hi = self.config.value_range
        self.facts: dict[str, dict[str, int]] = {
            n: {"price": rng.randint(lo, hi), "weight": rng.randint(lo, hi)} for n in names
        }
        self.items = names
        pairs = list(itertools.combinations(sorted(names), 2))
        rng.shuffle(pairs)
        k = int(round(len(pairs) * self.config.heldout_pair_frac))
        self.heldout_pairs: set[tuple[str, str]] = set(pairs[:k])

    # ---- rendering -------------------------------------------------------------------------
    def fact_sentence(self, item: str, attr: str, value: int | None = None, paraphrase: bool = False) -> str:
        """``a lamp costs 7`` (or its paraphrase)."""
        task = "shop.price" if attr == "price" else "shop.weight"
        v = self.facts[item][attr] if value is None else value
        s = TASKS[task]["fact"].format(item=item, v=v)
        if paraphrase:
            for a, b in PARAPHRASE.items():
                s = s.replace(f" {a} ", f" {b} ")
        return s

    def solve(self, p: Problem, paraphrase: bool = False) -> tuple[list[str], int]:
        """The canonical worked solution of a problem: steps and numeric answer."""
        attr = TASKS[p.task]["attr"]
        steps: list[str] = []
        products: list[int] = []
        for item, q in p.items:
            v = self.facts[item][attr]
            steps.append(self.fact_sentence(item, attr, paraphrase=paraphrase))
            steps.append(f"{q} * {v} = {q * v}")
            products.append(q * v)
        total = products[0]
        for x in products[1:]:
            steps.append(f"{total} + {x} = {total + x}")
            total += x
        return steps, total

    def to_example(self, p: Problem, id: str, **meta) -> Example:
        """Render a problem as an :class:`Example` with its canonical solution."""
        spec = TASKS[p.task]
        parts = [f"{q} {item}" for item, q in p.items]
        listing = parts[0] if len(parts) == 1 else " , ".join(parts[:-1]) + " and " + parts[-1]
        question = f"{p.person} {spec['verb']} {listing} . " + spec["ask"].format(p=p.person)
        steps, ans = self.solve(p)
        return Example(id=id, task=p.task, instruction=spec["instruction"], question=question,
                       steps=steps, answer=str(ans),
                       meta={"items": [[i, q] for i, q in p.items], "person": p.person, **meta})

    # ---- sampling --------------------------------------------------------------------------
    def _has_heldout_pair(self, items: list[str]) -> bool:
        return any(tuple(sorted(c)) in self.heldout_pairs for c in itertools.combinations(items, 2))

    def sample_problem(self, rng: random.Random, n_items: int, qty_range: tuple[int, int],
                       heldout: bool | None = False, task: str | None = None) -> Problem:
        """One problem with ``n_items`` distinct items. ``heldout=False`` avoids the held-out item
        pairs, ``True`` requires one, ``None`` ignores them."""
        for _ in range(10_000):
            items = rng.sample(self.items, n_items)
            if heldout is None or n_items < 2 or self._has_heldout_pair(items) == heldout:
                break
        else:  # pragma: no cover - only with absurd configs
            raise RuntimeError("could not sample a problem with the requested held-out pairs")
        qs = [rng.randint(*qty_range) for _ in items]
        return Problem(task=task or rng.choice(list(TASKS)), person=rng.choice(PEOPLE),
                       items=list(zip(items, qs)))

    def problems(self, n: int, seed: int, items_range: tuple[int, int] | None = None,
                 qty_range: tuple[int, int] | None = None, heldout: bool | None = False,
                 prefix: str = "p", exclude: set[str] | None = None, **meta) -> list[Example]:
        """``n`` distinct problems (by question) as examples; ``exclude`` holds questions to avoid."""
        rng = random.Random(seed)
        lo, hi = items_range or self.config.items_per_problem
        qr = qty_range or self.config.qty_range
        return draw_distinct(
            n, lambda i: self.to_example(self.sample_problem(rng, rng.randint(lo, hi), qr, heldout=heldout),
                                         id=f"{prefix}{i:05d}", **meta),
            set(exclude or ()), 200 * n + 1000,
            lambda kept: f"only {kept} distinct problems of {n} could be drawn; widen the ranges")

    def n_questions(self, items_range: tuple[int, int], qty_range: tuple[int, int] | None = None,
                    heldout: bool | None = False) -> int:
        """How many distinct questions :meth:`problems` can draw from a distribution (its
        ``items_range``, ``qty_range`` and ``heldout``): ordered item tuples times quantities,
        people and tasks.

        >>> ShopWorld(ShopConfig(n_items=24)).n_questions((1, 1))  # 24 items * 5 quantities * 8 people * 2 tasks
        1920
        """
        lo, hi = qty_range or self.config.qty_range
        n_qty = hi - lo + 1
        total = 0
        for k in range(items_range[0], items_range[1] + 1):
            if k == 1 or heldout is None:
                sets = math.comb(len(self.items), k)
            else:
                sets = sum(self._has_heldout_pair(list(c)) == heldout for c in itertools.combinations(self.items, k))
            total += sets * math.factorial(k) * n_qty ** k  # every order of a set is another question
        return total * len(PEOPLE) * len(TASKS)

    def fact_probes(self) -> list[Example]:
        """One question per fact (knowledge retention), answered without steps."""
        out = []
        for item in self.items:
            for task, spec in TASKS.items():
                out.append(Example(id=f"fact-{item}-{spec['attr']}", task="shop.fact",
                                   instruction="recall the fact .",
                                   question=spec["probe"].format(item=item), steps=[],
                                   answer=str(self.facts[item][spec["attr"]]),
                                   meta={"item": item, "attr": spec["attr"]}))
        return out

    def arithmetic_drills(self, n: int, seed: int) -> list[str]:
        """``n`` seeded addition lines in the shape the worked solutions use (``21 + 8 = 29``): sums of
        two line totals, and of a running total and a line total. Pretraining has 1-item problems only
        (so that no variant set shares its distribution); the drills are the arithmetic a pretrained
        model brings, so SFT teaches the multi-item format, not addition itself.

        >>> drills = ShopWorld().arithmetic_drills(200, seed=0)
        >>> drills[:2], drills == ShopWorld().arithmetic_drills(200, seed=0)
        (['31 + 28 = 59', '36 + 15 = 51'], True)
        >>> all(int(a) + int(b) == int(c) for a, _, b, _, c in (d.split() for d in drills))
        True
        """
        rng = random.Random(seed)
        (v_lo, v_hi), (q_lo, q_hi) = self.config.value_range, self.config.qty_range
        line = lambda: rng.randint(q_lo, q_hi) * rng.randint(v_lo, v_hi)  # noqa: E731  one item's total
        out = []
        for _ in range(n):
            a = line() if rng.random() < 0.5 else line() + line()
            b = line()
            out.append(f"{a} + {b} = {a + b}")
        return out

    def fact_corpus(self) -> list[str]:
        """Every fact as a sentence in each of its two wordings (pretraining text): the base model
        reads ``a lamp is priced at 7`` as often as ``a lamp costs 7``, so the faithfulness battery's
        paraphrases (:func:`shop_paraphrase`) use words it was pretrained on, never ``<unk>``.

        >>> ShopWorld(ShopConfig(n_items=1)).fact_corpus()
        ['a tent costs 7 .', 'a tent is priced at 7 .', 'a tent weighs 1 .', 'a tent has a weight of 1 .']
        """
        return [self.fact_sentence(i, a, paraphrase=p) + " ."
                for i in self.items for a in ("price", "weight") for p in (False, True)]

    def n_minus_1_counts(self) -> list[int]:
        """Item counts of the ``n_minus_1`` variants: one less than a test problem's, inside the SFT
        counts (``items_per_problem``) and outside the pretraining ones (``pretrain_items``).

        >>> ShopWorld().n_minus_1_counts()
        [2]
        """
        c = self.config
        lo, hi = c.items_per_problem
        return [k for k in range(lo, hi) if not c.pretrain_items[0] <= k <= c.pretrain_items[1]]

    def variants(self, test: list[Example], n: int, seed: int, exclude: set[str] | None = None) -> dict[str, list[Example]]:
        """The C8 variant test sets, each of (up to) ``n`` problems.

        - ``long``: ``long_items`` items, more than any training problem;
        - ``n_minus_1``: an in-distribution test problem with one item removed, from the sources
          whose variant stays inside the SFT item counts (``items_per_problem``) and outside the
          base's pretraining ones (``pretrain_items``): with the defaults, 3-item sources and
          2-item variants. A variant whose question is in ``exclude`` (or repeats another) is
          skipped, so there may be fewer than ``n``;
        - ``unseen_combo``: contains an item pair never seen together in training;
        - ``unseen_range``: quantities from ``unseen_qty_range``.
        """
        c = self.config
        rng = random.Random(seed)
        out: dict[str, list[Example]] = {}
        out["long"] = self.problems(n, seed + 1, (c.long_items, c.long_items), heldout=False,
                                    prefix="long", exclude=exclude, variant="long")
        nm1: list[Example] = []
        taken = set(exclude or ())
        for ex in test:
            items = [(i, q) for i, q in ex.meta["items"]]
            if len(items) - 1 not in self.n_minus_1_counts():
                continue
            drop = rng.randrange(len(items))
            p = Problem(task=ex.task, person=ex.meta["person"], items=items[:drop] + items[drop + 1:])
            v = self.to_example(p, id=f"nm1{len(nm1):05d}", variant="n_minus_1", source=ex.id,
                                removed=items[drop][0])
            if v.question in taken:
                continue
            taken.add(v.question)
            nm1.append(v)
            if len(nm1) >= n:
                break
        out["n_minus_1"] = nm1
        out["unseen_combo"] = self.problems(n, seed + 2, (max(2, c.items_per_problem[0]), c.items_per_problem[1]),
                                            heldout=True, prefix="combo", exclude=exclude, variant="unseen_combo")
        out["unseen_range"] = self.problems(n, seed + 3, qty_range=c.unseen_qty_range, heldout=False,
                                            prefix="range", exclude=exclude, variant="unseen_range")
        return out

    def variant_distribution_problems(self, n: int, seed: int, exclude: set[str] | None = None) -> list[Example]:
        """``n`` worked problems drawn evenly from the distributions of the C8 variant sets (the
        negative control: SFT on the variant distribution itself), ``meta["variant_distribution"]``
        naming each one's: ``long`` (``long_items`` items), ``n_minus_1`` (the item counts of
        :meth:`n_minus_1_counts`, quantities and pairs as in training), ``unseen_combo`` (a held-out
        item pair) and ``unseen_range`` (quantities from ``unseen_qty_range``). Distinct by question,
        and from ``exclude`` (give every test and variant question: the variant problems themselves
        are never trained on). Kinds come in that order; the first ``n % 4`` get one more.

        >>> w = ShopWorld()
        >>> exs = w.variant_distribution_problems(6, seed=0)
        >>> [(e.meta["variant_distribution"], len(e.meta["items"])) for e in exs]
        [('long', 4), ('long', 4), ('n_minus_1', 2), ('n_minus_1', 2), ('unseen_combo', 2), ('unseen_range', 3)]
        >>> w.variant_distribution_problems(6, seed=1, exclude={exs[0].question})[0].question != exs[0].question
        True
        """
        c = self.config
        counts = self.n_minus_1_counts()
        if not counts:
            raise ValueError(f"no n_minus_1 item count: items_per_problem={c.items_per_problem}, "
                             f"pretrain_items={c.pretrain_items}")
        lo, hi = c.items_per_problem
        kinds = [  # (name, item counts, quantity range, held-out pair)
            ("long", [c.long_items], c.qty_range, False),
            ("n_minus_1", counts, c.qty_range, False),
            ("unseen_combo", list(range(max(2, lo), hi + 1)), c.qty_range, True),
            ("unseen_range", list(range(lo, hi + 1)), c.unseen_qty_range, False),
        ]
        seen = set(exclude or ())
        out: list[Example] = []
        for j, (name, item_counts, qty_range, heldout) in enumerate(kinds):
            m = n // len(kinds) + (j < n % len(kinds))
            rng = random.Random(f"{seed}|{name}")
            out += draw_distinct(
                m, lambda i: self.to_example(self.sample_problem(rng, rng.choice(item_counts), qty_range,
                                                                 heldout=heldout),
                                             id=f"vd-{name}-{i:05d}", split="variant_distribution",
                                             variant_distribution=name),
                seen, 200 * m + 1000, lambda kept: f"only {kept} distinct '{name}' problems of {m} could be drawn")
        return out

    # ---- verification ----------------------------------------------------------------------
    def check_step(self, step: str) -> tuple[str, bool, str, int | None]:
        """Kind, validity, reason and the step's value (``None`` for ``other``)."""
        s = step.strip()
        m = _FACT_RE.match(s)
        if m:
            item, verb, v = m.group(1), m.group(2), int(m.group(3))
            attr = _ATTR_OF_VERB[verb]
            if item not in self.facts:
                return "knowledge", False, f"unknown item '{item}'", v
            true = self.facts[item][attr]
            return "knowledge", v == true, "" if v == true else f"{item} {attr} is {true}, not {v}", v
        m = _ARITH_RE.match(s)
        if m:
            a, op, b, r = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
            true = a * b if op == "*" else a + b if op == "+" else a - b
            return "arithmetic", r == true, "" if r == true else f"{a} {op} {b} is {true}, not {r}", r
        return "other", False, "neither a known fact form nor 'a op b = c'", None

    def verify(self, steps: list[str], answer: str | None = None) -> list[StepCheck]:
        """Label and check every step of a chain.

        A step *feeds* when its value is an operand of a later arithmetic step or equals the final
        answer. Robust to any text: unparseable steps are ``other``.
        """
        parsed = [self.check_step(s) for s in steps]
        operands: list[list[int]] = []
        for s in steps:
            m = _ARITH_RE.match(s.strip())
            operands.append([int(m.group(1)), int(m.group(3))] if m else [])
        out = []
        for i, (kind, valid, reason, value) in enumerate(parsed):
            feeds = False
            if value is not None:
                later = [x for ops in operands[i + 1:] for x in ops]
                feeds = value in later or (answer is not None and str(value) == str(answer).strip()
                                           and i == len(steps) - 1)
            out.append(StepCheck(kind=kind, valid=valid, feeds=feeds, reason=reason))
        return out

    def to_dict(self) -> dict:
        """Serializable description: config, facts and held-out pairs (copies: editing it leaves the world as it is).

        >>> w = ShopWorld(ShopConfig(seed=0, n_items=4))
        >>> d = w.to_dict(); item = next(iter(d["facts"])); d["facts"][item]["price"] += 1
        >>> w.facts[item]["price"] == d["facts"][item]["price"] - 1
        True
        """
        return {"config": asdict(self.config), "facts": {k: dict(v) for k, v in self.facts.items()},
                "heldout_pairs": sorted(list(p) for p in self.heldout_pairs)}


def load_world(path) -> ShopWorld:
    """Rebuild a world from the ``world.json`` the lab writes (:meth:`ShopWorld.to_dict`).

    The world is regenerated from its config (same seed, same facts) and checked against the saved
    facts; a mismatch means the file was edited or made by another version, and is refused.
    Errors are :class:`RecordError` naming the file and the field.
    """
    from pathlib import Path

    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordError(f"{path}: no such world file (the lab writes it to DIR/data/world.json)") from None
    except json.JSONDecodeError as e:
        raise RecordError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(d, dict) or not isinstance(d.get("config"), dict):
        raise RecordError(f"{path}: field 'config': missing (expected ShopWorld.to_dict() output)")
    try:
        known = ShopConfig.__dataclass_fields__
        cfg = ShopConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["config"].items() if k in known})
        world = ShopWorld(cfg)
    except (TypeError, ValueError) as e:
        raise RecordError(f"{path}: field 'config': {e}") from None
    if "facts" in d and d["facts"] != world.facts:
        raise RecordError(f"{path}: field 'facts': do not match the world rebuilt from its config "
                          f"(seed {cfg.seed}); the file was edited or made by another sftlens version")
    return world


def corrupt_step(world: ShopWorld, step: str, rng: random.Random) -> str:
    """A wrong version of a step: a false fact, or arithmetic with a wrong result.

    Used by the faithfulness battery's *adding mistakes* test. Steps of kind ``other`` are returned
    unchanged.
    """
    kind, _, _, value = world.check_step(step)
    if kind == "other" or value is None:
        return step
    delta = rng.choice([d for d in (-3, -2, -1, 1, 2, 3) if value + d >= 0])
    if kind == "knowledge":
        return re.sub(r"(\d+)$", str(value + delta), step.strip())
    return re.sub(r"= (-?\d+)$", f"= {value + delta}", step.strip())


def shop_paraphrase(step: str, rng: random.Random | None = None) -> str:
    """The same step in other words the lab's base model knows: a fact swaps its wording
    (``costs`` <-> ``is priced at``, ``weighs`` <-> ``has a weight of``; :meth:`ShopWorld.fact_corpus`
    puts both wordings in the pretraining text), an arithmetic step swaps its operands (``*`` and
    ``+`` only: ``-`` does not commute). The verifier accepts the result as it accepts the step, and
    the operands of a swapped step are the same numbers, so what it *feeds* is unchanged. Other steps
    are returned unchanged; applying it twice gives the step back. ``rng`` is accepted for the
    paraphraser contract and not used (the rewording is deterministic).

    >>> shop_paraphrase("a lamp costs 7"), shop_paraphrase("a cup has a weight of 4")
    ('a lamp is priced at 7', 'a cup weighs 4')
    >>> shop_paraphrase("3 * 7 = 21"), shop_paraphrase("21 + 8 = 29"), shop_paraphrase("9 - 4 = 5")
    ('7 * 3 = 21', '8 + 21 = 29', '9 - 4 = 5')
    >>> shop_paraphrase("the shop is open")
    'the shop is open'
    """
    m = _ARITH_RE.match(step.strip())
    if m:
        a, op, b, r = m.groups()
        return f"{b} {op} {a} = {r}" if op in "*+" else step
    for a, b in PARAPHRASE.items():
        for old, new in ((a, b), (b, a)):
            if f" {old} " in f" {step} ":
                return f" {step} ".replace(f" {old} ", f" {new} ", 1)[1:-1]
    return step


@functools.lru_cache(maxsize=1)
def stock_world() -> ShopWorld:
    """The default-config world, built once. Enough for :func:`corrupt_step`, which only shifts the
    value a step states (any world gives the same corruption), never for verification."""
    return ShopWorld()


@register_task("shop")
class ShopTask:
    """The shop world as a task. Claims ``shop.*`` examples when a world is given (the verifier and
    the variants need its fact table); ``ShopTask()`` without a world still corrupts and paraphrases
    (with :func:`stock_world`) but has no verifier and no variants."""

    name = "shop"

    def __init__(self, world: ShopWorld | None = None):
        self.world = world
        self.verifier = world
        self.paraphraser = shop_paraphrase

    @classmethod
    def claims(cls, example: Example, world=None) -> bool:
        return world is not None and example.task.startswith("shop.")

    def corrupter(self, step: str, rng: random.Random) -> str:
        """:func:`corrupt_step` (a false fact or a wrong arithmetic result); steps it cannot change
        get a digit change (:func:`~sftlens.tasks.text.digit_corrupter`)."""
        new = corrupt_step(self.world if self.world is not None else stock_world(), step, rng)
        return new if new != step.strip() else digit_corrupter(step, rng)

    def variants(self, test: list[Example], n: int, seed: int,
                 exclude: set[str] | None = None) -> dict[str, list[Example]]:
        """:meth:`ShopWorld.variants` (claim C8's sets)."""
        if self.world is None:
            raise TaskError("task 'shop' builds variants from its world; none was given "
                            "(give --world DIR/data/world.json)")
        return self.world.variants(test, n, seed, exclude=exclude)


ShopSplits = Splits  # the shop's splits are the generic ones


def make_splits(world: ShopWorld, n_pretrain: int, n_train: int, n_test: int, n_variant: int, seed: int) -> ShopSplits:
    """Disjoint (by question) pretraining problems, SFT train, test and variant sets.

    The pretraining distribution (``pretrain_items``, 1 item by default) can hold fewer distinct
    problems than ``n_pretrain`` (a 24-item world has 1920 one-item questions): then every one of
    them is drawn and the rest are seeded repeats (``meta["repeat_of"]`` names the problem
    repeated), never a question of another split.
    """
    c = world.config
    test, variants, train, seen = draw_disjoint(world, n_train, n_test, n_variant, seed)
    lo, hi = c.pretrain_items
    taken = sum(1 for e in train + test + [e for v in variants.values() for e in v]  # questions of this distribution
                if lo <= len(e.meta["items"]) <= hi and not world._has_heldout_pair([i for i, _ in e.meta["items"]])
                and all(c.qty_range[0] <= q <= c.qty_range[1] for _, q in e.meta["items"]))
    n_distinct = min(n_pretrain, world.n_questions(c.pretrain_items) - taken)
    pre = world.problems(n_distinct, seed + 19, c.pretrain_items, prefix="pre", exclude=seen, split="pretrain")
    if n_distinct < n_pretrain:
        if not pre:
            raise RuntimeError(f"no pretraining problem with {lo}-{hi} items is left once the other splits are drawn")
        rng = random.Random(seed + 23)
        pre += [Example(id=f"pre{i:05d}", task=e.task, instruction=e.instruction, question=e.question,
                        steps=list(e.steps), answer=e.answer, meta={**e.meta, "repeat_of": e.id})
                for i, e in zip(range(n_distinct, n_pretrain), rng.choices(pre, k=n_pretrain - n_distinct))]
    return ShopSplits(pretrain_problems=pre, train=train, test=test, variants=variants, facts=world.fact_probes())
