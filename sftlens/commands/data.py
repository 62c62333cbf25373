"""``sftlens data``: make and select training data.

Subcommands:

- ``corrupt``: apply corruption operators (a YAML recipe, or single options such as
  ``--traces swap --instructions empty --label-noise 0.1``) to a data file;
- ``convert``: read any supported source (our JSONL, GSM8K, JSONL with a field mapping, a Hugging
  Face dataset) and write our JSONL;
- ``profile``: pass rate of a model over k samples per example, and difficulty bands;
- ``curate``: keep the k best and most diverse examples, with a report of what was dropped and why.

Every subcommand reads its input with :func:`sftlens.data.loaders.load_examples`, so all of them take
the same source options, and writes atomically only after the whole input was read and processed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.difficulty import BANDS

INSTRUCTION_OPS = {"keep": "keep", "empty": "instructions_empty", "wrong": "instructions_wrong",
                   "random": "instructions_random"}
TRACE_OPS = {"keep": "keep", "swap": "swap_traces", "shuffle": "shuffle_steps", "corrupt": "corrupt_steps",
             "filler": "filler_traces", "drop": "drop_traces", "answer-first": "answer_first",
             "verbose": "verbose_traces"}
# Operators that read the steps: running them on examples without steps is an input error.
NEEDS_STEPS = {"swap_traces", "shuffle_steps", "corrupt_steps", "filler_traces", "answer_first", "verbose_traces"}


def _add_source_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input source")
    g.add_argument("--format", dest="fmt", default="auto", choices=["auto", "sftlens", "gsm8k", "fields", "hf"],
                   help="input format (default: detect from the first record; a field mapping means 'fields')")
    g.add_argument("--question-field", help="field holding the question (default: question)")
    g.add_argument("--answer-field", help="field holding the answer, or a whole solution ending in '#### N'")
    g.add_argument("--steps-field", help="field holding the steps: a list of strings, or a text to split")
    g.add_argument("--step-splitter", metavar="REGEX", help="regex that splits a solution text into steps "
                                                            "(default: newline)")
    g.add_argument("--id-field", help="field holding a unique id (default: FILE_STEM-N)")
    g.add_argument("--instruction-field", help="field holding the instruction (default: none)")
    g.add_argument("--task", help="task name for mapped records (default: the file stem or dataset name)")
    g.add_argument("--split", default="train", help="split of a Hugging Face dataset (default: train)")
    g.add_argument("--hf-config", help="config of a Hugging Face dataset (or write NAME:CONFIG)")
    g.add_argument("--limit", type=int, help="read only the first N examples")


def _load(args, require_steps: bool = False):
    from ..core.errors import UserError
    from ..data.loaders import load_examples

    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1, got {args.limit}")
    return load_examples(args.input, args.fmt, question_field=args.question_field, steps_field=args.steps_field,
                         step_splitter=args.step_splitter, answer_field=args.answer_field, id_field=args.id_field,
                         instruction_field=args.instruction_field, task=args.task, split=args.split,
                         hf_config=args.hf_config, limit=args.limit, require_steps=require_steps)


def _check_io(args, *inputs: tuple[str, str | None], seed: bool = True) -> None:
    """Every cheap check before any work: IN is readable UTF-8 text (when it is a file, not a Hub
    dataset name), the other input files too, OUT (and curate's report) can be written and is no
    input, and the seed is in range."""
    from ..core.checks import check_at_least, check_local_input, check_output_path, check_seed

    check_local_input(args.input, "IN")
    for option, path in inputs:
        check_local_input(path, option)
    sources = [args.input] + [p for _, p in inputs]
    check_output_path(args.output, inputs=sources, kind="file", option="OUT")
    if getattr(args, "func", None) is run_curate:
        check_output_path(report_path(args.output), inputs=sources, kind="file", option="OUT's report")
    check_at_least(args.limit, 1, "--limit")
    if seed:
        check_seed(args.seed)


def _console(args):
    from rich.console import Console

    return Console(stderr=True, quiet=getattr(args, "quiet", False))


def add_parser(sub) -> None:
    """Register ``sftlens data`` and its subcommands."""
    p = sub.add_parser("data", help="corrupt, convert, profile or curate training data",
                       description="Make and select training data: corruption operators and recipes, loaders, "
                                   "difficulty profiling, curation.")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    c = dsub.add_parser("corrupt", help="apply corruption operators (a recipe or single options)",
                        description="Apply a YAML recipe (--recipe) or single operators to IN and write OUT. "
                                    "Operators run in the order instructions, traces, answers.")
    c.add_argument("input", metavar="IN", help="input data (JSONL path or Hugging Face dataset name)")
    c.add_argument("output", metavar="OUT", help="output JSONL (written atomically)")
    c.add_argument("--recipe", metavar="R.yaml", help="YAML recipe: {seed: N, steps: [{op: NAME, ...params}]}")
    c.add_argument("--instructions", choices=list(INSTRUCTION_OPS), help="instruction operator")
    c.add_argument("--traces", choices=list(TRACE_OPS), help="trace operator (answer-first: the chain's last step "
                   "moved to the front, a post-hoc chain; verbose: the first and the last step restated "
                   "after the chain, steps that carry nothing new)")
    c.add_argument("--corrupt-rate", type=float, default=0.5,
                   help="share of steps made wrong by --traces corrupt (default: 0.5)")
    c.add_argument("--corrupter", default="auto", choices=["auto", "digit", "gsm8k", "shop"],
                   help="how --traces corrupt breaks a step (auto: by task; shop needs --world)")
    c.add_argument("--label-noise", type=float, metavar="P",
                   help="replace the answer of a share P of examples by another answer of the same task")
    c.add_argument("--seed", type=int, default=0, help="seed for single operators (a recipe has its own)")
    c.add_argument("--world", metavar="world.json", help="the shop world (the lab's DIR/data/world.json), "
                                                         "for task-aware corruption of shop steps")
    c.add_argument("--allow-empty-steps", action="store_true",
                   help="accept examples without steps even when an operator reads the steps")
    c.add_argument("--quiet", action="store_true", help="no summary")
    _add_source_options(c)
    c.set_defaults(func=run_corrupt)

    v = dsub.add_parser("convert", help="read any supported source and write our JSONL",
                        description="Read IN (our JSONL, GSM8K, JSONL with a field mapping, or a Hugging Face "
                                    "dataset) and write OUT as sftlens JSONL.")
    v.add_argument("input", metavar="IN", help="input data (JSONL path or Hugging Face dataset name)")
    v.add_argument("output", metavar="OUT", help="output JSONL (written atomically)")
    v.add_argument("--quiet", action="store_true", help="no summary")
    _add_source_options(v)
    v.set_defaults(func=run_convert)

    pr = dsub.add_parser("profile", help="pass rate over k samples per example and difficulty bands",
                         description="Sample k solutions per example from a model, record meta.pass_rate and "
                                     "meta.band (too_easy / learnable / too_hard), optionally keep one band.")
    pr.add_argument("input", metavar="IN", help="input data (JSONL path or Hugging Face dataset name)")
    pr.add_argument("output", metavar="OUT", help="output JSONL (written atomically)")
    pr.add_argument("--model", required=True, metavar="PATH", help="model folder or Hub id")
    pr.add_argument("--adapter", metavar="PATH", help="PEFT adapter on top of --model")
    pr.add_argument("--k", type=int, default=8, help="samples per example (default: 8)")
    pr.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default: 0.8)")
    pr.add_argument("--seed", type=int, default=0, help="sampling seed")
    pr.add_argument("--easy", type=float, default=0.9, help="pass rate at or above which an example is too_easy")
    pr.add_argument("--hard", type=float, default=0.0, help="pass rate at or below which an example is too_hard")
    pr.add_argument("--keep-band", choices=list(BANDS), help="write only examples of this band")
    pr.add_argument("--max-new-tokens", type=int, default=96, help="generation length limit")
    pr.add_argument("--batch-size", type=int, default=64, help="prompts per generation batch")
    pr.add_argument("--device", help="cuda, mps or cpu (default: automatic)")
    pr.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    _add_source_options(pr)
    pr.set_defaults(func=run_profile)

    cu = dsub.add_parser("curate", help="keep the k best and most diverse examples",
                         description="Quality filters (verifier, answer present, length bounds, duplicate "
                                     "questions), then greedy k-center diversity. Writes OUT and OUT's "
                                     ".report.json.")
    cu.add_argument("input", metavar="IN", help="input data (JSONL path or Hugging Face dataset name)")
    cu.add_argument("output", metavar="OUT", help="output JSONL (written atomically)")
    cu.add_argument("--k", type=int, default=1000, help="examples to keep (default: 1000)")
    cu.add_argument("--seed", type=int, default=0, help="seed of the k-center start point")
    cu.add_argument("--diversity", default="tfidf", choices=["tfidf", "hidden", "none"],
                    help="distance for k-center: TF-IDF of the question, a model's mean hidden state, or none "
                         "(a seeded random pick)")
    cu.add_argument("--model", metavar="PATH", help="model for --diversity hidden")
    cu.add_argument("--device", help="device for --model (default: automatic)")
    cu.add_argument("--world", metavar="world.json", help="the shop world (DIR/data/world.json) to verify shop "
                                                          "steps; without it shop examples are not verified")
    cu.add_argument("--min-steps", type=int, default=1, help="fewest steps allowed (default: 1)")
    cu.add_argument("--max-steps", type=int, default=32, help="most steps allowed (default: 32)")
    cu.add_argument("--min-chars", type=int, default=1, help="shortest question+steps text allowed")
    cu.add_argument("--max-chars", type=int, default=4000, help="longest question+steps text allowed")
    cu.add_argument("--no-verify", action="store_true", help="skip the step verifiers")
    cu.add_argument("--keep-duplicates", action="store_true", help="do not drop duplicate questions")
    cu.add_argument("--quiet", action="store_true", help="no table")
    _add_source_options(cu)
    cu.set_defaults(func=run_curate)


def _single_op_steps(args) -> list[tuple[str, dict]]:
    from ..core.errors import UserError

    steps: list[tuple[str, dict]] = []
    if args.instructions and args.instructions != "keep":
        steps.append((INSTRUCTION_OPS[args.instructions], {}))
    if args.traces and args.traces != "keep":
        params = {}
        if args.traces == "corrupt":
            if not 0.0 <= args.corrupt_rate <= 1.0:
                raise UserError(f"--corrupt-rate must be in [0, 1], got {args.corrupt_rate}")
            params = {"rate": args.corrupt_rate, "corrupter": args.corrupter}
        steps.append((TRACE_OPS[args.traces], params))
    if args.label_noise is not None:
        if not 0.0 <= args.label_noise <= 1.0:
            raise UserError(f"--label-noise must be in [0, 1], got {args.label_noise}")
        steps.append(("label_noise", {"p": args.label_noise}))
    return steps


def run_corrupt(args: argparse.Namespace) -> int:
    """``sftlens data corrupt``."""
    from ..core.errors import UserError
    from ..tasks.shop import load_world
    from ..data.ops import OpError
    from ..data.recipe import Recipe, RecipeStep, apply_recipe, load_recipe
    from ..core.record import write_jsonl

    _check_io(args, ("--recipe", args.recipe), ("--world", args.world))
    single = _single_op_steps(args)
    if args.recipe and single:
        raise UserError("give either --recipe or single operator options (--instructions/--traces/--label-noise), not both")
    if args.recipe:
        recipe = load_recipe(args.recipe)
    elif single:
        recipe = Recipe(seed=args.seed, steps=[RecipeStep(op=o, params=p) for o, p in single], source="options")
    else:
        raise UserError("nothing to do: give --recipe R.yaml or at least one of --instructions, --traces, --label-noise")
    world = load_world(args.world) if args.world else None
    needs = any(s.op in NEEDS_STEPS for s in recipe.steps) and not args.allow_empty_steps
    examples = _load(args, require_steps=needs)
    if not examples:
        raise UserError(f"{args.input}: no examples")
    try:
        out = apply_recipe(recipe, examples, context={"world": world})
    except OpError as e:
        raise UserError(str(e)) from None
    write_jsonl(args.output, out)
    if not args.quiet:
        changed = sum(1 for a, b in zip(examples, out) if (a.instruction, a.steps, a.answer) != (b.instruction, b.steps, b.answer))
        ops = " -> ".join(s.op for s in recipe.steps)
        _console(args).print(f"{ops}: {changed}/{len(out)} examples changed; wrote {args.output}")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    """``sftlens data convert``."""
    from ..core.record import write_jsonl

    _check_io(args, seed=False)
    examples = _load(args)
    n = write_jsonl(args.output, examples)
    if not args.quiet:
        _console(args).print(f"wrote {n} examples to {args.output}")
    return 0


def run_profile(args: argparse.Namespace) -> int:
    """``sftlens data profile``."""
    from rich.progress import Progress

    from ..core.errors import UserError
    from ..data.difficulty import BandThresholds, band_counts, profile
    from ..core.record import write_jsonl
    from ..models.lm import load_lm

    from ..core.checks import check_at_least, check_model_path

    _check_io(args)
    check_model_path(args.model, "--model")
    check_model_path(args.adapter, "--adapter", adapter=True)
    for option, value in (("--max-new-tokens", args.max_new_tokens), ("--batch-size", args.batch_size)):
        check_at_least(value, 1, option)
    if args.k < 1:
        raise UserError(f"--k must be at least 1, got {args.k}")
    if args.temperature < 0:
        raise UserError(f"--temperature must be >= 0, got {args.temperature}")
    try:
        thresholds = BandThresholds(easy=args.easy, hard=args.hard)
    except ValueError as e:
        raise UserError(str(e)) from None
    examples = _load(args)
    if not examples:
        raise UserError(f"{args.input}: no examples")
    lm = load_lm(args.model, adapter=args.adapter, device=args.device)
    console = _console(args)
    with Progress(console=console, transient=True, disable=args.quiet) as bar:
        task = bar.add_task(f"sampling {args.k} per example", total=len(examples) * args.k)
        out = profile(lm, examples, k=args.k, temperature=args.temperature, seed=args.seed, thresholds=thresholds,
                      max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                      progress=lambda n: bar.advance(task, n))
    counts = band_counts(out)
    kept = [e for e in out if args.keep_band is None or e.meta["band"] == args.keep_band]
    write_jsonl(args.output, kept)
    if not args.quiet:
        console.print(f"bands: {', '.join(f'{b} {n}' for b, n in counts.items())}; wrote {len(kept)} examples "
                      f"to {args.output}")
    return 0


def report_path(output: str) -> Path:
    """``OUT.report.json`` next to ``OUT`` (``a/b.jsonl`` -> ``a/b.report.json``).

    >>> str(report_path("runs/x/cur.jsonl"))
    'runs/x/cur.report.json'
    """
    p = Path(output)
    return p.with_name((p.stem if p.suffix == ".jsonl" else p.name) + ".report.json")


def run_curate(args: argparse.Namespace) -> int:
    """``sftlens data curate``."""
    from rich.progress import Progress

    from ..core.errors import UserError
    from ..data.curate import CurateConfig, curate
    from ..tasks.shop import load_world
    from ..core.record import atomic_write_json, write_jsonl

    from ..core.checks import check_model_path

    _check_io(args, ("--world", args.world))
    if args.diversity == "hidden" and not args.model:
        raise UserError("--diversity hidden needs --model PATH")
    if args.diversity == "hidden":
        check_model_path(args.model, "--model")
    try:
        config = CurateConfig(k=args.k, seed=args.seed, diversity=args.diversity, min_steps=args.min_steps,
                              max_steps=args.max_steps, min_chars=args.min_chars, max_chars=args.max_chars,
                              verify=not args.no_verify, dedup=not args.keep_duplicates)
    except ValueError as e:
        raise UserError(str(e)) from None
    world = load_world(args.world) if args.world else None
    examples = _load(args)
    lm = None
    if args.diversity == "hidden":
        from ..models.lm import load_lm

        lm = load_lm(args.model, device=args.device)
    console = _console(args)
    with Progress(console=console, transient=True, disable=args.quiet) as bar:
        task = bar.add_task("quality filters", total=len(examples))
        res = curate(examples, config, world=world, lm=lm, progress=lambda n: bar.advance(task, n))
    if args.k > len(examples):
        res.report.setdefault("notes", []).append(
            f"--k {args.k} is more than the {len(examples)} examples read, so every example that passed the "
            "filters was kept and none was selected for diversity")
    res.report["input"] = str(args.input)
    res.report["output"] = str(args.output)
    write_jsonl(args.output, res.kept)
    atomic_write_json(report_path(args.output), res.report)
    if not args.quiet:
        from rich.table import Table

        r = res.report
        t = Table(title=f"sftlens data curate — {args.input}")
        t.add_column("outcome")
        t.add_column("examples", justify="right")
        for reason, n in r["dropped"].items():
            t.add_row(f"dropped: {reason}", str(n))
        t.add_row("passed filters, not selected", str(r["not_selected"]))
        t.add_row("kept", str(r["kept"]), style="bold")
        t.add_row("total", str(r["n_input"]))
        from rich.console import Console

        out_console = Console()
        out_console.print(t)
        for note in r.get("notes", []):
            out_console.print(f"note: {note}")
        out_console.print(f"wrote {args.output} and {report_path(args.output)}")
    return 0
