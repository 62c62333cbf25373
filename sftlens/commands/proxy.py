"""``sftlens proxy``: generate by proxy-tuning (a base steered by a small expert and anti-expert) and
save the generations as a predictions file that ``sftlens audit --predictions`` scores."""

from __future__ import annotations


def add_parser(sub) -> None:
    """Register ``proxy`` on the top-level subparsers."""
    p = sub.add_parser(
        "proxy", help="generate with a base proxy-tuned by a small expert/anti-expert pair",
        description="Decode --base with the logits base + alpha * (expert - anti-expert) at every step (Liu et al. "
                    "2024, 'Tuning Language Models by Proxy'), each model with its own KV cache, and write one "
                    "prediction per example of --data to --out (JSONL: id, question, completion, reference, model), "
                    "the format 'sftlens audit --predictions' reads. To audit the proxy-tuned model with every "
                    "metric instead, run 'sftlens audit --base B --tuned proxy:B,E,A[,ALPHA]'.")
    m = p.add_argument_group("models (all three must share one tokenizer vocabulary)")
    m.add_argument("--base", required=True, help="the large untuned model to steer: a local folder or a Hub id")
    m.add_argument("--expert", required=True, help="the small tuned model whose change is transferred")
    m.add_argument("--anti-expert", required=True,
                   help="the small model before tuning (the expert's own starting point)")
    m.add_argument("--alpha", type=float, default=1.0,
                   help="strength of the steer: logits = base + alpha * (expert - anti-expert) (default 1.0, "
                        "the paper's setting; 0 gives the base)")
    m.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    m.add_argument("--dtype", help="torch dtype name, e.g. bfloat16 (default: bfloat16 on CUDA, else float32)")
    d = p.add_argument_group("data and output")
    d.add_argument("--data", required=True, help="JSONL examples: sftlens schema, GSM8K (question, answer with "
                                                 "'#### N'), or a dataset name when online")
    d.add_argument("--out", required=True, help="the predictions file to write (JSONL)")
    d.add_argument("--with-base", action="store_true",
                   help="also write the base's own generations (model 'base') so the file pairs base and proxy "
                        "for 'sftlens audit --predictions'")
    d.add_argument("--limit", type=int, help="use only the first N examples")
    g = p.add_argument_group("generation")
    g.add_argument("--max-new-tokens", type=int, default=256, help="generation length limit (default 256)")
    g.add_argument("--batch-size", type=int, default=16, help="prompts per batch, left-padded (default 16)")
    g.add_argument("--temperature", type=float, default=0.0,
                   help="sampling temperature applied to the combined logits; 0 = greedy (default)")
    g.add_argument("--seed", type=int, default=0, help="seed of sampling (default 0)")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    """Check every input, load the three models, generate and write the predictions."""
    from ..core.checks import (
        check_at_least,
        check_local_input,
        check_model_path,
        check_output_path,
        check_seed,
    )
    from ..core.errors import UserError

    check_seed(args.seed)
    for option, value in (("--max-new-tokens", args.max_new_tokens), ("--batch-size", args.batch_size),
                          ("--limit", args.limit)):
        check_at_least(value, 1, option)
    if args.temperature < 0:
        raise UserError(f"--temperature must be at least 0, got {args.temperature}")
    check_local_input(args.data, "--data")
    for option, path in (("--base", args.base), ("--expert", args.expert), ("--anti-expert", args.anti_expert)):
        check_model_path(path, option)
    check_output_path(args.out, inputs=[args.data, args.base, args.expert, args.anti_expert], kind="file")

    from ..audit import load_data
    from ..core.console import make_console, progress
    from ..core.format import prompt_text
    from ..core.record import write_jsonl
    from ..lab.runner import quiet_libraries
    from ..models.proxy import load_proxy

    quiet_libraries()
    examples, _ = load_data(args.data, args.limit)
    lm = load_proxy(args.base, args.expert, args.anti_expert, args.alpha, device=args.device, dtype=args.dtype)
    models = [("proxy", lm)]
    if args.with_base:
        from ..models.lm import LM

        base = lm.model.base
        models.insert(0, ("base", LM(model=base, tokenizer=lm.tokenizer, name=args.base, chat=lm.chat)))
    prompts = [prompt_text(e) for e in examples]
    console = None if args.no_progress else make_console(stderr=True)
    rows = []
    with progress(console) as bars:
        for label, model in models:
            task = bars.add_task(f"generate ({label})", total=len(prompts), info="")
            completions = model.generate(prompts, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                                         temperature=args.temperature, seed=args.seed,
                                         progress=lambda n, t=task: bars.advance(t, n))
            rows += [{"id": e.id, "question": e.question, "completion": c, "reference": e.answer, "model": label}
                     for e, c in zip(examples, completions)]
    write_jsonl(args.out, rows)
    print(f"wrote {len(rows)} predictions ({', '.join(label for label, _ in models)}; alpha {args.alpha:g}) to "
          f"{args.out}; score them with: sftlens audit --predictions {args.out} --out DIR")
    return 0
