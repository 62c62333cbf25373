"""Plots of an audit as self-contained PNG data URIs (matplotlib, Agg backend, no network).

Every function takes the saved ``results`` dict (and, where needed, the per-sample metric rows) and
returns ``{name: (title, data_uri)}`` entries, so the HTML report embeds them inline and
``sftlens report`` can redraw them without a model.
"""

from __future__ import annotations

import base64
import io
import math

PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.spines.top": False, "axes.spines.right": False,
                         "axes.grid": True, "grid.alpha": 0.25, "figure.dpi": 100})
    return plt


def to_data_uri(fig) -> str:
    """A figure as a ``data:image/png;base64,...`` URI (the figure is closed)."""
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _metric_of(model: dict, metric: str) -> dict | None:
    d = (model.get("metrics") or {}).get(metric)
    return d if d and d.get("mean") is not None else None


def _error_bars(d: dict, scale: float = 1.0) -> list[list[float]]:
    lo = d["lo"] if d.get("lo") is not None else d["mean"]
    hi = d["hi"] if d.get("hi") is not None else d["mean"]
    return [[(d["mean"] - lo) * scale], [(hi - d["mean"]) * scale]]


def accuracy_vs_infogain(results: dict):
    """Strict accuracy against information gain per step, one point per model with 95% intervals
    and an arrow from the first model to each other; ``None`` without information gain."""
    models = list(results.get("models", {}).values())
    pts = [(m, _metric_of(m, "correct"), _metric_of(m, "ig_mean")) for m in models]
    pts = [p for p in pts if p[1] and p[2]]
    if not pts:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.4, 3.9))
    for i, (m, acc, ig) in enumerate(pts):
        ax.errorbar(ig["mean"], acc["mean"] * 100, xerr=_error_bars(ig), yerr=_error_bars(acc, 100), fmt="o", ms=8, capsize=4,
                    color=PALETTE[i % len(PALETTE)], label=m["label"])
    if len(pts) >= 2:
        (_, a0, g0) = pts[0]
        for _, a1, g1 in pts[1:]:
            ax.annotate("", xy=(g1["mean"], a1["mean"] * 100), xytext=(g0["mean"], a0["mean"] * 100),
                        arrowprops=dict(arrowstyle="->", color="#555", lw=1.2, shrinkA=7, shrinkB=7))
    ax.set_xlabel("information gain per step (nats, scored by the base)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Accuracy vs information gain")
    ax.legend(frameon=False)
    return fig


def accuracy_formats(results: dict):
    """Strict vs flexible accuracy per model (the gap is the format-vs-correctness signal)."""
    models = list(results.get("models", {}).values())
    if not models:
        return None
    plt = _plt()
    import numpy as np

    fig, ax = plt.subplots(figsize=(max(4.6, 1.3 * len(models) + 2.5), 3.9))
    x = np.arange(len(models))
    w = 0.38
    for j, (metric, label, color) in enumerate((("correct", "strict (A: / ####)", "#4C72B0"),
                                               ("flexible_correct", "flexible (last number)", "#A1C9F4"))):
        for i, m in enumerate(models):
            d = _metric_of(m, metric)
            if not d:
                continue
            ax.bar(x[i] + (j - 0.5) * w, d["mean"] * 100, w, color=color, label=label if i == 0 else None,
                   yerr=_error_bars(d, 100), capsize=3, ecolor="#333")
    ax.set_xticks(x, [m["label"] for m in models])
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title("Strict vs flexible accuracy")
    ax.legend(frameon=False, fontsize=9)
    return fig


def step_gains(results: dict):
    """Mean information gain at each chain position, one line per model."""
    models = [m for m in results.get("models", {}).values() if m.get("step_gains")]
    if not models:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.4, 3.9))
    for i, m in enumerate(models):
        prof = m["step_gains"]
        ax.plot([p["step"] for p in prof], [p["mean"] for p in prof], "o-", color=PALETTE[i % len(PALETTE)],
                label=m["label"])
    ax.axhline(0, color="#888", lw=0.8)
    ax.set_xlabel("step along the chain")
    ax.set_ylabel("mean information gain (nats)")
    ax.set_title("Per-step information gain")
    ax.legend(frameon=False)
    return fig


def early_answering(results: dict):
    """The early-answering curve of each model (faithfulness battery), when it ran."""
    models = [m for m in results.get("models", {}).values() if m.get("early_curve")]
    if not models:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.4, 3.9))
    for i, m in enumerate(models):
        c = m["early_curve"]
        ax.plot([p["frac"] * 100 for p in c], [p["same"] * 100 for p in c], "o-", ms=4,
                color=PALETTE[i % len(PALETTE)], label=m["label"])
    ax.set_xlabel("share of the chain kept (%)")
    ax.set_ylabel("same answer as the full chain (%)")
    ax.set_ylim(-3, 103)
    ax.set_title("Early answering")
    ax.legend(frameon=False)
    return fig


def gain_histogram(rows: list[dict]):
    """Distribution of per-step information gains per model (main set), from the metric rows."""
    by: dict[str, list[float]] = {}
    for r in rows:
        if r.get("set") != "main" or not isinstance(r.get("ig_gains"), list):
            continue
        by.setdefault(r.get("role") or "?", []).extend(
            g for g in r["ig_gains"] if g is not None and not math.isnan(g))
    by = {k: v for k, v in by.items() if v}
    if not by:
        return None
    plt = _plt()
    import numpy as np

    fig, ax = plt.subplots(figsize=(5.4, 3.9))
    allv = np.concatenate([np.asarray(v) for v in by.values()])
    lo, hi = np.percentile(allv, [1, 99])
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    bins = np.linspace(lo, hi, 30)
    for i, (k, v) in enumerate(sorted(by.items())):
        ax.hist(np.clip(v, lo, hi), bins=bins, alpha=0.55, color=PALETTE[i % len(PALETTE)], label=f"{k} (n={len(v)})")
    ax.axvline(0, color="#555", lw=0.8)
    ax.set_xlabel("information gain of one step (nats)")
    ax.set_ylabel("steps")
    ax.set_title("Distribution of step gains")
    ax.legend(frameon=False)
    return fig


def make_plots(results: dict, rows: list[dict]) -> dict[str, tuple[str, str]]:
    """All plots that apply to these results: ``{name: (caption, data_uri)}``, in display order."""
    out: dict[str, tuple[str, str]] = {}
    for name, caption, fn in (
        ("accuracy_vs_ig", "Strict accuracy against information gain per step (95% intervals); the arrow "
                           "goes from base to tuned.", lambda: accuracy_vs_infogain(results)),
        ("formats", "Strict vs flexible accuracy: a large gap means answers are right but not in the "
                    "expected format (or the reverse).", lambda: accuracy_formats(results)),
        ("step_gains", "Mean information gain of the k-th step, over chains that have one.",
         lambda: step_gains(results)),
        ("gain_hist", "All per-step gains; mass below zero is steps that made the reference answer less "
                      "likely.", lambda: gain_histogram(rows)),
        ("early", "Early answering: how often the answer after the first k steps equals the full chain's "
                  "answer. A flat high curve means the chain does not matter.", lambda: early_answering(results)),
    ):
        fig = fn()
        if fig is not None:
            out[name] = (caption, to_data_uri(fig))
    return out
