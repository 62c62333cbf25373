"""C6 — labelled examples alone don't transfer criteria to new item types; explicit criteria do
(Wachsmuth et al. 2024, "Argument Quality Assessment in the Age of Instruction-Following LLMs",
arXiv 2403.16084, a position paper). Registers three conditions, each fine-tuning the base on the same
*practice block* (carts judged under other stores' rules, written) plus what it knows of this store:
``c6_labels`` (the store's labelled carts, its criteria nowhere), ``c6_criteria`` (the same carts with
the store's criteria written after the cart, also at test time) and ``c6_criteria_only`` (no label of
the store: the practice block alone, asked with the store's criteria written).

Measured in the ``judge`` world (:mod:`sftlens.tasks.judge`): is a cart acceptable under a budget, a
needed item and a forbidden pair? Training carts hold seen item types only; the held-out types include
one member of the forbidden pair, so in training the written criteria name an item no example shows
and the ``forbidden`` criterion never fires. Controls, on the same models: the **positive** one is the
``hinge`` twins, carts whose label turns on the held-out type the criteria name, each next to the same
cart with a neutral held-out type in its place — only the written criteria tell the twins apart, so
they must help there; the **negative** one is the in-distribution test set, where the labels teach
everything the criteria say — they cannot help there beyond the SESOI. Every comparison is of paired
0/1 outcomes (binary): when every pair differs alike (both models perfect on the seen types) the
interval is exact (:func:`sftlens.lab.protocol.exact_decision`), not a constant-column guard.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...core.record import Example
from ...metrics.stats import bootstrap_mean, column, paired_difference
from ...report.format import md_table, pct, pts
from ...tasks.judge import CRITERIA, with_criteria
from ..conditions import Condition, register_condition
from ..protocol import Comparison, Protocol, SeedEvidence, paired_table, signal_guard
from ._base import (ACCURACY_SESOI, Arm, Claim, ClaimResult, FinishedRun, accuracy_bound_guard, check_aligned,
                    diff_column, effect, mean_of, register_claim)

LABELS, WRITTEN, ONLY = "c6_labels", "c6_criteria", "c6_criteria_only"
NAMES = {LABELS: "labels only", WRITTEN: "labels + criteria", ONLY: "criteria only", "base": "base"}
SETS = {"test": "seen types", "variant_heldout": "held-out types", "variant_hinge": "hinge twins"}


def practice(c) -> list[Example]:
    """As many carts as the store's training set, of seen types, judged under other stores' rules written
    after the cart: the same block in every C6 condition, so fine-tuning keeps practising to read rules
    and the conditions differ only in what they say about this store."""
    taken = set(c.heldout) | {e.question for e in c.train}
    return c.world.pretrain_problems(len(c.train), c.seed + 37, exclude=taken, prefix="practice", split="practice")


register_condition(Condition(LABELS, "C6: the store's labelled carts (its criteria nowhere) and the practice block",
                             build=lambda c: list(c.train) + practice(c)))
register_condition(Condition(WRITTEN, "C6: the store's labelled carts with its criteria written after the cart (also "
                                      "at test time) and the practice block",
                             build=lambda c: with_criteria(c.train) + practice(c),
                             eval_transform=lambda exs, seed: with_criteria(exs)))
register_condition(Condition(ONLY, "C6: no label of the store — the practice block only, asked with the store's "
                                   "criteria written",
                             build=practice, eval_transform=lambda exs, seed: with_criteria(exs)))

SESOI = ACCURACY_SESOI
SESOI_REASON = ("5 accuracy points, one yes/no verdict in twenty: the lab's smallest accuracy difference, below which "
                "one extra seed moves the estimate at these test sizes")
IN_DISTRIBUTION = Protocol(quantity="accuracy on seen item types, labels + criteria minus labels only, paired over "
                                    "test carts", sesoi=SESOI, sesoi_reason=SESOI_REASON, test="equivalence")


@dataclass(frozen=True)
class SetArm(Arm):
    """An arm measured on one evaluation set of the same models (``test`` or ``variant_<name>``)."""

    test_set: str = "test"


class TransferAndEquivalence(Protocol):
    """The claim's protocol: held-out accuracy must rise beyond the SESOI (superiority) while
    in-distribution accuracy is shown equal (:data:`IN_DISTRIBUTION`, two one-sided tests)."""

    def rule(self) -> str:
        held, tail = Protocol(self.quantity, self.sesoi, self.sesoi_reason, self.test).rule().split(
            "; inconclusive otherwise", 1)
        same = IN_DISTRIBUTION.rule().split("; inconclusive otherwise", 1)[0]
        return (f"Two comparisons, reproduced only when both are, not reproduced when either is not. (1) {held}. "
                f"(2) {same}. Inconclusive otherwise{tail}")


def majority_share(run: FinishedRun, set_name: str = "test") -> float:
    """The share of the set's commoner label (what always answering it scores)."""
    answers = [e.answer for e in run.load(set_name)]
    return max(answers.count("yes"), answers.count("no")) / max(len(answers), 1)


def error_by_criterion(rows: list[dict], examples: list) -> dict[str, dict]:
    """Error rate and count per deciding criterion (``none``: acceptable carts) and on carts whose label
    turns on a held-out type (``turns on held-out``).

    >>> from sftlens.core.record import Example
    >>> exs = [Example(id=str(i), task="judge.purchase", question="q", answer="no",
    ...                meta={"decided_by": d, "turns_on_heldout": t}) for i, (d, t) in
    ...        enumerate([("budget", []), ("forbidden", ["jar"]), ("forbidden", ["jar"])])]
    >>> out = error_by_criterion([{"correct": 1.0}, {"correct": 0.0}, {"correct": 1.0}], exs)
    >>> out["forbidden"], out["turns on held-out"], out["needs"]
    ({'n': 2, 'error': 0.5}, {'n': 2, 'error': 0.5}, {'n': 0, 'error': None})
    """
    groups = {c: [] for c in ("none",) + CRITERIA + ("turns on held-out",)}
    for r, e in zip(rows, examples):
        groups[e.meta["decided_by"]].append(r["correct"])
        if e.meta.get("turns_on_heldout"):
            groups["turns on held-out"].append(r["correct"])
    return {k: {"n": len(v), "error": 1 - sum(v) / len(v) if v else None} for k, v in groups.items()}


@register_claim
class CriteriaTransfer(Claim):
    id = "C6"
    title = "criteria versus labels"
    conditions = (LABELS, WRITTEN, ONLY)
    arm = Arm(conditions, world="judge", description="carts judged by a store's criteria; accuracy on held-out types")
    positive = SetArm((LABELS, WRITTEN), world="judge", test_set="variant_hinge",
                      description="hinge twins: the label turns on a held-out type the criteria name, so only the "
                                  "written criteria tell the twins apart")
    negative = SetArm((LABELS, WRITTEN), world="judge", test_set="test",
                      description="seen types only: the labels teach everything the criteria say")
    statement = ("Fine-tuning on labelled examples alone does not transfer the criteria to held-out item types; with "
                 "the criteria written in the prompt it does, while both are equal on the seen types.")
    protocol = TransferAndEquivalence(
        quantity="accuracy on carts holding held-out item types, labels + criteria minus labels only, paired over "
                 "carts", sesoi=SESOI, sesoi_reason=SESOI_REASON, test="superiority", direction=+1)

    def evidence(self, run: FinishedRun, arm: Arm | None = None) -> SeedEvidence | None:
        if not all(m in run.models() for m in (LABELS, WRITTEN)) or "hinge" not in run.variant_names():
            return None
        sets = [arm.test_set] if isinstance(arm, SetArm) else ["variant_heldout", "test"]
        comparisons = []
        for s in sets:
            written, labels = run.rows(WRITTEN, s), run.rows(LABELS, s)
            check_aligned({WRITTEN: written, LABELS: labels})
            comparisons.append(Comparison(f"accuracy on {SETS[s]}, labels + criteria - labels only",
                                          paired_table(diff_column(written, labels)), binary=True,
                                          protocol=IN_DISTRIBUTION if len(sets) == 2 and s == "test" else None))
        majority = majority_share(run)
        guards = signal_guard(f"labels-only accuracy on seen types over always giving the commoner label "
                              f"({100 * majority:.0f}%)", [r["correct"] - majority for r in run.rows(LABELS, "test")],
                              SESOI)
        guards += accuracy_bound_guard({NAMES[m]: mean_of(column(run.rows(m, sets[0]), "correct"))
                                        for m in (LABELS, WRITTEN)})
        return SeedEvidence(run.seed, comparisons, guards)

    def analyze(self, run: FinishedRun) -> ClaimResult | None:
        seed, n = run.seed, run.bootstrap
        models = [m for m in (LABELS, WRITTEN, ONLY, "base") if m in run.models()]
        if not {LABELS, WRITTEN} <= set(models) or "hinge" not in run.variant_names():
            return None
        examples = {s: run.load(s) for s in SETS}
        per_model = {}
        for m in models:
            per_model[m] = {"name": NAMES[m], "errors_by_criterion": {}}
            for s in SETS:
                rows = run.rows(m, s)
                per_model[m][s] = bootstrap_mean(column(rows, "correct"), seed=seed, n_resamples=n).to_dict()
                per_model[m]["errors_by_criterion"][s] = error_by_criterion(rows, examples[s])
        per_condition = {}
        for m in (WRITTEN, ONLY):
            if m in models:
                per_condition[m] = {s: paired_difference(column(run.rows(m, s), "correct"),
                                                         column(run.rows(LABELS, s), "correct"), seed=seed,
                                                         n_resamples=n).to_dict() for s in SETS}
        return ClaimResult(
            claim=self.statement, verdict="inconclusive", rule=self.protocol.rule(),
            effect=effect("accuracy on held-out types, labels + criteria - labels only",
                          per_condition[WRITTEN]["variant_heldout"]),
            per_condition=per_condition, per_model=per_model,
            notes=["Per-example rows: worlds/judge/eval/<model>/{test,variant_heldout,variant_hinge}.jsonl, "
                   "paired by id with the carts (and their deciding criterion) in worlds/judge/data/.",
                   "Errors by criterion: the share of carts answered wrongly among those whose label the criterion "
                   "decided (none: acceptable carts, every criterion held); 'turns on held-out': carts whose label "
                   "would differ without their held-out item.",
                   "Every condition fine-tunes on the same practice block (as many carts as the store's, judged "
                   "under other stores' rules, written); criteria only has no label of this store at all."])

    def plots(self, run: FinishedRun, result: dict, out: Path) -> dict[str, str]:
        from ...report.figures import pyplot, save_png

        per_model = result.get("per_model", {})
        if not per_model:
            return {}
        plt = pyplot()
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
        width = 0.8 / len(per_model)
        keys = ("none",) + CRITERIA
        for i, (m, s) in enumerate(per_model.items()):
            left.bar([j + i * width for j in range(len(SETS))], [100 * s[k]["mean"] for k in SETS], width=width,
                     label=s["name"])
            errors = s["errors_by_criterion"]["variant_heldout"]
            right.bar([j + i * width for j in range(len(keys))],
                      [100 * errors[k]["error"] if errors[k]["error"] is not None else 0 for k in keys], width=width,
                      label=s["name"])
        for ax, labels in ((left, list(SETS.values())), (right, [k if k != "none" else "none (yes)" for k in keys])):
            ax.set_xticks([j + width * (len(per_model) - 1) / 2 for j in range(len(labels))])
            ax.set_xticklabels(labels, fontsize=8)
            ax.grid(axis="y", alpha=0.3)
        left.set_ylabel("accuracy (%)")
        left.set_title("C6: accuracy by test set")
        right.set_ylabel("error rate (%)")
        right.set_title("held-out types: errors by deciding criterion")
        left.legend(fontsize=8)
        fig.tight_layout()
        save_png(fig, out / "c6_criteria.png")
        return {"c6": "c6_criteria.png"}

    def report_section(self, result: dict, plots: dict[str, str]) -> list[str]:
        per_model, per_condition = result.get("per_model", {}), result.get("per_condition", {})
        lines = ["The judgement world's models (`worlds/judge/`), descriptive (95% intervals):", "",
                 md_table(["model"] + list(SETS.values()),
                          [[s["name"]] + [pct(s[k]) for k in SETS] for s in per_model.values()]), "",
                 md_table(["condition"] + [f"vs labels only: {v}" for v in SETS.values()],
                          [[NAMES[m]] + [pts(d[k]) for k in SETS] for m, d in per_condition.items()]), ""]
        keys = ("none",) + CRITERIA + ("turns on held-out",)
        for s in ("variant_heldout", "test"):
            first = next(iter(per_model.values()))["errors_by_criterion"][s]
            lines += [f"Error rate by deciding criterion, {SETS[s]} (carts):", "",
                      md_table(["model"] + [f"{k} ({first[k]['n']})" for k in keys],
                               [[d["name"]] + [f"{100 * e[k]['error']:.1f}%" if e[k]["error"] is not None else "n/a"
                                               for k in keys]
                                for d in per_model.values() for e in [d["errors_by_criterion"][s]]]), ""]
        if "c6" in plots:
            lines += [f"![criteria versus labels]({plots['c6']})", ""]
        return lines
