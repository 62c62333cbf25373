"""C9 — decoding-time proxy-tuning keeps knowledge that weight tuning overwrites (Liu et al. 2024,
"Tuning Language Models by Proxy", arXiv 2401.08565). Registers the ``c9_false_facts`` condition.

Every model lives in the shop run and shares its tokenizer. The world's own base (the anti-expert)
and its SFT on correct traces (the expert) steer a larger base, ``base_large`` (``Preset.c9_size``,
pretrained on the same texts for the same steps): ``c9_proxy`` decodes ``base_large + alpha * (correct -
base)``, alpha chosen as a user would, by accuracy on fresh validation problems (:func:`choose_alpha`: never
the test set, nor fact probes; the paper's alpha 1 closed 16% of the gap on them in the quick world, so a
fixed 1 would test a proxy nobody would deploy). The reference "tuned" model is ``c9_sft``, SFT of ``base_large`` on
the same correct traces with the same settings. Knowledge is the world's facts asked as the base was
pretrained to answer them (``recall the fact . Q: how much does a lamp cost ?`` → ``A: 7``).

Two comparisons, both required: fact probes answered, proxy minus direct SFT (paired over facts),
and the share of direct SFT's task-accuracy gain the proxy closes (the paper's gap closed). A proxy
that closes no gap is its base in all but name and keeps the base's facts trivially: that is a guard
(inconclusive, saying so), as is direct SFT that gains nothing on the task. The per-layer weight
drift of ``c9_sft`` is reported beside them.

Controls: the **positive** one compares the proxy with SFT of ``base_large`` on the correct traces
plus every fact probe answered with a wrong value (a quarter of the set): direct tuning that must
overwrite the facts — the lab must detect the proxy keeping more. The **negative** one is the proxy
at alpha 0, which is ``base_large`` itself: whatever facts it keeps are the base's, not kept by
proxy-tuning, and the lab must not credit it (its guard must hold even when direct SFT lost facts).
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from pathlib import Path

import numpy as np

from ...metrics.gap import gap_closed
from ...metrics.stats import bootstrap_mean, column, paired_difference
from ...report.format import md_table, pct, pts
from ..conditions import Condition, register_condition
from ..protocol import Comparison, Protocol, SeedEvidence, judge, paired_table, signal_guard
from ._base import ACCURACY_SESOI, Arm, Claim, ClaimResult, FinishedRun, diff_column, effect, mean_of, register_claim

LARGE = "base_large"     # the larger base (proxy-tuning's "base"); the world's "base" is the anti-expert
EXPERT, ANTI = "correct", "base"
ALPHAS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)  # the grid the proxy's alpha is chosen from (1: the paper's default)
VALIDATION = 200         # fresh problems the alpha is chosen on (at most the test set's size)
FALSE_FACTS = "c9_false_facts"
FALSE_SHARE = 0.25       # the share of the positive control's SFT set that restates facts falsely
SETS = ("test", "facts")  # what C9's own models are evaluated on
# name -> (what it is, how it is made); the order of every table
MODELS = {
    ANTI: "the world's base: the anti-expert",
    EXPERT: "the world's base after SFT on correct traces: the expert",
    LARGE: "a larger base, pretrained like the world's on the same texts",
    "c9_sft": "the larger base after SFT on correct traces (direct tuning, the reference)",
    "c9_sft_false": "the larger base after SFT on correct traces plus false fact answers (positive control)",
    "c9_proxy": "the larger base proxy-tuned: + alpha * (expert - anti-expert) at every step, alpha chosen on "
                "validation problems",
    "c9_proxy0": "the larger base proxy-tuned at alpha 0: its base (negative control)",
}
PROXIES = ("c9_proxy", "c9_proxy0")  # alpha chosen, alpha 0
DIRECT = {"c9_sft": EXPERT, "c9_sft_false": FALSE_FACTS}  # model -> the condition it is SFT on


def false_facts(c) -> list:
    """The clean pool plus every fact probe of the world answered with a wrong value (one fixed wrong
    value per fact), repeated until they make up :data:`FALSE_SHARE` of the set: direct tuning that
    must overwrite what the base was pretrained to answer. Shuffled with the run's seed."""
    probes = c.world.fact_probes() if hasattr(c.world, "fact_probes") else []
    if not probes:
        raise ValueError(f"condition '{FALSE_FACTS}': the world has no fact probes to restate falsely")
    rng = random.Random(c.seed + 41)
    lo, hi = c.world.config.value_range
    wrong = [replace(e, answer=str(rng.choice([v for v in range(lo, hi + 1) if str(v) != e.answer])),
                     meta={**e.meta, "false_fact": True}) for e in probes]
    reps = max(1, math.ceil(FALSE_SHARE / (1 - FALSE_SHARE) * len(c.train) / len(wrong)))
    out = list(c.train) + [replace(e, id=f"{e.id}-false{k}") for k in range(reps) for e in wrong]
    rng.shuffle(out)
    return out


register_condition(Condition(FALSE_FACTS, "C9's positive control (on the larger base only): the clean pool plus "
                                          "every fact probe answered with a wrong value, a quarter of the set",
                             false_facts))


def validation_problems(run) -> list:
    """:data:`VALIDATION` fresh problems of the world (at most the test set's size), none a train, test or
    variant question: what the proxy's alpha is chosen on."""
    taken = {e.question for n in ["train", "test", *(f"variant_{v}" for v in run.variant_names())] for e in run.load(n)}
    n = min(VALIDATION, len(run.load("test")))
    return run.world().problems(n, run.seed + 97, prefix="val", exclude=taken, split="validation")


def best_alpha(rows: list[dict]) -> float:
    """The alpha of the most accurate row; of equally accurate ones, the smallest (the least steering).

    >>> best_alpha([{"alpha": 1.0, "accuracy": 0.2}, {"alpha": 2.0, "accuracy": 0.5}, {"alpha": 3.0, "accuracy": 0.5}])
    2.0
    """
    return min(rows, key=lambda r: (-r["accuracy"], r["alpha"]))["alpha"]


def choose_alpha(run) -> tuple[float, list[dict]]:
    """``(alpha, rows)``: the proxy's alpha, the most accurate of :data:`ALPHAS` on
    :func:`validation_problems` (greedy decoding, the lab's exact-match scoring), and one row per alpha
    (with the fact probes it answers, reported beside the choice but never used for it).
    Cached in ``eval/base_large/proxy_alpha.jsonl`` with the identities of the three models, so a
    retrained one makes it choose again."""
    from ...core.record import iter_dicts, write_jsonl
    from ...evaluate import generate_samples, score_samples
    from ...models.proxy import load_proxy

    run.claim_eval_dir(LARGE)
    path = run.eval_path(LARGE, "proxy_alpha")
    made_by = {m: run.model_identity(m) for m in (LARGE, EXPERT, ANTI)}
    rows = [d for _, d in iter_dicts(path)] if path.exists() else []
    if not rows or any(r.get("made_by") != made_by for r in rows):
        val, world, p = validation_problems(run), run.world(), run.preset
        probes = run.load("facts")  # at each alpha too, descriptive only: what choosing for the task costs in knowledge
        rows = []
        for alpha in ALPHAS:
            lm = load_proxy(*(str(run.model_dir(m)) for m in (LARGE, EXPERT, ANTI)), alpha=alpha)
            lm.name = f"proxy@{alpha:g}"
            samples = generate_samples(lm, val, max_new_tokens=p.max_new_tokens, batch_size=p.gen_batch)
            right = [r["correct"] for r in score_samples(samples, val, verifier=world)]
            said = score_samples(generate_samples(lm, probes, max_new_tokens=p.max_new_tokens, batch_size=p.gen_batch),
                                 probes, verifier=world)
            rows.append({"alpha": alpha, "accuracy": sum(right) / len(right), "n": len(right),
                         "facts": sum(r["correct"] for r in said) / len(said) if said else None, "made_by": made_by})
        write_jsonl(path, rows)
    return best_alpha(rows), rows


def alpha_lines(rows: list[dict]) -> list[str]:
    """The report's sentence on how alpha was chosen.

    >>> alpha_lines([{"alpha": 1.0, "accuracy": 0.165, "n": 200, "facts": 0.125},
    ...              {"alpha": 2.0, "accuracy": 0.505, "n": 200, "facts": 0.0}])[1]
    "c9_proxy's alpha, chosen by accuracy on 200 fresh validation problems (never the test set); beside it the fact probes answered, which play no part in the choice: alpha 1 → 16.5% (facts 12.5%), 2 → 50.5% (facts 0.0%); chosen: 2."
    """
    if not rows:
        return []
    sweep = ", ".join(f"{r['alpha']:g} → {100 * r['accuracy']:.1f}%"
                      + (f" (facts {100 * r['facts']:.1f}%)" if r.get("facts") is not None else "") for r in rows)
    return ["", f"c9_proxy's alpha, chosen by accuracy on {rows[0]['n']} fresh validation problems (never the test "
                f"set); beside it the fact probes answered, which play no part in the choice: alpha {sweep}; "
                f"chosen: {best_alpha(rows):g}."]


def gap_statistic(table: np.ndarray) -> float:
    """Gap closed on a ``[base, proxy, tuned]`` table of per-problem 0/1 outcomes: ``(mean proxy -
    mean base) / (mean tuned - mean base)``, NaN when tuned and base are level.

    >>> gap_statistic(np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0], [1, 1, 1]], float))
    0.5
    >>> math.isnan(gap_statistic(np.array([[0, 1, 0], [1, 0, 1]], float)))
    True
    """
    base, proxy, tuned = (float(np.nanmean(table[:, i])) for i in range(3))
    return (proxy - base) / (tuned - base) if tuned != base else math.nan


SESOI = ACCURACY_SESOI
SESOI_REASON = ("5 points of the fact probes, the smallest rate difference every lab claim uses: 2-3 of the quick "
                "world's 48 facts")
RETENTION = "fact probes answered, proxy minus direct SFT of the larger base, paired over the world's facts"
GAP = Protocol(quantity=f"gap closed on test accuracy, (proxy - {LARGE}) / (direct SFT - {LARGE})", sesoi=0.5,
               sesoi_reason="more than half of direct tuning's gain: the paper reports 88-91%, and a proxy closing "
                            "less is no stand-in for tuning the larger model", test="superiority", unit="fraction")


class RetentionAndGap(Protocol):
    """The claim's protocol: fact probes answered, proxy minus direct SFT, beyond the SESOI (this
    protocol), and gap closed beyond half (:data:`GAP`); its rule says both."""

    def rule(self) -> str:
        retention = Protocol(RETENTION, self.sesoi, self.sesoi_reason, self.test, self.direction, self.unit)
        first, tail = retention.rule().split("; inconclusive otherwise", 1)
        second = GAP.rule().split("; inconclusive otherwise", 1)[0]
        return (f"Two comparisons, reproduced only when both are, not reproduced when either is not. (1) {first}. "
                f"(2) {second}. Guards besides the shared ones: direct SFT must gain more than the SESOI on the "
                "task over the larger base (else there is no gap to close), the proxy must too (else it is its base "
                "in all but name and keeps the base's facts trivially), and the larger base must answer more than "
                f"the SESOI of the fact probes (else there is no knowledge to keep); inconclusive otherwise{tail}")


def arm_models(arm: Arm) -> tuple[str, str]:
    """``(proxy, direct)``: the two models an arm compares (its conditions: the expert's, then these)."""
    return arm.conditions[1], arm.conditions[2]


def has_models(run: FinishedRun, models) -> bool:
    """Whether every model was evaluated on C9's sets in this run."""
    try:
        return all(run.rows(m, s) is not None for m in models for s in SETS)
    except (FileNotFoundError, OSError):
        return False


@register_claim
class ProxyKeepsKnowledge(Claim):
    id = "C9"
    title = "proxy-tuning keeps knowledge"
    arm = Arm((EXPERT, "c9_proxy", "c9_sft"), world="shop",
              description="the proxy vs SFT of the larger base on the same correct traces")
    positive = Arm((EXPERT, "c9_proxy", "c9_sft_false"), world="shop",
                   description="the proxy vs SFT of the larger base that also restates every fact falsely: "
                               "overwritten knowledge, planted")
    negative = Arm((EXPERT, "c9_proxy0", "c9_sft"), world="shop",
                   description="the proxy at alpha 0, which is the larger base: its facts are not kept by proxy-tuning")
    statement = ("Decoding-time proxy-tuning keeps knowledge that weight tuning overwrites: a larger base steered by "
                 "a small tuned expert and its untuned anti-expert closes most of the gap to tuning the larger base "
                 "directly (88-91% in the paper) while answering more of its pretrained facts than the directly "
                 "tuned model.")
    protocol = RetentionAndGap(
        quantity=f"{RETENTION} (it must rise beyond the SESOI), and the gap the proxy closes on test accuracy "
                 "(beyond half)",
        sesoi=SESOI, sesoi_reason=SESOI_REASON, test="superiority")

    def stages(self, run) -> None:
        if EXPERT not in run.models() or not run.load("facts"):
            return  # a world without the expert or without facts: nothing to measure
        run.stage_base(LARGE, size=run.preset.c9_size)
        for model, condition in DIRECT.items():
            run.stage_train(condition, base=LARGE, name=model)
        run.save_proxy("c9_proxy", LARGE, EXPERT, ANTI, choose_alpha(run)[0])
        run.save_proxy("c9_proxy0", LARGE, EXPERT, ANTI, 0.0)
        for model in (LARGE, *DIRECT, *PROXIES):
            run.stage_eval(model, sets=SETS)

    def evidence(self, run: FinishedRun, arm: Arm | None = None) -> SeedEvidence | None:
        proxy, direct = arm_models(arm or self.arms()["real"])
        if not has_models(run, (LARGE, proxy, direct)):
            return None
        test = {m: run.rows(m, "test") for m in (LARGE, proxy, direct)}
        facts = {m: run.rows(m, "facts") for m in (LARGE, proxy, direct)}
        comparisons = [
            Comparison(f"fact probes answered, {proxy} - {direct}",
                       paired_table(diff_column(facts[proxy], facts[direct])), binary=True),
            Comparison(f"gap closed on the task, ({proxy} - {LARGE}) / ({direct} - {LARGE})",
                       paired_table(*(column(test[m], "correct") for m in (LARGE, proxy, direct))),
                       statistic=gap_statistic, protocol=GAP)]
        guards = signal_guard(f"the test-accuracy gain of direct SFT ({direct}) over {LARGE} (no gap to close)",
                              diff_column(test[direct], test[LARGE]), SESOI)
        guards += signal_guard(f"the test-accuracy gain of the proxy ({proxy}) over {LARGE} (a proxy that closes no "
                               "gap is its base in all but name and keeps the base's facts trivially)",
                               diff_column(test[proxy], test[LARGE]), SESOI)
        known = mean_of(column(facts[LARGE], "correct"))
        if not known > SESOI:
            guards.append(f"floor: {LARGE} answers {100 * known:.1f}% of the fact probes, within the SESOI of 0%: "
                          "there is no knowledge to keep")
        return SeedEvidence(run.seed, comparisons, guards)

    def analyze(self, run: FinishedRun) -> ClaimResult | None:
        seed, n = run.seed, run.bootstrap
        if not has_models(run, MODELS):
            return None
        test = {m: column(run.rows(m, "test"), "correct") for m in MODELS}
        facts = {m: column(run.rows(m, "facts"), "correct") for m in MODELS}
        known = [f == 1.0 for f in facts[LARGE]]
        per_model = {m: {"made": how, "accuracy": bootstrap_mean(test[m], seed=seed, n_resamples=n).to_dict(),
                         "fact_probes": bootstrap_mean(facts[m], seed=seed, n_resamples=n).to_dict(),
                         # of the facts the larger base answers, the share this model still answers
                         "kept_of_large_base": mean_of([f for f, k in zip(facts[m], known) if k])}
                     for m, how in MODELS.items()}
        per_condition = {}
        for role, arm in self.arms().items():
            proxy, direct = arm_models(arm)
            gap = gap_closed({"accuracy": mean_of(test[LARGE])}, {"accuracy": mean_of(test[proxy])},
                             {"accuracy": mean_of(test[direct])})
            reading = judge(self.protocol, [self.evidence(run, arm)], n_resamples=n, seed=seed)
            per_condition[f"{proxy} vs {direct}"] = {
                "arm": role, "facts_diff": paired_difference(facts[proxy], facts[direct], seed=seed,
                                                             n_resamples=n).to_dict(),
                "accuracy_diff": paired_difference(test[proxy], test[direct], seed=seed, n_resamples=n).to_dict(),
                "gap_closed": gap["mean"], "verdict": reading["verdict"], "guards": reading["guards"]}
        real = per_condition[" vs ".join(arm_models(self.arms()["real"]))]
        return ClaimResult(
            claim=self.statement, verdict=real["verdict"], rule=self.protocol.rule(),
            effect=effect("fact probes answered, c9_proxy - c9_sft", real["facts_diff"]),
            per_condition=per_condition, per_model=per_model,
            # the negative control's model is right and wrong exactly where its base is (the identity behind it)
            extra={"alpha0_scores_as_base": test["c9_proxy0"] == test[LARGE] and facts["c9_proxy0"] == facts[LARGE],
                   "drift": self.drift(run), "alpha_sweep": self.alpha_sweep(run)},
            notes=[f"Sizes: the anti-expert and expert are the world's base size, {LARGE} is the preset's c9_size; "
                   "every model shares the world's tokenizer. Gap closed is Liu et al.'s (proxy - base) / (tuned - "
                   "base) on test accuracy (sftlens.metrics.gap).",
                   "Fact probes are answered without steps; a tuned model that starts a chain fails them even when "
                   "its chains state the facts right, so a drop measures a lost question format as much as lost "
                   "knowledge, for the direct model and the proxy alike."])

    @staticmethod
    def alpha_sweep(run: FinishedRun) -> list[dict]:
        """The proxy's validation accuracy per alpha (:func:`choose_alpha`'s rows; empty without them)."""
        from ...core.record import iter_dicts

        path = run.eval_path(LARGE, "proxy_alpha") if hasattr(run, "eval_path") else None
        if path is None or not path.exists():
            return []
        return [{k: d.get(k) for k in ("alpha", "accuracy", "n", "facts")} for _, d in iter_dicts(path)]

    @staticmethod
    def drift(run: FinishedRun) -> dict:
        """Per-layer relative weight change of each directly tuned model against ``base_large``
        (:func:`sftlens.metrics.drift.model_drift`); empty when the run has no model folders."""
        from ...metrics.drift import model_drift

        model_dir = getattr(run, "model_dir", None)
        if model_dir is None or not (model_dir(LARGE) / "config.json").exists():
            return {}
        out = {}
        for m in DIRECT:
            result = model_drift(str(model_dir(LARGE)), str(model_dir(m)))
            out[m] = {"layers": {g["layer"]: g["drift"] for g in result["layers"]}, "total": result["total"]["drift"]}
        return out

    def plots(self, run: FinishedRun, result: dict, out: Path) -> dict[str, str]:
        from ...report.figures import pyplot, save_png

        per_model, drift = result.get("per_model", {}), result.get("drift", {})
        if not per_model:
            return {}
        plt = pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [3, 2]})
        models = list(per_model)
        for i, (key, label) in enumerate((("accuracy", "test accuracy"), ("fact_probes", "fact probes"))):
            axes[0].bar([j + i * 0.4 for j in range(len(models))], [100 * per_model[m][key]["mean"] for m in models],
                        width=0.4, label=label)
        axes[0].set_xticks([j + 0.2 for j in range(len(models))])
        axes[0].set_xticklabels(models, rotation=30, ha="right", fontsize=8)
        axes[0].set_ylabel("%")
        axes[0].set_ylim(0, 120)  # room for the legend above 100%
        axes[0].set_title("C9: task and facts, per model")
        axes[0].legend(fontsize=8, ncol=2, loc="upper center")
        axes[0].grid(axis="y", alpha=0.3)
        for i, (m, d) in enumerate(drift.items()):
            layers = list(d["layers"])
            axes[1].bar([j + i * 0.4 for j in range(len(layers))], list(d["layers"].values()), width=0.4, label=m)
            axes[1].set_xticks([j + 0.2 for j in range(len(layers))])
            axes[1].set_xticklabels([layer.replace("model.", "") for layer in layers], rotation=30, ha="right",
                                    fontsize=8)
        axes[1].set_ylabel("‖W_t − W_b‖ / ‖W_b‖")
        axes[1].set_title(f"weight drift from {LARGE}")
        if drift:
            top = max(v for d in drift.values() for v in d["layers"].values() if math.isfinite(v))
            axes[1].set_ylim(0, 1.3 * top if top > 0 else 1.0)
            axes[1].legend(fontsize=8, ncol=2, loc="upper center")
        fig.tight_layout()
        save_png(fig, out / "c9_proxy.png")
        return {"c9": "c9_proxy.png"}

    def report_section(self, result: dict, plots: dict[str, str]) -> list[str]:
        per_model, per_condition, drift = (result.get(k, {}) for k in ("per_model", "per_condition", "drift"))
        lines = ["The shop's models, descriptive (95% intervals); 'kept' is the share of the facts "
                 f"{LARGE} answers that the model still answers:", "",
                 md_table(["model", "what it is", "test accuracy", "fact probes", "kept"],
                          [[m, d["made"], pct(d["accuracy"]), pct(d["fact_probes"]),
                            "n/a" if d["kept_of_large_base"] != d["kept_of_large_base"]
                            else f"{100 * d['kept_of_large_base']:.0f}%"] for m, d in per_model.items()]), "",
                 md_table(["arm", "proxy vs direct", "fact probes", "test accuracy", "gap closed",
                           "the rule, this seed"],
                          [[d["arm"], k, pts(d["facts_diff"]), pts(d["accuracy_diff"]),
                            "n/a" if d["gap_closed"] != d["gap_closed"] else f"{100 * d['gap_closed']:.0f}%",
                            d["verdict"] + (" (guarded)" if d["guards"] else "")] for k, d in per_condition.items()]),
                 *alpha_lines(result.get("alpha_sweep") or []),
                 "", f"The proxy at alpha 0 is right and wrong {'exactly' if result.get('alpha0_scores_as_base') else 'NOT'}"
                 f" where {LARGE} is, on every test problem and fact probe.", ""]
        if drift:
            layers = list(next(iter(drift.values()))["layers"])
            lines += [f"Weight drift of direct tuning from {LARGE} (‖W_t − W_b‖ / ‖W_b‖ per layer; the proxy "
                      "changes no weight):", "",
                      md_table(["model"] + layers + ["all"],
                               [[m] + [f"{d['layers'][layer]:.3f}" for layer in layers] + [f"{d['total']:.3f}"]
                                for m, d in drift.items()]), ""]
        if "c9" in plots:
            lines += [f"![task, facts and drift]({plots['c9']})", ""]
        return lines


__all__ = ["ProxyKeepsKnowledge", "false_facts", "gap_statistic"]
