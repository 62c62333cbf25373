"""C8 — fine-tuning sharpens memorisation: accuracy on "N-1" variants (one element removed) of
problems solved in distribution drops sharply (Bernier et al. 2026)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...metrics.stats import Estimate, bootstrap_mean, column, unpaired_difference, verdict
from ...report.format import md_table, pct, pts
from ..protocol import MIN_PAIRS, Comparison, Protocol, SeedEvidence
from ._base import PRIMARY_CONDITION, Claim, ClaimResult, FinishedRun, effect, one_line, register_claim

PRIMARY_VARIANT = "n_minus_1"


def collapse_difference(table: np.ndarray) -> float:
    """Conditional collapse of a tuned model minus the base's, from rows ``[source solved by tuned,
    variant solved by tuned, source solved by base, variant solved by base]`` (one row per variant,
    paired with its own source problem): P(variant failed | source solved).

    >>> round(collapse_difference(np.array([[1, 0, 1, 1], [1, 1, 1, 1], [0, 0, 1, 0]], float)), 4)
    0.1667
    """
    def rate(solved: np.ndarray, variant: np.ndarray) -> float:
        return float((solved * (1 - variant)).sum() / solved.sum()) if solved.sum() else float("nan")

    return rate(table[:, 0], table[:, 1]) - rate(table[:, 2], table[:, 3])


def source_paired(run: FinishedRun, model: str, variant: str) -> tuple[list[float], list[float], list[int]]:
    """For each variant problem: whether ``model`` solved its source test problem, whether it solved
    the variant, and the variant's item count."""
    source_correct = {r["id"]: float(r["correct"]) for r in run.rows(model, "test")}
    by_id = {e.id: e for e in run.load(f"variant_{variant}")}
    solved, variant_ok, items = [], [], []
    for r in run.rows(model, f"variant_{variant}"):
        example = by_id[r["id"]]
        solved.append(source_correct.get(example.meta.get("source"), float("nan")))
        variant_ok.append(float(r["correct"]))
        items.append(len(example.meta.get("items", [])))
    return solved, variant_ok, items


def diff_in_diff(t_in, b_in, t_var, b_var, seed: int = 0, n_resamples: int = 2000) -> Estimate:
    """``(mean t_in - mean t_var) - (mean b_in - mean b_var)``: how much more a tuned model ``t``
    loses on a variant set than the base ``b``. ``t_in``/``b_in`` are paired (same examples), and so
    are ``t_var``/``b_var``; the two sets are resampled independently.

    >>> round(diff_in_diff([1, 1], [1, 1], [0, 0], [1, 1]).mean, 3)
    1.0
    """
    ti, bi, tv, bv = (np.asarray(x, float) for x in (t_in, b_in, t_var, b_var))
    if ti.size == 0 or tv.size == 0:
        return Estimate.nan()
    rng = np.random.default_rng(seed)
    d_in, d_var = ti - bi, tv - bv
    point = float(d_in.mean() - d_var.mean())
    idx_in = rng.integers(0, d_in.size, (n_resamples, d_in.size))    # (R, n_in)
    idx_var = rng.integers(0, d_var.size, (n_resamples, d_var.size))  # (R, n_var)
    boot = d_in[idx_in].mean(1) - d_var[idx_var].mean(1)               # (R,)
    return Estimate(point, float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5)),
                    int(min(d_in.size, d_var.size)))


@register_claim
class Memorisation(Claim):
    id = "C8"
    title = "memorisation"
    conditions = ("correct",)
    statement = ("Fine-tuning sharpens memorisation: accuracy on 'N-1' variants (one element removed) of problems "
                 "solved in distribution drops sharply.")
    protocol = Protocol(
        quantity=f"the share of '{PRIMARY_VARIANT}' variants failed among those whose own source problem the model "
                 "solves, SFT on correct traces minus the base (conditional collapse, paired by source problem)",
        sesoi=0.10, sesoi_reason="10 points more of the solved problems lost when one item is removed; Bernier et "
        "al. call tens of points a sharp drop", test="superiority", direction=+1, unit="pts")

    def evidence(self, run: FinishedRun) -> SeedEvidence | None:
        if "correct" not in run.models() or PRIMARY_VARIANT not in run.variant_names():
            return None
        tuned_src, tuned_var, _ = source_paired(run, "correct", PRIMARY_VARIANT)
        base_src, base_var, _ = source_paired(run, "base", PRIMARY_VARIANT)
        table = np.column_stack([np.asarray(x, float) for x in (tuned_src, tuned_var, base_src, base_var)])
        table = table[~np.isnan(table).any(axis=1)]
        comparison = Comparison("conditional collapse, correct - base", table, statistic=collapse_difference)
        guards = []
        for name, solved in (("SFT on correct traces", table[:, 0]), ("the base", table[:, 2])):
            if solved.sum() < MIN_PAIRS:
                guards.append(f"too few pairs: {name} solves the source of only {int(solved.sum())} "
                              f"'{PRIMARY_VARIANT}' variants (at least {MIN_PAIRS} needed)")
        return SeedEvidence(run.seed, [comparison], guards)

    def collapse_by_items(self, run: FinishedRun) -> dict:
        """Descriptive: each model's conditional collapse on the primary variant, split by item count."""
        out = {}
        for m in run.models():
            solved, variant_ok, items = source_paired(run, m, PRIMARY_VARIANT)
            by_count: dict[str, dict] = {}
            for count in sorted(set(items)):
                keep = [(s, v) for s, v, c in zip(solved, variant_ok, items) if c == count and s == 1.0]
                by_count[str(count)] = {"solved_sources": len(keep),
                                        "collapse": (sum(1 - v for _, v in keep) / len(keep)) if keep else None}
            out[m] = by_count
        return out

    def rule(self, primary: str) -> str:
        return one_line(f"""Gap = in-distribution accuracy minus variant accuracy. C8 is reproduced for a condition
            when its gap on the '{PRIMARY_VARIANT}' variant exceeds the base model's gap with a 95% interval above
            zero (difference in differences; the base sees the same problems); not reproduced when the interval lies
            below zero; otherwise inconclusive. The claim's verdict is the '{primary}' condition's. Other variants
            (longer chains, unseen item combinations, unseen quantity ranges) are reported alongside.""")

    def analyze(self, run: FinishedRun) -> ClaimResult:
        seed, n = run.seed, run.bootstrap
        test = {m: run.rows(m, "test") for m in run.models()}
        variants = {v: {m: run.rows(m, f"variant_{v}") for m in test} for v in run.variant_names()}
        per_model = {}
        for m, rows in test.items():
            per_model[m] = {"in_distribution": bootstrap_mean(column(rows, "correct"), seed=seed,
                                                              n_resamples=n).to_dict(), "variants": {}}
            for v, by_model in variants.items():
                acc_v = bootstrap_mean(column(by_model[m], "correct"), seed=seed, n_resamples=n)
                gap = unpaired_difference(column(rows, "correct"), column(by_model[m], "correct"), seed=seed,
                                          n_resamples=n)
                per_model[m]["variants"][v] = {"accuracy": acc_v.to_dict(), "gap": gap.to_dict()}
        per_condition = {}
        for m in test:
            if m == "base":
                continue
            dids = {v: diff_in_diff(column(test[m], "correct"), column(test["base"], "correct"),
                                    column(variants[v][m], "correct"), column(variants[v]["base"], "correct"),
                                    seed=seed, n_resamples=n) for v in variants}
            primary_did = dids.get(PRIMARY_VARIANT)
            per_condition[m] = {"gap_minus_base_gap": {v: d.to_dict() for v, d in dids.items()},
                                "verdict": verdict([primary_did], [+1]) if primary_did is not None else "inconclusive"}
        primary = PRIMARY_CONDITION if PRIMARY_CONDITION in per_condition else next(iter(per_condition))
        headline = per_condition[primary]["gap_minus_base_gap"].get(PRIMARY_VARIANT, Estimate.nan().to_dict())
        extra = {"collapse_by_item_count": self.collapse_by_items(run)} if PRIMARY_VARIANT in variants else {}
        return ClaimResult(claim=self.statement, verdict=per_condition[primary]["verdict"], rule=self.rule(primary),
                           effect=effect(f"extra {PRIMARY_VARIANT} gap of {primary} over base (accuracy)", headline),
                           per_condition=per_condition, per_model=per_model, extra=extra, notes=[])

    def plots(self, run: FinishedRun, result: dict, out: Path) -> dict[str, str]:
        from ...report.figures import pyplot, save_png

        per_model = result.get("per_model", {})
        if not per_model:
            return {}
        plt = pyplot()
        models = list(per_model)
        sets = ["in_distribution"] + list(next(iter(per_model.values()))["variants"])
        fig, ax = plt.subplots(figsize=(7, 3.8))
        width = 0.8 / len(models)
        for i, m in enumerate(models):
            values = ([per_model[m]["in_distribution"]["mean"]]
                      + [per_model[m]["variants"][v]["accuracy"]["mean"] for v in sets[1:]])
            ax.bar([j + i * width for j in range(len(sets))], [100 * v for v in values], width=width, label=m)
        ax.set_xticks([j + width * (len(models) - 1) / 2 for j in range(len(sets))])
        ax.set_xticklabels([s.replace("_", " ") for s in sets], fontsize=8)
        ax.set_ylabel("accuracy (%)")
        ax.set_title("C8: in distribution vs variants")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        save_png(fig, out / "c8_variants.png")
        return {"c8": "c8_variants.png"}

    def report_section(self, result: dict, plots: dict[str, str]) -> list[str]:
        per_model, per_condition = result.get("per_model", {}), result.get("per_condition", {})
        variants = list(next(iter(per_model.values()))["variants"]) if per_model else []
        lines = [md_table(["model", "in distribution"] + variants,
                          [[m, pct(s["in_distribution"])] + [pct(s["variants"][v]["accuracy"]) for v in variants]
                           for m, s in per_model.items()]), ""]
        lines += [md_table(["condition"] + [f"extra gap: {v}" for v in variants] + ["verdict"],
                           [[m] + [pts(d["gap_minus_base_gap"][v]) for v in variants] + [d["verdict"]]
                            for m, d in per_condition.items()]), ""]
        if "c8" in plots:
            lines += [f"![variant accuracy]({plots['c8']})", ""]
        return lines
