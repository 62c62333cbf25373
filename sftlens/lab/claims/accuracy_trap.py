"""C1 — the accuracy trap: SFT raises final-answer accuracy but lowers the information gain of its
reasoning steps (Wu et al. 2025, arXiv 2506.02126)."""

from __future__ import annotations

import math
from pathlib import Path

from ...data import ops
from ...metrics.stats import Estimate, column, paired_difference, verdict
from ...report.format import md_table, num, pct, pts
from ..conditions import Condition, register_condition
from ..protocol import Comparison, Protocol, SeedEvidence, paired_table, signal_guard
from ._base import (Arm, ACCURACY_SESOI, PRIMARY_CONDITION, Claim, ClaimResult, FinishedRun, diff_column, effect, mean_of,
                    model_summary, one_line, register_claim)


# C1's planted positive control, built by the operator `sftlens data corrupt --traces verbose` runs
register_condition(Condition("c1_verbose", "C1 positive control: each correct chain padded with a restated first step "
                                           "and a re-checked last one (steps that carry nothing new)",
                             lambda c: ops.verbose_traces(c.train, seed=c.seed)))


@register_claim
class AccuracyTrap(Claim):
    id = "C1"
    title = "accuracy trap"
    conditions = ("correct",)
    # planted: the same chains padded with two steps that carry nothing new (the first and last restated), so the
    # gain per step must fall while accuracy stays; against `correct`, so only the padding differs
    positive = Arm(("c1_verbose", "correct"), description="SFT on the correct chains padded with a restated first "
                   "step and a re-checked last one, against SFT on the chains as they are: steps without information")
    # the same training twice (another data order): whatever information gain per step differs between them is
    # training noise, which the lab must not call a trap
    negative = Arm(("correct_again", "correct"), description="a second SFT run on the same correct traces in another "
                   "data order against the first: the same procedure, so no information gain is lost")
    statement = "SFT raises final-answer accuracy but lowers the information gain of reasoning steps."
    protocol = Protocol(
        quantity="the change in mean information gain per step (nats), SFT on correct traces minus the base, "
                 "paired over test problems (each model's own chains, scored by the base)",
        sesoi=0.05, sesoi_reason="0.05 nats per step is a 5% change in the answer's probability per step; Wu et al. "
        "report a 38.9% relative drop, far above it", test="superiority", direction=-1, unit="nats")

    def evidence(self, run: FinishedRun, arm: Arm | None = None) -> SeedEvidence | None:
        """The arm's first condition against its second (default: the base), paired over test problems;
        the signal guard asks whether that first condition beats the *base* on accuracy (the trap needs
        accuracy to rise), whatever the arm compares it with."""
        conditions = (arm or self.arms()["real"]).conditions
        name, ref = conditions[0], (conditions[1] if len(conditions) > 1 else "base")
        if name not in run.models() or ref not in run.models():
            return None
        tuned, reference, base = run.rows(name, "test"), run.rows(ref, "test"), run.rows("base", "test")
        comparison = Comparison(f"information gain per step, {name} - {ref}",
                                paired_table(diff_column(tuned, reference, "ig_mean")))
        guards = signal_guard(f"the accuracy gain of {name} over the base (the trap needs accuracy to rise)",
                              diff_column(tuned, base, "correct"), ACCURACY_SESOI)
        return SeedEvidence(run.seed, [comparison], guards)

    def rule(self, primary: str) -> str:
        return one_line(f"""For a condition, C1 is reproduced when its accuracy gain over the base (paired, same test
            problems) has a 95% bootstrap interval above zero AND the change in mean per-step information gain of its
            own chains (scored by the base model, toward the reference answer) has an interval below zero; not
            reproduced when either interval lies on the wrong side of zero; otherwise inconclusive. The claim's verdict
            is the '{primary}' condition's (standard SFT on correct traces).""")

    def analyze(self, run: FinishedRun) -> ClaimResult:
        seed, n = run.seed, run.bootstrap
        rows = {m: run.rows(m, "test") for m in run.models()}
        base = rows["base"]
        per_condition = {}
        for m, model_rows in rows.items():
            if m == "base":
                continue

            def diff(key: str) -> Estimate:
                return paired_difference(column(model_rows, key), column(base, key), seed=seed, n_resamples=n)

            acc, ig, ki, ppl = diff("correct"), diff("ig_mean"), diff("ki"), diff("ig_ppl")
            per_condition[m] = {"accuracy_diff": acc.to_dict(), "ig_mean_diff": ig.to_dict(), "ki_diff": ki.to_dict(),
                                "ig_ppl_diff": ppl.to_dict(), "verdict_ppl_variant": verdict([acc, ppl], [+1, -1]),
                                "verdict": verdict([acc, ig], [+1, -1])}
            if math.isnan(ig.mean):
                per_condition[m]["note"] = "no chains with steps on both sides: information gain is undefined"
        primary = PRIMARY_CONDITION if PRIMARY_CONDITION in per_condition else next(iter(per_condition), None)
        headline = per_condition[primary]["ig_mean_diff"] if primary else Estimate.nan().to_dict()
        notes = []
        if primary and per_condition[primary]["verdict_ppl_variant"] != per_condition[primary]["verdict"]:
            notes.append(
                f"The two definitions disagree for '{primary}': with the Wu et al. perplexity variant the verdict "
                f"would be '{per_condition[primary]['verdict_ppl_variant']}'. That variant telescopes to "
                "(PPL_0 - PPL_N) / (N + 1), so it shrinks as chains get longer (mean steps: base "
                f"{mean_of(column(base, 'n_steps')):.2f}, {primary} {mean_of(column(rows[primary], 'n_steps')):.2f}) "
                "and mixes the chain's own predictability with progress toward the answer; the answer-token "
                "definition (the default) measures only the latter.")
        return ClaimResult(
            claim=self.statement,
            verdict=per_condition[primary]["verdict"] if primary else "inconclusive",
            rule=self.rule(primary),
            effect=effect(f"information gain change, {primary} - base (nats/step)", headline),
            per_condition=per_condition,
            per_model={m: model_summary(r, seed, n) for m, r in rows.items()},
            notes=["Information gain: mean over answer tokens of log p(answer | prompt, s_1..s_k) minus the same "
                   "with k-1 steps, averaged over the chain's steps; the Wu et al. perplexity variant is in ig_ppl."]
            + notes)

    def plots(self, run: FinishedRun, result: dict, out: Path) -> dict[str, str]:
        from ...report.figures import pyplot, save_png

        per_model = result.get("per_model", {})
        if not per_model:
            return {}
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for m, summary in per_model.items():
            acc, ig = summary.get("correct", {}), summary.get("ig_mean", {})
            if not acc or not ig or ig.get("mean") is None or math.isnan(ig["mean"]):
                continue
            ax.errorbar(100 * acc["mean"], ig["mean"],
                        xerr=[[100 * (acc["mean"] - acc["lo"])], [100 * (acc["hi"] - acc["mean"])]],
                        yerr=[[ig["mean"] - ig["lo"]], [ig["hi"] - ig["mean"]]], fmt="o", capsize=3, label=m)
        ax.set_xlabel("accuracy (%)")
        ax.set_ylabel("mean information gain per step (nats)")
        ax.set_title("C1: accuracy vs information gain")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        save_png(fig, out / "c1_accuracy_vs_infogain.png")
        return {"c1": "c1_accuracy_vs_infogain.png"}

    def report_section(self, result: dict, plots: dict[str, str]) -> list[str]:
        per_model, per_condition = result.get("per_model", {}), result.get("per_condition", {})
        lines = [md_table(["model", "accuracy", "info gain / step", "min step gain", "Knowledge Index",
                           "step validity", "PPL InfoGain (Wu)"],
                          [[m, pct(s.get("correct")), num(s.get("ig_mean"), 3, True), num(s.get("ig_min"), 3, True),
                            pct(s.get("ki")), pct(s.get("validity")), num(s.get("ig_ppl"), 3, True)]
                           for m, s in per_model.items()]), ""]
        lines += [md_table(["condition", "accuracy vs base", "info gain vs base", "KI vs base", "reading (95%, descriptive)",
                            "PPL InfoGain vs base", "verdict (Wu variant)"],
                           [[m, pts(d["accuracy_diff"]), num(d["ig_mean_diff"], 3, True), pts(d["ki_diff"]),
                             d["verdict"] + (f" ({d['note']})" if d.get("note") else ""),
                             num(d.get("ig_ppl_diff"), 3, True), d.get("verdict_ppl_variant", "n/a")]
                            for m, d in per_condition.items()]), ""]
        if "c1" in plots:
            lines += [f"![accuracy vs information gain]({plots['c1']})", ""]
        return lines
