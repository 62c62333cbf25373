"""Adapter to the optional faithfulness battery (``sftlens.metrics.faithfulness``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

from ..core.record import Example, Sample, atomic_write_json
from ._cache import _hash
from ._compare import _clean_json
from ._models import ModelHandle


def faithfulness_module():
    """``sftlens.metrics.faithfulness`` when it exists and offers ``run_battery``, else ``None``."""
    try:
        from ..metrics import faithfulness as f
    except (ImportError, SyntaxError):  # not installed, or broken: the audit runs without it
        return None
    ok = all(hasattr(f, n) for n in ("run_battery", "summarize_battery", "compare_battery"))
    return f if ok else None


def run_faithfulness(h: ModelHandle, examples: list[Example], samples: list[Sample], seed: int, world,
                     out_dir: Path, batch_size: int, max_new_tokens: int = 96,
                     advance: Callable[[int], None] | None = None) -> list[dict]:
    """The battery for one model, cached in ``DIR/faithfulness_<role>.json`` by model, samples and seed."""
    f = faithfulness_module()
    key = _hash({"identity": h.identity, "samples": [s.meta.get("key") for s in samples], "seed": seed,
                 "max_new_tokens": max_new_tokens})
    path = out_dir / f"faithfulness_{h.role}.json"
    if path.exists():
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            if d.get("key") == key:
                if advance:
                    advance(4 * len(examples))
                return d["rows"]
        except (ValueError, KeyError):
            pass
    with h.active():
        rows = f.run_battery(h.lm, examples, samples, seed=seed, batch_size=batch_size, world=world,
                             max_new_tokens=max_new_tokens, progress=advance)
    rows = _clean_json([dict(r) for r in rows])
    atomic_write_json(path, {"key": key, "rows": rows})
    return rows


def _curve_points(summary: dict) -> list[dict]:
    c = summary.get("curve") or {}
    return [{"frac": g, "same": m} for g, m in zip(c.get("grid", []), c.get("mean", []))
            if m is not None and not (isinstance(m, float) and math.isnan(m))]
