"""``sftlens lab``: run (or resume) the embedded experiments and write the findings report."""

from __future__ import annotations

import argparse
import os

#: an interrupted run resumes when the same command is run again
RESUMABLE = True


def add_parser(sub) -> None:
    p = sub.add_parser("lab", help="train tiny models from scratch under each data condition and test every claim",
                       description="Run the embedded lab: generate each world its claims and controls need (the shop "
                                   "in DIR, the others in DIR/worlds/<name>), pretrain a tiny base per world, train a "
                                   "model per data condition (SFT through TRL; GRPO for C7; a larger base and "
                                   "proxy-tuned models for C9), audit every model, judge each claim and its "
                                   "controls, and write DIR/results.json and DIR/report.md. Rerunning with the "
                                   "same --out resumes.")
    p.add_argument("--preset", default="quick", choices=["micro", "quick", "standard"],
                   help="size of the run: micro (tests, a few minutes, noise), quick (make lab, one seed: "
                        "exploratory) or standard (quick's sizes over five seeds: the verdicts to quote)")
    p.add_argument("--out", default="runs/quick", help="output folder; an existing run there is resumed")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=None,
                       help="run one seed (world, initialisation, data order and statistics); default: the preset's")
    seeds.add_argument("--seeds", type=_seed_list, default=None, metavar="S,S,...",
                       help="run these seeds (e.g. 0,1,2) in DIR/seed_<s>/ and pool them in DIR/results.json")
    seeds.add_argument("--n-seeds", type=int, default=None, metavar="N", help="run seeds 0..N-1 (as --seeds)")
    p.add_argument("--claims", type=_claim_list, default=None, metavar="C,C,...",
                   help="test only these claims (e.g. C4,C8), training only what they and their controls need; "
                        "default: every claim")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    ex = p.add_argument_group("where the work runs (every world of every seed is one independent job)")
    ex.add_argument("--executor", default="process", choices=["serial", "process", "ray"],
                    help="serial: one job after another in this process; process: --workers local worker "
                         "processes (default); ray: Ray tasks (pip install 'sftlens[ray]'), a local instance or "
                         "--ray-address. Results are the same on every executor")
    ex.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                    help="jobs at a time (process), or CPUs of a local Ray instance (default: %(default)s)")
    ex.add_argument("--threads", type=int, default=1,
                    help="torch threads per job (default: 1; a different value gives different numbers, as "
                         "another CPU does)")
    ex.add_argument("--ray-address", default=None, metavar="ADDR",
                    help="a running Ray cluster's address (default: start a local instance)")
    p.set_defaults(func=run)


def _first_reason(reason: str) -> str:
    """The first of a verdict's reasons (the terminal table stays short; the report has them all)."""
    parts = [r for r in reason.split("; ") if r]
    return parts[0] + (f" (+{len(parts) - 1} more in the report)" if len(parts) > 1 else "") if parts else ""


def _claim_list(text: str) -> list[str]:
    from ..lab.claims import CLAIMS

    ids = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [i for i in ids if i not in CLAIMS]
    if not ids or unknown or len(set(ids)) != len(ids):
        raise argparse.ArgumentTypeError(f"expected distinct claim ids from {', '.join(CLAIMS)} such as C4,C8, "
                                         f"got '{text}'")
    return [c for c in CLAIMS if c in ids]  # registration order: C8,C4 and C4,C8 are one run


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 0,1,2, got '{text}'") from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected distinct seeds >= 0 such as 0,1,2, got '{text}'")
    return seeds


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..core.checks import check_output_path, check_seed
    from ..core.errors import UserError

    if args.seed is not None:
        check_seed(args.seed)
    check_output_path(args.out, kind="dir")
    from ..lab.runner import LabConfigMismatch, run_lab

    if args.workers < 1 or args.threads < 1:
        raise UserError(f"--workers and --threads: expected at least 1, got {args.workers} and {args.threads}")
    if args.n_seeds is not None and args.n_seeds < 1:
        raise UserError(f"--n-seeds: expected at least 1, got {args.n_seeds}")
    seeds = args.seeds if args.seeds is not None else (list(range(args.n_seeds)) if args.n_seeds else None)
    console = None if args.quiet else Console()
    try:
        results = run_lab(args.out, preset=args.preset, seed=args.seed, seeds=seeds, console=console,
                          executor=args.executor, workers=args.workers, threads=args.threads,
                          address=args.ray_address, claims=args.claims)
    except LabConfigMismatch as e:
        raise UserError(str(e)) from None
    if console is not None:
        from rich.table import Table

        from ..lab.report import controls_word

        t = Table(title=f"sftlens lab — {args.out}")
        for c in ("claim", "verdict", "controls", "effect (90% interval)", "why"):
            t.add_column(c)
        for k, c in results["claims"].items():
            e = c["effect"]
            eff = "n/a" if e.get("mean") != e.get("mean") else f"{e['mean']:+.3f} [{e['lo']:+.3f}, {e['hi']:+.3f}]"
            t.add_row(k, c["verdict"] + (" (single seed)" if c.get("exploratory") else ""), controls_word(c),
                      f"{e.get('name', '')}: {eff}", _first_reason(c.get("reason", "")))
        console.print(t)
        console.print(f"wrote {args.out}/results.json and {args.out}/report.md")
    return 0
