"""From per-sample rows to claim verdicts: C1 (accuracy trap), C4 (swapped traces), C8 (variant gaps).

Each ``claim_*`` function takes per-sample metric rows (as written by the evaluation stage) and
returns a claim entry::

    {"claim", "verdict", "rule", "effect": Estimate, "per_condition": {...}, "per_model": {...}, "notes"}

Verdicts follow the stated rule mechanically; nothing here knows what the papers reported.
"""

from __future__ import annotations

import math

import numpy as np

from ..metrics.stats import Estimate, bootstrap_mean, paired_difference, verdict

PRIMARY = "correct"  # standard SFT on clean traces: the condition the papers' claims are about
EQUIV_MARGIN = 0.05  # "about as well": within 5 accuracy points


def col(rows: list[dict], key: str) -> list[float]:
    """One metric across rows (missing -> NaN)."""
    return [float(r.get(key, math.nan)) if r.get(key) is not None else math.nan for r in rows]


def model_summary(rows: list[dict], seed: int, n: int) -> dict:
    """Mean and interval of each headline metric of one model on one set."""
    out = {}
    for key in ("correct", "flexible_correct", "validity", "chain_valid", "ki", "ig_mean", "ig_min", "ig_total",
                "ig_ppl", "n_steps"):
        if any(key in r for r in rows):
            out[key] = bootstrap_mean(col(rows, key), seed=seed, n_resamples=n).to_dict()
    return out


def _mean(xs: list[float]) -> float:
    v = [x for x in xs if not math.isnan(x)]
    return sum(v) / len(v) if v else math.nan


def diff_in_diff(t_in, b_in, t_var, b_var, seed: int = 0, n_resamples: int = 2000) -> Estimate:
    """``(mean t_in - mean t_var) - (mean b_in - mean b_var)``: how much more a tuned model ``t``
    loses on a variant set than the base ``b``. ``t_in``/``b_in`` are paired (same examples), and so
    are ``t_var``/``b_var``; the two sets are resampled independently.

    >>> round(diff_in_diff([1, 1], [1, 1], [0, 0], [1, 1]).mean, 3)
    1.0
    """
    ti, bi, tv, bv = (np.asarray(x, float) for x in (t_in, b_in, t_var, b_var))
    if ti.size == 0 or tv.size == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    rng = np.random.default_rng(seed)
    d_in, d_var = ti - bi, tv - bv
    point = float(d_in.mean() - d_var.mean())
    bi_ = rng.integers(0, d_in.size, (n_resamples, d_in.size))
    bv_ = rng.integers(0, d_var.size, (n_resamples, d_var.size))
    boot = d_in[bi_].mean(1) - d_var[bv_].mean(1)
    return Estimate(point, float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5)),
                    int(min(d_in.size, d_var.size)))


def _fmt_rule(text: str) -> str:
    return " ".join(text.split())


def claim_c1(rows: dict[str, list[dict]], seed: int = 0, n: int = 2000) -> dict:
    """C1: SFT raises accuracy while the information gain of its steps falls (vs the base)."""
    base = rows["base"]
    per_cond = {}
    for m, r in rows.items():
        if m == "base":
            continue
        acc = paired_difference(col(r, "correct"), col(base, "correct"), seed=seed, n_resamples=n)
        ig = paired_difference(col(r, "ig_mean"), col(base, "ig_mean"), seed=seed, n_resamples=n)
        ki = paired_difference(col(r, "ki"), col(base, "ki"), seed=seed, n_resamples=n)
        ppl = paired_difference(col(r, "ig_ppl"), col(base, "ig_ppl"), seed=seed, n_resamples=n)
        per_cond[m] = {"accuracy_diff": acc.to_dict(), "ig_mean_diff": ig.to_dict(), "ki_diff": ki.to_dict(),
                       "ig_ppl_diff": ppl.to_dict(), "verdict_ppl_variant": verdict([acc, ppl], [+1, -1]),
                       "verdict": verdict([acc, ig], [+1, -1])}
        if math.isnan(ig.mean):
            per_cond[m]["note"] = "no chains with steps on both sides: information gain is undefined"
    primary = PRIMARY if PRIMARY in per_cond else next(iter(per_cond), None)
    eff = per_cond[primary]["ig_mean_diff"] if primary else Estimate(math.nan, math.nan, math.nan, 0).to_dict()
    notes = []
    if primary and per_cond[primary]["verdict_ppl_variant"] != per_cond[primary]["verdict"]:
        notes.append(f"The two definitions disagree for '{primary}': with the Wu et al. perplexity variant the verdict "
                     f"would be '{per_cond[primary]['verdict_ppl_variant']}'. That variant telescopes to "
                     "(PPL_0 - PPL_N) / (N + 1), so it shrinks as chains get longer (mean steps: base "
                     f"{_mean(col(base, 'n_steps')):.2f}, {primary} {_mean(col(rows[primary], 'n_steps')):.2f}) and "
                     "mixes the chain's own predictability with progress toward the answer; the answer-token "
                     "definition (the default) measures only the latter.")
    return {
        "claim": "SFT raises final-answer accuracy but lowers the information gain of reasoning steps.",
        "verdict": per_cond[primary]["verdict"] if primary else "inconclusive",
        "rule": _fmt_rule(f"""For a condition, C1 is reproduced when its accuracy gain over the base (paired, same test
            problems) has a 95% bootstrap interval above zero AND the change in mean per-step information gain of its
            own chains (scored by the base model, toward the reference answer) has an interval below zero; not
            reproduced when either interval lies on the wrong side of zero; otherwise inconclusive. The claim's verdict
            is the '{primary}' condition's (standard SFT on correct traces)."""),
        "effect": {"name": f"information gain change, {primary} - base (nats/step)", **eff},
        "per_condition": per_cond,
        "per_model": {m: model_summary(r, seed, n) for m, r in rows.items()},
        "notes": ["Information gain: mean over answer tokens of log p(answer | prompt, s_1..s_k) minus the same with "
                  "k-1 steps, averaged over the chain's steps; the Wu et al. perplexity variant is in ig_ppl."] + notes,
    }


def claim_c4(rows: dict[str, list[dict]], ood_rows: dict[str, list[dict]], seed: int = 0, n: int = 2000) -> dict:
    """C4: training on swapped traces reaches about the accuracy of correct traces; its traces are invalid."""
    if "swapped" not in rows or "correct" not in rows:
        return {"claim": "C4", "verdict": "inconclusive", "rule": "needs the 'correct' and 'swapped' conditions",
                "effect": Estimate(math.nan, math.nan, math.nan, 0).to_dict(), "per_condition": {},
                "per_model": {}, "notes": ["conditions missing from the preset"]}
    per_cond = {}
    learned = paired_difference(col(rows["correct"], "correct"), col(rows["base"], "correct"), seed=seed, n_resamples=n)
    for m in [c for c in rows if c not in ("base", "correct")]:
        d_in = paired_difference(col(rows[m], "correct"), col(rows["correct"], "correct"), seed=seed, n_resamples=n)
        d_ood = paired_difference(col(ood_rows[m], "correct"), col(ood_rows["correct"], "correct"), seed=seed,
                                  n_resamples=n)
        v = ("reproduced" if d_in.lo > -EQUIV_MARGIN else "not reproduced" if d_in.hi < -EQUIV_MARGIN
             else "inconclusive")
        if not learned.excludes_zero() or learned.mean <= 0:
            v = "inconclusive"  # correct traces taught nothing measurable: no signal to compare against
        per_cond[m] = {"accuracy_diff_vs_correct": d_in.to_dict(), "ood_accuracy_diff_vs_correct": d_ood.to_dict(),
                       "verdict": v}
    per_model = {}
    for m in rows:
        per_model[m] = {
            "accuracy": bootstrap_mean(col(rows[m], "correct"), seed=seed, n_resamples=n).to_dict(),
            "ood_accuracy": bootstrap_mean(col(ood_rows[m], "correct"), seed=seed, n_resamples=n).to_dict(),
            "trace_valid": bootstrap_mean(col(rows[m], "chain_valid"), seed=seed, n_resamples=n).to_dict(),
            "trace_valid_when_correct": bootstrap_mean(
                [cv for cv, c in zip(col(rows[m], "chain_valid"), col(rows[m], "correct")) if c == 1.0],
                seed=seed, n_resamples=n).to_dict(),
        }
    return {
        "claim": "Models trained on swapped (other problems') traces reach about the accuracy of models trained on "
                 "correct traces.",
        "verdict": per_cond["swapped"]["verdict"],
        "rule": _fmt_rule(f"""Reproduced when the 95% interval of (swapped - correct) in-distribution accuracy lies
            above -{EQUIV_MARGIN:.2f} (at most {EQUIV_MARGIN * 100:.0f} points worse, or better); not reproduced when
            it lies entirely below -{EQUIV_MARGIN:.2f}; otherwise inconclusive — and inconclusive whenever SFT on
            correct traces does not beat the base (interval above zero), since then there is no signal. Out-of-distribution accuracy (all
            variant sets pooled) and step-by-step trace validity are reported alongside."""),
        "effect": {"name": "accuracy, swapped - correct (in distribution)",
                   **per_cond["swapped"]["accuracy_diff_vs_correct"]},
        "per_condition": per_cond,
        "per_model": per_model,
        "correct_vs_base": learned.to_dict(),
        "notes": ["Trace validity: every step is a true fact or correct arithmetic (the world's verifier)."],
    }


def claim_c8(test_rows: dict[str, list[dict]], var_rows: dict[str, dict[str, list[dict]]], seed: int = 0,
             n: int = 2000, primary_variant: str = "n_minus_1") -> dict:
    """C8: after fine-tuning, accuracy on variants (one element removed, ...) drops more than the base's."""
    per_model = {}
    for m, r in test_rows.items():
        acc_in = bootstrap_mean(col(r, "correct"), seed=seed, n_resamples=n)
        per_model[m] = {"in_distribution": acc_in.to_dict(), "variants": {}}
        for v, vr in var_rows.items():
            acc_v = bootstrap_mean(col(vr[m], "correct"), seed=seed, n_resamples=n)
            from ..metrics.stats import unpaired_difference

            gap = unpaired_difference(col(r, "correct"), col(vr[m], "correct"), seed=seed, n_resamples=n)
            per_model[m]["variants"][v] = {"accuracy": acc_v.to_dict(), "gap": gap.to_dict()}
    per_cond = {}
    for m in test_rows:
        if m == "base":
            continue
        dids = {v: diff_in_diff(col(test_rows[m], "correct"), col(test_rows["base"], "correct"),
                                col(var_rows[v][m], "correct"), col(var_rows[v]["base"], "correct"),
                                seed=seed, n_resamples=n) for v in var_rows}
        pv = dids.get(primary_variant)
        per_cond[m] = {"gap_minus_base_gap": {v: d.to_dict() for v, d in dids.items()},
                       "verdict": verdict([pv], [+1]) if pv is not None else "inconclusive"}
    primary = PRIMARY if PRIMARY in per_cond else next(iter(per_cond))
    eff = per_cond[primary]["gap_minus_base_gap"].get(primary_variant,
                                                      Estimate(math.nan, math.nan, math.nan, 0).to_dict())
    return {
        "claim": "Fine-tuning sharpens memorisation: accuracy on 'N-1' variants (one element removed) of problems "
                 "solved in distribution drops sharply.",
        "verdict": per_cond[primary]["verdict"],
        "rule": _fmt_rule(f"""Gap = in-distribution accuracy minus variant accuracy. C8 is reproduced for a condition
            when its gap on the '{primary_variant}' variant exceeds the base model's gap with a 95% interval above zero
            (difference in differences; the base sees the same problems); not reproduced when the interval lies below
            zero; otherwise inconclusive. The claim's verdict is the '{primary}' condition's. Other variants (longer
            chains, unseen item combinations, unseen quantity ranges) are reported alongside."""),
        "effect": {"name": f"extra {primary_variant} gap of {primary} over base (accuracy)", **eff},
        "per_condition": per_cond,
        "per_model": per_model,
        "notes": [],
    }


def analyze(lab) -> dict:
    """All claims of a finished lab run (the ``results.json`` content)."""
    seed, n = lab.seed, lab.preset.bootstrap
    models = lab.models()
    test = {m: lab.rows(m, "test") for m in models}
    variants = {v: {m: lab.rows(m, f"variant_{v}") for m in models} for v in lab.variant_names()}
    ood = {m: [r for v in variants for r in variants[v][m]] for m in models}
    facts = {m: bootstrap_mean(col(lab.rows(m, "facts"), "correct"), seed=seed, n_resamples=n).to_dict()
             for m in models}
    import json

    infos = {m: json.loads((lab.model_dir(m) / "sftlens.json").read_text()) for m in models}
    claims = {"C1": claim_c1(test, seed, n), "C4": claim_c4(test, ood, seed, n), "C8": claim_c8(test, variants, seed, n)}
    for extra in _extra_claims():
        claims.update(extra(lab, test, variants) or {})
    return {
        "sftlens_lab": 1,
        "preset": lab.preset.name,
        "seed": seed,
        "models": {m: {"info": infos[m], "accuracy": model_summary(test[m], seed, n).get("correct"),
                       "fact_probe_accuracy": facts[m]} for m in models},
        "claims": dict(sorted(claims.items(), key=lambda kv: int(kv[0][1:]))),
    }


def _claim_c2(lab, test, variants) -> dict:
    from .c2 import analyze_c2

    rows = {m: lab.faith_rows(m) for m in lab.models() if lab.eval_path(m, "faithfulness").exists()}
    if "base" not in rows or len(rows) < 2:
        return {}
    return {"C2": analyze_c2(rows, base="base", seed=lab.seed)}


def _claim_c3(lab, test, variants) -> dict:
    from .c3 import analyze_c3, output_space_baseline

    names = ["correct", "instr_empty", "instr_wrong", "instr_random"]
    if not all(n in test for n in names):
        return {}
    baseline = output_space_baseline(lab.load("train"), lab.load("test"), seed=lab.seed)
    out = analyze_c3({n: test[n] for n in names}, baseline, seed=lab.seed)
    out["notes"].append("Each model is asked with the kind of instruction it was trained with (none, another "
                        "task's, random words), as in Kung & Peng; the test problems are the same for all.")
    out["notes"].append("The base saw the correct instruction in every pretraining problem, so empty or random "
                        "instructions are also a shift away from what the base learned; the question alone still "
                        "names the task (pay / how heavy).")
    return {"C3": out}


def _claim_c10(lab, test, variants) -> dict:
    from .c10 import analyze_c10

    names = ["bulk", "curated_k", "random_k"]
    if not all(n in test for n in names):
        return {}
    out = analyze_c10({n: test[n] for n in names}, seed=lab.seed)
    if "correct" in test:  # the clean full set, for reference
        out["per_model"]["correct (clean full set)"] = {
            "accuracy": bootstrap_mean(col(test["correct"], "correct"), seed=lab.seed).to_dict(),
            "ig_mean": bootstrap_mean(col(test["correct"], "ig_mean"), seed=lab.seed).to_dict()}
    return {"C10": out}


def _extra_claims():
    """Claim analyses contributed by other modules, each ``f(lab, test_rows, variant_rows) -> dict``."""
    return [_claim_c2, _claim_c3, _claim_c10]
