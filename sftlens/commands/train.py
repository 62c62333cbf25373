"""``sftlens train sft``: supervised fine-tuning (full or LoRA) of any causal LM on a dataset."""

from __future__ import annotations

import argparse

#: an interrupted run resumes when the same command is run again
RESUMABLE = True


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="fine-tune a model (SFT through TRL, full or LoRA)",
                       description="Fine-tune a causal LM with TRL's SFTTrainer; the loss is on the completion "
                                   "(steps and answer) only.")
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
