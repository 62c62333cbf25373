"""The lab's findings report: ``DIR/report.md`` with plots next to it, from ``results.json`` numbers only."""

from __future__ import annotations

import math
from pathlib import Path

from ..core.record import atomic_write_text

VERDICT_MARK = {"reproduced": "✅ reproduced", "not reproduced": "❌ not reproduced", "inconclusive": "❔ inconclusive"}


def pct(e: dict | None) -> str:
    """``61.3% [55.0, 67.2]`` from an estimate of a rate."""
    if not e or e.get("mean") is None or math.isnan(e["mean"]):
        return "n/a"
    return f"{100 * e['mean']:.1f}% [{100 * e['lo']:.1f}, {100 * e['hi']:.1f}]"


def pts(e: dict | None) -> str:
    """``+12.0 pts [8.1, 15.9]`` from an estimate of a difference of rates."""
    if not e or e.get("mean") is None or math.isnan(e["mean"]):
        return "n/a"
    return f"{100 * e['mean']:+.1f} pts [{100 * e['lo']:+.1f}, {100 * e['hi']:+.1f}]"


def num(e: dict | None, digits: int = 3, signed: bool = False) -> str:
    """``0.123 [0.100, 0.150]`` from any estimate."""
    if not e or e.get("mean") is None or math.isnan(e["mean"]):
        return "n/a"
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    return f"{f.format(e['mean'])} [{f.format(e['lo'])}, {f.format(e['hi'])}]"


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _plots(results: dict, out: Path) -> dict[str, str]:
    """Write the report's PNGs; returns name -> file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = {}
    c1 = results["claims"].get("C1", {})
    pm = c1.get("per_model", {})
    if pm:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for m, s in pm.items():
            acc, ig = s.get("correct", {}), s.get("ig_mean", {})
            if not acc or not ig or ig.get("mean") is None or math.isnan(ig["mean"]):
                continue
            ax.errorbar(100 * acc["mean"], ig["mean"], xerr=[[100 * (acc["mean"] - acc["lo"])], [100 * (acc["hi"] - acc["mean"])]],
                        yerr=[[ig["mean"] - ig["lo"]], [ig["hi"] - ig["mean"]]], fmt="o", capsize=3, label=m)
        ax.set_xlabel("accuracy (%)")
        ax.set_ylabel("mean information gain per step (nats)")
        ax.set_title("C1: accuracy vs information gain")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "c1_accuracy_vs_infogain.png", dpi=110)
        plt.close(fig)
        made["c1"] = "c1_accuracy_vs_infogain.png"
    c8 = results["claims"].get("C8", {}).get("per_model", {})
    if c8:
        models = list(c8)
        sets = ["in_distribution"] + list(next(iter(c8.values()))["variants"])
        fig, ax = plt.subplots(figsize=(7, 3.8))
        w = 0.8 / len(models)
        for i, m in enumerate(models):
            vals = [c8[m]["in_distribution"]["mean"]] + [c8[m]["variants"][v]["accuracy"]["mean"] for v in sets[1:]]
            ax.bar([j + i * w for j in range(len(sets))], [100 * v for v in vals], width=w, label=m)
        ax.set_xticks([j + w * (len(models) - 1) / 2 for j in range(len(sets))])
        ax.set_xticklabels([s.replace("_", " ") for s in sets], fontsize=8)
        ax.set_ylabel("accuracy (%)")
        ax.set_title("C8: in distribution vs variants")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "c8_variants.png", dpi=110)
        plt.close(fig)
        made["c8"] = "c8_variants.png"
    return made


def render_markdown(results: dict, plots: dict[str, str], timings: dict | None = None) -> str:
    """The findings report as Markdown."""
    cl = results["claims"]
    L = [f"# sftlens lab — findings (preset `{results['preset']}`, seed {results['seed']})", ""]
    L += ["A tiny Llama is pretrained from scratch on a synthetic shop world (facts + simple worked problems), then "
          "fine-tuned (TRL SFT) under several data conditions. Every model is audited on the same held-out problems "
          "and on out-of-distribution variants. Each verdict follows the decision rule printed under it, applied to "
          "the measured 95% bootstrap intervals — not to the papers' numbers.", ""]
    L += ["## Verdicts", "", _table(["claim", "verdict", "measured effect"],
                                    [[k, VERDICT_MARK.get(v["verdict"], v["verdict"]),
                                      f"{v['effect'].get('name', '')}: {num(v['effect'], 3, True)}"] for k, v in cl.items()]), ""]
    L += ["## Models", "", _table(
        ["model", "how it was made", "test accuracy", "fact probes (Q/A, no steps)"],
        [[m, _how(d["info"]), pct(d["accuracy"]), pct(d["fact_probe_accuracy"])] for m, d in results["models"].items()]), "",
          "Fact probes ask each fact directly (\"how much does a lamp cost ?\", answer without steps). A tuned model "
          "that always starts a chain fails them even when its chains state the facts correctly (see the Knowledge "
          "Index under C1): a drop here measures lost question formats as much as lost knowledge.", ""]
    for key, c in cl.items():
        L += [f"## {key} — {VERDICT_MARK.get(c['verdict'], c['verdict'])}", "", f"**Claim.** {c['claim']}", "",
              f"**Decision rule.** {c['rule']}", ""]
        L += _claim_tables(key, c, plots)
        for n in c.get("notes", []):
            L.append(f"- {n}")
        L.append("")
    if timings:
        L += ["## Run time", "", _table(["stage", "seconds"], [[k, f"{v:.1f}"] for k, v in timings.items()]), ""]
    return "\n".join(L)


def _how(info: dict) -> str:
    if info.get("kind") == "pretrained":
        return f"pretrained from scratch, {info.get('params', 0) / 1e6:.2f}M params, {info.get('steps')} steps"
    return f"SFT on '{info.get('condition')}' ({info.get('examples')} examples, {info.get('steps')} steps)"


def _claim_tables(key: str, c: dict, plots: dict[str, str]) -> list[str]:
    pm, pc = c.get("per_model", {}), c.get("per_condition", {})
    L: list[str] = []
    if key == "C1":
        L += [_table(["model", "accuracy", "info gain / step", "min step gain", "Knowledge Index", "step validity",
                      "PPL InfoGain (Wu)"],
                     [[m, pct(s.get("correct")), num(s.get("ig_mean"), 3, True), num(s.get("ig_min"), 3, True),
                       pct(s.get("ki")), pct(s.get("validity")), num(s.get("ig_ppl"), 3, True)] for m, s in pm.items()]), ""]
        L += [_table(["condition", "accuracy vs base", "info gain vs base", "KI vs base", "verdict",
                      "PPL InfoGain vs base", "verdict (Wu variant)"],
                     [[m, pts(d["accuracy_diff"]), num(d["ig_mean_diff"], 3, True), pts(d["ki_diff"]),
                       d["verdict"] + (f" ({d['note']})" if d.get("note") else ""), num(d.get("ig_ppl_diff"), 3, True),
                       d.get("verdict_ppl_variant", "n/a")] for m, d in pc.items()]), ""]
        if "c1" in plots:
            L += [f"![accuracy vs information gain]({plots['c1']})", ""]
    elif key == "C4":
        L += [_table(["model", "accuracy (in dist.)", "accuracy (variants)", "valid traces", "valid traces when right"],
                     [[m, pct(s["accuracy"]), pct(s["ood_accuracy"]), pct(s["trace_valid"]),
                       pct(s["trace_valid_when_correct"])] for m, s in pm.items()]), ""]
        L += [_table(["condition", "vs correct (in dist.)", "vs correct (variants)", "verdict"],
                     [[m, pts(d["accuracy_diff_vs_correct"]), pts(d["ood_accuracy_diff_vs_correct"]), d["verdict"]]
                      for m, d in pc.items()]), ""]
    elif key == "C8":
        variants = list(next(iter(pm.values()))["variants"]) if pm else []
        L += [_table(["model", "in distribution"] + variants,
                     [[m, pct(s["in_distribution"])] + [pct(s["variants"][v]["accuracy"]) for v in variants]
                      for m, s in pm.items()]), ""]
        L += [_table(["condition"] + [f"extra gap: {v}" for v in variants] + ["verdict"],
                     [[m] + [pts(d["gap_minus_base_gap"][v]) for v in variants] + [d["verdict"]] for m, d in pc.items()]), ""]
        if "c8" in plots:
            L += [f"![variant accuracy]({plots['c8']})", ""]
    elif key == "C2":
        L += [_table(["model", "early-answering AOC", "answer changed by a mistake", "changed by paraphrase",
                      "changed by filler"],
                     [[m, num(s.get("aoc"), 3), pct(s.get("mistake_changed")), pct(s.get("paraphrase_changed")),
                       pct(s.get("filler_changed"))] for m, s in pm.items()]), ""]
        L += [_table(["condition", "AOC vs base", "mistake vs base", "paraphrase vs base", "filler vs base", "verdict"],
                     [[m, num(d.get("aoc_diff"), 3, True), pts(d.get("mistake_changed_diff")),
                       pts(d.get("paraphrase_changed_diff")), pts(d.get("filler_changed_diff")),
                       d["verdict"] + (f" ({d['note']})" if d.get("note") else "")] for m, d in pc.items()]), ""]
        if "c2" in plots:
            L += [f"![early answering]({plots['c2']})", ""]
    elif key == "C3":
        L += [_table(["model", "accuracy", "vs output-space baseline"],
                     [[m, pct(s.get("accuracy")), pts(s.get("vs_baseline"))] for m, s in pm.items()]), ""]
        L += [_table(["condition", "accuracy vs correct instruction", "within ±5 pts?", "McNemar p"],
                     [[m, pts(d["diff_vs_correct"]), d["equivalence"], f"{d['mcnemar']['p_value']:.3g}"]
                      for m, d in pc.items()]), ""]
    elif key == "C10":
        L += [_table(["model", "accuracy", "info gain / step"],
                     [[m, pct(s.get("accuracy")), num(s.get("ig_mean"), 3, True)] for m, s in pm.items()]), ""]
        L += [_table(["subset", "vs bulk (full pool)", "vs random k", "info gain vs bulk"],
                     [[m, pts(d.get("diff_vs_bulk")), pts(d.get("diff_vs_random_k")), num(d.get("ig_diff_vs_bulk"), 3, True)]
                      for m, d in pc.items()]), ""]
    else:
        L += _generic_tables(c, plots)
    return L


def _generic_tables(c: dict, plots: dict[str, str]) -> list[str]:
    """Claims contributed by other modules may carry ready-made Markdown in ``markdown``."""
    if c.get("markdown"):
        return [c["markdown"], ""]
    L = []
    for m, d in c.get("per_condition", {}).items():
        L.append(f"- **{m}**: " + ", ".join(f"{k} {num(v, 3, True) if isinstance(v, dict) else v}" for k, v in d.items()))
    return L + [""]


def write_report(lab, results: dict) -> Path:
    """Write ``report.md`` and its plots into the lab folder; returns the report path."""
    import json

    out = Path(lab.out)
    plots = _plots(results, out)
    faith = {m: lab.faith_rows(m) for m in lab.models() if lab.eval_path(m, "faithfulness").exists()}
    if "C2" in results["claims"] and faith:
        from ..lab.c2 import plot_early_curves

        plot_early_curves({m: r for m, r in faith.items() if any(len(x.get("early_same") or []) >= 2 for x in r)},
                          out / "c2_early_answering.png", seed=lab.seed)
        plots["c2"] = "c2_early_answering.png"
    tpath = out / "timings.json"
    timings = json.loads(tpath.read_text()) if tpath.exists() else None
    path = out / "report.md"
    atomic_write_text(path, render_markdown(results, plots, timings))
    return path
