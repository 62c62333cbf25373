"""The ``GRPOTrainer`` subclass behind :mod:`sftlens.train.grpo` (imports TRL; see that module's docstring).

It changes one thing in TRL's loop, the generation batch, and only when ``dynamic_sampling`` is on:
groups whose rewards all match are dropped and more prompts are sampled in their place. Whether on
or off, it logs ``frac_reward_zero_std`` by ``zero_std_epsilon`` and the advantage TRL gave every
lone success of the groups it trains on.
"""

from __future__ import annotations

import torch
from trl import GRPOTrainer

from .grpo import lone_success_rows, merge_rows, zero_std_groups


class SftlensGRPOTrainer(GRPOTrainer):
    """TRL's ``GRPOTrainer`` plus DAPO dynamic sampling and lone-success logging (one process only)."""

    def __init__(self, *args, dynamic_sampling: bool = False, zero_std_epsilon: float = 1e-6,
                 max_rounds: int = 4, **kwargs):
        super().__init__(*args, **kwargs)
        if self.accelerator.num_processes != 1:
            raise NotImplementedError("sftlens' GRPO trainer runs in one process (its group filter and logs see "
                                      "one process's rows)")
        self.dynamic_sampling = dynamic_sampling
        self.zero_std_epsilon = zero_std_epsilon
        self.max_rounds = max_rounds
        self._refill_rng = torch.Generator().manual_seed(self.args.seed)
        self._refill_order: list[int] = []
        self._last_rewards: torch.Tensor | None = None
        self._sampled: list[torch.Tensor] = []
        self._lone: list[float] = []

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        # the total reward as TRL forms it for "sum_then_normalize": weighted, NaN (no reward) as 0
        self._last_rewards = (rewards_per_func * self.reward_weights.to(rewards_per_func.device)).nansum(dim=1)
        return rewards_per_func

    def _score_round(self, inputs):
        """One round of TRL's generation and scoring, with our zero-std judgement of its groups."""
        out = super()._generate_and_score_completions(inputs)
        rewards = self._last_rewards.detach().cpu()
        constant = zero_std_groups(rewards, self.num_generations, self.zero_std_epsilon)
        # TRL judged "zero std" with torch.isclose(std, 0) (|std| <= 1e-8) in this round; the step logs ours
        self._metrics["train"]["frac_reward_zero_std"].pop()
        self._sampled.append(constant)
        return out, rewards, constant

    def _refill(self, n_groups: int) -> list[dict]:
        """``n_groups`` prompts, each ``num_generations`` times, in a seeded order of the training set."""
        rows = []
        for _ in range(n_groups):
            if not self._refill_order:
                self._refill_order = torch.randperm(len(self.train_dataset), generator=self._refill_rng).tolist()
            row = self.train_dataset[self._refill_order.pop()]
            rows += [dict(row) for _ in range(self.num_generations)]
        return rows

    def _generate_and_score_completions(self, inputs):
        if not self.model.training:
            return super()._generate_and_score_completions(inputs)
        g = self.num_generations
        self._sampled = []  # every group's zero-std verdict, over all rounds of this batch
        out, rewards, constant = self._score_round(inputs)
        if self.dynamic_sampling:
            wanted = len(inputs) // g
            kept, spare = [(out, rewards, ~constant)], [(out, rewards, constant)]
            n_kept, rounds = int((~constant).sum()), 1
            while n_kept < wanted and rounds < self.max_rounds:
                more, more_rewards, more_constant = self._score_round(self._refill(wanted - n_kept))
                kept.append((more, more_rewards, ~more_constant))
                spare.append((more, more_rewards, more_constant))
                n_kept += int((~more_constant).sum())
                rounds += 1
            parts, left = [], wanted
            for source in (kept, spare):  # informative groups first, then (if short) dropped ones
                for o, r, groups in source:
                    take = groups.nonzero().view(-1)[:left]
                    left -= len(take)
                    if len(take):
                        rows = (take.view(-1, 1) * g + torch.arange(g)).view(-1)
                        parts.append((o, r, rows))
            out = merge_rows([(o, rows) for o, _, rows in parts], self._tokenizer.pad_token_id)
            rewards = torch.cat([r[rows] for _, r, rows in parts])
            self._metrics["train"]["dynamic_sampling/rounds"].append(rounds)
            self._metrics["train"]["dynamic_sampling/short_groups"].append(max(0, wanted - n_kept))
        self._metrics["train"]["frac_reward_zero_std"].append(torch.cat(self._sampled).float().mean().item())
        lone = lone_success_rows(rewards, g, self.zero_std_epsilon)
        self._lone += out["advantages"].detach().cpu()[lone].tolist()
        return out

    def log(self, logs: dict, start_time=None) -> None:
        if self.model.training and "loss" in logs:
            logs["lone_success_advantages"] = self._lone
            self._lone = []
        super().log(logs, start_time)
