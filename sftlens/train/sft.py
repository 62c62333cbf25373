"""Supervised fine-tuning through TRL's ``SFTTrainer``: full or LoRA (PEFT), loss on the completion.

Examples become TRL's *prompt-completion* format (``prompt_text`` / ``completion_text`` + EOS), so
TRL masks the prompt and trains on the steps and the answer only.

Resuming: with a ``checkpoint_dir`` the trainer saves a full checkpoint (weights, optimizer,
scheduler, RNG states, step) every ``save_steps`` steps, and a later call with the same directory,
data, settings and starting model continues from the newest one through TRL's
``train(resume_from_checkpoint=...)``: the same weights as an uninterrupted run (on the same
machine). ``run.json`` in that directory pins what the checkpoints belong to, so a call with other
settings is refused instead of silently mixing two runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from ..core.errors import UserError
from ..core.format import completion_text, prompt_text
from ..core.record import Example, atomic_write_json


@dataclass
class SFTSettings:
    """What :func:`sft` needs beyond the data. ``steps`` is the number of optimizer steps."""

    steps: int = 300
    batch_size: int = 64
    lr: float = 2e-3
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    seed: int = 0
    save_steps: int | None = None  # checkpoint every N steps when resumable (default: steps // 10, at least 1)


def to_prompt_completion(examples: list[Example]) -> dict[str, list[str]]:
    """TRL's prompt-completion columns (TRL appends the EOS token to each completion itself)."""
    return {"prompt": [prompt_text(e) for e in examples], "completion": [completion_text(e) for e in examples]}


def _run_key(model, cols: dict[str, list[str]], settings: SFTSettings) -> dict:
    """What a checkpoint folder belongs to: the settings, a hash of the data and of the starting model."""
    from ..models.lm import fingerprint

    data = hashlib.sha256(json.dumps(cols, ensure_ascii=False).encode()).hexdigest()[:16]
    return {"settings": asdict(settings), "data": data, "model": fingerprint(model)}


def last_checkpoint(checkpoint_dir: str | os.PathLike) -> str | None:
    """The newest ``checkpoint-N`` folder in ``checkpoint_dir``, or ``None``."""
    from transformers.trainer_utils import get_last_checkpoint

    d = Path(checkpoint_dir)
    return get_last_checkpoint(str(d)) if d.is_dir() else None


def build_trainer(model, tokenizer, examples: list[Example], settings: SFTSettings, output_dir: str,
                  checkpointing: bool = False, callbacks: list | None = None, **config):
    """The ``SFTTrainer`` that :func:`sft` trains with, built but not run.

    ``output_dir`` is where the trainer writes (checkpoints every ``save_steps`` when
    ``checkpointing``, nothing otherwise). ``config`` overrides ``SFTConfig`` fields, for tests that
    compare against another setting (e.g. ``completion_only_loss=False``); :func:`sft` passes none.
    The tokenizer is left padding on the right, as training needs; :func:`sft` sets it back to the left
    once training is done. ``trainer.get_train_dataloader()`` yields the exact batches training sees.
    """
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    ds = Dataset.from_dict(to_prompt_completion(examples))
    peft_config = None
    if settings.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=0.0,
                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                 "up_proj", "down_proj"], task_type="CAUSAL_LM")
    save = {"save_strategy": "no"}
    if checkpointing:
        save = {"save_strategy": "steps", "save_steps": settings.save_steps or max(1, settings.steps // 10),
                "save_total_limit": 1, "save_only_model": False}
    cfg = SFTConfig(**{
        **dict(
            output_dir=output_dir, max_steps=settings.steps, per_device_train_batch_size=settings.batch_size,
            learning_rate=settings.lr, lr_scheduler_type="cosine", warmup_steps=max(1, int(settings.warmup_ratio * settings.steps)),
            weight_decay=settings.weight_decay, logging_steps=max(1, settings.steps // 20), **save,
            report_to="none", seed=settings.seed, data_seed=settings.seed, disable_tqdm=True,
            dataloader_num_workers=0, max_length=512, packing=False, completion_only_loss=True,
            dataset_num_proc=None,
            bf16=False, fp16=False,
            # TRL turns activation checkpointing on by default (memory for compute: the forward pass runs
            # twice); the lab's models are tiny, and bench/sft.py measured it as most of TRL's overhead
            activation_checkpointing=False,
        ),
        **config,
    })
    tokenizer.padding_side = "right"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        trainer = SFTTrainer(model=model, args=cfg, train_dataset=ds, processing_class=tokenizer,
                             peft_config=peft_config, callbacks=list(callbacks or []))
    trainer.remove_callback(PrinterCallback)  # we report progress ourselves
    return trainer


def sft(model, tokenizer, examples: list[Example], settings: SFTSettings,
        on_step: Callable[[int, float | None], None] | None = None,
        checkpoint_dir: str | os.PathLike | None = None, callbacks: list | None = None):
    """Fine-tune ``model`` on ``examples`` with TRL and return the trained model.

    With ``settings.lora`` the model is wrapped in a PEFT LoRA adapter on the attention and MLP
    projections, and the returned model is the ``PeftModel`` (call ``merge_and_unload`` to fold it in).
    ``on_step(step, loss)`` is called after every optimizer step (``loss`` on logging steps).
    With ``checkpoint_dir`` training saves checkpoints there and resumes from the newest one (see the
    module docstring); the folder is left for the caller to remove once the model is saved.
    ``callbacks`` are extra ``transformers.TrainerCallback`` objects (e.g. one that stops early).
    """
    from transformers import TrainerCallback

    if not examples:
        raise UserError("no training examples (the data is empty)")
    cols = to_prompt_completion(examples)
    resume = None
    if checkpoint_dir is not None:
        ckpt = Path(checkpoint_dir)
        key = json.loads(json.dumps(_run_key(model, cols, settings)))
        key_path = ckpt / "run.json"
        resume = last_checkpoint(ckpt)
        if key_path.exists():
            if json.loads(key_path.read_text(encoding="utf-8")) != key:
                raise UserError(f"{ckpt} holds checkpoints of a run with other data, settings or starting model; "
                                "delete it to start over, or rerun with the same options to resume")
        elif resume is not None:
            raise UserError(f"{ckpt} holds checkpoints without run.json; delete it to start over")
        else:
            atomic_write_json(key_path, key)

    class _Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if on_step and logs and "loss" in logs:
                on_step(state.global_step, float(logs["loss"]))

        def on_step_end(self, args, state, control, **kw):
            if on_step:
                on_step(state.global_step, None)

    with (tempfile.TemporaryDirectory(prefix="sftlens-sft-") if checkpoint_dir is None
          else contextlib.nullcontext(str(checkpoint_dir))) as work_dir:
        trainer = build_trainer(model, tokenizer, examples, settings, work_dir,
                                checkpointing=checkpoint_dir is not None,
                                callbacks=[_Progress(), *(callbacks or [])])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.train(resume_from_checkpoint=resume)
        tokenizer.padding_side = "left"
        trained = trainer.model
    trained.eval()
    return trained
