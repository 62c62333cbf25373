#!/usr/bin/env python3
"""Compare two lab (or audit) ``results.json`` files: the refactor guard of the re-cut.

    python scripts/compare_results.py OLD/results.json NEW/results.json [--keys claims models]

Exits 0 when the chosen top-level keys hold identical JSON (same numbers, same strings, NaN equal to
NaN), else prints the first differing paths and exits 1. ``--bytes`` also requires the two files to
be byte-identical. Timings never live in ``results.json``, so nothing is excluded by default.
"""

from __future__ import annotations

import argparse
import json
import math
import sys


def diff(a, b, path: str = "$", out: list | None = None, limit: int = 20) -> list[str]:
    """Paths where ``a`` and ``b`` differ (NaN equals NaN).

    >>> diff({"x": [1, float("nan")]}, {"x": [1, float("nan")]})
    []
    >>> diff({"x": 1.0}, {"x": 2.0, "y": 0})
    ['$.x: 1.0 != 2.0', '$.y: missing on the left']
    """
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if k not in b:
                out.append(f"{path}.{k}: missing on the right")
            elif k not in a:
                out.append(f"{path}.{k}: missing on the left")
            else:
                diff(a[k], b[k], f"{path}.{k}", out, limit)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: length {len(a)} != {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            diff(x, y, f"{path}[{i}]", out, limit)
    elif isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        pass
    elif a != b or type(a) is not type(b):
        out.append(f"{path}: {a!r} != {b!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old", help="the reference results.json")
    p.add_argument("new", help="the results.json to check against it")
    p.add_argument("--keys", nargs="*", default=None,
                   help="top-level keys to compare (default: all keys of either file)")
    p.add_argument("--bytes", action="store_true", help="also require byte-identical files")
    a = p.parse_args(argv)
    old, new = (json.load(open(x, encoding="utf-8")) for x in (a.old, a.new))
    keys = a.keys or list(dict.fromkeys(list(old) + list(new)))
    problems = diff({k: old.get(k) for k in keys}, {k: new.get(k) for k in keys})
    if a.bytes and open(a.old, "rb").read() != open(a.new, "rb").read():
        problems.append("files are not byte-identical")
    for line in problems:
        print(line)
    print(f"{'identical' if not problems else 'DIFFERENT'}: {a.old} vs {a.new} (keys: {', '.join(keys)})")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
