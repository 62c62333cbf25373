"""A lab run's verdicts as one Markdown table (the README's findings table), then each claim's reason.

    python scripts/verdicts.py runs/quick/results.json

Columns: claim, verdict (marked "single seed" where it rests on one), each control's status and
verdict, the primary quantity with its 90% interval, the SESOI and the minimum detectable effect.
"""

from __future__ import annotations

import json
import math
import sys


def _num(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.3f}"


def rows(results: dict) -> list[str]:
    """Markdown lines of the table.

    >>> r = {"claims": {"C2": {"verdict": "inconclusive", "exploratory": True, "sesoi": 0.05, "mde": None,
    ...      "effect": {"name": "AOC", "mean": 0.1, "lo": 0.0, "hi": 0.2},
    ...      "controls": {"positive": {"status": "no control yet"}, "negative": {"status": "no control yet"}}}}}
    >>> rows(r)[-1]
    '| C2 | inconclusive (single seed) | positive no control yet; negative no control yet | AOC: +0.100 [+0.000, +0.200] | 0.05 | n/a |'
    """
    out = ["| claim | verdict | controls | primary quantity: estimate [90% interval] | SESOI | MDE |",
           "|---|---|---|---|---|---|"]
    for cid in sorted(results["claims"], key=lambda s: int(s[1:])):
        c, e = results["claims"][cid], results["claims"][cid]["effect"]
        controls = []
        for role in ("positive", "negative"):
            d = c.get("controls", {}).get(role, {})
            judged = d.get("status") in ("passed", "failed")
            controls.append(f"{role} {d.get('status')}" + (f" ({d.get('verdict')})" if judged else ""))
        effect = "n/a" if _num(e.get("mean")) == "n/a" else \
            f"{e['name']}: {_num(e['mean'])} [{_num(e['lo'])}, {_num(e['hi'])}]"
        verdict = c["verdict"] + (" (single seed)" if c.get("exploratory") else "")
        mde = "n/a" if _num(c.get("mde")) == "n/a" else f"{c['mde']:.3f}"
        out.append(f"| {cid} | {verdict} | {'; '.join(controls)} | {effect} | {c.get('sesoi')} | {mde} |")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/verdicts.py RUN_DIR/results.json", file=sys.stderr)
        return 2
    results = json.loads(open(argv[0], encoding="utf-8").read())
    print("\n".join(rows(results)) + "\n")
    for cid in sorted(results["claims"], key=lambda s: int(s[1:])):
        print(f"- {cid}: {results['claims'][cid].get('reason', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
