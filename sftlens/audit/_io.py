"""The audit folder: file names, reading saved results back, rendering the reports."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..core.errors import UserError
from ..core.record import RecordError
from ._cache import Store

SAMPLES_FILE = "samples.jsonl"
ROWS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
SCHEMA_VERSION = 1


def load_saved(out: str | os.PathLike) -> tuple[dict, list[dict], list[dict]]:
    """``results.json``, the sample records and the metric rows saved in an audit folder."""
    out = Path(out)
    rp = out / RESULTS_FILE
    if not rp.exists():
        raise UserError(f"{out} holds no {RESULTS_FILE}: run 'sftlens audit ... --out {out}' first")
    try:
        results = json.loads(rp.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RecordError(f"{rp}:{e.lineno}: not valid JSON ({e.msg})") from None
    for fld in ("verdict", "models", "comparisons"):
        if fld not in results:
            raise RecordError(f"{rp}: field '{fld}': missing (not an sftlens audit result)")
    samples = list(Store(out / SAMPLES_FILE).records.values()) if (out / SAMPLES_FILE).exists() else []
    rows = list(Store(out / ROWS_FILE, key_field="row_key").records.values()) if (out / ROWS_FILE).exists() else []
    return results, samples, rows


def write_report(out: str | os.PathLike) -> tuple[Path, Path]:
    """Render ``report.html`` and ``report.md`` from the saved results (no model needed)."""
    from ..core.record import atomic_write_text
    from ..report.html import render_html, render_markdown
    from ..report.plots import make_plots

    out = Path(out)
    results, samples, rows = load_saved(out)
    plots = make_plots(results, rows)
    atomic_write_text(out / "report.html", render_html(results, plots))
    atomic_write_text(out / "report.md", render_markdown(results))
    return out / "report.html", out / "report.md"
