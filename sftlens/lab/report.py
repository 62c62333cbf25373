"""The lab's findings report: ``DIR/report.md`` with plots next to it, from ``results.json`` numbers only.

The report loops over the claims in the results; each claim renders its own section and plots
(:meth:`sftlens.lab.claims.Claim.report_section`, :meth:`~sftlens.lab.claims.Claim.plots`).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core.record import atomic_write_text
from ..report.format import VERDICT_MARK, md_table, num, pct
from .claims import CLAIMS, Claim


def render_markdown(results: dict, plots: dict[str, str], timings: dict | None = None) -> str:
    """The findings report as Markdown."""
    claims = results["claims"]
    seeds = results.get("seeds", [results["seed"]])
    lines = [f"# sftlens lab — findings (preset `{results['preset']}`, seed{'s' if len(seeds) > 1 else ''} "
             f"{', '.join(map(str, seeds))})", ""]
    lines += ["A tiny Llama is pretrained from scratch on a synthetic shop world (facts, arithmetic and 1-item worked "
              "problems), then fine-tuned (TRL SFT) under several data conditions (C7's models are trained further "
              "from the SFT model with TRL GRPO); C4 is measured in grid mazes with A* "
              "traces, C5 in a packing task answered as JSON (a base of its own per world, in worlds/<name>/). Each claim with planted controls shows them "
              "next to its verdict. Every model is audited on the same held-out "
              "problems and on out-of-distribution variants. Each verdict follows the decision rule printed under "
              "it (the protocol: a stated smallest effect of interest, superiority or equivalence, guards), applied to "
              "the measured intervals — not to the papers' numbers.", ""]
    lines += ["## Verdicts", "",
              f"Seeds: {', '.join(map(str, seeds))}" + (" — **single seed: exploratory** (intervals cover test-set "
                                                         "sampling only, not training variance)" if len(seeds) == 1
                                                         else " (pooled by a two-level bootstrap: seeds, then problems; "
                                                         f"the descriptive tables under each claim are seed {seeds[0]}'s, "
                                                         "each seed's own report is in seed_<s>/report.md)"),
              "", md_table(["claim", "verdict", "controls", "measured effect (90% interval)", "p", "p (Holm)", "why"],
                           [[cid, _verdict(c), controls_word(c), f"{c['effect'].get('name', '')}: {num(c['effect'], 3, True)}",
                             _p(c.get("p_value")), _p(c.get("p_holm")), c.get("reason", "")]
                            for cid, c in claims.items()]), "", VERDICT_WORDS, ""]
    lines += ["## Models", "", md_table(
        ["model", "how it was made", "test accuracy", "fact probes (Q/A, no steps)"],
        [[m, _how(d["info"]), pct(d["accuracy"]), pct(d["fact_probe_accuracy"])] for m, d in results["models"].items()]),
        "", "Fact probes ask each fact directly (\"how much does a lamp cost ?\", answer without steps). A tuned "
        "model that always starts a chain fails them even when its chains state the facts correctly (see the "
        "Knowledge Index under C1): a drop here measures lost question formats as much as lost knowledge.", ""]
    for cid, c in claims.items():
        lines += [f"## {cid} — {_verdict(c)}", "", f"**Claim.** {c['claim']}", ""]
        lines += _protocol_lines(c)
        lines += _control_lines(c)
        lines += [f"**Decision rule.** {c['rule']}", ""]
        lines += CLAIMS.get(cid, Claim()).report_section(c, plots)
        lines += [f"- {note}" for note in c.get("notes", [])]
        lines.append("")
    if timings:
        lines += ["## Run time", "", md_table(["stage", "seconds"], [[k, f"{v:.1f}"] for k, v in timings.items()]), ""]
    return "\n".join(lines)


VERDICT_WORDS = (
    "What the words mean, for every claim alike: **reproduced** — the stated effect was measured beyond its "
    "smallest effect of interest (or, for an equivalence claim, shown to lie within it), no guard applied, and it "
    "survives Holm's adjustment across the claims; **not reproduced** — the interval shows the effect is smaller "
    "than what matters (or, for equivalence, that a difference that matters exists); **inconclusive** — the "
    "interval allows both, or a guard applied (too few pairs, a constant column, a floor or ceiling, no signal "
    "in the control), and the reason is printed — or a planted control failed (the positive one not detected, or "
    "the negative one detected): then the lab cannot see this effect here. \"No control yet\" marks a verdict no "
    "control has checked. The tables under each claim are descriptive (95% intervals).")


def _verdict(c: dict) -> str:
    mark = VERDICT_MARK.get(c["verdict"], c["verdict"])
    return mark + (" (single seed: exploratory)" if c.get("exploratory") else "")


def controls_word(c: dict) -> str:
    """A few words for the verdict table: passed, failed (which), or which control does not exist yet.

    >>> controls_word({"controls": {"positive": {"status": "passed"}, "negative": {"status": "no control yet"}}})
    'passed; no negative control yet'
    >>> controls_word({"controls": {"positive": {"status": "failed"}, "negative": {"status": "passed"}}})
    'failed: positive'
    """
    controls = c.get("controls")
    if not controls:
        return "n/a"
    states = {role: d.get("status") for role, d in controls.items()}
    if all(v == "no control yet" for v in states.values()):
        return "no control yet"
    failed = [role for role, v in states.items() if v not in ("passed", "no control yet")]
    missing = [role for role, v in states.items() if v == "no control yet"]
    if failed:
        return "failed: " + ", ".join(failed)
    return "passed" + "".join(f"; no {role} control yet" for role in missing)


def _control_lines(c: dict) -> list[str]:
    """Each control next to the real arm: where, what it must show, what it showed."""
    controls = c.get("controls")
    if not controls:
        return []
    if all(d.get("status") == "no control yet" for d in controls.values()):
        return ["**Controls.** no control yet: this verdict could not yet be checked against a setting where the "
                "effect is known to happen (positive) or known not to (negative).", ""]
    rows = []
    for role, d in controls.items():
        if d.get("status") == "no control yet":
            rows.append([role, "—", "—", "—", "no control yet"])
            continue
        rows.append([role, f"{d['world']}: {', '.join(d['conditions'])} — {d['description']}", d["expected"],
                     f"{d.get('verdict', 'not measured')}" + (f" ({num(d['effect'], 3, True)})" if "effect" in d else ""),
                     d["status"]])
    return ["**Controls** (the same protocol, pooled over the same seeds).", "",
            md_table(["control", "where", "must come out", "came out (90% interval)", "status"], rows), ""]


def _p(p) -> str:
    return "n/a" if p is None or p != p else f"{p:.3g}"


def _protocol_lines(c: dict) -> list[str]:
    """The protocol stated before any number, then what it concluded per seed."""
    if "sesoi" not in c:
        return []
    lines = [f"**Primary quantity.** {c['quantity']}", "",
             f"**Smallest effect of interest (SESOI).** {c['sesoi']:g} — {c['sesoi_reason']}", "",
             f"**Test.** {c['test']}" + (f" (claimed direction: {'rise' if c['direction'] > 0 else 'fall'})"
                                        if c["test"] == "superiority" else " (two one-sided tests, 90% interval)"),
             "", "**Guards.** too few pairs, a constant column, floor or ceiling, no signal in the control — "
             + ("applied: " + "; ".join(c["guards"]) if c["guards"] else "none applied"), "",
             "**Minimum detectable effect** (80% power, two-sided 5%) at this n: "
             + (f"{c['mde']:.3f}" if c["mde"] == c["mde"] else "n/a (the data do not vary)")
             + (" — larger than the SESOI: this run cannot reliably see an effect of that size"
                if c["mde"] == c["mde"] and c["mde"] > c["sesoi"] else ""), ""]
    lines += _power_lines(c)
    rows = []
    for seed, entry in c.get("per_seed", {}).items():
        for name, d in entry["comparisons"].items():
            rows.append([seed, name, num(d["estimate"], 3, True), str(d["n"]), d["verdict"],
                         entry["verdict"] + (" (guarded)" if entry["guards"] else "")])
    if rows:
        lines += [md_table(["seed", "comparison", "estimate (90% interval)", "pairs", "comparison verdict",
                            "seed verdict"], rows), ""]
    return lines


def _power_lines(c: dict) -> list[str]:
    """Where the noise comes from, and what would make the SESOI detectable (more problems or more seeds)."""
    plan = c.get("power") or {}
    if plan.get("n_per_seed_needed") is None:
        return []
    text = (f"**Power.** One seed detects the SESOI with about {plan['n_per_seed_needed']} paired problems "
            f"(within-seed standard error {plan['within_seed_se']:.3f} at this n).")
    if plan.get("seeds_needed") is not None:
        text += (f" Between seeds the effect itself varies with standard deviation {plan['between_seed_sd']:.3f} "
                 f"(training variance, which more test problems do not reduce): the pooled test needs about "
                 f"{plan['seeds_needed']} seeds to detect the SESOI however many problems each seed has.")
    return [text, ""]


def _how(info: dict) -> str:
    """How a model was made, in a few words.

    >>> _how({"kind": "grpo", "start": "correct", "band": "too_hard", "band_size": 87, "trained_on": 64, "steps": 120})
    "GRPO from 'correct' on its too_hard band (64 of its 87 problems, 120 steps)"
    >>> _how({"kind": "sft", "condition": "swapped", "examples": 40, "steps": 15})
    "SFT on 'swapped' (40 examples, 15 steps)"
    """
    if info.get("kind") == "pretrained":
        return f"pretrained from scratch, {info.get('params', 0) / 1e6:.2f}M params, {info.get('steps')} steps"
    if info.get("kind") == "grpo":
        drawn = f"{info['trained_on']} of its " if info.get("trained_on", info.get("band_size")) != info.get("band_size") else ""
        return (f"GRPO from '{info.get('start')}' on its {info.get('band')} band ({drawn}{info.get('band_size')} problems, "
                + (f"{info.get('steps')} steps)" if info.get("trained", True) else "too few: not trained)"))
    start = f" from '{info['start']}'" if info.get("start", "base") != "base" else ""
    return f"SFT{start} on '{info.get('condition')}' ({info.get('examples')} examples, {info.get('steps')} steps)"


def write_report(run, results: dict, out: Path | None = None) -> Path:
    """Write ``report.md`` and every claim's plots into ``out`` (default: the run's folder); returns
    the report path. Plots are drawn from ``run`` (the first seed's run when several are pooled)."""
    out = Path(out if out is not None else run.out)
    plots: dict[str, str] = {}
    for cid, c in results["claims"].items():
        if cid in CLAIMS:
            plots.update(CLAIMS[cid].plots(run, c, out))
    timings_path = out / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else None
    path = out / "report.md"
    atomic_write_text(path, render_markdown(results, plots, timings))
    return path
