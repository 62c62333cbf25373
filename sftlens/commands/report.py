"""``sftlens report DIR``: re-render an audit's report from its saved results (no model)."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    """Register ``report`` on the top-level subparsers."""
    p = sub.add_parser("report", help="re-render report.html and report.md from a saved audit",
                       description="Re-render DIR/report.html and DIR/report.md from DIR/results.json, "
                                   "DIR/samples.jsonl and DIR/metrics.jsonl without loading a model.")
    p.add_argument("dir", metavar="DIR", help="an audit output folder (the --out of 'sftlens audit')")
    p.set_defaults(func=run)


def run(args) -> int:
    """Render the reports and print their paths and the verdict."""
    from ..audit import load_saved, write_report

    html_path, md_path = write_report(args.dir)
    results, _, _ = load_saved(args.dir)
    for warning in results.get("warnings", []):
        print(f"sftlens report: warning: {warning}", file=sys.stderr)
    print(results["verdict"]["text"])
    print(f"wrote {html_path} and {md_path}")
    return 0
