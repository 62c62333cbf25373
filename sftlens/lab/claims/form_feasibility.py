"""C5 — SFT teaches the look of a solution, not its feasibility (Bernier et al. 2026, arXiv 2603.23004).
Registers the ``c5_infeasible`` (format-perfect but infeasible answers) and ``c5_suboptimal``
(feasible but suboptimal answers) conditions; ``correct`` is SFT on the optimal answers.

Measured in the ``packing`` world (:mod:`sftlens.tasks.packing`): items into bins under capacities,
the answer one line of JSON checked at four levels (parses, schema-valid, feasible, optimal). The
base learned JSON and the domain on one-bin problems answered in another shape, so SFT has a schema
to teach. Controls: the **positive** one tunes on format-perfect answers that pack every item (more
than the bins hold): form without feasibility, planted — the lab must detect it; the **negative**
one tunes on optimal answers in ``packing_loose``, where every bin holds all the items, so an answer
of the right form is feasible — feasibility must rise with the form, and the claim must not be found.

Both comparisons are paired 0/1 outcomes (binary): when every pair differs alike (say no answer is
ever feasible) the interval is exact (:func:`sftlens.lab.protocol.exact_decision`), not a guard.
"""

from __future__ import annotations

import re
from pathlib import Path

from ...metrics.stats import bootstrap_mean, column, paired_difference
from ...report.format import md_table, pct, pts
from ...tasks.packing import LEVELS, with_answers
from ..conditions import Condition, register_condition
from ..protocol import Comparison, Protocol, SeedEvidence, judge, paired_table
from ._base import ACCURACY_SESOI, Arm, Claim, ClaimResult, FinishedRun, diff_column, effect, mean_of, register_claim

register_condition(Condition("c5_infeasible", "format-perfect answers that pack every item, more than the bins hold "
                                              "(form without feasibility)",
                             lambda c: with_answers(c.train, "infeasible", seed=c.seed)))
register_condition(Condition("c5_suboptimal", "feasible answers with one packed item of the optimum left out",
                             lambda c: with_answers(c.train, "suboptimal", seed=c.seed)))

SESOI = ACCURACY_SESOI
SESOI_REASON = ("5 points of the share of test answers, the smallest rate difference every lab claim uses: at the "
                "lab's test sizes smaller changes are below what one extra seed moves")
FEASIBLE = Protocol(quantity="the feasible rate, SFT minus the base, paired over test problems", sesoi=SESOI,
                    sesoi_reason=SESOI_REASON, test="non-superiority")


class BothComparisons(Protocol):
    """The claim's protocol: the schema-valid rate must rise beyond the SESOI (this protocol,
    superiority) and the feasible rate must be shown not to (:data:`FEASIBLE`); its rule says both."""

    def rule(self) -> str:
        first = Protocol("the schema-valid rate, SFT minus the base, paired over test problems", self.sesoi,
                         self.sesoi_reason, self.test, self.direction, self.unit)
        form, tail = first.rule().split("; inconclusive otherwise", 1)
        feasible = FEASIBLE.rule().split("; inconclusive otherwise", 1)[0]
        return (f"Two binary comparisons, reproduced only when both are, not reproduced when either is not. (1) "
                f"{form}. (2) {feasible}. When every pair differs alike (e.g. no answer of either model is feasible) "
                f"the 90% interval is exact (rule of three), not bootstrapped; inconclusive otherwise{tail}")
# which check an output failed, from the checker's reasons (sftlens.tasks.packing.check_answer)
FAILURES = ((r"json:", "does not parse"), (r"schema:", "schema"), (r"bins:", "wrong number of bins"),
            (r"unknown item ", "unknown item"), (r"item '[a-z]+' packed twice", "item packed twice"),
            (r"bin \d+ holds weight", "bin over capacity"), (r"value \d+ < optimum", "feasible, not optimal"))


def failure_kinds(reasons: list[str]) -> dict[str, float]:
    """Share of outputs whose check names each failure (an output may break several constraints).

    >>> kinds = failure_kinds(["optimal", "bin 1 holds weight 12 > capacity 9; item 'a' packed twice (bins 1 and 2)"])
    >>> kinds["bin over capacity"], kinds["item packed twice"], kinds["does not parse"]
    (0.5, 0.5, 0.0)
    >>> failure_kinds(["json: does not parse (Expecting value)"])["feasible, not optimal"]
    0.0
    """
    n = max(len(reasons), 1)
    return {label: sum(any(re.match(pattern, part) for part in r.split("; ")) for r in reasons) / n
            for pattern, label in FAILURES}


@register_claim
class FormNotFeasibility(Claim):
    id = "C5"
    title = "form, not feasibility"
    conditions = ("correct", "c5_infeasible", "c5_suboptimal")
    arm = Arm(conditions, world="packing", description="packing answered as JSON; SFT on the optimal answers")
    positive = Arm(("c5_infeasible",), world="packing",
                   description="SFT on format-perfect answers that pack every item: form without feasibility, planted")
    negative = Arm(("correct",), world="packing_loose",
                   description="every bin holds all the items: an answer of the right form is feasible, so feasibility "
                               "rises with the form")
    statement = ("SFT on optimal solutions raises the share of schema-valid answers without raising the share of "
                 "feasible ones.")
    protocol = BothComparisons(
        quantity="the schema-valid rate, SFT minus the base, paired over test problems (it must rise beyond the "
                 "SESOI), and the feasible rate, SFT minus the base (it must be shown not to)",
        sesoi=SESOI, sesoi_reason=SESOI_REASON, test="superiority")

    def evidence(self, run: FinishedRun, arm: Arm | None = None) -> SeedEvidence | None:
        treated = (arm or self.arms()["real"]).conditions[0]
        if treated not in run.models():
            return None
        base, tuned = run.rows("base", "test"), run.rows(treated, "test")
        if not all("feasible" in r for r in base + tuned):
            return None  # not a world whose answers are checked at the four levels
        comparisons = [
            Comparison(f"schema-valid rate, {treated} - base", paired_table(diff_column(tuned, base, "schema_valid")),
                       binary=True),
            Comparison(f"feasible rate, {treated} - base", paired_table(diff_column(tuned, base, "feasible")),
                       protocol=FEASIBLE, binary=True)]
        base_schema = mean_of(column(base, "schema_valid"))
        guards = ([f"ceiling: the base's schema-valid rate is {100 * base_schema:.1f}%, within the SESOI of 100%: "
                   "SFT has no room to raise it"] if base_schema >= 1 - SESOI else [])
        return SeedEvidence(run.seed, comparisons, guards)

    def analyze(self, run: FinishedRun) -> ClaimResult | None:
        seed, n = run.seed, run.bootstrap
        if "correct" not in run.models() or not all("feasible" in r for r in run.rows("base", "test")):
            return None
        keys = LEVELS + ("correct",)
        rows = {m: run.rows(m, "test") for m in run.models()}
        variant_rows = {m: [r for v in run.variant_names() for r in run.rows(m, f"variant_{v}")] for m in rows}

        def mean(values: list[float]) -> dict:
            return bootstrap_mean(values, seed=seed, n_resamples=n).to_dict()

        per_model = {}
        for m, r in rows.items():
            schema, feasible = column(r, "schema_valid"), column(r, "feasible")
            per_model[m] = {**{k: mean(column(r, k)) for k in keys},
                            "feasible_when_schema_valid": mean([f for s, f in zip(schema, feasible) if s == 1.0]),
                            "variants": {k: mean(column(variant_rows[m], k)) for k in ("schema_valid", "feasible")},
                            "failures": failure_kinds([x.get("output_check", "") for x in r])}
        per_condition = {}
        for m in rows:
            if m == "base":
                continue
            d = {k: paired_difference(column(rows[m], k), column(rows["base"], k), seed=seed, n_resamples=n)
                 for k in keys}
            # the protocol's own reading of this condition against the base, this seed only
            reading = judge(self.protocol, [self.evidence(run, Arm((m,), "packing"))], n_resamples=n, seed=seed)
            per_condition[m] = {**{f"{k}_diff": e.to_dict() for k, e in d.items()}, "verdict": reading["verdict"]}
        return ClaimResult(
            claim=self.statement, verdict=per_condition["correct"]["verdict"], rule=self.protocol.rule(),
            effect=effect("schema-valid rate, correct - base", per_condition["correct"]["schema_valid_diff"]),
            per_condition=per_condition, per_model=per_model,
            notes=["Levels, each requiring the one before: the answer line parses as JSON; it matches the task's "
                   "JSON Schema (jsonschema); it is feasible (one list per bin, known items, none twice, no bin over "
                   "capacity); it is optimal (its value equals the brute-force optimum). 'correct' is exact match "
                   "to the unique optimal answer.",
                   "Rows per example (eval/<model>/test.jsonl in worlds/packing/) carry each level and "
                   "'output_check', the failed constraints in words."])

    def plots(self, run: FinishedRun, result: dict, out: Path) -> dict[str, str]:
        from ...report.figures import grouped_bars

        per_model = result.get("per_model", {})
        if not per_model:
            return {}
        grouped_bars(out / "c5_levels.png", list(LEVELS),
                     {m: [s[k]["mean"] for k in LEVELS] for m, s in per_model.items()},
                     ylabel="share of test answers (%)",
                     title="C5: form vs feasibility (packing, each level requires the one before)")
        return {"c5": "c5_levels.png"}

    def report_section(self, result: dict, plots: dict[str, str]) -> list[str]:
        per_model, per_condition = result.get("per_model", {}), result.get("per_condition", {})
        kinds = [label for _, label in FAILURES]
        lines = ["The packing world's models (`worlds/packing/`), descriptive (95% intervals):", "",
                 md_table(["model", "parses", "schema-valid", "feasible", "optimal", "feasible when schema-valid",
                           "feasible (more items)"],
                          [[m] + [pct(s[k]) for k in LEVELS] + [pct(s["feasible_when_schema_valid"]),
                                                               pct(s["variants"]["feasible"])]
                           for m, s in per_model.items()]), "",
                 md_table(["condition", "schema-valid vs base", "feasible vs base", "optimal vs base",
                           "the rule, this seed"],
                          [[m, pts(d["schema_valid_diff"]), pts(d["feasible_diff"]), pts(d["optimal_diff"]),
                            d["verdict"]] for m, d in per_condition.items()]), "",
                 "Which check each model's test answers failed (share of answers; an answer may fail several "
                 "constraints):", "",
                 md_table(["model"] + kinds, [[m] + [f"{100 * s['failures'][k]:.0f}%" for k in kinds]
                                              for m, s in per_model.items()]), ""]
        if "c5" in plots:
            lines += [f"![levels]({plots['c5']})", ""]
        return lines
