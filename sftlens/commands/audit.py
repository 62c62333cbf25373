"""``sftlens audit``: compare a base and a fine-tuned model (or saved generations) and report
whether the fine-tune shows the accuracy trap."""

from __future__ import annotations

import argparse
import sys

#: an interrupted run resumes when the same command is run again
RESUMABLE = True


def _variant(s: str) -> tuple[str, str]:
    name, sep, path = s.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got '{s}'")
    return name, path


def add_parser(sub) -> None:
    """Register ``audit`` on the top-level subparsers."""
    p = sub.add_parser(
        "audit", help="did a fine-tune teach reasoning, or only answers?",
        description="Generate with a base and a tuned model (cached and resumable), score accuracy two ways, "
                    "step validity, Knowledge Index and per-step information gain (scored by the base), and "
                    "write DIR/results.json, DIR/report.html and DIR/report.md. With --predictions, score "
                    "saved generations with text metrics only.")
    m = p.add_argument_group("models")
    m.add_argument("--base", help="the model before fine-tuning: a local folder or a Hub id")
    m.add_argument("--tuned", help="the fine-tuned model: a local folder or a Hub id; or proxy:BASE,EXPERT,ANTI[,ALPHA] "
                                   "for BASE proxy-tuned by a small tuned EXPERT and its untuned ANTI-expert "
                                   "(logits BASE + ALPHA * (EXPERT - ANTI), ALPHA 1 by default; see 'sftlens proxy')")
    m.add_argument("--adapter", help="a LoRA (PEFT) adapter folder on --base: the tuned model is base+adapter and "
                                     "the base is the same weights with the adapter disabled")
    m.add_argument("--revision", help="Hub revision (branch, tag or commit) of the models")
    m.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    m.add_argument("--dtype", help="torch dtype name, e.g. bfloat16 (default: bfloat16 on CUDA, else float32)")
    m.add_argument("--chat-template", default="auto", choices=["auto", "none"],
                   help="auto (default): a model whose tokenizer has a chat template reads each question as a user "
                        "turn of that template, with the generation prompt; none: every model reads the plain prompt")
    m.add_argument("--system", metavar="TEXT",
                   help="a system message before each question (needs a chat template: an error with "
                        "--chat-template none or a tokenizer without one)")
    d = p.add_argument_group("data")
    d.add_argument("--data", help="JSONL examples: sftlens schema (e.g. a lab's data/test.jsonl), GSM8K "
                                  "(question, answer with '#### N'), or any JSONL with --question-field/--answer-field")
    d.add_argument("--world", help="the shop world file (world.json); default: world.json next to --data if present")
    d.add_argument("--variants", action="append", type=_variant, default=[], metavar="NAME=PATH",
                   help="a variant test set for the in-distribution minus variant gap (repeatable)")
    d.add_argument("--format", dest="fmt", default="auto", choices=["auto", "sftlens", "gsm8k", "fields"],
                   help="format of --data (default: detected from the first line)")
    d.add_argument("--question-field", help="field holding the question (generic JSONL)")
    d.add_argument("--answer-field", help="field holding the reference answer (generic JSONL)")
    d.add_argument("--steps-field", help="field holding the reference steps, a list or one string (generic JSONL)")
    d.add_argument("--id-field", help="field holding a unique example id (generic JSONL; default: the line number)")
    d.add_argument("--step-splitter", help="regex separating steps inside a string steps field (default: newline)")
    d.add_argument("--checker", metavar="TASK|json-schema:FILE",
                   help="check each answer as structured output and report its levels for both models, paired: "
                        "'packing' (parses as JSON, schema-valid, feasible, optimal; each example's instance read "
                        "from its question) or 'json-schema:SCHEMA.json' (parses, schema-valid; any JSON answer). "
                        "Default: the task's own levels when its examples have them (packing data)")
    d.add_argument("--limit", type=int, help="use only the first N examples")
    d.add_argument("--predictions", action="append", metavar="FILE",
                   help="saved generations: a JSONL of question, completion, reference (optional model and id), an "
                        "lm-evaluation-harness --log_samples file, or an inspect_ai eval log (.json; .eval needs "
                        "inspect-ai); text metrics only, no model is loaded. Repeat it to compare models saved in "
                        "different files (e.g. --predictions base.jsonl --predictions tuned.jsonl: compared in that "
                        "order, paired by id or question)")
    d.add_argument("--pair-by", choices=["auto", "id", "question"], default="auto",
                   help="how generations of different models are paired: by 'id' (lm-eval's doc_id, inspect's sample "
                        "id, our id field) or by 'question' text; default auto: id when every prediction has one. Tools "
                        "number examples differently (lm-eval from 0, inspect from 1): pair their logs by question")
    d.add_argument("--predictions-format", dest="predictions_fmt", default="auto",
                   choices=["auto", "sftlens", "lm-eval", "inspect"],
                   help="format of --predictions (default: detected from the file: a zip archive or a JSON "
                        "object with 'eval' is an inspect log, a first line with doc_id or resps an lm-eval "
                        "samples file, anything else sftlens JSONL)")
    g = p.add_argument_group("run")
    g.add_argument("--out", required=True, help="output folder (reused as a cache: rerunning resumes)")
    g.add_argument("--seed", type=int, default=0, help="seed of sampling and bootstrap intervals (default 0)")
    g.add_argument("--max-new-tokens", type=int, default=256, help="generation length limit (default 256)")
    g.add_argument("--batch-size", type=int, default=16, help="generation and scoring batch size (default 16)")
    g.add_argument("--temperature", type=float, default=0.0, help="sampling temperature; 0 = greedy (default)")
    g.add_argument("--equivalence", choices=["math", "strict"], default="math",
                   help="how a final answer is judged equal to the reference: 'math' (default) uses HF's math-verify "
                        "(fractions, decimals, percents, units, LaTeX, \\boxed{}; exact numbers compared exactly); "
                        "'strict' compares our normalised forms (the first number, or the lower-cased text). With "
                        "'math' both are reported, with the share of answers on which they disagree")
    g.add_argument("--samples", type=int, default=1, metavar="N",
                   help="sampled completions per example (default 1; N > 1 needs --temperature > 0): reports pass@k "
                        "and maj@k for k = 1, 2, 4, ... up to N; the paired comparison uses each example's pass@1")
    g.add_argument("--faithfulness", action=argparse.BooleanOptionalAction, default=True,
                   help="run the faithfulness battery when sftlens.metrics.faithfulness is available (default on)")
    g.add_argument("--examples", type=int, default=5, help="how many changed examples the report shows (default 5)")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run the audit and print the verdict and the report paths."""
    from ..audit import AuditSpec, audit_predictions, run_audit
    from ..core.errors import UserError

    if args.pair_by != "auto" and not args.predictions:
        raise UserError("--pair-by pairs saved generations; give --predictions FILE")
    if args.predictions_fmt != "auto" and not args.predictions:
        raise UserError("--predictions-format is the format of --predictions; give --predictions FILE")
    if args.predictions:
        if args.base or args.tuned or args.adapter or args.data:
            raise UserError("--predictions scores saved generations; do not combine it with --base/--tuned/--adapter/--data")
        if args.samples != 1 or args.system is not None or args.chat_template != "auto":
            raise UserError("--predictions scores saved generations; --samples, --system and --chat-template set how "
                            "a model generates, so drop them")
        res = audit_predictions(args.predictions, args.out, seed=args.seed, n_examples_shown=args.examples,
                                fmt=args.predictions_fmt, equivalence=args.equivalence, pair_by=args.pair_by,
                                checker=args.checker)
    else:
        if not args.base:
            raise UserError("missing --base (the model before fine-tuning), or use --predictions FILE")
        if not args.data:
            raise UserError("missing --data (the examples to audit on)")
        names = [n for n, _ in args.variants]
        if len(set(names)) != len(names):
            raise UserError(f"--variants: the name '{next(n for n in names if names.count(n) > 1)}' is given twice")
        spec = AuditSpec(base=args.base, tuned=args.tuned, adapter=args.adapter, data=args.data, out=args.out,
                         world=args.world, checker=args.checker, variants=dict(args.variants), limit=args.limit, seed=args.seed,
                         max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                         temperature=args.temperature, faithfulness=args.faithfulness, device=args.device,
                         dtype=args.dtype, revision=args.revision, fmt=args.fmt,
                         question_field=args.question_field, answer_field=args.answer_field,
                         steps_field=args.steps_field, step_splitter=args.step_splitter, id_field=args.id_field,
                         n_examples_shown=args.examples, show_progress=not args.no_progress,
                         equivalence=args.equivalence, chat_template=args.chat_template, system=args.system,
                         samples=args.samples)
        res = run_audit(spec)
        if res is None:  # a rank other than 0 of a multi-process launch: rank 0 reports
            return 0
    for warning in res.get("warnings", []):
        print(f"sftlens audit: warning: {warning}", file=sys.stderr)
    print(res["verdict"]["text"])
    run_ = res.get("run", {})
    done = (f"scored {run_.get('scored_new', 0)} saved generations" if args.predictions
            else f"generated {run_.get('generated_new', 0)} new samples")
    print(f"{done}; report: {args.out}/report.html, {args.out}/report.md, {args.out}/results.json")
    return 0
