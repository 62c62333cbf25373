"""GRPO through TRL's ``GRPOTrainer`` (full or LoRA), with DAPO's dynamic sampling and lone-success logs.

Examples become TRL's plain-text prompts (:func:`~sftlens.core.format.prompt_text`, as SFT sees them)
plus an ``id`` column that the reward functions (:mod:`sftlens.metrics.rewards`) use to find each
completion's example. TRL samples ``num_generations`` (G) completions per prompt, scores them, and
normalises each reward within its group: ``(r - mean) / (std + 1e-4)`` under ``scale_rewards="group"``.

**Which std.** TRL's ``nanstd`` applies Bessel's correction (the *sample* std, divisor G - 1). A lone
success in a group of G binary rewards therefore gets the advantage ``(G - 1) / sqrt(G)``, not the
``sqrt(G - 1)`` of the population std (divisor G) that Cheng et al. write; the two differ by the
factor ``sqrt((G - 1) / G)``: ``(G - 1) / sqrt(G) = sqrt(G - 1) * sqrt((G - 1) / G)``. See
:func:`lone_success_advantage`. The trainer (:class:`~sftlens.train._grpo_trainer.SftlensGRPOTrainer`)
logs the advantage TRL really gave each lone success (``lone_success_advantages`` in the log history):
a completion whose total reward is above its group's lowest while the G - 1 others all match it
(within ``zero_std_epsilon``). TRL divides by ``std + 1e-4``, so a lone success by a small margin d
(a format or step-validity reward alone) gets a little less: ``(G - 1)/G * d / (d/sqrt(G) + 1e-4)``,
2.44 instead of 2.47 for G = 8 and d = 0.02.

**Dynamic sampling (DAPO, Yu et al. 2025).** A group whose rewards all match carries no signal (its
advantages are zero, or noise when the rewards differ by float round-off). TRL 1.16 has no option to
drop such groups (huggingface/trl#3708 is open; the experimental async trainer needs vLLM), and a
callback cannot change a batch, so the trainer overrides
``_generate_and_score_completions``: it drops every group whose reward std is below
``zero_std_epsilon`` (never ``== 0``: 1.0 and 1.0 + 1e-9 are one reward) and samples more prompts,
a seeded order of the training set of its own, until the batch is full again or ``max_rounds``
generation rounds were spent; a batch still short is topped up with dropped groups (zero advantage)
and the shortfall logged, so TRL's batch shapes hold. Advantages are TRL's, computed in the round
each group was sampled (the same as in one batch under ``group`` and ``none`` scaling; under
``batch`` scaling the std is that round's). ``frac_reward_zero_std`` is logged with the same epsilon,
over every group sampled before the filter; TRL's other metrics (``reward``, ``completions/...``)
average over every round too.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..core.errors import UserError
from ..core.format import prompt_text
from ..core.record import Example

if TYPE_CHECKING:
    import torch

SCALE_REWARDS = ("group", "batch", "none")
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")


@dataclass
class GRPOSettings:
    """What :func:`grpo` needs beyond the model, data and rewards. Names follow TRL's ``GRPOConfig``
    where TRL has the option; ``batch_size`` is completions per optimizer step (a multiple of G)."""

    steps: int = 100
    batch_size: int = 32
    num_generations: int = 8
    lr: float = 1e-6
    beta: float = 0.0
    scale_rewards: str = "group"
    loss_type: str = "dapo"
    max_completion_length: int = 96
    temperature: float = 0.8
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    seed: int = 0
    dynamic_sampling: bool = False
    zero_std_epsilon: float = 1e-6
    max_rounds: int = 4


def lone_success_advantage(g: int, sample_std: bool = True) -> float:
    """The group-normalised advantage of the one success among ``g`` binary rewards (no epsilon).

    >>> round(lone_success_advantage(4, sample_std=False), 6), round(math.sqrt(3), 6)
    (1.732051, 1.732051)
    >>> lone_success_advantage(4)  # TRL's Bessel-corrected std: (G - 1) / sqrt(G)
    1.5
    """
    mean = 1 / g
    var = ((1 - mean) ** 2 + (g - 1) * mean ** 2) / (g - 1 if sample_std else g)
    return (1 - mean) / math.sqrt(var)


def zero_std_groups(rewards: torch.Tensor, g: int, epsilon: float) -> torch.Tensor:
    """One bool per group of ``g`` consecutive rewards: its std (sample, as TRL) is below ``epsilon``.

    >>> import torch
    >>> zero_std_groups(torch.tensor([1.0, 1.0 + 1e-9, 0.0, 1.0], dtype=torch.float64), 2, 1e-6).tolist()
    [True, False]
    """
    return rewards.view(-1, g).std(dim=1) < epsilon


def lone_success_rows(rewards: torch.Tensor, g: int, epsilon: float) -> torch.Tensor:
    """Per row: it is the only one of its group whose reward is above the group's lowest by ``epsilon``
    or more (one success, G - 1 matching failures).

    >>> import torch
    >>> lone_success_rows(torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.1]), 4, 1e-6).tolist()
    [False, True, False, False, False, False, False, False]
    """
    grouped = rewards.view(-1, g)
    above = grouped > grouped.min(dim=1, keepdim=True).values + epsilon
    return (above & (above.sum(dim=1, keepdim=True) == 1)).view(-1)


# how each per-row tensor of TRL's batch is padded when rows of several generation rounds are merged
_LEFT = {"prompt_ids": None, "prompt_mask": 0}
_RIGHT = {"completion_ids": None, "completion_mask": 0, "old_per_token_logps": 0.0, "ref_per_token_logps": 0.0,
          "sampling_per_token_logps": 0.0, "tool_mask": 1}


def merge_rows(parts: list[tuple[dict, torch.Tensor]], pad_id: int) -> dict:
    """The rows ``idx`` of each of TRL's generation outputs ``(out, idx)``, as one output: prompts
    padded on the left, completions on the right, columns that are padding in every row removed, and
    ``num_items_in_batch`` recounted from the completion (and tool) masks. Keys TRL sets only for
    images or vLLM are refused."""
    import torch

    first = parts[0][0]
    known = set(_LEFT) | set(_RIGHT) | {"advantages", "num_items_in_batch"}
    extra = sorted(k for out, _ in parts for k in out if k not in known and out[k] is not None)
    if extra:
        raise NotImplementedError(f"dynamic sampling cannot merge TRL's '{extra[0]}' (images, tools or vLLM)")
    merged: dict = {}
    for key in first:
        if key == "num_items_in_batch":
            continue
        if first[key] is None or key == "advantages":
            merged[key] = None if first[key] is None else torch.cat([o[key][i] for o, i in parts])
            continue
        side = "left" if key in _LEFT else "right"
        value = {**_LEFT, **_RIGHT}[key]
        value = pad_id if value is None else value
        width = max(o[key].size(1) for o, _ in parts)
        rows = []
        for o, i in parts:
            t = o[key][i]
            gap = width - t.size(1)
            rows.append(torch.nn.functional.pad(t, (gap, 0) if side == "left" else (0, gap), value=value))
        merged[key] = torch.cat(rows)
    keep_p = merged["prompt_mask"].any(dim=0)
    start = int(keep_p.nonzero()[0]) if keep_p.any() else 0
    for key in ("prompt_ids", "prompt_mask"):
        merged[key] = merged[key][:, start:]
    keep_c = merged["completion_mask"].any(dim=0)
    end = int(keep_c.nonzero()[-1]) + 1 if keep_c.any() else 1
    for key in _RIGHT:
        if merged.get(key) is not None and merged[key].dim() == 2:
            merged[key] = merged[key][:, :end]
    mask = merged["completion_mask"] * (merged["tool_mask"] if merged.get("tool_mask") is not None else 1)
    merged["num_items_in_batch"] = mask.sum()
    return {k: merged[k] for k in first}


def check_settings(s: GRPOSettings) -> None:
    """Every setting TRL would reject (or silently misuse) as one sentence naming its option."""
    for option, value, least in (("--steps", s.steps, 1), ("--batch-size", s.batch_size, 1),
                                 ("--num-generations", s.num_generations, 2), ("--lora-r", s.lora_r, 1),
                                 ("--max-completion-length", s.max_completion_length, 1),
                                 ("--max-rounds", s.max_rounds, 1)):
        if value < least:
            raise UserError(f"{option} must be at least {least}, got {value}")
    if s.batch_size % s.num_generations:
        raise UserError(f"--batch-size {s.batch_size} must be a multiple of --num-generations {s.num_generations} "
                        "(each prompt's completions are scored as one group)")
    if s.scale_rewards not in SCALE_REWARDS:
        raise UserError(f"--scale-rewards '{s.scale_rewards}': unknown (valid: {', '.join(SCALE_REWARDS)})")
    if s.loss_type not in LOSS_TYPES:
        raise UserError(f"--loss-type '{s.loss_type}': unknown (valid: {', '.join(LOSS_TYPES)})")
    for option, value in (("--lr", s.lr), ("--temperature", s.temperature), ("--zero-std-epsilon", s.zero_std_epsilon)):
        if not (math.isfinite(value) and value > 0):
            raise UserError(f"{option} must be a number greater than 0, got {value}")
    if not (math.isfinite(s.beta) and s.beta >= 0):
        raise UserError(f"--beta must be a number at least 0, got {s.beta}")


def build_trainer(model, tokenizer, examples: list[Example], reward_funcs: list[Callable],
                  reward_weights: list[float] | None, settings: GRPOSettings, output_dir: str,
                  callbacks: list | None = None, **config):
    """The :class:`~sftlens.train._grpo_trainer.SftlensGRPOTrainer` that :func:`grpo` trains with,
    built but not run. ``reward_funcs`` are TRL reward functions (see :mod:`sftlens.metrics.rewards`;
    a test may pass its own); ``config`` overrides ``GRPOConfig`` fields."""
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import GRPOConfig

    from ._grpo_trainer import SftlensGRPOTrainer

    check_settings(settings)
    ds = Dataset.from_dict({"prompt": [prompt_text(e) for e in examples], "id": [e.id for e in examples]})
    peft_config = None
    if settings.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=0.0,
                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                 "up_proj", "down_proj"], task_type="CAUSAL_LM")
    cfg = GRPOConfig(**{
        **dict(
            output_dir=output_dir, max_steps=settings.steps, per_device_train_batch_size=settings.batch_size,
            num_generations=settings.num_generations, learning_rate=settings.lr, beta=settings.beta,
            scale_rewards=settings.scale_rewards, loss_type=settings.loss_type,
            max_completion_length=settings.max_completion_length, temperature=settings.temperature,
            reward_weights=reward_weights, logging_steps=1, save_strategy="no", report_to="none",
            seed=settings.seed, data_seed=settings.seed, disable_tqdm=True, dataloader_num_workers=0,
            bf16=False, fp16=False, activation_checkpointing=False,  # tiny models: no memory to save
        ),
        **config,
    })
    tokenizer.padding_side = "left"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        trainer = SftlensGRPOTrainer(model=model, reward_funcs=list(reward_funcs), args=cfg, train_dataset=ds,
                                     processing_class=tokenizer, peft_config=peft_config,
                                     callbacks=list(callbacks or []), dynamic_sampling=settings.dynamic_sampling,
                                     zero_std_epsilon=settings.zero_std_epsilon, max_rounds=settings.max_rounds)
    trainer.remove_callback(PrinterCallback)  # we report progress ourselves
    return trainer


def grpo(model, tokenizer, examples: list[Example], reward_funcs: list[Callable], reward_weights: list[float] | None,
         settings: GRPOSettings, on_step: Callable[[int, dict], None] | None = None,
         callbacks: list | None = None):
    """Train ``model`` with GRPO on ``examples``' prompts; returns ``(model, log_history)``.

    ``log_history`` is TRL's per-step log (``reward``, ``reward_std``, ``frac_reward_zero_std``,
    ``rewards/NAME/mean``, ``lone_success_advantages``, ``dynamic_sampling/...``, ``loss``, ...).
    With ``settings.lora`` the returned model is the ``PeftModel``. ``on_step(step, logs)`` is called
    after every logged optimizer step.
    """
    from transformers import TrainerCallback

    if not examples:
        raise UserError("no training examples (the data is empty)")

    class _Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if on_step and logs and "loss" in logs:
                on_step(state.global_step, logs)

    with tempfile.TemporaryDirectory(prefix="sftlens-grpo-") as work_dir:
        trainer = build_trainer(model, tokenizer, examples, reward_funcs, reward_weights, settings, work_dir,
                                callbacks=[_Progress(), *(callbacks or [])])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.train()
        trained = trainer.model
    trained.eval()
    return trained, [dict(h) for h in trainer.state.log_history]
