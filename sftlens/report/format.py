"""One formatter family for estimates, shared by the lab report, the audit report and the terminal.

Every function takes an estimate as a dict (``{"mean", "lo", "hi", "n"}``, what
:meth:`sftlens.metrics.stats.Estimate.to_dict` gives) or ``None`` and returns text; a missing or
NaN estimate prints ``n/a`` so a report never invents a number.
"""

from __future__ import annotations

import math

VERDICT_MARK = {"reproduced": "✅ reproduced", "not reproduced": "❌ not reproduced", "inconclusive": "❔ inconclusive"}


def _missing(e: dict | None) -> bool:
    return not e or e.get("mean") is None or math.isnan(e["mean"])


def pct(e: dict | None) -> str:
    """A rate: ``61.3% [55.0, 67.2]``.

    >>> pct({"mean": 0.5, "lo": 0.4, "hi": 0.6}), pct(None)
    ('50.0% [40.0, 60.0]', 'n/a')
    """
    if _missing(e):
        return "n/a"
    return f"{100 * e['mean']:.1f}% [{100 * e['lo']:.1f}, {100 * e['hi']:.1f}]"


def pts(e: dict | None) -> str:
    """A difference of rates in percentage points: ``+12.0 pts [+8.1, +15.9]``.

    >>> pts({"mean": 0.12, "lo": 0.081, "hi": 0.159})
    '+12.0 pts [+8.1, +15.9]'
    """
    if _missing(e):
        return "n/a"
    return f"{100 * e['mean']:+.1f} pts [{100 * e['lo']:+.1f}, {100 * e['hi']:+.1f}]"


def num(e: dict | None, digits: int = 3, signed: bool = False) -> str:
    """Any estimate: ``0.123 [0.100, 0.150]`` (``signed`` adds ``+``).

    >>> num({"mean": -0.5, "lo": -1.0, "hi": 0.25}, 2, signed=True)
    '-0.50 [-1.00, +0.25]'
    """
    if _missing(e):
        return "n/a"
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    return f"{f.format(e['mean'])} [{f.format(e['lo'])}, {f.format(e['hi'])}]"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table.

    >>> print(md_table(["a", "b"], [["1", "2"]]))
    | a | b |
    |---|---|
    | 1 | 2 |
    """
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


__all__ = ["VERDICT_MARK", "md_table", "num", "pct", "pts"]
