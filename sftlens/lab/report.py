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
    lines = [f"# sftlens lab — findings (preset `{results['preset']}`, seed {results['seed']})", ""]
    lines += ["A tiny Llama is pretrained from scratch on a synthetic shop world (facts + simple worked problems), "
              "then fine-tuned (TRL SFT) under several data conditions. Every model is audited on the same held-out "
              "problems and on out-of-distribution variants. Each verdict follows the decision rule printed under "
              "it, applied to the measured 95% bootstrap intervals — not to the papers' numbers.", ""]
    lines += ["## Verdicts", "", md_table(["claim", "verdict", "measured effect"],
                                          [[cid, VERDICT_MARK.get(c["verdict"], c["verdict"]),
                                            f"{c['effect'].get('name', '')}: {num(c['effect'], 3, True)}"]
                                           for cid, c in claims.items()]), ""]
    lines += ["## Models", "", md_table(
        ["model", "how it was made", "test accuracy", "fact probes (Q/A, no steps)"],
        [[m, _how(d["info"]), pct(d["accuracy"]), pct(d["fact_probe_accuracy"])] for m, d in results["models"].items()]),
        "", "Fact probes ask each fact directly (\"how much does a lamp cost ?\", answer without steps). A tuned "
        "model that always starts a chain fails them even when its chains state the facts correctly (see the "
        "Knowledge Index under C1): a drop here measures lost question formats as much as lost knowledge.", ""]
    for cid, c in claims.items():
        lines += [f"## {cid} — {VERDICT_MARK.get(c['verdict'], c['verdict'])}", "", f"**Claim.** {c['claim']}", "",
                  f"**Decision rule.** {c['rule']}", ""]
        lines += CLAIMS.get(cid, Claim()).report_section(c, plots)
        lines += [f"- {note}" for note in c.get("notes", [])]
        lines.append("")
    if timings:
        lines += ["## Run time", "", md_table(["stage", "seconds"], [[k, f"{v:.1f}"] for k, v in timings.items()]), ""]
    return "\n".join(lines)


def _how(info: dict) -> str:
    if info.get("kind") == "pretrained":
        return f"pretrained from scratch, {info.get('params', 0) / 1e6:.2f}M params, {info.get('steps')} steps"
    return f"SFT on '{info.get('condition')}' ({info.get('examples')} examples, {info.get('steps')} steps)"


def write_report(run, results: dict) -> Path:
    """Write ``report.md`` and every claim's plots into the run folder; returns the report path."""
    out = Path(run.out)
    plots: dict[str, str] = {}
    for cid, c in results["claims"].items():
        if cid in CLAIMS:
            plots.update(CLAIMS[cid].plots(run, c, out))
    timings_path = out / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else None
    path = out / "report.md"
    atomic_write_text(path, render_markdown(results, plots, timings))
    return path
