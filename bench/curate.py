"""Time ``sftlens data curate --k 1000`` on GSM8K train (the target is under 10 s on 2 CPU cores).

Usage: ``.venv/bin/python bench/curate.py [PATH] [--k 1000] [--seed 0]``

Prints the wall time of the whole command (a fresh process, imports included) and an in-process
breakdown: loading, quality filters + TF-IDF + k-center.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from sftlens.paths import GSM8K_DIR

DEFAULT = str(GSM8K_DIR / "train.jsonl")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", default=DEFAULT, help="GSM8K-format or sftlens JSONL")
    ap.add_argument("--k", type=int, default=1000, help="examples to keep")
    ap.add_argument("--seed", type=int, default=0, help="k-center seed")
    args = ap.parse_args()
    if not Path(args.path).exists():
        print(f"bench/curate.py: {args.path}: no such file", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "cur.jsonl"
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "sftlens.cli", "data", "curate", "--quiet", "--k", str(args.k),
                            "--seed", str(args.seed), args.path, str(out)], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            print(r.stderr, file=sys.stderr)
            return r.returncode
    from sftlens.data.curate import CurateConfig, curate
    from sftlens.data.loaders import load_examples

    t1 = time.perf_counter()
    exs = load_examples(args.path)
    t2 = time.perf_counter()
    res = curate(exs, CurateConfig(k=args.k, seed=args.seed))
    t3 = time.perf_counter()
    print(f"sftlens data curate --k {args.k} {args.path}: {wall:.2f} s wall (fresh process, target < 10 s)")
    print(f"  in-process: load {t2 - t1:.2f} s ({len(exs)} examples), filters + tfidf + k-center {t3 - t2:.2f} s "
          f"-> kept {res.report['kept']}")
    # ratio: the 10 s target over the wall time (above 1 is within the target)
    print(json.dumps({"bench": "curate", "ratio": round(10 / wall, 3), "wall_s": round(wall, 3), "k": args.k,
                      "examples": len(exs), "load_s": round(t2 - t1, 3), "curate_s": round(t3 - t2, 3)}))
    return 0 if wall < 10 else 1


if __name__ == "__main__":
    sys.exit(main())
