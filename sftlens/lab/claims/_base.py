"""The one shape every lab claim has: a :class:`Claim` that registers itself, reads a
:class:`FinishedRun` and returns a :class:`ClaimResult`.

A claim file declares its id, the statement it tests, the data conditions it needs trained (each
registered with :func:`sftlens.lab.conditions.register_condition`), its analysis, and its own
report section and plots. The runner and the report loop over :data:`CLAIMS`; nothing else knows
a claim by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
import typing
from typing import Any, Callable

import numpy as np

from ...core.record import Example
from ...metrics.catalogue import names
from ...metrics.stats import Estimate, column
from ..protocol import Protocol, SeedEvidence

EQUIVALENCE_MARGIN = 0.05   # "about as well": within 5 accuracy points
ACCURACY_SESOI = 0.05       # the smallest accuracy difference any claim cares about: 5 points
ACCURACY_SESOI_REASON = ("5 accuracy points: Kung & Peng call 43% vs 42.6% 'about as well', and at the lab's "
                         "test sizes smaller differences are below what one extra seed moves")
PRIMARY_CONDITION = "correct"  # standard SFT on clean traces: the condition most claims are about


class FinishedRun(typing.Protocol):
    """What a finished lab run offers a claim's analysis (the :class:`~sftlens.lab.runner.Lab` is one)."""

    seed: int
    out: Path

    @property
    def bootstrap(self) -> int: ...            # resamples for every interval of the run

    def models(self) -> list[str]: ...          # "base" first, then every trained condition
    def rows(self, model: str, set_name: str = "test") -> list[dict]: ...  # per-example metric rows
    def has_faithfulness(self, model: str) -> bool: ...
    def faith_rows(self, model: str) -> list[dict]: ...  # the C2 battery's per-example rows
    def variant_names(self) -> list[str]: ...
    def load(self, name: str) -> list[Example]: ...      # a data set of the run (train, test, ...)
    def world_run(self, name: str) -> "FinishedRun": ...  # this seed's run of another lab world
    def world(self) -> Any: ...                          # the run's world (its verifier)
    def samples(self, model: str, set_name: str = "test") -> list: ...  # a model's generations (Sample)
    def model_info(self, model: str) -> dict: ...        # how a model was made (models/<m>/sftlens.json)
    def profiled(self, model: str, name: str) -> list[Example]: ...  # a model's pass@k profile of a set


@dataclass
class ClaimResult:
    """A claim's entry in ``results.json``: the verdict, the rule that produced it, the headline
    effect, per-condition comparisons and per-model summaries. ``extra`` holds claim-specific
    top-level fields (written between ``per_model`` and ``notes``)."""

    claim: str
    verdict: str
    rule: str
    effect: dict
    per_condition: dict
    per_model: dict
    notes: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"claim": self.claim, "verdict": self.verdict, "rule": self.rule, "effect": self.effect,
                "per_condition": self.per_condition, "per_model": self.per_model, **self.extra,
                "notes": self.notes}


@dataclass(frozen=True)
class Arm:
    """Where one arm of a claim is measured: a lab world (:mod:`sftlens.lab.worlds`) and the data
    conditions trained there. The real arm tests the claim; a **positive control** is a setting where
    the effect is known to happen (the lab must detect it: verdict "reproduced"), a **negative
    control** one where it is known not to (the lab must not: any verdict but "reproduced")."""

    conditions: tuple[str, ...]
    world: str = "shop"
    description: str = ""


CONTROL_ROLES = ("positive", "negative")


class Claim:
    """Base of every lab claim. Subclasses set the class attributes and implement :meth:`analyze`;
    :meth:`report_section` and :meth:`plots` default to a generic table and no plot."""

    id: str = ""                      # "C1" ... "C10", as in CLAIMS.md
    title: str = ""                   # a few words for headings
    conditions: tuple[str, ...] = ()  # data conditions the claim needs trained (in the shop, unless ``arm`` says)
    protocol: Protocol | None = None  # primary quantity, SESOI and test, stated before any number
    arm: Arm | None = None            # where the claim is measured (default: ``conditions`` in the shop)
    positive: Arm | None = None       # planted positive control: the effect is known to happen here
    negative: Arm | None = None       # negative control: the effect is known not to happen here

    def arms(self) -> dict[str, Arm]:
        """``real`` and each declared control, by role."""
        arms = {"real": self.arm or Arm(tuple(self.conditions))}
        arms.update({role: getattr(self, role) for role in CONTROL_ROLES if getattr(self, role) is not None})
        return arms

    def evidence(self, run: FinishedRun, arm: Arm | None = None) -> SeedEvidence | None:
        """One seed's comparisons for the verdict protocol (:func:`sftlens.lab.protocol.judge`) and
        the guards that apply, or ``None`` when the run lacks what the claim needs. ``run`` is the
        run of the arm's world; ``arm`` (default: the real one) says which conditions stand for the
        claim's treatment there."""
        raise NotImplementedError

    def analyze(self, run: FinishedRun) -> ClaimResult | None:
        """The claim's result for a finished run, or ``None`` when the run lacks what it needs."""
        raise NotImplementedError

    def stages(self, run) -> None:
        """Models the claim makes in each world of its arms beyond the data conditions (C9: a larger
        base, its SFT and proxy-tuned models), after the run's own stages of that world and in the
        same job; ``run`` is that world's :class:`~sftlens.lab.runner.Lab`. Each stage must resume
        like the lab's own (skip what is finished). Default: none."""

    def plots(self, run: FinishedRun, result: dict, out: Path) -> dict[str, str]:
        """Write this claim's PNGs into ``out``; returns ``{name: file name}``."""
        return {}

    def report_section(self, result: dict, plots: dict[str, str]) -> list[str]:
        """Markdown lines shown under the claim's rule in the lab report."""
        from ...report.format import num

        lines = [f"- **{m}**: " + ", ".join(f"{k} {num(v, 3, True) if isinstance(v, dict) else v}"
                                           for k, v in d.items())
                 for m, d in result.get("per_condition", {}).items()]
        return lines + [""]


CLAIMS: dict[str, Claim] = {}


def register_claim(cls: type[Claim]) -> type[Claim]:
    """Class decorator: instantiate the claim and add it to :data:`CLAIMS` under its id."""
    if not cls.id or cls.id in CLAIMS:
        raise ValueError(f"claim {cls.__name__}: id '{cls.id}' is empty or already registered")
    CLAIMS[cls.id] = cls()
    return cls


# ---- helpers every claim shares -------------------------------------------------------------------
def one_line(text: str) -> str:
    """A rule written as an indented triple-quoted string, as one line."""
    return " ".join(text.split())


def effect(name: str, estimate: Estimate | dict) -> dict:
    """A named headline effect for ``results.json``."""
    return {"name": name, **(estimate.to_dict() if isinstance(estimate, Estimate) else estimate)}


def mean_of(values: list[float]) -> float:
    """Mean of the non-NaN values (NaN when there are none)."""
    kept = [x for x in values if not math.isnan(x)]
    return sum(kept) / len(kept) if kept else math.nan


def equivalence(est: Estimate, margin: float = EQUIVALENCE_MARGIN) -> str:
    """Where a difference's interval lies relative to the margin: ``inside`` (equivalent),
    ``below`` (entirely below -margin), ``above`` (entirely above +margin), ``undecided`` or ``n/a``.

    >>> equivalence(Estimate(0.0, -0.03, 0.04, 100)), equivalence(Estimate(-0.2, -0.3, -0.1, 100))
    ('inside', 'below')
    """
    if math.isnan(est.mean) or math.isnan(est.lo):
        return "n/a"
    if -margin <= est.lo and est.hi <= margin:
        return "inside"
    if est.hi < -margin:
        return "below"
    if est.lo > margin:
        return "above"
    return "undecided"


def needed_n(treated: list[float], control: list[float], margin: float = EQUIVALENCE_MARGIN) -> int | None:
    """Roughly how many paired examples make the 95% interval of the mean difference as narrow as
    ``±margin/2`` around its estimate (``(2 * 1.96 * sd / margin)^2``), or ``None`` without data.

    >>> needed_n([1, 0, 1, 0], [0, 1, 1, 0])
    4098
    """
    diffs = np.asarray(treated, float) - np.asarray(control, float)
    diffs = diffs[~np.isnan(diffs)]
    if diffs.size < 2:
        return None
    sd = float(diffs.std(ddof=1))
    return int(math.ceil((2 * 1.96 * sd / margin) ** 2)) if sd > 0 else None


def check_aligned(rows_by_model: dict[str, list[dict]]) -> None:
    """Refuse rows of models scored on different examples (paired statistics need the same ones)."""
    sizes = {m: len(r) for m, r in rows_by_model.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"rows_by_model: models were scored on different numbers of examples {sizes}; "
                         "paired statistics need the same test examples in the same order")
    ids = {m: [r.get("id") for r in rows] for m, rows in rows_by_model.items()}
    reference = next(iter(ids.values()), [])
    for m, v in ids.items():
        if None not in v and None not in reference and v != reference:
            raise ValueError(f"rows_by_model: model '{m}' rows are not on the same examples in the same order")


def diff_column(treated: list[dict], control: list[dict], key: str = "correct") -> np.ndarray:
    """Per-example ``treated - control`` of one metric (rows in the same order, NaN kept)."""
    return np.asarray(column(treated, key), float) - np.asarray(column(control, key), float)


def accuracy_bound_guard(accuracies: dict[str, float], sesoi: float = ACCURACY_SESOI) -> list[str]:
    """Floor/ceiling for accuracy comparisons: every compared model within the SESOI of 0% (or of 100%)."""
    values = [v for v in accuracies.values() if not math.isnan(v)]
    names = ", ".join(f"{m} {100 * v:.1f}%" for m, v in accuracies.items())
    if values and all(v <= sesoi for v in values):
        return [f"floor: every compared model is within {100 * sesoi:.0f} points of 0% ({names})"]
    if values and all(v >= 1 - sesoi for v in values):
        return [f"ceiling: every compared model is within {100 * sesoi:.0f} points of 100% ({names})"]
    return []


Builder = Callable[[list[Example], Any, int, Any], list[Example]]


SUMMARY_METRICS = names("score")  # what scoring a sample gives, in catalogue order


def model_summary(rows: list[dict], seed: int, n_resamples: int) -> dict:
    """Mean and interval of each headline metric of one model on one set (metrics the rows lack are left out)."""
    from ...metrics.stats import bootstrap_mean

    return {key: bootstrap_mean(column(rows, key), seed=seed, n_resamples=n_resamples).to_dict()
            for key in SUMMARY_METRICS if any(key in r for r in rows)}
