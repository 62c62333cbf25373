"""C3 — instruction tuning teaches the output space, not the task (Kung & Peng 2023, arXiv 2305.11383).

Registers the corrupted-instruction conditions (``instr_empty``, ``instr_wrong``: another task's
instruction, ``instr_random``: random words of the same length; each model is asked at test time
with the kind of instruction it was trained with) and compares them with ``correct`` and with the
output-space baseline (a random answer drawn from the task's training answers).
"""

from __future__ import annotations

import math
import random

from ...core.format import normalize_answer
from ...core.record import Example
from ...data.ops import instructions_empty, instructions_random, instructions_wrong
from ...metrics.stats import Estimate, bootstrap_mean, column, mcnemar, paired_difference
from ...report.format import md_table, pct, pts
from ..conditions import Condition, register_condition
from ..protocol import Comparison, Protocol, SeedEvidence, paired_table, signal_guard
from ._base import (Arm, ACCURACY_SESOI, ACCURACY_SESOI_REASON, EQUIVALENCE_MARGIN, Claim, ClaimResult, FinishedRun,
                    accuracy_bound_guard, check_aligned, diff_column, effect, equivalence, mean_of, needed_n,
                    register_claim)

STATEMENT = ("Models trained on empty, wrong or random-word instructions score about as well as with the "
             "correct instructions (instruction tuning teaches the output space, not the task).")
CORRUPTED = ("instr_empty", "instr_wrong", "instr_random")
MARGIN = EQUIVALENCE_MARGIN
RULE = (f"Equivalence test, margin {MARGIN:.2f}: reproduced when every corrupted-instruction model's 95% "
        "bootstrap interval of the paired accuracy difference (corrupted - correct, over the same test "
        f"examples) lies inside [-{MARGIN:.2f}, {MARGIN:.2f}]; not reproduced when any interval lies entirely "
        f"below -{MARGIN:.2f}; inconclusive otherwise. Each model is also compared with the output-space "
        "baseline (a random answer drawn from the task's training answers).")


def instruction_sets(train: list[Example], seed: int = 0) -> dict[str, list[Example]]:
    """The three corrupted-instruction training sets built from the standard ``train`` set.

    >>> from sftlens.tasks.shop import ShopWorld, ShopConfig, make_splits
    >>> sp = make_splits(ShopWorld(ShopConfig(seed=0)), 5, 20, 5, 2, seed=0)
    >>> sets = instruction_sets(sp.train, seed=0)
    >>> sorted(sets), {e.instruction for e in sets["instr_empty"]}
    (['instr_empty', 'instr_random', 'instr_wrong'], {''})
    >>> all(e.instruction != o.instruction for e, o in zip(sets["instr_wrong"], sp.train))
    True
    """
    return {
        "instr_empty": instructions_empty(train, seed=seed),
        "instr_wrong": instructions_wrong(train, seed=seed),
        "instr_random": instructions_random(train, seed=seed),
    }


def _register(name: str, description: str) -> None:
    # Kung & Peng evaluate with the same kind of instruction the model was trained on: a model tuned
    # on empty instructions is asked without one, and so on. The test problems themselves are the same.
    register_condition(Condition(
        name, description,
        build=lambda c: instruction_sets(c.train, seed=c.seed)[name],
        eval_transform=lambda examples, seed: instruction_sets(examples, seed=seed + 7)[name]))


_register("instr_empty", "C3: the instruction line removed (also at test time)")
_register("instr_wrong", "C3: another task's instruction (also at test time)")
_register("instr_random", "C3: random words of the instruction's length (also at test time)")


def output_space_baseline(train: list[Example], test: list[Example], seed: int = 0) -> list[float]:
    """Per test example 1.0/0.0: is a random answer, drawn from the training answers of the same
    task (the empirical answer distribution; all training answers when the task is absent), right?

    >>> tr = [Example(id=str(i), task="t", question="q", answer="7") for i in range(3)]
    >>> output_space_baseline(tr, [Example(id="a", task="t", question="q", answer="7"),
    ...                            Example(id="b", task="t", question="q", answer="8")])
    [1.0, 0.0]
    """
    rng = random.Random(seed)
    by_task: dict[str, list[str]] = {}
    for e in train:
        by_task.setdefault(e.task, []).append(normalize_answer(e.answer) or "")
    everything = [a for answers in by_task.values() for a in answers]
    out = []
    for e in test:
        pool = by_task.get(e.task) or everything
        if not pool:
            out.append(math.nan)
            continue
        out.append(1.0 if rng.choice(pool) == (normalize_answer(e.answer) or "") else 0.0)
    return out


def compare_instructions(rows_by_model: dict[str, list[dict]], baseline: list[float], seed: int = 0,
                         n_resamples: int = 2000) -> ClaimResult:
    """The C3 result from per-sample rows (key ``correct``) of the models ``correct``,
    ``instr_empty``, ``instr_wrong`` and ``instr_random`` on the same test examples, and the
    output-space baseline's per-example outcomes (see :data:`RULE`).

    The headline effect is the corrupted-minus-correct difference whose interval reaches furthest
    from zero (the one that decides the equivalence test).
    """
    notes: list[str] = []
    check_aligned(rows_by_model)
    per_model: dict[str, dict] = {}
    base = [float(x) for x in baseline]
    for m, rows in rows_by_model.items():
        acc = column(rows, "correct")
        entry = {"accuracy": bootstrap_mean(acc, seed=seed, n_resamples=n_resamples).to_dict()}
        if len(base) == len(acc):
            entry["vs_baseline"] = paired_difference(acc, base, seed=seed, n_resamples=n_resamples).to_dict()
        per_model[m] = entry
    if base:
        per_model["output_space_baseline"] = {"accuracy": bootstrap_mean(base, seed=seed, n_resamples=n_resamples).to_dict()}
    if "correct" not in rows_by_model:
        return ClaimResult(STATEMENT, "inconclusive", RULE, effect("accuracy difference", Estimate.nan()), {},
                           per_model, ["no 'correct' model in the rows: nothing to compare with"])
    reference = column(rows_by_model["correct"], "correct")
    per_condition: dict[str, dict] = {}
    diffs: list[tuple[str, Estimate]] = []
    for name in CORRUPTED:
        if name not in rows_by_model:
            notes.append(f"condition '{name}' missing from the rows")
            continue
        acc = column(rows_by_model[name], "correct")
        diff = paired_difference(acc, reference, seed=seed, n_resamples=n_resamples)
        per_condition[name] = {"diff_vs_correct": diff.to_dict(), "equivalence": equivalence(diff),
                               "mcnemar": mcnemar([x == 1 for x in acc], [x == 1 for x in reference])}
        diffs.append((name, diff))
    if not diffs:
        decision = "inconclusive"
        headline = effect("accuracy difference", Estimate.nan())
    else:
        states = [equivalence(d) for _, d in diffs]
        if len(diffs) == len(CORRUPTED) and all(s == "inside" for s in states):
            decision = "reproduced"
        elif any(s == "below" for s in states):
            decision = "not reproduced"
        else:
            decision = "inconclusive"
        name, diff = max(diffs, key=lambda nd: max(abs(nd[1].lo), abs(nd[1].hi)) if not math.isnan(nd[1].lo) else -1)
        headline = effect(f"accuracy({name}) - accuracy(correct)", diff)
        if len(diffs) < len(CORRUPTED) and decision == "inconclusive":
            notes.append("not every corrupted-instruction condition was run, so equivalence cannot be shown for all")
    correct_vs_baseline = per_model["correct"].get("vs_baseline")
    if correct_vs_baseline is not None and not math.isnan(correct_vs_baseline["lo"]) and correct_vs_baseline["lo"] <= 0:
        notes.append("the correct-instruction model is not clearly above the output-space baseline: "
                     "equivalence then only shows that no model learned more than the answer distribution")
        if decision == "reproduced":
            decision = "inconclusive"  # no signal: equivalence of models that learned nothing proves nothing
    if decision == "inconclusive":
        for name, diff in diffs:
            need = needed_n(column(rows_by_model[name], "correct"), reference)
            if diff.hi - diff.lo > 2 * MARGIN and need:
                notes.append(f"{name}: the interval ({diff.lo:+.3f}, {diff.hi:+.3f}) is wider than the "
                             f"±{MARGIN:.2f} margin; about {need} paired test examples would resolve it at this "
                             "disagreement rate")
    return ClaimResult(STATEMENT, decision, RULE, headline, per_condition, per_model, notes)


@register_claim
class Instructions(Claim):
    id = "C3"
    title = "instructions"
    conditions = ("correct",) + CORRUPTED
    # the reference first, then each model compared with it. Positive: the same training twice (another data
    # order), equivalent by construction: if the lab cannot find it so, equivalence is out of its reach at this n.
    # Negative: SFT on swapped traces, which the shop's answers cannot follow (tens of points worse): the lab must
    # not call it equivalent. Neither is the world the issue asks for (instructions as the only task cue).
    positive = Arm(("correct", "correct_again"), description="a second SFT run on the same correct traces in another "
                   "data order: equivalent by construction")
    negative = Arm(("correct", "swapped"), description="SFT on swapped traces (each chain belongs to another "
                   "problem): far worse by construction, never equivalent")
    statement = STATEMENT
    protocol = Protocol(
        quantity="accuracy with corrupted instructions minus accuracy with correct ones, paired over test problems, "
                 "for each of instr_empty, instr_wrong and instr_random (all three must be equivalent)",
        sesoi=ACCURACY_SESOI, sesoi_reason=ACCURACY_SESOI_REASON, test="equivalence")

    def evidence(self, run: FinishedRun, arm: Arm | None = None) -> SeedEvidence | None:
        """Each of the arm's conditions after the first against the first (the reference: ``correct``),
        paired over test problems; all must be equivalent."""
        ref, *others = (arm or self.arms()["real"]).conditions
        if not all(n in run.models() for n in (ref, *others)):
            return None
        reference = run.rows(ref, "test")
        comparisons = [Comparison(f"accuracy, {n} - {ref}", paired_table(diff_column(run.rows(n, "test"), reference)))
                       for n in others]
        baseline = output_space_baseline(run.load("train"), run.load("test"), seed=run.seed)
        correct = column(reference, "correct")
        guards = signal_guard(f"the accuracy of {ref} over the output-space baseline",
                              [c - b for c, b in zip(correct, baseline)], ACCURACY_SESOI)
        guards += accuracy_bound_guard({n: mean_of(column(run.rows(n, "test"), "correct")) for n in (ref, *others)})
        return SeedEvidence(run.seed, comparisons, guards)

    def analyze(self, run: FinishedRun) -> ClaimResult | None:
        names = ("correct",) + CORRUPTED
        if not all(n in run.models() for n in names):
            return None
        baseline = output_space_baseline(run.load("train"), run.load("test"), seed=run.seed)
        result = compare_instructions({n: run.rows(n, "test") for n in names}, baseline, seed=run.seed,
                                      n_resamples=run.bootstrap)
        result.notes.append("Each model is asked with the kind of instruction it was trained with (none, another "
                            "task's, random words), as in Kung & Peng; the test problems are the same for all.")
        result.notes.append("The base saw the correct instruction in every pretraining problem, so empty or random "
                            "instructions are also a shift away from what the base learned; the question alone "
                            "still names the task (pay / how heavy).")
        return result

    def report_section(self, result: dict, plots: dict[str, str]) -> list[str]:
        per_model, per_condition = result.get("per_model", {}), result.get("per_condition", {})
        return [md_table(["model", "accuracy", "vs output-space baseline"],
                         [[m, pct(s.get("accuracy")), pts(s.get("vs_baseline"))] for m, s in per_model.items()]), "",
                md_table(["condition", "accuracy vs correct instruction", "within ±5 pts?", "McNemar p"],
                         [[m, pts(d["diff_vs_correct"]), d["equivalence"], f"{d['mcnemar']['p_value']:.3g}"]
                          for m, d in per_condition.items()]), ""]
