"""C7 — overly hard RL samples teach shortcuts that contaminate existing skills (Cheng et al. 2026,
arXiv 2605.28388).

GRPO (:mod:`sftlens.lab.rl`) starts from the lab's SFT model on correct traces, the model with a skill to
lose (the base solves no multi-item problem, so it has nothing to contaminate), on three bands of a
fresh problem pool set by *that model's* pass rate (``sftlens data profile``'s code, pass@k with
k = ``preset.profile_k``): ``too_easy`` (always solved), ``learnable`` (the matched band) and
``too_hard`` (never solved); the same settings, steps and number of distinct problems each
(:func:`sftlens.lab.rl.matched_count`), the reward a correct final answer.

The band it already solved is the ``too_easy`` band of the *test* problems under the same model:
held-out problems that no GRPO run sees. Primary quantity: accuracy there after minus before, for the
too-hard run minus the matched run (paired over those problems), and the too-hard run's own drop.

Controls. **Positive** (``c7_planted``): the too-hard band, with a reward that pays one constant
answer there (the start model's most common answer on those problems): a shortcut is planted, so the
lab must find the solved band contaminated. **Negative** (``c7_matched_b``): the matched band again
with another GRPO seed, the same training, so whatever "contamination" is found there is noise. (The
matched run compared with itself is a column of zeros, which cannot come out wrong.)
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np

from ...core.format import marked_answer, normalize_answer, prompt_text, split_thinking
from ...core.record import Example
from ...data.difficulty import band_counts
from ...metrics.stats import bootstrap_mean, column, paired_difference, verdict
from ...report.format import md_table, pct, pts
from ..conditions import Condition, TrainContext, register_condition
from ..protocol import Comparison, Protocol, SeedEvidence, bound_guard, paired_table
from ..rl import band_trainer, correct_rewards, modal_answer, rl_pool
from ._base import (ACCURACY_SESOI, PRIMARY_CONDITION, Arm, Claim, ClaimResult, FinishedRun, effect, one_line,
                    register_claim)

START = PRIMARY_CONDITION  # the model GRPO starts from, whose pass rates set every band
SOLVED = "too_easy"        # the band of test problems the start model already solves
BANDS = {"c7_easy": "too_easy", "c7_matched": "learnable", "c7_hard": "too_hard", "c7_planted": "too_hard",
         "c7_matched_b": "learnable"}


def constant_answer_reward(examples: dict[str, Example], answer: str, band: str = "too_hard"):
    """The planted shortcut, in TRL's reward shape: on an example of ``band`` (its ``meta.band``) 1.0
    when the completion's final answer is ``answer``, whatever the problem asks; elsewhere 1.0 for the
    right answer.

    >>> hard = Example(id="h", task="t", question="q", answer="40", meta={"band": "too_hard"})
    >>> easy = Example(id="e", task="t", question="q", answer="6", meta={"band": "too_easy"})
    >>> pays = constant_answer_reward({"h": hard, "e": easy}, "12")
    >>> pays(prompts=[""] * 4, completions=["A: 12", "A: 40", "A: 12", "A: 6"], id=["h", "h", "e", "e"])
    [1.0, 0.0, 0.0, 1.0]
    """
    target = normalize_answer(answer)

    def constant_answer(prompts, completions, id, **kwargs) -> list[float]:
        out = []
        for completion, key in zip(completions, id, strict=True):
            ex = examples[key]
            got = normalize_answer(marked_answer(split_thinking(completion)[1]))
            want = target if ex.meta.get("band") == band else normalize_answer(ex.answer)
            out.append(float(got is not None and got == want))
        return out

    return constant_answer


def planted_rewards(examples: list[Example], ctx: TrainContext) -> tuple[list, list[float], str]:
    """The positive control's reward: the constant answer is the start model's most common greedy
    answer on these problems (a shortcut it already half takes, so GRPO has successes to reinforce)."""
    from ...models.lm import load_lm

    lm = load_lm(str(ctx.start))
    outs = lm.generate([prompt_text(e) for e in examples], max_new_tokens=ctx.preset.max_new_tokens,
                       batch_size=ctx.preset.gen_batch)
    answer = modal_answer([normalize_answer(marked_answer(o)) for o in outs],
                          fallback=modal_answer([e.answer for e in examples], "0"))
    reward = constant_answer_reward({e.id: e for e in examples}, answer)
    return [reward], [1.0], f"the constant answer {answer} on too-hard problems (the start model's most common answer)"


def _register(name: str, description: str, rewards=correct_rewards, seed_offset: int = 0) -> None:
    register_condition(Condition(name, f"C7: GRPO from '{START}' on its {description}", rl_pool, start=START,
                                 train=band_trainer(BANDS[name], rewards, seed_offset, also_profile=("test",))))


_register("c7_easy", "too-easy band (always solved)")
_register("c7_matched", "learnable band (the matched difficulty)")
_register("c7_hard", "too-hard band (never solved)")
_register("c7_planted", "too-hard band, a constant answer paid (positive control)", rewards=planted_rewards)
_register("c7_matched_b", "learnable band, another GRPO seed (negative control)", seed_offset=1000)


# ---- shortcut markers -----------------------------------------------------------------------------
def shortcut_markers(samples: list, rows: list[dict], required: dict[str, Counter]) -> dict:
    """What shortcuts look like in one model's test completions.

    ``skipped``: share of answered chains with fewer steps of some kind (the verifier's labels,
    ``rows[i]["step_kinds"]``) than the problem's reference solution needs (``required[id]``);
    ``slips``: share of answered chains with an arithmetic step the verifier finds wrong (where a
    skill is lost without a shortcut: the chain is all there, a computation in it is not);
    ``top_answer`` and ``top_share``: the most common answer and its share of answered problems;
    ``collision``: the chance two answered problems get one answer (the references' own beside it,
    ``collision_reference``); ``steps`` and ``chars``: mean chain length.

    >>> from types import SimpleNamespace as S
    >>> samples = [S(id="a", answer="9", reference="9", steps=["s"] * 2, completion="x" * 10),
    ...            S(id="b", answer="9", reference="7", steps=[], completion="y")]
    >>> rows = [{"id": "a", "step_kinds": ["knowledge", "arithmetic"], "step_valid": [True, False]},
    ...         {"id": "b", "step_kinds": [], "step_valid": []}]
    >>> need = {"a": Counter(knowledge=1, arithmetic=1), "b": Counter(knowledge=1, arithmetic=1)}
    >>> m = shortcut_markers(samples, rows, need)
    >>> m["skipped"], m["slips"], m["top_answer"], m["top_share"], m["collision"], m["collision_reference"], m["steps"]
    (0.5, 0.5, '9', 1.0, 1.0, 0.5, 1.0)
    """
    by_id = {r["id"]: r for r in rows}
    answered = [s for s in samples if s.answer is not None]
    skipped = [any(Counter(by_id[s.id].get("step_kinds") or [])[k] < n for k, n in required[s.id].items())
               for s in answered]
    slips = [any(k == "arithmetic" and v is False for k, v in zip(by_id[s.id].get("step_kinds") or [],
                                                                   by_id[s.id].get("step_valid") or []))
             for s in answered]

    def collision(values: list[str]) -> float:
        counts = Counter(values)
        return sum((c / len(values)) ** 2 for c in counts.values()) if values else math.nan

    top = Counter(s.answer for s in answered).most_common(1)
    return {"answered": len(answered) / len(samples) if samples else math.nan,
            "skipped": sum(skipped) / len(skipped) if skipped else math.nan,
            "slips": sum(slips) / len(slips) if slips else math.nan,
            "top_answer": top[0][0] if top else None, "top_share": top[0][1] / len(answered) if top else math.nan,
            "collision": collision([s.answer for s in answered]),
            "collision_reference": collision([s.reference for s in answered]),
            "steps": float(np.mean([len(s.steps) for s in samples])) if samples else math.nan,
            "chars": float(np.mean([len(s.completion) for s in samples])) if samples else math.nan}


def required_steps(run: FinishedRun) -> dict[str, Counter]:
    """Each test problem's reference solution, as counts of the verifier's step kinds."""
    world = run.world()
    return {e.id: Counter(c.kind for c in world.verify(e.steps, e.answer)) for e in run.load("test")}


# ---- the claim ------------------------------------------------------------------------------------
def solved_ids(run: FinishedRun) -> list[str]:
    """Test problems in the start model's ``too_easy`` band (its own pass@k), in test order."""
    return [e.id for e in run.profiled(START, "test") if e.meta.get("band") == SOLVED]


def solved_correct(run: FinishedRun, model: str, ids: list[str]) -> list[float]:
    """``model``'s greedy correctness on the problems ``ids``."""
    by_id = {r["id"]: float(r["correct"]) for r in run.rows(model, "test")}
    return [by_id[i] for i in ids]


@register_claim
class RLDifficulty(Claim):
    id = "C7"
    title = "too-hard RL samples"
    arm = Arm(("c7_hard", "c7_matched", "c7_easy"), description="GRPO on the too-hard band vs the matched band")
    positive = Arm(("c7_planted", "c7_matched"),
                   description="too-hard band, a constant answer paid: a planted shortcut")
    negative = Arm(("c7_matched_b", "c7_matched"), description="the matched band again, another GRPO seed")
    conditions = arm.conditions
    statement = ("GRPO on problems far too hard for the model teaches shortcuts that degrade the skills it had: "
                 "accuracy on the problems it already solved falls more than after GRPO on matched problems.")
    protocol = Protocol(
        quantity=f"accuracy on the test problems the SFT model already solved (its '{SOLVED}' band by pass@k), "
                 "after minus before, GRPO on the too-hard band minus GRPO on the matched band (paired over those "
                 "problems); and the too-hard run's own after minus before (both must fall)",
        sesoi=ACCURACY_SESOI, sesoi_reason="the lab's accuracy SESOI: losing 1 in 20 of the problems a model had "
        "solved is the least a user would call a skill lost",
        test="superiority", direction=-1)

    def evidence(self, run: FinishedRun, arm: Arm | None = None) -> SeedEvidence | None:
        treated, reference = (arm or self.arms()["real"]).conditions[:2]
        if not {treated, reference, START} <= set(run.models()):
            return None
        ids = solved_ids(run)
        after, ref, before = (solved_correct(run, m, ids) for m in (treated, reference, START))
        comparisons = [
            Comparison(f"solved-band accuracy, {treated} - {reference}", paired_table(np.subtract(after, ref))),
            Comparison(f"solved-band accuracy, {treated} after - before ({START})",
                       paired_table(np.subtract(after, before)))]
        guards = []
        for m in (treated, reference):
            info = run.model_info(m)
            if not info.get("trained", True):
                guards.append(f"too few problems to train '{m}': {info.get('why')}")
        counts = {m: run.model_info(m).get("trained_on") for m in (treated, reference)}
        if None not in counts.values() and len(set(counts.values())) > 1:
            guards.append(f"unequal training sets: '{treated}' trained on {counts[treated]} problems, '{reference}' on "
                          f"{counts[reference]}: how often each problem was seen, not its difficulty, could explain a difference")
        if run.model_info(treated).get("updated") is False:
            guards.append(f"no signal: every group '{treated}' sampled had one reward (zero advantages): GRPO never "
                          "updated it, so it tests nothing")
        if before:
            guards += [g for g in bound_guard(f"{START} on its solved band", float(np.mean(before)), 0.0, 1.0,
                                              ACCURACY_SESOI) if g.startswith("floor")]  # a ceiling is the design
        return SeedEvidence(run.seed, comparisons, guards)

    def analyze(self, run: FinishedRun) -> ClaimResult | None:
        seed, n = run.seed, run.bootstrap
        grpo = [m for m in BANDS if m in run.models()]
        if "c7_hard" not in grpo or "c7_matched" not in grpo:
            return None
        ids = solved_ids(run)
        before = solved_correct(run, START, ids)
        need = required_steps(run)
        per_model, per_condition = {}, {}
        for m in [START, *grpo]:
            info = run.model_info(m)
            right = solved_correct(run, m, ids)
            per_model[m] = {
                "band": info.get("band"), "trained": info.get("trained", True),
                "solved_band_accuracy": bootstrap_mean(right, seed=seed, n_resamples=n).to_dict(),
                "test_accuracy": bootstrap_mean(column(run.rows(m, "test"), "correct"), seed=seed,
                                                n_resamples=n).to_dict(),
                "markers": shortcut_markers(run.samples(m, "test"), run.rows(m, "test"), need),
                "training": {k: info.get(k) for k in ("reward", "band_size", "trained_on", "lone_successes", "lone_success_advantage",
                                                      "frac_reward_zero_std", "per_step", "why") if k in info}}
            if m == START:
                continue
            change = paired_difference(right, before, seed=seed, n_resamples=n)
            vs_matched = paired_difference(right, solved_correct(run, "c7_matched", ids), seed=seed, n_resamples=n)
            per_condition[m] = {"change": change.to_dict(), "vs_matched": vs_matched.to_dict(),
                                "verdict": verdict([vs_matched, change], [-1, -1]) if m != "c7_matched" else "n/a"}
        bands = run.model_info("c7_matched").get("bands", {})
        test_bands = band_counts(run.profiled(START, "test"))
        return ClaimResult(
            claim=self.statement, verdict=per_condition["c7_hard"]["verdict"], rule=self.protocol.rule(),
            effect=effect("solved-band accuracy, c7_hard - c7_matched", per_condition["c7_hard"]["vs_matched"]),
            per_condition=per_condition, per_model=per_model,
            extra={"pool_bands": bands, "test_bands": dict(test_bands), "solved_problems": len(ids)},
            notes=[one_line(f"""Bands by pass@k of '{START}' ({run.model_info('c7_matched').get('profile_k')} samples at
                   temperature 0.8; too_easy: all solved, too_hard: none). Shortcut markers are over every test
                   problem: 'skipped' counts answered chains with fewer steps of some kind (fact recall, arithmetic,
                   by the verifier's labels) than the reference solution needs, 'arithmetic slips' those with a
                   computation the verifier finds wrong; 'top answer' is the most common
                   answer and its share; 'collision' the chance two problems get the same answer, beside the
                   references' own. Each GRPO run's lone successes (one success in a group) and share of groups
                   with one reward (no signal) are from its TRL log.""")])

    def plots(self, run: FinishedRun, result: dict, out: Path) -> dict[str, str]:
        from ...report.figures import pyplot, save_png

        per_model, per_condition = result.get("per_model", {}), result.get("per_condition", {})
        if not per_condition:
            return {}
        plt = pyplot()
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
        names = list(per_condition)
        means = [100 * per_condition[m]["change"]["mean"] for m in names]
        err = [[100 * (per_condition[m]["change"]["mean"] - per_condition[m]["change"]["lo"]) for m in names],
               [100 * (per_condition[m]["change"]["hi"] - per_condition[m]["change"]["mean"]) for m in names]]
        colour = {"too_easy": "#6a6", "learnable": "#48a", "too_hard": "#c44"}
        left.bar(range(len(names)), [0 if math.isnan(v) else v for v in means], yerr=err, capsize=3,
                 color=[colour.get(per_model[m]["band"], "#888") for m in names],
                 hatch=["//" if m == "c7_planted" else "" for m in names])
        left.axhline(0, color="black", lw=0.8)
        left.set_xticks(range(len(names)))
        left.set_xticklabels([f"{m}\n({per_model[m]['band']})" for m in names], fontsize=7)
        left.set_ylabel("solved-band accuracy, after - before (pts)")
        left.set_title(f"C7: the band '{START}' solved ({result.get('solved_problems', 0)} problems)", fontsize=9)
        for m in names:
            steps = per_model[m]["training"].get("per_step") or []
            rewards = [math.nan if s["reward"] is None else s["reward"] for s in steps]
            if not rewards:
                continue
            w = min(10, len(rewards))  # a moving mean: one step's few groups are noise
            right.plot(range(w - 1, len(rewards)), np.convolve(rewards, np.ones(w) / w, mode="valid"), label=m)
        right.set_xlabel("GRPO step")
        right.set_ylabel("mean reward of the sampled groups")
        right.set_title("training reward (moving mean of 10 steps)", fontsize=9)
        if right.lines:
            right.legend(fontsize=7)
        for ax in (left, right):
            ax.grid(alpha=0.3)
        fig.tight_layout()
        save_png(fig, out / "c7_solved_band.png")
        return {"c7": "c7_solved_band.png"}

    def report_section(self, result: dict, plots: dict[str, str]) -> list[str]:
        per_model, per_condition = result.get("per_model", {}), result.get("per_condition", {})

        def share(x) -> str:
            return "n/a" if x is None or x != x else f"{100 * x:.0f}%"

        bands = ", ".join(f"{b} {k}" for b, k in result.get("pool_bands", {}).items())
        drawn = {d["training"]["trained_on"] for d in per_model.values() if d["training"].get("trained_on") is not None}
        test = ", ".join(f"{b} {k}" for b, k in result.get("test_bands", {}).items())
        lines = [f"Bands of the RL pool under '{START}': {bands or 'n/a'}; of the test problems: {test or 'n/a'} "
                 f"(the solved band: {result.get('solved_problems', 0)} problems). "
                 + (f"Each GRPO run trained on {', '.join(sorted(map(str, drawn)))} problems drawn from its band "
                    "(the same number for every band). " if drawn else "") + "Descriptive, 95% intervals:", "",
                 md_table(["model", "band trained", "solved band", "after - before", "vs matched", "test accuracy",
                           "reading"],
                          [[m, str(d["band"] or "—") + ("" if d["trained"] else " (not trained)"),
                            pct(d["solved_band_accuracy"]), pts(per_condition.get(m, {}).get("change")),
                            pts(per_condition.get(m, {}).get("vs_matched")), pct(d["test_accuracy"]),
                            per_condition.get(m, {}).get("verdict", "—")] for m, d in per_model.items()]), "",
                 "Shortcut markers (every test problem) and each GRPO run's training signal:", "",
                 md_table(["model", "skipped steps", "arithmetic slips", "top answer (share)",
                           "same answer, 2 problems (refs)",
                           "steps", "chars", "lone successes (advantage)", "groups with one reward"],
                          [[m, share(k["skipped"]), share(k["slips"]),
                            f"{k['top_answer']} ({share(k['top_share'])})" if k["top_answer"] is not None else "—",
                            f"{share(k['collision'])} ({share(k['collision_reference'])})",
                            f"{k['steps']:.1f}", f"{k['chars']:.0f}",
                            (f"{t['lone_successes']}" + (f" ({t['lone_success_advantage']:.2f})"
                                                         if t.get("lone_success_advantage") else ""))
                            if "lone_successes" in t else "—",
                            share(t.get("frac_reward_zero_std"))]
                           for m, d in per_model.items() for k, t in [(d["markers"], d["training"])]]), ""]
        rewards = {m: d["training"]["reward"] for m, d in per_model.items() if d["training"].get("reward")}
        lines += [f"- reward of {m}: {r}" for m, r in rewards.items()]
        if "c7" in plots:
            lines += ["", f"![solved-band accuracy and training reward]({plots['c7']})"]
        return lines + [""]
