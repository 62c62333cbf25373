"""The judgement task: is a purchase acceptable under a store's stated criteria? (claim C6, after
Wachsmuth et al. 2024, arXiv 2403.16084: labelled examples alone don't transfer criteria to new item
types; explicit criteria do.)

A store judges carts by three named criteria (:data:`CRITERIA`): ``budget`` (the cart's total is at
most the budget), ``needs`` (the cart holds at least one of the needed items) and ``forbidden`` (the
cart does not hold both items of the forbidden pair). The answer is ``yes`` or ``no``, without steps.
Where a condition writes the criteria, they follow the cart (a causal model can only check a rule
against a cart it has already read)::

    is the purchase acceptable ?
    Q: cart kite , lamp , bowl . total 4 . rules : needs lamp , not cup with kite , budget 5
    A: yes

:func:`judge` is the checker: the label and the criterion that decided it (the first that fails, in
:data:`CRITERIA` order; ``none`` when all hold). Generated carts break at most one criterion, so the
deciding criterion is the only one that fails; :func:`load_criteria` reads a store's criteria from a
JSON file.

:class:`JudgeWorld` draws the store's rules (one needed item, a forbidden pair, a budget) and holds
item *types* out: one member of the forbidden pair and ``heldout_neutral`` types no rule names. No
held-out type is in a cart of the pretraining or SFT sets, so the ``forbidden`` criterion never fires
there: the written rules name an item no example shows. Test sets: ``test`` (seen types only: the
criteria add nothing the labels do not teach), variant ``heldout`` (every cart holds a held-out type,
drawn as the training carts are) and variant ``hinge`` (twins whose label turns on the held-out type
the rules name: one cart with it, one with a neutral held-out type in its place).

The base is pretrained on carts of seen types judged under rules that vary from problem to problem,
to read written rules as an instruction-following model does, and on drills: membership lines over
every type (``list kite , tent . check tent yes bowl no``: held-out words are words it can match) and
carts judged under several rule sets each. Nothing here imports a model.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.errors import RecordError
from ..core.record import Example
from .base import Splits, StepCheck, TaskError, draw_disjoint, draw_distinct
from .registry import register_task
from .shop import ITEM_NAMES

CRITERIA = ("budget", "needs", "forbidden")  # the named criteria, in the order the checker applies them
INSTRUCTION = "is the purchase acceptable ?"  # what a model is asked when the criteria are not written
TASK = "judge.purchase"
YES, NO = "yes", "no"
RULE_WORDS = ("rules", ":", "budget", ",", "needs", "or", "not", "with", ".")
QUESTION_WORDS = ("cart", ",", ".", "total", "list", "check", "?", YES, NO, "Q:", "A:")


@dataclass(frozen=True)
class Rules:
    """A store's criteria: ``total <= budget``; at least one of ``needs``; not both of ``forbidden``."""

    budget: int
    needs: tuple[str, ...]
    forbidden: tuple[str, str]

    def text(self) -> str:
        """The criteria as they are written after a cart.

        >>> Rules(5, ("lamp", "tent"), ("cup", "kite")).text()
        'rules : needs lamp or tent , not cup with kite , budget 5'
        """
        return (f"rules : needs {' or '.join(self.needs)} , not {self.forbidden[0]} with {self.forbidden[1]} , "
                f"budget {self.budget}")

    def to_dict(self) -> dict:
        """The criteria file's content (:func:`load_criteria`)."""
        return {"budget": self.budget, "needs": list(self.needs), "forbidden": list(self.forbidden)}

    @classmethod
    def from_dict(cls, d, where: str = "criteria") -> Rules:
        """Rebuild from :meth:`to_dict`; :class:`RecordError` naming ``where`` and the field (an unknown
        criterion, a missing one, a bad value).

        >>> Rules.from_dict({"budget": 5, "needs": ["lamp"], "forbidden": ["cup", "kite"]}).needs
        ('lamp',)
        """
        if not isinstance(d, dict):
            raise RecordError(f"{where}: expected an object with the fields {', '.join(CRITERIA)}")
        for key in d:
            if key not in CRITERIA:
                raise RecordError(f"{where}: field '{key}': unknown criterion (valid: {', '.join(CRITERIA)})")
        for key in CRITERIA:
            if key not in d:
                raise RecordError(f"{where}: field '{key}': missing (every criterion needs a value: "
                                  f"{', '.join(CRITERIA)})")
        budget, needs, forbidden = d["budget"], d["needs"], d["forbidden"]
        if not isinstance(budget, int) or isinstance(budget, bool) or not 0 <= budget <= 9:
            raise RecordError(f"{where}: field 'budget': expected an integer from 0 to 9, got {budget!r}")
        if not (isinstance(needs, list) and needs and all(_is_word(w) for w in needs)):
            raise RecordError(f"{where}: field 'needs': expected a non-empty list of one-word items, got {needs!r}")
        if not (isinstance(forbidden, list) and len(forbidden) == 2 and all(_is_word(w) for w in forbidden)
                and forbidden[0] != forbidden[1]):
            raise RecordError(f"{where}: field 'forbidden': expected two different one-word items, got {forbidden!r}")
        return cls(budget, tuple(needs), (forbidden[0], forbidden[1]))


def _is_word(w) -> bool:
    return isinstance(w, str) and w.isalpha() and w.islower()  # one lower-case word: one token


def load_criteria(path) -> Rules:
    """A store's criteria from a JSON file (``{"budget": 5, "needs": [...], "forbidden": [a, b]}``);
    :class:`RecordError` naming the file and the field (an unknown criterion, a missing one, a bad value)."""
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordError(f"{path}: no such criteria file") from None
    except json.JSONDecodeError as e:
        raise RecordError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    return Rules.from_dict(d, str(path))


def failed_criteria(items: list[str], total: int, rules: Rules) -> list[str]:
    """The criteria a cart breaks, in :data:`CRITERIA` order.

    >>> r = Rules(5, ("lamp", "tent"), ("cup", "kite"))
    >>> failed_criteria(["kite", "lamp"], 4, r), failed_criteria(["cup", "kite"], 7, r)
    ([], ['budget', 'needs', 'forbidden'])
    """
    out = []
    if total > rules.budget:
        out.append("budget")
    if not any(n in items for n in rules.needs):
        out.append("needs")
    if all(f in items for f in rules.forbidden):
        out.append("forbidden")
    return out


def judge(items: list[str], total: int, rules: Rules) -> tuple[str, str]:
    """The checker: ``(label, deciding criterion)``: ``no`` and the first criterion that fails, or
    ``yes`` and ``none``.

    >>> r = Rules(5, ("lamp", "tent"), ("cup", "kite"))
    >>> judge(["tent", "bowl"], 5, r), judge(["lamp", "cup", "kite"], 2, r), judge(["bowl"], 9, r)
    (('yes', 'none'), ('no', 'forbidden'), ('no', 'budget'))
    """
    failed = failed_criteria(items, total, rules)
    return (NO, failed[0]) if failed else (YES, "none")


def cart_question(items: list[str], total: int, rules: Rules | None = None) -> str:
    """``cart kite , lamp . total 4``, followed by `` . rules : ...`` when the criteria are written.

    >>> cart_question(["kite", "lamp"], 4, Rules(5, ("lamp",), ("cup", "kite")))
    'cart kite , lamp . total 4 . rules : needs lamp , not cup with kite , budget 5'
    """
    return f"cart {' , '.join(items)} . total {total}" + (f" . {rules.text()}" if rules is not None else "")


def parse_cart(question: str) -> tuple[list[str], int]:
    """The items and total of a :func:`cart_question` (written criteria ignored); ``ValueError`` for
    anything else.

    >>> parse_cart("cart kite , lamp . total 4")
    (['kite', 'lamp'], 4)
    >>> parse_cart("cart cup . total 2 . rules : needs cup , not a with b , budget 5")
    (['cup'], 2)
    """
    head, sep, total = question.strip().split(" . rules : ")[0].partition(" . total ")
    if not head.startswith("cart ") or not sep or not total.isdigit():
        raise ValueError(f"not a cart question ('cart ITEM , ITEM . total N'): {question!r}")
    return head[len("cart "):].split(" , "), int(total)


def with_criteria(examples: list[Example]) -> list[Example]:
    """The same examples with their rules (``meta["rules"]``) written after the cart."""
    out = []
    for e in examples:
        items, total = parse_cart(e.question)
        rules = Rules.from_dict(e.meta["rules"], f"example {e.id}")
        out.append(Example(id=e.id, task=e.task, instruction=e.instruction, question=cart_question(items, total, rules),
                           steps=list(e.steps), answer=e.answer, meta={**e.meta, "criteria_written": True}))
    return out


@dataclass
class JudgeConfig:
    """Knobs of the world: how many item types, how many neutral types are held out (besides one
    forbidden-pair member), cart sizes and the number ranges."""

    seed: int = 0
    n_types: int = 20
    heldout_neutral: int = 3
    cart_size: tuple[int, int] = (2, 4)
    budget_range: tuple[int, int] = (3, 6)
    max_total: int = 9
    accept_share: float = 0.5  # share of carts labelled yes; the others break one criterion, drawn uniformly

    def __post_init__(self):
        self.cart_size, self.budget_range = tuple(self.cart_size), tuple(self.budget_range)
        if not (isinstance(self.n_types, int) and 8 + self.heldout_neutral <= self.n_types <= len(ITEM_NAMES)):
            raise ValueError(f"n_types={self.n_types}: must be an integer from {8 + self.heldout_neutral} "
                             f"(rules, held-out and neutral types) to {len(ITEM_NAMES)}")
        if not (2 <= self.cart_size[0] <= self.cart_size[1] <= 4):
            raise ValueError(f"cart_size={self.cart_size}: must be (lo, hi) with 2 <= lo <= hi <= 4")
        if not (1 <= self.budget_range[0] <= self.budget_range[1] < self.max_total <= 9):
            raise ValueError(f"budget_range={self.budget_range}, max_total={self.max_total}: need 1 <= lo <= hi < "
                             "max_total <= 9 (single digits, and a total can exceed any budget)")
        if not 0.0 < self.accept_share < 1.0:
            raise ValueError(f"accept_share={self.accept_share}: must lie strictly between 0 and 1")


class JudgeWorld:
    """The store's rules, the item types (seen and held out) and the cart generators."""

    def __init__(self, config: JudgeConfig | None = None):
        self.config = c = config or JudgeConfig()
        rng = random.Random(c.seed)
        self.types = rng.sample(ITEM_NAMES, c.n_types)
        needed, f1, f2, *neutral = self.types
        self.rules = Rules(rng.randint(*c.budget_range), (needed,), (f1, f2))
        # held out: one member of the forbidden pair (the rules name it) and neutral types (no rule does)
        self.heldout = [f2] + neutral[:c.heldout_neutral]
        self.seen = [t for t in self.types if t not in self.heldout]

    # ---- carts ------------------------------------------------------------------------------
    def to_example(self, items: list[str], total: int, rules: Rules, id: str, instruction: str = INSTRUCTION,
                   **meta) -> Example:
        """A cart as an :class:`Example` labelled by :func:`judge`; ``meta`` holds the rules, the deciding
        criterion and ``turns_on_heldout``: the held-out items without which the label would differ."""
        label, decided = judge(items, total, rules)
        heldout = [i for i in items if i in self.heldout]
        turns = [i for i in heldout if judge([x for x in items if x != i], total, rules)[0] != label]
        return Example(id=id, task=TASK, instruction=instruction, question=cart_question(items, total), answer=label,
                       meta={"items": list(items), "total": total, "rules": rules.to_dict(), "decided_by": decided,
                             "failed": failed_criteria(items, total, rules), "heldout_items": heldout,
                             "turns_on_heldout": turns, **meta})

    def sample_cart(self, rng: random.Random, rules: Rules, allowed: list[str]) -> tuple[list[str], int]:
        """A cart of ``allowed`` types that meets every criterion (``accept_share`` of the time) or breaks
        exactly one, drawn uniformly among those ``allowed`` can break (``forbidden`` needs both members)."""
        c = self.config
        can_fail = ["budget", "needs"] + (["forbidden"] if all(f in allowed for f in rules.forbidden) else [])
        fail = None if rng.random() < c.accept_share else rng.choice(can_fail)
        have = [n for n in rules.needs if n in allowed]
        items = [] if fail == "needs" else [rng.choice(have)]
        if fail == "forbidden":
            items += list(rules.forbidden)
        lone = [rng.choice(rules.forbidden)] if fail != "forbidden" else []  # one member alone breaks nothing
        pool = [t for t in allowed if t not in rules.needs and (t not in rules.forbidden or t in lone)]
        k = max(rng.randint(*c.cart_size), len(items))
        items += rng.sample([t for t in pool if t not in items], k - len(items))
        rng.shuffle(items)
        total = rng.randint(rules.budget + 1, c.max_total) if fail == "budget" else rng.randint(1, rules.budget)
        return items, total

    def problems(self, n: int, seed: int, prefix: str = "p", exclude: set[str] | None = None, heldout: bool = False,
                 **meta) -> list[Example]:
        """``n`` distinct carts (by question) under the store's rules: of seen types only, or
        (``heldout``) of every type, each holding at least one held-out type."""
        rng = random.Random(seed)
        allowed = self.types if heldout else self.seen

        def draw(i: int) -> Example:
            while True:
                items, total = self.sample_cart(rng, self.rules, allowed)
                if not heldout or any(t in self.heldout for t in items):
                    return self.to_example(items, total, self.rules, id=f"{prefix}{i:05d}", **meta)

        return draw_distinct(n, draw, set(exclude or ()), 200 * n + 1000,
                             lambda kept: f"only {kept} distinct carts of {n} could be drawn; use more item types")

    def hinge_pairs(self, n: int, seed: int, exclude: set[str] | None = None) -> list[Example]:
        """``n`` carts in twins: one with the whole forbidden pair, its held-out member included (``no``),
        one with a neutral held-out type in that member's place (``yes``); every other criterion holds.
        Only the written criteria tell the twins apart."""
        rng, r = random.Random(seed), self.rules
        named = r.forbidden[1]
        stand_ins = [t for t in self.heldout if t != named]
        pool = [t for t in self.types if t not in r.needs + r.forbidden and t not in self.heldout]
        seen, out = set(exclude or ()), []
        for _ in range(200 * n + 1000):
            if len(out) >= n:
                break
            fixed = [named, r.needs[0], r.forbidden[0]]
            items = fixed + rng.sample(pool, max(rng.randint(*self.config.cart_size), 3) - 3)
            rng.shuffle(items)
            twin = [rng.choice(stand_ins) if t == named else t for t in items]
            total = rng.randint(1, r.budget)
            qs = [cart_question(items, total), cart_question(twin, total)]
            if qs[0] in seen or qs[1] in seen:
                continue
            seen |= set(qs)
            for cart, role in ((items, "named"), (twin, "stand_in")):
                out.append(self.to_example(cart, total, r, id=f"hinge{len(out):05d}", hinge="forbidden", twin=role))
        if len(out) < n:
            raise RuntimeError(f"only {len(out)} hinge carts of {n} could be drawn; use more item types")
        return out[:n]

    def variants(self, test: list[Example], n: int, seed: int,
                 exclude: set[str] | None = None) -> dict[str, list[Example]]:
        """``heldout`` (carts with held-out types, drawn as training carts are) and ``hinge``
        (:meth:`hinge_pairs`), ``n`` each; ``test`` is not used."""
        seen = set(exclude or ())
        heldout = self.problems(n, seed + 1, prefix="heldout", exclude=seen, heldout=True, variant="heldout")
        seen |= {e.question for e in heldout}
        hinge = [Example(**{**e.to_dict(), "meta": {**e.meta, "variant": "hinge"}})
                 for e in self.hinge_pairs(n, seed + 2, exclude=seen)]
        return {"heldout": heldout, "hinge": hinge}

    def pretrain_problems(self, n: int, seed: int, exclude: set[str] | None = None, prefix: str = "pre",
                          split: str = "pretrain") -> list[Example]:
        """``n`` carts of seen types, each judged under rules of its own (drawn over seen types and
        written after the cart): the base learns to read rules, never the store's."""
        rng, c = random.Random(seed), self.config

        def draw(i: int) -> Example:
            needed, f1, f2 = rng.sample(self.seen, 3)
            rules = Rules(rng.randint(*c.budget_range), (needed,), (f1, f2))
            items, total = self.sample_cart(rng, rules, self.seen)
            return with_criteria([self.to_example(items, total, rules, id=f"{prefix}{i:05d}", split=split)])[0]

        return draw_distinct(n, draw, set(exclude or ()), 200 * n + 1000,
                             lambda kept: f"only {kept} distinct pretraining carts of {n} could be drawn")

    def membership_drills(self, n: int, seed: int) -> list[str]:
        """``n`` lines ``list kite , tent , cup . check tent yes bowl no ...`` over every type, held-out
        ones included (half the checks yes): the word matching that checking a rule against a cart
        needs, in a text that is not a purchase."""
        rng, out = random.Random(seed), []
        for _ in range(n):
            listed = rng.sample(self.types, rng.randint(*self.config.cart_size))
            checks = []
            for _ in range(6):
                others = [t for t in self.types if t not in listed]
                word = rng.choice(listed) if rng.random() < 0.5 else rng.choice(others)
                checks.append(f"{word} {YES if word in listed else NO}")
            out.append(f"list {' , '.join(listed)} . check {' '.join(checks)}")
        return out

    def rules_judging(self, rng: random.Random, items: list[str], total: int) -> Rules:
        """Rules over seen types under which a cart of seen types (``total`` inside the budget range,
        above its low end) meets every criterion (``accept_share`` of the time) or breaks exactly one,
        drawn uniformly among those it can break (``forbidden`` needs three items).

        >>> w, rng = JudgeWorld(), random.Random(0)
        >>> items = w.seen[:3]
        >>> all(len(failed_criteria(items, 5, w.rules_judging(rng, items, 5))) <= 1 for _ in range(50))
        True
        """
        c = self.config
        can_fail = ["budget", "needs"] + (["forbidden"] if len(items) >= 3 else [])
        fail = None if rng.random() < c.accept_share else rng.choice(can_fail)
        inside, outside = [t for t in self.seen if t in items], [t for t in self.seen if t not in items]
        needed = rng.choice(outside if fail == "needs" else inside)
        if fail == "forbidden":
            pair = rng.sample([t for t in inside if t != needed], 2)
        else:  # at most one member in the cart
            f1 = rng.choice([t for t in self.seen if t != needed])
            pair = [f1, rng.choice([t for t in outside if t not in (needed, f1)])]
        lo, hi = c.budget_range
        budget = rng.randint(lo, total - 1) if fail == "budget" else rng.randint(total, hi)
        return Rules(budget, (needed,), (pair[0], pair[1]))

    def judgement_drills(self, n: int, seed: int, k: int = 4) -> list[str]:
        """``n`` lines each holding one cart of seen types judged under ``k`` rule sets of its own
        (``cart ... . rules : ... ? yes . rules : ... ? no ...``, :meth:`rules_judging`): many answers
        per text, so the base learns to check written rules in the pretraining a lab can afford.

        >>> line = JudgeWorld().judgement_drills(1, seed=0)[0]
        >>> line.startswith("cart ") and line.count(" ? ") == 4
        True
        """
        rng, c, out = random.Random(seed), self.config, []
        for _ in range(n):
            items = rng.sample(self.seen, rng.randint(*c.cart_size))
            total = rng.randint(c.budget_range[0] + 1, c.budget_range[1])
            rules = [self.rules_judging(rng, items, total) for _ in range(k)]
            out.append(cart_question(items, total) + "".join(f" . {r.text()} ? {judge(items, total, r)[0]}"
                                                            for r in rules))
        return out

    def drills(self, n: int, seed: int) -> list[str]:
        """The pretraining drills: ``n`` membership lines and ``n`` judgement lines."""
        return self.membership_drills(n, seed) + self.judgement_drills(n, seed + 1)
    def fact_corpus(self) -> list[str]:
        """None: the store has no facts to recall."""
        return []

    def vocabulary(self) -> list[str]:
        """Every word this world's texts can hold: item types, digits, rule and question words."""
        return sorted(set(self.types) | set(RULE_WORDS) | set(QUESTION_WORDS) | set(INSTRUCTION.split())
                      | {str(d) for d in range(10)})

    def tokenizer_corpus(self) -> list[str]:
        """Every word of :meth:`vocabulary` at a line's start and after a space (a word-level
        tokenizer keeps the two apart), so no text of this world is ``<unk>``."""
        words = self.vocabulary()
        return words + ["".join(" " + w for w in words)]

    # ---- verification -----------------------------------------------------------------------
    def verify(self, steps: list[str], answer: str | None = None) -> list[StepCheck]:
        """No steps are expected: any line before the answer is ``other`` and invalid."""
        return [StepCheck("other", False, False, "a judgement is answered without steps") for _ in steps]

    def to_dict(self) -> dict:
        """Serializable description: the config, the store's rules and the held-out types."""
        return {"world": "judge", "config": asdict(self.config), "rules": self.rules.to_dict(),
                "heldout": list(self.heldout)}

    @classmethod
    def from_dict(cls, d: dict) -> JudgeWorld:
        """Rebuild from :meth:`to_dict` (the rules are checked against the config's); ``ValueError``
        naming a bad field."""
        if not isinstance(d, dict) or not isinstance(d.get("config"), dict):
            raise ValueError("field 'config': missing (expected JudgeWorld.to_dict() output)")
        known = JudgeConfig.__dataclass_fields__
        try:
            world = cls(JudgeConfig(**{k: v for k, v in d["config"].items() if k in known}))
        except TypeError as e:
            raise ValueError(f"field 'config': {e}") from None
        if "rules" in d and Rules.from_dict(d["rules"], "world") != world.rules:
            raise ValueError("field 'rules': do not match the world rebuilt from its config")
        return world


@register_task("judge")
class JudgeTask:
    """The judgement world as a task: claims ``judge.*`` examples (each carries its rules); no steps
    to corrupt or reword. Variants need the world's config (a :class:`JudgeWorld`)."""

    name = "judge"

    def __init__(self, world=None):
        self.world = world if isinstance(world, JudgeWorld) else None
        self.verifier = self.world or JudgeWorld()
        self.corrupter = lambda step, rng: step
        self.paraphraser = lambda step, rng=None: step

    @classmethod
    def claims(cls, example: Example, world=None) -> bool:
        return example.task.startswith("judge.")

    def variants(self, test: list[Example], n: int, seed: int,
                 exclude: set[str] | None = None) -> dict[str, list[Example]]:
        """:meth:`JudgeWorld.variants` (``heldout``, ``hinge``)."""
        if self.world is None:
            raise TaskError("task 'judge' builds variants from its world's config; none was given")
        return self.world.variants(test, n, seed, exclude=exclude)


def make_judge_splits(world: JudgeWorld, n_pretrain: int, n_train: int, n_test: int, n_variant: int,
                      seed: int) -> Splits:
    """Disjoint (by question) pretraining carts (rules of their own), SFT train, test and variant sets.

    >>> sp = make_judge_splits(JudgeWorld(), 3, 4, 2, 2, seed=0)
    >>> [len(sp.pretrain_problems), len(sp.train), len(sp.test), sorted(sp.variants), sp.facts]
    [3, 4, 2, ['heldout', 'hinge'], []]
    """
    test, variants, train, seen = draw_disjoint(world, n_train, n_test, n_variant, seed)
    pre = world.pretrain_problems(n_pretrain, seed + 19, exclude=seen)
    return Splits(pretrain_problems=pre, train=train, test=test, variants=variants, facts=[])


__all__ = ["CRITERIA", "INSTRUCTION", "TASK", "JudgeConfig", "JudgeTask", "JudgeWorld", "Rules", "cart_question",
           "failed_criteria", "judge", "load_criteria", "make_judge_splits", "parse_cart", "with_criteria"]
