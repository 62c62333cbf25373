"""The lab's data conditions: how each SFT training set is made from the clean one.

A condition is a named operator over the clean training set plus (optionally) its own SFT settings.
Add one by registering it in :data:`CONDITIONS`; the preset lists which conditions a run trains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..data import ops
from ..core.record import Example
from ..tasks.shop import ShopWorld
from ..train.sft import SFTSettings


@dataclass
class Condition:
    """A data condition: ``build(train, world, seed, preset)`` returns its SFT set."""

    name: str
    description: str
    build: Callable[[list[Example], ShopWorld, int, object], list[Example]]
    sft_settings: Callable[[object], SFTSettings] | None = None
    # how this condition's model is asked at test time (default: the clean test problems)
    eval_transform: Callable[[list[Example], int], list[Example]] | None = None

    def settings(self, preset) -> SFTSettings:
        """SFT settings for this condition (the preset's unless the condition overrides them)."""
        return self.sft_settings(preset) if self.sft_settings else preset.sft


CONDITIONS: dict[str, Condition] = {
    "correct": Condition("correct", "the clean, correct worked solutions", lambda t, w, s, p: list(t)),
    "swapped": Condition("swapped", "each problem gets another problem's trace, its own answer",
                         lambda t, w, s, p: ops.swap_traces(t, seed=s)),
    "answer_only": Condition("answer_only", "no steps: question, then the answer",
                             lambda t, w, s, p: ops.drop_traces(t, seed=s)),
    "shuffled": Condition("shuffled", "each trace's steps in a random order",
                          lambda t, w, s, p: ops.shuffle_steps(t, seed=s)),
}


# ---- C3: instructions --------------------------------------------------------------------------
def _c3(name: str):
    def build(t, w, s, p):
        from .c3 import c3_training_sets

        return c3_training_sets(t, seed=s)[name]
    return build


def _c3_eval(name: str):
    # Kung & Peng evaluate with the same kind of instruction the model was trained on: a model tuned
    # on empty instructions is asked without one, and so on. The test problems themselves are the same.
    def transform(exs, s):
        from .c3 import c3_training_sets

        return c3_training_sets(exs, seed=s + 7)[name]
    return transform


CONDITIONS["instr_empty"] = Condition("instr_empty", "C3: the instruction line removed (also at test time)",
                                      _c3("instr_empty"), eval_transform=_c3_eval("instr_empty"))
CONDITIONS["instr_wrong"] = Condition("instr_wrong", "C3: another task's instruction (also at test time)",
                                      _c3("instr_wrong"), eval_transform=_c3_eval("instr_wrong"))
CONDITIONS["instr_random"] = Condition("instr_random", "C3: random words of the instruction's length "
                                       "(also at test time)", _c3("instr_random"),
                                       eval_transform=_c3_eval("instr_random"))


# ---- C10: bulk vs curated -----------------------------------------------------------------------
BULK_CORRUPT_SHARE = 0.2  # examples given one wrong step (a false fact or a wrong result)
BULK_LABEL_NOISE = 0.1    # examples given a wrong final answer


def bulk_set(train: list[Example], world: ShopWorld, seed: int) -> list[Example]:
    """The uncurated pool of C10: the clean set where 20% of examples carry one wrong step and 10% a
    wrong answer (what scraped or model-generated bulk data looks like). Same order, same ids."""
    import random

    rng = random.Random(seed + 101)
    idx = list(range(len(train)))
    rng.shuffle(idx)
    n_c = int(round(BULK_CORRUPT_SHARE * len(train)))
    n_l = int(round(BULK_LABEL_NOISE * len(train)))
    corrupt_ids, label_ids = set(idx[:n_c]), set(idx[n_c:n_c + n_l])
    corrupted = ops.corrupt_steps([train[i] for i in sorted(corrupt_ids)], seed=seed, rate=0.0001,
                                  corrupter="shop", world=world)
    noisy_src = [train[i] for i in sorted(label_ids)]
    noisy = ops.label_noise(noisy_src, seed=seed, p=1.0)
    repl = dict(zip(sorted(corrupt_ids), corrupted)) | dict(zip(sorted(label_ids), noisy))
    return [repl.get(i, e) for i, e in enumerate(train)]


def _c10(name: str):
    def build(t, w, s, p):
        from .c10 import c10_training_sets

        return c10_training_sets(bulk_set(t, w, s), w, k=p.c10_k, seed=s)[name]
    return build


CONDITIONS["bulk"] = Condition("bulk", "C10: the full uncurated pool (20% one wrong step, 10% wrong answer)",
                               lambda t, w, s, p: bulk_set(t, w, s))
CONDITIONS["curated_k"] = Condition("curated_k", "C10: k examples of the pool, verified and diverse (k-center)",
                                    _c10("curated_k"))
CONDITIONS["random_k"] = Condition("random_k", "C10: k random examples of the pool", _c10("random_k"))
