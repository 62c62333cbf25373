"""C10 — a small curated set rivals a large uncurated one (LIMA, Zhou et al. 2023, arXiv 2305.11206).

Registers three conditions: ``bulk`` (the full uncurated pool: the clean training set with a share of
examples given a wrong step or a wrong answer, as scraped data would have), ``curated_k`` (quality
filters with the world's verifier, then greedy k-center diversity over TF-IDF of the questions,
:func:`sftlens.data.curate.curate`) and ``random_k`` (k drawn uniformly from the same pool).

Rule (two paired tests on the same test examples, margin 0.05): *reproduced* when curated-k is
equivalent to the full set and better than random-k; *not reproduced* when curated-k is clearly
worse than the full set or than random-k, or provably no better than random-k in practice; else
*inconclusive*.
"""

from __future__ import annotations

import math
import random

from ...core.record import Example
from ...data import ops
from ...data.curate import CurateConfig, curate, random_subset
from ...metrics.stats import Estimate, bootstrap_mean, column, mcnemar, paired_difference
from ...report.format import md_table, num, pct, pts
from ..conditions import Condition, register_condition
from ..protocol import Comparison, Protocol, SeedEvidence, paired_table, signal_guard
from ._base import (Arm, ACCURACY_SESOI, ACCURACY_SESOI_REASON, EQUIVALENCE_MARGIN, Claim, ClaimResult, FinishedRun,
                    accuracy_bound_guard, check_aligned, diff_column, effect, equivalence, mean_of, needed_n,
                    register_claim)

STATEMENT = ("A small curated training set (verified-correct, diverse) rivals the full uncurated set "
             "and beats a random subset of the same size.")
MARGIN = EQUIVALENCE_MARGIN
RULE = (f"Reproduced when the 95% bootstrap interval of accuracy(curated_k) - accuracy(bulk) (the full uncurated set) "
        f"lies inside [-{MARGIN:.2f}, {MARGIN:.2f}] AND the interval of accuracy(curated_k) - accuracy(random_k) "
        f"lies above 0. Not reproduced when curated_k is clearly worse than the full set (interval below "
        f"-{MARGIN:.2f}), clearly worse than random_k (interval below 0), or equivalent to random_k within "
        f"±{MARGIN:.2f} (curation then makes no practical difference). Inconclusive otherwise. Paired over the "
        "same test examples.")
BULK_CORRUPT_SHARE = 0.2  # examples given one wrong step (a false fact or a wrong result)
BULK_LABEL_NOISE = 0.1    # examples given a wrong final answer
SUBSETS = ("curated_k", "random_k", "bulk")


def bulk_set(train: list[Example], world, seed: int) -> list[Example]:
    """The uncurated pool: the clean set where 20% of examples carry one wrong step and 10% a wrong
    answer (what scraped or model-generated bulk data looks like). Same order, same ids."""
    rng = random.Random(seed + 101)
    order = list(range(len(train)))
    rng.shuffle(order)
    n_corrupt = int(round(BULK_CORRUPT_SHARE * len(train)))
    n_label = int(round(BULK_LABEL_NOISE * len(train)))
    corrupt_ids, label_ids = set(order[:n_corrupt]), set(order[n_corrupt:n_corrupt + n_label])
    corrupted = ops.corrupt_steps([train[i] for i in sorted(corrupt_ids)], seed=seed, rate=0.0001,
                                  corrupter="shop", world=world)
    noisy = ops.label_noise([train[i] for i in sorted(label_ids)], seed=seed, p=1.0)
    replaced = dict(zip(sorted(corrupt_ids), corrupted)) | dict(zip(sorted(label_ids), noisy))
    return [replaced.get(i, e) for i, e in enumerate(train)]


def curation_sets(pool: list[Example], world, k: int, seed: int = 0) -> dict[str, list[Example]]:
    """``curated_k`` and ``random_k`` subsets of ``pool`` (``world`` verifies shop steps; ``None``
    skips verification).

    >>> from sftlens.tasks.shop import ShopWorld, ShopConfig, make_splits
    >>> w = ShopWorld(ShopConfig(seed=0)); sp = make_splits(w, 5, 40, 5, 2, seed=0)
    >>> sets = curation_sets(sp.train, w, k=10, seed=0)
    >>> len(sets["curated_k"]), len(sets["random_k"])
    (10, 10)
    """
    curated = curate(pool, CurateConfig(k=k, seed=seed), world=world).kept
    return {"curated_k": curated, "random_k": random_subset(pool, k, seed=seed)}


def _subset(name: str):
    return lambda c: curation_sets(bulk_set(c.train, c.world, c.seed), c.world, k=c.preset.c10_k, seed=c.seed)[name]


register_condition(Condition("bulk", "C10: the full uncurated pool (20% one wrong step, 10% wrong answer)",
                             lambda c: bulk_set(c.train, c.world, c.seed)))
register_condition(Condition("curated_k", "C10: k examples of the pool, verified and diverse (k-center)",
                             _subset("curated_k")))
register_condition(Condition("random_k", "C10: k random examples of the pool", _subset("random_k")))


def compare_curation(rows_by_model: dict[str, list[dict]], seed: int = 0, n_resamples: int = 2000) -> ClaimResult:
    """The C10 result from per-sample rows (keys ``correct`` and, when scored, ``ig_mean``) of the
    models ``curated_k``, ``random_k`` and ``bulk`` on the same test examples."""
    notes: list[str] = []
    check_aligned(rows_by_model)
    per_model = {m: {"accuracy": bootstrap_mean(column(rows, "correct"), seed=seed, n_resamples=n_resamples).to_dict(),
                     "ig_mean": bootstrap_mean(column(rows, "ig_mean"), seed=seed, n_resamples=n_resamples).to_dict()}
                 for m, rows in rows_by_model.items()}
    missing = [m for m in SUBSETS if m not in rows_by_model]
    if missing:
        return ClaimResult(STATEMENT, "inconclusive", RULE,
                           effect("accuracy(curated_k) - accuracy(bulk)", Estimate.nan()), {}, per_model,
                           [f"models missing from the rows: {', '.join(missing)}"])
    curated = column(rows_by_model["curated_k"], "correct")
    full = column(rows_by_model["bulk"], "correct")
    rand = column(rows_by_model["random_k"], "correct")
    vs_full = paired_difference(curated, full, seed=seed, n_resamples=n_resamples)
    vs_random = paired_difference(curated, rand, seed=seed, n_resamples=n_resamples)
    random_vs_full = paired_difference(rand, full, seed=seed, n_resamples=n_resamples)
    gains = {m: column(rows_by_model[m], "ig_mean") for m in SUBSETS}
    per_condition = {
        "curated_k": {
            "diff_vs_bulk": vs_full.to_dict(), "equivalence_vs_bulk": equivalence(vs_full),
            "diff_vs_random_k": vs_random.to_dict(), "equivalence_vs_random_k": equivalence(vs_random),
            "mcnemar_vs_random_k": mcnemar([x == 1 for x in curated], [x == 1 for x in rand]),
            "ig_diff_vs_bulk": paired_difference(gains["curated_k"], gains["bulk"], seed=seed, n_resamples=n_resamples).to_dict(),
            "ig_diff_vs_random_k": paired_difference(gains["curated_k"], gains["random_k"], seed=seed, n_resamples=n_resamples).to_dict(),
        },
        "random_k": {
            "diff_vs_bulk": random_vs_full.to_dict(), "equivalence_vs_bulk": equivalence(random_vs_full),
            "ig_diff_vs_bulk": paired_difference(gains["random_k"], gains["bulk"], seed=seed, n_resamples=n_resamples).to_dict(),
        },
    }
    vs_full_state = equivalence(vs_full)
    if math.isnan(vs_full.mean) or math.isnan(vs_random.mean):
        decision = "inconclusive"
    elif vs_full_state == "inside" and vs_random.lo > 0:
        decision = "reproduced"
    elif vs_full_state == "below" or vs_random.hi < 0 or equivalence(vs_random) == "inside":
        decision = "not reproduced"
        if equivalence(vs_random) == "inside" and vs_full_state == "inside":
            notes.append("curated_k and random_k are both equivalent to the full set: a small set suffices here, "
                         "but curation is not what makes it work")
    else:
        decision = "inconclusive"
    if decision == "inconclusive":
        for name, diff, a, b in (("curated_k - bulk", vs_full, curated, full),
                                 ("curated_k - random_k", vs_random, curated, rand)):
            need = needed_n(a, b)
            if diff.hi - diff.lo > 2 * MARGIN and need:
                notes.append(f"{name}: interval ({diff.lo:+.3f}, {diff.hi:+.3f}) is wider than the ±{MARGIN:.2f} "
                             f"margin; about {need} paired test examples would resolve it")
    if all(math.isnan(x) for x in gains["bulk"]):
        notes.append("no ig_mean in the rows (information gain was not scored)")
    return ClaimResult(STATEMENT, decision, RULE, effect("accuracy(curated_k) - accuracy(bulk)", vs_full),
                       per_condition, per_model, notes)


@register_claim
class Curation(Claim):
    id = "C10"
    title = "curation"
    conditions = ("bulk", "curated_k", "random_k")
    statement = STATEMENT
    protocol = Protocol(
        quantity="accuracy of SFT on the curated k minus SFT on the full pool (equivalence), and curated k minus "
                 "random k (superiority: curation must be why), paired over test problems",
        sesoi=ACCURACY_SESOI, sesoi_reason=ACCURACY_SESOI_REASON, test="equivalence")
    beats_random = Protocol(quantity="accuracy, curated_k - random_k", sesoi=ACCURACY_SESOI,
                            sesoi_reason=ACCURACY_SESOI_REASON, test="superiority", direction=+1)

    def evidence(self, run: FinishedRun, arm: Arm | None = None) -> SeedEvidence | None:
        if not all(n in run.models() for n in SUBSETS):
            return None
        rows = {n: run.rows(n, "test") for n in SUBSETS}
        comparisons = [Comparison("accuracy, curated_k - bulk", paired_table(diff_column(rows["curated_k"], rows["bulk"]))),
                       Comparison("accuracy, curated_k - random_k",
                                  paired_table(diff_column(rows["curated_k"], rows["random_k"])),
                                  protocol=self.beats_random)]
        guards = signal_guard("the accuracy gain of SFT on the full pool over the base",
                              diff_column(rows["bulk"], run.rows("base", "test")), ACCURACY_SESOI)
        guards += accuracy_bound_guard({n: mean_of(column(r, "correct")) for n, r in rows.items()})
        return SeedEvidence(run.seed, comparisons, guards)

    def analyze(self, run: FinishedRun) -> ClaimResult | None:
        models = run.models()
        if not all(n in models for n in SUBSETS):
            return None
        # order as the analysis has always listed them: bulk, curated_k, random_k
        result = compare_curation({n: run.rows(n, "test") for n in ("bulk", "curated_k", "random_k")}, seed=run.seed,
                                  n_resamples=run.bootstrap)
        if "correct" in models:  # the clean full set, for reference
            clean = run.rows("correct", "test")
            result.per_model["correct (clean full set)"] = {
                "accuracy": bootstrap_mean(column(clean, "correct"), seed=run.seed, n_resamples=run.bootstrap).to_dict(),
                "ig_mean": bootstrap_mean(column(clean, "ig_mean"), seed=run.seed, n_resamples=run.bootstrap).to_dict()}
        return result

    def report_section(self, result: dict, plots: dict[str, str]) -> list[str]:
        per_model, per_condition = result.get("per_model", {}), result.get("per_condition", {})
        return [md_table(["model", "accuracy", "info gain / step"],
                         [[m, pct(s.get("accuracy")), num(s.get("ig_mean"), 3, True)] for m, s in per_model.items()]),
                "",
                md_table(["subset", "vs bulk (full pool)", "vs random k", "info gain vs bulk"],
                         [[m, pts(d.get("diff_vs_bulk")), pts(d.get("diff_vs_random_k")),
                           num(d.get("ig_diff_vs_bulk"), 3, True)] for m, d in per_condition.items()]), ""]
