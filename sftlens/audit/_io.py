"""The audit folder: file names, strict-JSON cleaning, reading saved results back, rendering the reports."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..core.errors import UserError
from ..core.record import RecordError, atomic_write_text
from ._cache import Store

SAMPLES_FILE = "samples.jsonl"
ROWS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
SCHEMA_VERSION = 1


def clean_json(value):
    """``value`` with NaN and infinities as ``None`` at any depth (tuples become lists), so that
    ``results.json`` is strict JSON.

    >>> clean_json({"a": [1.0, float("nan")], "b": (float("inf"),)})
    {'a': [1.0, None], 'b': [None]}
    """
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    return value


def load_saved(out: str | os.PathLike) -> tuple[dict, list[dict], list[dict]]:
    """``results.json``, the sample records and the metric rows saved in an audit folder."""
    out = Path(out)
    results_path = out / RESULTS_FILE
    if not results_path.exists():
        raise UserError(f"{out} holds no {RESULTS_FILE}: run 'sftlens audit ... --out {out}' first")
    try:
        results = json.loads(results_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RecordError(f"{results_path}:{e.lineno}: not valid JSON ({e.msg})") from None
    for name in ("verdict", "models", "comparisons"):
        if name not in results:
            raise RecordError(f"{results_path}: field '{name}': missing (not an sftlens audit result)")
    samples = list(Store(out / SAMPLES_FILE).records.values()) if (out / SAMPLES_FILE).exists() else []
    rows = list(Store(out / ROWS_FILE, key_field="row_key").records.values()) if (out / ROWS_FILE).exists() else []
    return results, samples, rows


def write_report(out: str | os.PathLike, results: dict | None = None) -> tuple[Path, Path]:
    """Render ``report.html`` and ``report.md`` from the saved results (no model needed), or from
    ``results`` about to be saved (an audit writes its report first, then ``results.json``)."""
    from ..report.html import render_html, render_markdown
    from ..report.plots import make_plots

    out = Path(out)
    if results is None:
        results, _, rows = load_saved(out)
    else:
        results = json.loads(json.dumps(results))  # render exactly what results.json will read back as
        rows = list(Store(out / ROWS_FILE, key_field="row_key").records.values()) if (out / ROWS_FILE).exists() else []
    plots = make_plots(results, rows)
    atomic_write_text(out / "report.html", render_html(results, plots))
    atomic_write_text(out / "report.md", render_markdown(results))
    return out / "report.html", out / "report.md"
