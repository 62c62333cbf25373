"""Claim C10 — a small curated set rivals a large uncurated one (LIMA, Zhou et al. 2023).

- :func:`c10_training_sets`: ``curated_k`` (quality filters with the world's verifier, then greedy
  k-center diversity over TF-IDF of the questions, :func:`sftlens.data.curate.curate`) and
  ``random_k`` (k drawn uniformly from the same uncurated set); the ``bulk`` condition is the full uncurated
  set: the clean training set with a share of examples given a wrong step or a wrong label, as
  scraped data would have.
- :func:`analyze_c10`: the claim entry, with accuracy and information gain (``ig_mean``, NaN-aware)
  for each model.

Rule (two paired tests on the same test examples, margin 0.05): *reproduced* when curated-k is
equivalent to the full set (the 95% interval of accuracy(curated_k) - accuracy(bulk) lies inside
[-0.05, 0.05]) **and** better than random-k (the interval of accuracy(curated_k) - accuracy(random_k)
lies above 0). *Not reproduced* when curated-k is clearly worse than the full set (interval entirely
below -0.05), or clearly worse than random-k (interval entirely below 0), or provably no better than
random-k in practice (that interval inside [-0.05, 0.05]: then a small set may suffice, but curation
is not why). *Inconclusive* otherwise.
"""

from __future__ import annotations

import math

from ..data.curate import CurateConfig, curate, random_subset
from ..core.record import Example
from ..metrics.stats import Estimate, bootstrap_mean, mcnemar, paired_difference
from .c3 import MARGIN, _check_aligned, _col, _effect, equivalence, needed_n

CLAIM = ("A small curated training set (verified-correct, diverse) rivals the full uncurated set "
         "and beats a random subset of the same size.")
RULE = (f"Reproduced when the 95% bootstrap interval of accuracy(curated_k) - accuracy(bulk) (the full uncurated set) "
        f"lies inside [-{MARGIN:.2f}, {MARGIN:.2f}] AND the interval of accuracy(curated_k) - accuracy(random_k) "
        f"lies above 0. Not reproduced when curated_k is clearly worse than the full set (interval below "
        f"-{MARGIN:.2f}), clearly worse than random_k (interval below 0), or equivalent to random_k within "
        f"±{MARGIN:.2f} (curation then makes no practical difference). Inconclusive otherwise. Paired over the "
        "same test examples.")


def c10_training_sets(train: list[Example], world, k: int, seed: int = 0) -> dict[str, list[Example]]:
    """``curated_k`` and ``random_k`` subsets of ``train`` (``world`` verifies shop steps; ``None``
    skips verification).

    >>> from sftlens.tasks.shop import ShopWorld, ShopConfig, make_splits
    >>> w = ShopWorld(ShopConfig(seed=0)); sp = make_splits(w, 5, 40, 5, 2, seed=0)
    >>> sets = c10_training_sets(sp.train, w, k=10, seed=0)
    >>> len(sets["curated_k"]), len(sets["random_k"])
    (10, 10)
    """
    curated = curate(train, CurateConfig(k=k, seed=seed), world=world).kept
    return {"curated_k": curated, "random_k": random_subset(train, k, seed=seed)}


def analyze_c10(rows_by_model: dict[str, list[dict]], seed: int = 0) -> dict:
    """The C10 claim entry from per-sample rows (keys ``correct`` and, when scored, ``ig_mean``) of
    the models ``curated_k``, ``random_k`` and ``bulk`` on the same test examples."""
    notes: list[str] = []
    _check_aligned(rows_by_model)
    per_model = {}
    for m, rows in rows_by_model.items():
        per_model[m] = {"accuracy": bootstrap_mean(_col(rows, "correct"), seed=seed).to_dict(),
                        "ig_mean": bootstrap_mean(_col(rows, "ig_mean"), seed=seed).to_dict()}
    nan = Estimate(math.nan, math.nan, math.nan, 0)
    missing = [m for m in ("curated_k", "random_k", "bulk") if m not in rows_by_model]
    if missing:
        return {"claim": CLAIM, "verdict": "inconclusive", "rule": RULE,
                "effect": _effect("accuracy(curated_k) - accuracy(bulk)", nan),
                "per_condition": {}, "per_model": per_model,
                "notes": [f"models missing from the rows: {', '.join(missing)}"]}
    cur = _col(rows_by_model["curated_k"], "correct")
    full = _col(rows_by_model["bulk"], "correct")
    rnd = _col(rows_by_model["random_k"], "correct")
    vs_full = paired_difference(cur, full, seed=seed)
    vs_rand = paired_difference(cur, rnd, seed=seed)
    rand_vs_full = paired_difference(rnd, full, seed=seed)
    ig = {m: _col(rows_by_model[m], "ig_mean") for m in ("curated_k", "random_k", "bulk")}
    per_condition = {
        "curated_k": {
            "diff_vs_bulk": vs_full.to_dict(), "equivalence_vs_bulk": equivalence(vs_full),
            "diff_vs_random_k": vs_rand.to_dict(), "equivalence_vs_random_k": equivalence(vs_rand),
            "mcnemar_vs_random_k": mcnemar([x == 1 for x in cur], [x == 1 for x in rnd]),
            "ig_diff_vs_bulk": paired_difference(ig["curated_k"], ig["bulk"], seed=seed).to_dict(),
            "ig_diff_vs_random_k": paired_difference(ig["curated_k"], ig["random_k"], seed=seed).to_dict(),
        },
        "random_k": {
            "diff_vs_bulk": rand_vs_full.to_dict(), "equivalence_vs_bulk": equivalence(rand_vs_full),
            "ig_diff_vs_bulk": paired_difference(ig["random_k"], ig["bulk"], seed=seed).to_dict(),
        },
    }
    eq, better = equivalence(vs_full), vs_rand
    if math.isnan(vs_full.mean) or math.isnan(better.mean):
        verdict = "inconclusive"
    elif eq == "inside" and better.lo > 0:
        verdict = "reproduced"
    elif eq == "below" or better.hi < 0 or equivalence(better) == "inside":
        verdict = "not reproduced"
        if equivalence(better) == "inside" and eq == "inside":
            notes.append("curated_k and random_k are both equivalent to the full set: a small set suffices here, "
                         "but curation is not what makes it work")
    else:
        verdict = "inconclusive"
    if verdict == "inconclusive":
        for name, d, a, b in (("curated_k - bulk", vs_full, cur, full), ("curated_k - random_k", vs_rand, cur, rnd)):
            need = needed_n(a, b)
            if d.hi - d.lo > 2 * MARGIN and need:
                notes.append(f"{name}: interval ({d.lo:+.3f}, {d.hi:+.3f}) is wider than the ±{MARGIN:.2f} margin; "
                             f"about {need} paired test examples would resolve it")
    if all(math.isnan(x) for x in ig["bulk"]):
        notes.append("no ig_mean in the rows (information gain was not scored)")
    return {"claim": CLAIM, "verdict": verdict, "rule": RULE,
            "effect": _effect("accuracy(curated_k) - accuracy(bulk)", vs_full),
            "per_condition": per_condition, "per_model": per_model, "notes": notes}
