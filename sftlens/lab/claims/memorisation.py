"""C8 — fine-tuning sharpens memorisation: accuracy on "N-1" variants (one element removed) of
problems solved in distribution drops sharply (Bernier et al. 2026).

The ``n_minus_1`` variants come from 3-item test problems, so each variant (2 items) lies inside the
SFT distribution (2–3 items) and outside the base's pretraining (1 item): a collapse has to be
learned, not built in. Controls: the **positive** one tunes on a narrow slice (3-item problems
only), whose 2-item variants it never saw — the collapse must be detected; the **negative** one tunes
on the pool plus problems drawn from every variant distribution (never the test or variant problems
themselves) — no collapse may be found."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...metrics.stats import Estimate, bootstrap_mean, column, unpaired_difference, verdict
from ...report.format import md_table, pct, pts
from ..protocol import MIN_PAIRS, Comparison, Protocol, SeedEvidence, signal_guard
from ..conditions import Condition, register_condition
from ._base import (ACCURACY_SESOI, PRIMARY_CONDITION, Arm, Claim, ClaimResult, FinishedRun, effect, one_line,
                    register_claim)

PRIMARY_VARIANT = "n_minus_1"


def narrow_slice(train: list, n_items: int = 3) -> list:
    """The SFT examples with exactly ``n_items`` items (the positive control's narrow training set)."""
    return [e for e in train if len(e.meta.get("items", [])) == n_items]


def with_variant_distribution(c) -> list:
    """Half the pool, half new problems drawn from every variant distribution (none of them a test or
    variant problem): the negative control, tuned on what the variants ask."""
    half = len(c.train) // 2
    extra = c.world.variant_distribution_problems(len(c.train) - half, seed=c.seed + 29,
                                                  exclude=set(c.heldout) | {e.question for e in c.train})
    return list(c.train[:half]) + extra


register_condition(Condition("c8_narrow", "C8 positive control: only the 3-item problems of the pool",
                             lambda c: narrow_slice(c.train, 3)))
register_condition(Condition("c8_full", "C8 negative control: half the pool, half problems from every variant "
                                        "distribution (never the test or variant problems)",
                             with_variant_distribution))


def collapse_excess(table: np.ndarray) -> float:
    """How much more often a tuned model fails an "N-1" variant of a problem it solves than it fails
    its in-distribution problems in general. ``table`` rows are ``[source solved, variant solved, NaN]``
    (one per variant, paired with its own source) or ``[NaN, NaN, test problem solved]`` (every
    in-distribution test problem): P(variant failed | source solved) - P(test problem failed).

    A model that reasons finds the smaller problem no harder than an average one (negative or zero);
    one that learned a narrow format fails the variants of what it solves (positive).

    >>> t = np.array([[1, 0, np.nan], [1, 1, np.nan], [0, 0, np.nan], [np.nan, np.nan, 1], [np.nan, np.nan, 1]])
    >>> collapse_excess(t)
    0.5
    """
    solved, variant, test = table[:, 0], table[:, 1], table[:, 2]
    kept = solved == 1
    test = test[~np.isnan(test)]
    if not kept.any() or test.size == 0:
        return float("nan")
    return float((1 - variant[kept]).mean() - (1 - test).mean())


def collapse_same_size(run, model: str) -> float | None:
    """Descriptive: P(variant failed | source solved) minus the failure rate on test problems with as
    many items as the variants (what the variants' size alone explains)."""
    src, var, items = source_paired(run, model, PRIMARY_VARIANT)
    by_id = {e.id: e for e in run.load("test")}
    same = [1 - float(r["correct"]) for r in run.rows(model, "test")
            if len(by_id[r["id"]].meta.get("items", [])) in set(items)]
    failed = [1 - v for s_, v in zip(src, var) if s_ == 1.0]
    return (sum(failed) / len(failed) - sum(same) / len(same)) if failed and same else None


def in_distribution_ids(run: FinishedRun, model: str) -> set[str] | None:
    """The test problems inside ``model``'s own SFT distribution: those with an item count its training
    examples have (``data/conditions/<model>.jsonl``); ``None`` (every test problem) when that file is
    not there. For SFT on 2-3 items that is the whole test set; for the narrow control, trained on
    3-item problems only, the 2-item test problems are as far outside its training as the variants."""
    try:
        counts = {len(e.meta.get("items", [])) for e in run.load(f"conditions/{model}")}
    except FileNotFoundError:
        return None
    return {e.id for e in run.load("test") if len(e.meta.get("items", [])) in counts} if counts else None


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
    positive = Arm(("c8_narrow",), description="SFT on 3-item problems only: the 2-item variants lie outside it")
    negative = Arm(("c8_full",), description="SFT that covers every variant distribution")
    statement = ("Fine-tuning sharpens memorisation: accuracy on 'N-1' variants (one element removed) of problems "
                 "solved in distribution drops sharply.")
    protocol = Protocol(
        quantity=f"the share of '{PRIMARY_VARIANT}' variants that SFT on correct traces fails among those whose own "
                 "source problem it solves, minus its failure rate on in-distribution test problems (those with an item "
                 "count of its SFT examples; a variant of a solved problem is one item easier: a model that reasons "
                 "fails it no more often than it fails in general)",
        sesoi=0.10, sesoi_reason="10 points more of the solved problems lost when one item is removed; Bernier et "
        "al. call tens of points a sharp drop", test="superiority", direction=+1, unit="pts")

    def evidence(self, run: FinishedRun, arm: Arm | None = None) -> SeedEvidence | None:
        tuned = (arm or self.arms()["real"]).conditions[0]
        if tuned not in run.models() or PRIMARY_VARIANT not in run.variant_names():
            return None
        src, var, _ = source_paired(run, tuned, PRIMARY_VARIANT)
        inside = in_distribution_ids(run, tuned)
        test_rows = [r for r in run.rows(tuned, "test") if inside is None or r["id"] in inside]
        test = [float(r["correct"]) for r in test_rows]
        nan = float("nan")
        table = np.asarray([[a, b, nan] for a, b in zip(src, var) if a == a] + [[nan, nan, t] for t in test], float)
        comparison = Comparison(f"conditional collapse of {tuned}: N-1 variants of solved problems failed, beyond "
                                "its failure rate in distribution", table, statistic=collapse_excess)
        base = {r["id"]: float(r["correct"]) for r in run.rows("base", "test")} if "base" in run.models() else {}
        guards = signal_guard(f"the in-distribution accuracy gain of SFT on '{tuned}' over the base (a model that "
                              "learned nothing cannot show what it memorised)",
                              [float(r["correct"]) - base[r["id"]] for r in test_rows if r["id"] in base],
                              ACCURACY_SESOI) if base else []
        solved = int(np.nansum(table[:, 0])) if table.size else 0
        if solved < MIN_PAIRS:
            guards.append(f"too few pairs: SFT on '{tuned}' solves the source of only {solved} '{PRIMARY_VARIANT}' "
                          f"variants (at least {MIN_PAIRS} needed)")
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
        extra = ({"collapse_by_item_count": self.collapse_by_items(run),
                  "collapse_beyond_same_size": {m: collapse_same_size(run, m) for m in test}}
                 if PRIMARY_VARIANT in variants else {})
        return ClaimResult(claim=self.statement, verdict=per_condition[primary]["verdict"], rule=self.rule(primary),
                           effect=effect(f"extra {PRIMARY_VARIANT} gap of {primary} over base (accuracy)", headline),
                           per_condition=per_condition, per_model=per_model, extra=extra, notes=[])

    def plots(self, run: FinishedRun, result: dict, out: Path) -> dict[str, str]:
        from ...report.figures import grouped_bars

        per_model = result.get("per_model", {})
        if not per_model:
            return {}
        sets = ["in_distribution"] + list(next(iter(per_model.values()))["variants"])
        grouped_bars(out / "c8_variants.png", sets,
                     {m: [s["in_distribution"]["mean"]] + [s["variants"][v]["accuracy"]["mean"] for v in sets[1:]]
                      for m, s in per_model.items()},
                     ylabel="accuracy (%)", title="C8: in distribution vs variants")
        return {"c8": "c8_variants.png"}

    def report_section(self, result: dict, plots: dict[str, str]) -> list[str]:
        per_model, per_condition = result.get("per_model", {}), result.get("per_condition", {})
        variants = list(next(iter(per_model.values()))["variants"]) if per_model else []
        lines = [md_table(["model", "in distribution"] + variants,
                          [[m, pct(s["in_distribution"])] + [pct(s["variants"][v]["accuracy"]) for v in variants]
                           for m, s in per_model.items()]), ""]
        lines += [md_table(["condition"] + [f"extra gap: {v}" for v in variants] + ["reading (95%, descriptive)"],
                           [[m] + [pts(d["gap_minus_base_gap"][v]) for v in variants] + [d["verdict"]]
                            for m, d in per_condition.items()]), ""]
        if "c8" in plots:
            lines += [f"![variant accuracy]({plots['c8']})", ""]
        return lines
