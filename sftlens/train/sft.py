"""Supervised fine-tuning through TRL's ``SFTTrainer``: full or LoRA (PEFT), loss on the completion.

Examples become TRL's *prompt-completion* format (``prompt_text`` / ``completion_text`` + EOS), so
TRL masks the prompt and trains on the steps and the answer only.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from typing import Callable

from ..core.format import completion_text, prompt_text
from ..core.record import Example


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


def to_prompt_completion(examples: list[Example]) -> dict[str, list[str]]:
    """TRL's prompt-completion columns (TRL appends the EOS token to each completion itself)."""
    return {"prompt": [prompt_text(e) for e in examples], "completion": [completion_text(e) for e in examples]}


def sft(model, tokenizer, examples: list[Example], settings: SFTSettings,
        on_step: Callable[[int, float | None], None] | None = None):
    """Fine-tune ``model`` on ``examples`` with TRL and return the trained model.

    With ``settings.lora`` the model is wrapped in a PEFT LoRA adapter on the attention and MLP
    projections, and the returned model is the ``PeftModel`` (call ``merge_and_unload`` to fold it in).
    ``on_step(step, loss)`` is called after every optimizer step (``loss`` on logging steps).
    """
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    if not examples:
        raise ValueError("sft: no training examples")
    cols = to_prompt_completion(examples)
    ds = Dataset.from_dict(cols)
    peft_config = None
    if settings.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=0.0,
                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                 "up_proj", "down_proj"], task_type="CAUSAL_LM")

    class _Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if on_step and logs and "loss" in logs:
                on_step(state.global_step, float(logs["loss"]))

        def on_step_end(self, args, state, control, **kw):
            if on_step:
                on_step(state.global_step, None)

    with tempfile.TemporaryDirectory(prefix="sftlens-sft-") as tmp:
        cfg = SFTConfig(
            output_dir=tmp, max_steps=settings.steps, per_device_train_batch_size=settings.batch_size,
            learning_rate=settings.lr, lr_scheduler_type="cosine", warmup_steps=max(1, int(settings.warmup_ratio * settings.steps)),
            weight_decay=settings.weight_decay, logging_steps=max(1, settings.steps // 20), save_strategy="no",
            report_to="none", seed=settings.seed, data_seed=settings.seed, disable_tqdm=True,
            dataloader_num_workers=0, max_length=512, packing=False, completion_only_loss=True,
            dataset_num_proc=None,
            bf16=False, fp16=False,
        )
        tokenizer.padding_side = "right"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            trainer = SFTTrainer(model=model, args=cfg, train_dataset=ds, processing_class=tokenizer,
                                 peft_config=peft_config, callbacks=[_Progress()])
            trainer.remove_callback(PrinterCallback)  # we report progress ourselves
            trainer.train()
        tokenizer.padding_side = "left"
        trained = trainer.model
    trained.eval()
    return trained
