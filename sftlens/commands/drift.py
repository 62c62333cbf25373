"""``sftlens drift``: how far fine-tuning moved each layer's weights."""

from __future__ import annotations


def add_parser(sub) -> None:
    """Register ``drift`` on the top-level subparsers."""
    p = sub.add_parser(
        "drift", help="per-layer relative weight change between a base and its fine-tune",
        description="Relative weight change ||W_t - W_b|| / ||W_b|| (Frobenius) of every parameter and every layer "
                    "(a layer pools its parameters) between BASE and TUNED, or BASE and BASE+ADAPTER merged with "
                    "PEFT. Writes DIR/drift.json (every number), DIR/drift.md (tables) and DIR/drift.png (drift "
                    "per layer). Two models whose parameters differ in name or shape are refused.")
    p.add_argument("base", metavar="BASE", help="the model before fine-tuning: a saved model folder or a Hub id")
    p.add_argument("tuned", metavar="TUNED", nargs="?",
                   help="the fine-tuned model (same architecture); leave out with --adapter")
    p.add_argument("--adapter", help="a LoRA (PEFT) adapter folder for BASE instead of TUNED: it is merged into a "
                                     "copy of BASE (merge_and_unload) and that merged model is compared")
    p.add_argument("--out", required=True, help="output folder for drift.json, drift.md and drift.png")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="dtype the weights are loaded in (default float32; bfloat16 halves the memory of two "
                        "float32 copies, differences are always taken in float32)")
    p.add_argument("--top", type=int, default=10, help="how many most-moved parameters drift.md lists (default 10)")
    p.set_defaults(func=run)


def run(args) -> int:
    """Check the inputs, compute the drift, write the three files and print the per-layer table."""
    from ..core.checks import check_at_least, check_model_path, check_output_path
    from ..core.errors import UserError

    if args.adapter and args.tuned:
        raise UserError("give either TUNED or --adapter (the tuned model is then BASE+adapter), not both")
    if not args.adapter and not args.tuned:
        raise UserError("missing the tuned model: give TUNED after BASE, or --adapter PATH for a LoRA adapter on BASE")
    check_at_least(args.top, 1, "--top")
    check_model_path(args.base, "BASE")
    check_model_path(args.tuned, "TUNED")
    check_model_path(args.adapter, "--adapter", adapter=True)
    out = check_output_path(args.out, kind="dir", inputs=[args.base, args.tuned, args.adapter])

    from ..core.record import atomic_write_json, atomic_write_text
    from ..lab.runner import quiet_libraries
    from ..metrics.drift import drift_figure, drift_markdown, model_drift
    from ..report.figures import save_png
    from ..report.format import md_table

    quiet_libraries()
    result = model_drift(args.base, args.adapter or args.tuned, adapter=bool(args.adapter), dtype=args.dtype)
    out.mkdir(parents=True, exist_ok=True)  # only now that both models loaded and match
    save_png(drift_figure(result), out / "drift.png")
    atomic_write_text(out / "drift.md", drift_markdown(result, top=args.top))
    atomic_write_json(out / "drift.json", result)
    print(md_table(["layer", "drift"], [[g["layer"], f"{g['drift']:.3e}"]
                                        for g in [*result["layers"], result["total"]]]))
    print(f"wrote {out}/drift.json, {out}/drift.md and {out}/drift.png")
    return 0
