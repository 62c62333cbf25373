"""``sftlens train sft | grpo``: supervised fine-tuning, or GRPO with rewards from the task's verifier
(full or LoRA), of any causal LM on a dataset."""

from __future__ import annotations

import argparse

#: an interrupted run resumes when the same command is run again
RESUMABLE = True


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="fine-tune a model (SFT or GRPO through TRL, full or LoRA)",
                       description="Fine-tune a causal LM with TRL: SFTTrainer (the loss on the completion, steps "
                                   "and answer, only) or GRPOTrainer (rewards from the task's verifier).")
    tsub = p.add_subparsers(dest="method", metavar="METHOD", required=True)
    s = tsub.add_parser("sft", help="supervised fine-tuning on worked solutions")
    s.add_argument("--model", required=True, help="local model folder or Hugging Face id to start from")
    s.add_argument("--data", required=True, help="training data: sftlens JSONL, GSM8K JSONL, or a dataset name")
    s.add_argument("--out", required=True, help="folder for the fine-tuned model (or the LoRA adapter); "
                                              "an interrupted run keeps checkpoints in OUT/.checkpoints and "
                                              "rerunning the same command resumes from them")
    s.add_argument("--lora", action="store_true", help="train a LoRA adapter (PEFT) instead of all weights")
    s.add_argument("--lora-r", type=int, default=8, help="LoRA rank (default 8)")
    s.add_argument("--steps", type=int, default=300, help="optimizer steps (default 300)")
    s.add_argument("--batch-size", type=int, default=32, help="examples per step (default 32)")
    s.add_argument("--lr", type=float, default=2e-4, help="peak learning rate, cosine decay (default 2e-4)")
    s.add_argument("--limit", type=int, default=None, help="use only the first N examples")
    s.add_argument("--seed", type=int, default=0, help="seed for shuffling and initialisation")
    s.set_defaults(func=run)
    _add_grpo_parser(tsub)


def run(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from ..core.checks import check_at_least, check_local_input, check_model_path, check_output_path, check_seed
    from ..core.errors import UserError

    # every input and the output first: nothing loads, nothing is created until these pass
    check_seed(args.seed)
    for option, value in (("--steps", args.steps), ("--batch-size", args.batch_size), ("--lora-r", args.lora_r),
                          ("--limit", args.limit)):
        check_at_least(value, 1, option)
    if args.lr <= 0:
        raise UserError(f"--lr must be greater than 0, got {args.lr}")
    check_local_input(args.data, "--data")
    check_model_path(args.model, "--model")
    out = check_output_path(args.out, inputs=[args.data, args.model], kind="dir")

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..core.record import atomic_write_json
    from ..data.loaders import load_examples
    from ..lab.runner import quiet_libraries
    from ..models.lm import load_lm
    from ..train.sft import SFTSettings, last_checkpoint, sft

    quiet_libraries()
    console = Console(stderr=True)
    exs = load_examples(args.data, limit=args.limit)
    if not exs:
        raise UserError(f"--data {args.data}: no examples (the file is empty); give at least one training example")
    lm = load_lm(args.model)
    settings = SFTSettings(steps=args.steps, batch_size=args.batch_size, lr=args.lr, lora=args.lora,
                           lora_r=args.lora_r, lora_alpha=2 * args.lora_r, seed=args.seed)
    ckpt = out / ".checkpoints"  # an interrupted run resumes from here; removed once the model is saved
    resume = last_checkpoint(ckpt)
    if resume:
        console.print(f"resuming from {resume}")
    with Progress(TextColumn("sft"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  TextColumn("{task.fields[info]}"), console=console) as prog:
        task = prog.add_task("sft", total=settings.steps, info="")
        model = sft(lm.model, lm.tokenizer, exs, settings, checkpoint_dir=ckpt,
                    on_step=lambda s, l: prog.update(task, completed=s, **({"info": f"loss {l:.3f}"} if l else {})))
    model.save_pretrained(out)
    lm.tokenizer.save_pretrained(out)
    atomic_write_json(out / "sftlens.json", {"kind": "sft", "base": args.model, "data": args.data,
                                             "examples": len(exs), "lora": args.lora, "steps": args.steps,
                                             "lr": args.lr, "seed": args.seed})
    shutil.rmtree(ckpt, ignore_errors=True)
    console.print(f"saved {'LoRA adapter' if args.lora else 'model'} to {out}"
                  + (f" (audit it with --base {args.model} --adapter {out})" if args.lora else ""))
    return 0


def _add_grpo_parser(tsub) -> None:
    from ..data.difficulty import BANDS
    from ..train.grpo import LOSS_TYPES, SCALE_REWARDS
    from ..metrics.rewards import REWARDS

    g = tsub.add_parser("grpo", help="GRPO (TRL's GRPOTrainer) with rewards from the task's verifier",
                        description="Reinforcement learning with group-relative advantages (TRL's GRPOTrainer): "
                                    "sample --num-generations completions per prompt, reward each with the task's "
                                    "verifier, and push up the ones above their group's mean. Options named as in "
                                    "TRL's GRPOConfig keep its meaning. Writes the model (or LoRA adapter), "
                                    "sftlens.json and grpo_log.jsonl (TRL's per-step log, with "
                                    "frac_reward_zero_std and the advantage of every lone success) to --out.")
    g.add_argument("--model", required=True, help="local model folder or Hugging Face id to start from")
    g.add_argument("--data", required=True, help="training prompts: sftlens JSONL (e.g. the output of "
                                               "`sftlens data profile`), GSM8K JSONL, or a dataset name")
    g.add_argument("--out", required=True, help="folder for the trained model (or the LoRA adapter) and its logs")
    g.add_argument("--reward", default="correct=1,format=0.1", metavar="NAME=W,...",
                   help=f"reward functions and their weights (TRL's reward_weights), from {', '.join(REWARDS)}: "
                        "correct = the final answer equals the reference, format = steps then one 'A:' line, "
                        "steps = share of verifiable steps the task's verifier finds valid (default: "
                        "correct=1,format=0.1)")
    g.add_argument("--keep-band", choices=list(BANDS),
                   help="train only on the examples of this difficulty band, as `sftlens data profile` marked them "
                        "(meta.band: pass@k against the model, ideally --model itself)")
    g.add_argument("--world", metavar="world.json", help="the shop world (the lab's DIR/data/world.json): lets "
                                                         "--reward steps verify shop steps")
    g.add_argument("--equivalence", default="math", choices=["math", "strict"],
                   help="how 'correct' compares answers: math-verify (default) or exact match, as in the audit")
    g.add_argument("--dynamic-sampling", action="store_true",
                   help="DAPO's dynamic sampling: drop groups whose rewards all match (std below "
                        "--zero-std-epsilon) and sample more prompts until the batch is full again")
    g.add_argument("--zero-std-epsilon", type=float, default=1e-6,
                   help="a group whose reward std is below this counts as constant, for frac_reward_zero_std and "
                        "--dynamic-sampling (default 1e-6; never an exact == 0)")
    g.add_argument("--max-rounds", type=int, default=4,
                   help="with --dynamic-sampling: generation rounds per batch at most; a batch still short is "
                        "topped up with constant groups and the shortfall logged (default 4)")
    t = g.add_argument_group("TRL GRPOConfig options (same names)")
    t.add_argument("--num-generations", type=int, default=8,
                   help="completions sampled per prompt, the group size G (TRL's default 8; at least 2)")
    t.add_argument("--scale-rewards", default="group", choices=list(SCALE_REWARDS),
                   help="divide advantages by the std of each group (default), of the whole batch, or not at all "
                        "(Dr. GRPO)")
    t.add_argument("--loss-type", default="dapo", choices=list(LOSS_TYPES),
                   help="how token losses are aggregated (TRL's default dapo: over all active tokens of the batch)")
    t.add_argument("--beta", type=float, default=0.0,
                   help="KL coefficient against the starting model (TRL's default 0.0: no reference model)")
    t.add_argument("--lr", type=float, default=1e-6,
                   help="learning rate, TRL's learning_rate (TRL's default 1e-6; LoRA usually wants 1e-5 to 1e-4)")
    t.add_argument("--steps", type=int, default=100, help="optimizer steps, TRL's max_steps (default 100)")
    t.add_argument("--batch-size", type=int, default=32,
                   help="completions per optimizer step, TRL's per_device_train_batch_size; a multiple of "
                        "--num-generations (default 32: 4 prompts of 8)")
    t.add_argument("--max-completion-length", type=int, default=96,
                   help="generated tokens per completion at most (default 96, as `sftlens data profile`'s "
                        "--max-new-tokens; TRL's default is 512)")
    t.add_argument("--temperature", type=float, default=0.8,
                   help="sampling temperature (default 0.8, as `sftlens data profile`; TRL's default is 1.0)")
    g.add_argument("--lora", action="store_true", help="train a LoRA adapter (PEFT) instead of all weights")
    g.add_argument("--lora-r", type=int, default=8, help="LoRA rank (default 8)")
    g.add_argument("--limit", type=int, default=None, help="use only the first N examples (before --keep-band)")
    g.add_argument("--seed", type=int, default=0, help="seed for sampling, data order and initialisation")
    g.set_defaults(func=run_grpo)


def run_grpo(args: argparse.Namespace) -> int:
    """``sftlens train grpo``."""
    import json
    import math

    from ..core.checks import check_at_least, check_local_input, check_model_path, check_output_path, check_seed
    from ..core.errors import UserError
    from ..train.grpo import GRPOSettings, check_settings
    from ..metrics.rewards import parse_reward_spec

    # every option, input and the output first: nothing loads, nothing is created until these pass
    check_seed(args.seed)
    check_at_least(args.limit, 1, "--limit")
    settings = GRPOSettings(steps=args.steps, batch_size=args.batch_size, num_generations=args.num_generations,
                            lr=args.lr, beta=args.beta, scale_rewards=args.scale_rewards, loss_type=args.loss_type,
                            max_completion_length=args.max_completion_length, temperature=args.temperature,
                            lora=args.lora, lora_r=args.lora_r, lora_alpha=2 * args.lora_r, seed=args.seed,
                            dynamic_sampling=args.dynamic_sampling, zero_std_epsilon=args.zero_std_epsilon,
                            max_rounds=args.max_rounds)
    check_settings(settings)
    spec = parse_reward_spec(args.reward)
    check_local_input(args.data, "--data")
    check_local_input(args.world, "--world")
    check_model_path(args.model, "--model")
    out = check_output_path(args.out, inputs=[args.data, args.model, args.world], kind="dir")

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..core.record import atomic_write_json, atomic_write_text
    from ..data.difficulty import band_counts, select_band
    from ..data.loaders import load_examples
    from ..lab.runner import quiet_libraries
    from ..tasks import verifier_for
    from ..tasks.shop import load_world
    from ..train.grpo import grpo
    from ..metrics.rewards import build_rewards

    quiet_libraries()
    console = Console(stderr=True)
    exs = load_examples(args.data, limit=args.limit)
    if not exs:
        raise UserError(f"--data {args.data}: no examples (the file is empty); give at least one training prompt")
    if args.keep_band:
        exs = select_band(exs, args.keep_band, args.data)
        profiled = {str(e.meta.get("profile", {}).get("model", "")) for e in exs} - {""}
        if profiled and not any(_same_model(p, args.model) for p in profiled):
            console.print(f"note: the bands were profiled against {', '.join(sorted(profiled))}, not against --model "
                          f"{args.model}; pass@k bands describe the model they were measured on")
    world = load_world(args.world) if args.world else None
    if world is None and any(n == "steps" for n, _ in spec) and any(e.task.startswith("shop.") for e in exs):
        raise UserError("--reward steps: shop examples are verified against their world; give --world "
                        "(the lab's DIR/data/world.json)")
    verifier = verifier_for(exs, world) if any(n == "steps" for n, _ in spec) else None
    reward_funcs, weights = build_rewards(spec, exs, verifier=verifier, equivalence=args.equivalence)

    from ..models.lm import load_lm

    lm = load_lm(args.model)
    with Progress(TextColumn("grpo"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  TextColumn("{task.fields[info]}"), console=console) as prog:
        task = prog.add_task("grpo", total=settings.steps, info="")

        def on_step(step: int, logs: dict) -> None:
            info = f"reward {logs.get('reward', math.nan):.3f}  zero-std {logs.get('frac_reward_zero_std', math.nan):.2f}"
            prog.update(task, completed=step, info=info)

        model, history = grpo(lm.model, lm.tokenizer, exs, reward_funcs, weights, settings, on_step=on_step)
    model.save_pretrained(out)
    lm.tokenizer.save_pretrained(out)
    atomic_write_text(out / "grpo_log.jsonl", "".join(json.dumps(h, allow_nan=False, default=str) + "\n"
                                                       for h in history))
    steps = [h for h in history if "loss" in h]
    lone = [a for h in steps for a in h.get("lone_success_advantages", [])]
    atomic_write_json(out / "sftlens.json", {
        "kind": "grpo", "base": args.model, "data": args.data, "examples": len(exs), "keep_band": args.keep_band,
        "bands": band_counts(exs), "reward": dict(spec), "equivalence": args.equivalence, "lora": args.lora,
        "settings": {k: v for k, v in vars(settings).items()},
        "final": {k: steps[-1].get(k) for k in ("reward", "reward_std", "frac_reward_zero_std")} if steps else {},
        "lone_successes": len(lone)})
    mean = lambda key: sum(h.get(key) or 0.0 for h in steps) / max(1, len(steps))  # noqa: E731
    console.print(f"{len(exs)} prompts, {settings.steps} steps of {settings.batch_size // settings.num_generations} "
                  f"groups of {settings.num_generations}: reward {steps[0].get('reward', math.nan):.3f} -> "
                  f"{steps[-1].get('reward', math.nan):.3f}, frac_reward_zero_std {mean('frac_reward_zero_std'):.2f} "
                  f"on average, {len(lone)} lone successes"
                  + (f" (advantage {sum(lone) / len(lone):.3f}; G={settings.num_generations})" if lone else ""))
    console.print(f"saved {'LoRA adapter' if args.lora else 'model'} to {out}"
                  + (f" (audit it with --base {args.model} --adapter {out})" if args.lora else ""))
    return 0


def _same_model(a: str, b: str) -> bool:
    """Whether two model names point at one model (the same folder, or the same Hub id)."""
    from pathlib import Path

    pa, pb = Path(a), Path(b)
    if pa.exists() and pb.exists():
        return pa.resolve() == pb.resolve()
    return a == b
