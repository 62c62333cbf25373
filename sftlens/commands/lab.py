"""``sftlens lab``: run (or resume) the embedded experiments and write the findings report."""

from __future__ import annotations

import argparse

#: an interrupted run resumes when the same command is run again
RESUMABLE = True


def add_parser(sub) -> None:
    p = sub.add_parser("lab", help="train tiny models from scratch under each data condition and test every claim",
                       description="Run the embedded lab: generate the shop world, pretrain a tiny base, fine-tune it "
                                   "under each data condition, audit every model and write DIR/results.json and "
                                   "DIR/report.md. Rerunning with the same --out resumes.")
    p.add_argument("--preset", default="quick", choices=["micro", "quick"],
                   help="size of the run: micro (tests, <1 min, noise) or quick (make lab, ~10 min)")
    p.add_argument("--out", default="runs/quick", help="output folder; an existing run there is resumed")
    p.add_argument("--seed", type=int, default=0, help="seed for the world, the models and the statistics")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..core.checks import check_output_path, check_seed
    from ..core.errors import UserError

    check_seed(args.seed)
    check_output_path(args.out, kind="dir")
    from ..lab.runner import LabConfigMismatch, run_lab

    console = None if args.quiet else Console()
    try:
        results = run_lab(args.out, preset=args.preset, seed=args.seed, console=console)
    except LabConfigMismatch as e:
        raise UserError(str(e)) from None
    if console is not None:
        from rich.table import Table

        t = Table(title=f"sftlens lab — {args.out}")
        for c in ("claim", "verdict", "effect"):
            t.add_column(c)
        for k, c in results["claims"].items():
            e = c["effect"]
            eff = "n/a" if e.get("mean") != e.get("mean") else f"{e['mean']:+.3f} [{e['lo']:+.3f}, {e['hi']:+.3f}]"
            t.add_row(k, c["verdict"], f"{e.get('name', '')}: {eff}")
        console.print(t)
        console.print(f"wrote {args.out}/results.json and {args.out}/report.md")
    return 0
