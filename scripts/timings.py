"""Where a lab run's time went: every world's ``timings.json`` as one Markdown table.

    python scripts/timings.py runs/quick            # a one-seed run
    python scripts/timings.py runs/standard         # every seed_<s>/ of a several-seed run

Rows are stage groups per world (pretraining, SFT, GRPO, evaluations, ...), with the number of
stages, their total and their range in seconds; the last line sums the work of every job, which is
what two workers share (the wall time is about half of it when the jobs balance). Stage times are
each job's own wall clock, so they grow when the machine is shared.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

GROUPS = (("pretrain", "pretraining"), ("sft_", "SFT"), ("grpo_", "GRPO"), ("profile_", "pass@k profiles"),
          ("eval_", "evaluation"), ("faithfulness_", "faithfulness battery"), ("data", "data"))


def group(stage: str) -> str | None:
    """The group of a stage name (``None`` for the run's own totals)."""
    if stage.startswith(("total", "claims")):
        return None
    return next((label for prefix, label in GROUPS if stage.startswith(prefix)), "other")


def world_folders(run: Path) -> list[tuple[str, Path]]:
    """``(label, folder)`` of every world of every seed under ``run``."""
    seeds = sorted(run.glob("seed_*")) or [run]
    out = []
    for s in seeds:
        tag = f"{s.name} " if s != run else ""
        out.append((f"{tag}shop", s))
        out += [(f"{tag}{w.name}", w) for w in sorted((s / "worlds").glob("*")) if w.is_dir()]
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print(__doc__.strip().splitlines()[0] + "\nusage: python scripts/timings.py RUN_DIR", file=sys.stderr)
        return 2
    print("| world | stages | seconds (sum) | range per stage |")
    print("|---|---|---|---|")
    total = 0.0
    for label, folder in world_folders(Path(argv[0])):
        path = folder / "timings.json"
        if not path.exists():
            continue
        by = defaultdict(list)
        for stage, secs in json.loads(path.read_text()).items():
            if group(stage):
                by[group(stage)].append(secs)
        job = sum(sum(v) for v in by.values())
        total += job
        parts = ", ".join(f"{g} {len(v)}×" if len(v) > 1 else g for g, v in by.items())
        ranges = "; ".join(f"{g} {min(v):.0f}–{max(v):.0f}" if len(v) > 1 else f"{g} {v[0]:.0f}" for g, v in by.items())
        print(f"| {label} | {parts} | {job:.0f} | {ranges} |")
    print(f"| **all jobs** | | **{total:.0f}** ({total / 60:.1f} min of work) | |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
