"""C4 — corrupted or swapped traces teach about as well as correct ones (Stechly et al. 2025,
arXiv 2505.13775). Registers the ``swapped`` (another problem's trace, own answer), ``shuffled``
(the problem's own steps in random order), ``answer_only`` (no steps) and ``correct_again`` (the correct
traces once more, in another order) conditions.

Measured where Stechly et al. measured it: grid mazes with A* traces and the plan as the answer
(the ``maze`` world), where a plan can be found without the trace. Controls: the **positive** one is a
second SFT run on the same correct traces in another data order (``correct_again``), which teaches as
well as ``correct`` by construction — the lab must find the two equivalent, or training noise alone is
wider than the margin and no equivalence could be seen; the **negative** one is the shop, where the
answer is the sum written in the trace's last step — swapped traces must not teach as well there."""

from __future__ import annotations

from dataclasses import replace

from ...data import ops
from ...metrics.stats import bootstrap_mean, column, paired_difference
from ...report.format import md_table, pct, pts
from ..conditions import Condition, register_condition
from ..protocol import Comparison, Protocol, SeedEvidence, paired_table, signal_guard
from ._base import (ACCURACY_SESOI, ACCURACY_SESOI_REASON, EQUIVALENCE_MARGIN, Arm, Claim, ClaimResult, FinishedRun,
                    accuracy_bound_guard, diff_column, effect, mean_of, one_line, register_claim)

register_condition(Condition("swapped", "each problem gets another problem's trace, its own answer",
                             lambda c: ops.swap_traces(c.train, seed=c.seed)))
register_condition(Condition("shuffled", "each problem's own steps in a random order",
                             lambda c: ops.shuffle_steps(c.train, seed=c.seed)))
register_condition(Condition("answer_only", "no steps: question, then the answer",
                             lambda c: ops.drop_traces(c.train, seed=c.seed)))
# C4's positive control: what `correct` trains on, in another order (TRL's data seed): equal in expectation
register_condition(Condition("correct_again", "the correct traces again, another data order (a second SFT run)",
                             lambda c: list(c.train), sft_settings=lambda p: replace(p.sft, seed=p.sft.seed + 101)))

RULE = one_line(f"""Reproduced when the 95% interval of (swapped - correct) in-distribution accuracy lies
    above -{EQUIVALENCE_MARGIN:.2f} (at most {EQUIVALENCE_MARGIN * 100:.0f} points worse, or better); not reproduced
    when it lies entirely below -{EQUIVALENCE_MARGIN:.2f}; otherwise inconclusive — and inconclusive whenever SFT on
    correct traces does not beat the base (interval above zero), since then there is no signal. Out-of-distribution
    accuracy (all variant sets pooled) and step-by-step trace validity are reported alongside.""")


@register_claim
class SwappedTraces(Claim):
    id = "C4"
    title = "swapped traces"
    conditions = ("correct", "swapped", "shuffled", "answer_only")
    arm = Arm(conditions, world="maze", description="A* maze traces, the plan as the answer (Stechly et al.'s setting)")
    positive = Arm(("correct", "correct_again"), world="maze",
                   description="the correct traces again in another order: as good as correct by construction")
    negative = Arm(("correct", "swapped"), world="shop",
                   description="the shop: the answer is the sum the trace's last step writes")
    statement = ("Models trained on swapped (other problems') traces reach about the accuracy of models trained on "
                 "correct traces.")
    protocol = Protocol(
        quantity="in-distribution accuracy of SFT on swapped traces minus SFT on correct traces, paired over test "
                 "problems; and the same on the pooled out-of-distribution variants (both must be equivalent)",
        sesoi=ACCURACY_SESOI, sesoi_reason=ACCURACY_SESOI_REASON, test="equivalence")

    def evidence(self, run: FinishedRun, arm: Arm | None = None) -> SeedEvidence | None:
        # every arm compares its second condition with its first (correct), in its own world
        ref, cand = (arm or self.arm).conditions[:2]
        models = run.models()
        if cand not in models or ref not in models:
            return None
        ood = {m: [r for v in run.variant_names() for r in run.rows(m, f"variant_{v}")] for m in (cand, ref)}
        comparisons = [Comparison(f"accuracy in distribution, {cand} - {ref}",
                                  paired_table(diff_column(run.rows(cand, "test"), run.rows(ref, "test")))),
                       Comparison(f"accuracy on variants, {cand} - {ref}",
                                  paired_table(diff_column(ood[cand], ood[ref])))]
        guards = signal_guard("the accuracy gain of SFT on correct traces over the base",
                              diff_column(run.rows(ref, "test"), run.rows("base", "test")), ACCURACY_SESOI)
        guards += accuracy_bound_guard({m: mean_of(column(run.rows(m, "test"), "correct")) for m in (cand, ref)})
        return SeedEvidence(run.seed, comparisons, guards)

    def analyze(self, run: FinishedRun) -> ClaimResult | None:
        seed, n = run.seed, run.bootstrap
        models = run.models()
        if "swapped" not in models or "correct" not in models:
            return None
        rows = {m: run.rows(m, "test") for m in models}
        ood_rows = {m: [r for v in run.variant_names() for r in run.rows(m, f"variant_{v}")] for m in models}
        per_condition = {}
        learned = paired_difference(column(rows["correct"], "correct"), column(rows["base"], "correct"), seed=seed,
                                    n_resamples=n)
        for m in [c for c in rows if c not in ("base", "correct")]:
            d_in = paired_difference(column(rows[m], "correct"), column(rows["correct"], "correct"), seed=seed,
                                     n_resamples=n)
            d_ood = paired_difference(column(ood_rows[m], "correct"), column(ood_rows["correct"], "correct"),
                                      seed=seed, n_resamples=n)
            decision = ("reproduced" if d_in.lo > -EQUIVALENCE_MARGIN
                        else "not reproduced" if d_in.hi < -EQUIVALENCE_MARGIN else "inconclusive")
            if not learned.excludes_zero() or learned.mean <= 0:
                decision = "inconclusive"  # correct traces taught nothing measurable: no signal to compare against
            per_condition[m] = {"accuracy_diff_vs_correct": d_in.to_dict(),
                                "ood_accuracy_diff_vs_correct": d_ood.to_dict(), "verdict": decision}

        def mean(values: list[float]) -> dict:
            return bootstrap_mean(values, seed=seed, n_resamples=n).to_dict()

        per_model = {}
        for m in rows:
            valid, right = column(rows[m], "chain_valid"), column(rows[m], "correct")
            per_model[m] = {"accuracy": mean(right), "ood_accuracy": mean(column(ood_rows[m], "correct")),
                            "trace_valid": mean(valid),
                            "trace_valid_when_correct": mean([v for v, c in zip(valid, right) if c == 1.0])}
        return ClaimResult(
            claim=self.statement, verdict=per_condition["swapped"]["verdict"], rule=RULE,
            effect=effect("accuracy, swapped - correct (in distribution)",
                          per_condition["swapped"]["accuracy_diff_vs_correct"]),
            per_condition=per_condition, per_model=per_model,
            extra={"correct_vs_base": learned.to_dict()},
            notes=["Trace validity: every step of the trace is a valid A* event for this maze (the world's "
                   "verifier: in bounds, not a wall, g and h right, each closed node of least f)."])

    def report_section(self, result: dict, plots: dict[str, str]) -> list[str]:
        per_model, per_condition = result.get("per_model", {}), result.get("per_condition", {})
        return ["The maze world's models (`worlds/maze/`), descriptive (95% intervals):", "", md_table(["model", "accuracy (in dist.)", "accuracy (variants)", "valid traces",
                          "valid traces when right"],
                         [[m, pct(s["accuracy"]), pct(s["ood_accuracy"]), pct(s["trace_valid"]),
                           pct(s["trace_valid_when_correct"])] for m, s in per_model.items()]), "",
                md_table(["condition", "vs correct (in dist.)", "vs correct (variants)", "reading (95%, descriptive)"],
                         [[m, pts(d["accuracy_diff_vs_correct"]), pts(d["ood_accuracy_diff_vs_correct"]),
                           d["verdict"]] for m, d in per_condition.items()]), ""]
