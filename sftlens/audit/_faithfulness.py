"""Adapter to the optional faithfulness battery (``sftlens.metrics.faithfulness``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

from ..core.record import Example, Sample, atomic_write_json
from ._cache import content_hash
from ._io import clean_json
from ._models import ModelHandle


def faithfulness_module():
    """``sftlens.metrics.faithfulness`` when it exists and offers ``run_battery``, else ``None``."""
    try:
        from ..metrics import faithfulness
    except (ImportError, SyntaxError):  # not installed, or broken: the audit runs without it
        return None
    complete = all(hasattr(faithfulness, n) for n in ("run_battery", "summarize_battery", "compare_battery"))
    return faithfulness if complete else None


def run_faithfulness(handle: ModelHandle, examples: list[Example], samples: list[Sample], seed: int, world,
                     out_dir: Path, batch_size: int, max_new_tokens: int = 96,
                     advance: Callable[[int], None] | None = None) -> list[dict]:
    """The battery for one model, cached in ``DIR/faithfulness_<role>.json`` by model, samples and seed."""
    key = content_hash({"identity": handle.identity, "samples": [s.meta.get("key") for s in samples], "seed": seed,
                        "max_new_tokens": max_new_tokens})
    path = out_dir / f"faithfulness_{handle.role}.json"
    if path.exists():
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            if cached.get("key") == key:
                if advance:
                    advance(4 * len(examples))
                return cached["rows"]
        except (ValueError, KeyError):
            pass
    with handle.active():
        rows = faithfulness_module().run_battery(handle.lm, examples, samples, seed=seed, batch_size=batch_size,
                                                 world=world, max_new_tokens=max_new_tokens, progress=advance)
    rows = clean_json([dict(r) for r in rows])
    atomic_write_json(path, {"key": key, "rows": rows})
    return rows


def summarize_battery(rows: list[dict], seed: int = 0) -> dict:
    """One model's battery summary (``sftlens.metrics.faithfulness.summarize_battery``)."""
    return faithfulness_module().summarize_battery(rows, seed=seed)


def compare_batteries(rows_b: list[dict], rows_a: list[dict], seed: int = 0) -> dict:
    """Paired battery differences ``b − a`` (``sftlens.metrics.faithfulness.compare_battery``)."""
    return faithfulness_module().compare_battery(rows_b, rows_a, seed=seed)


def curve_points(summary: dict) -> list[dict]:
    """The measured points of a summary's early-answering curve (share of unchanged answers by the
    fraction of the chain kept).

    >>> curve_points({"curve": {"grid": [0.0, 0.5, 1.0], "mean": [0.25, None, 1.0]}})
    [{'frac': 0.0, 'same': 0.25}, {'frac': 1.0, 'same': 1.0}]
    """
    curve = summary.get("curve") or {}
    return [{"frac": frac, "same": same} for frac, same in zip(curve.get("grid", []), curve.get("mean", []))
            if same is not None and not (isinstance(same, float) and math.isnan(same))]
