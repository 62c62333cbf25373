"""Lab presets: how big the world, the models and the training runs are.

``micro`` exists for tests (a few minutes on 2 cores, numbers are noise); ``quick`` is what ``make
lab`` runs (one seed: exploratory); ``standard`` runs quick's sizes over five seeds and gives the
verdicts the README quotes. The maze worlds adapt these sizes (:mod:`sftlens.lab.worlds`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ..tasks.shop import ShopConfig
from ..train.grpo import GRPOSettings
from ..train.pretrain import PretrainConfig
from ..train.sft import SFTSettings


@dataclass
class Preset:
    """Everything that sizes a lab run; stored in ``DIR/config.json`` so a resume can check it."""

    name: str
    world: ShopConfig
    n_pretrain: int
    n_train: int
    n_test: int
    n_variant: int
    fact_repeats: int           # how often each fact sentence appears in the pretraining text
    probe_repeats: int          # how often each fact-probe Q/A appears in the pretraining text
    size: str
    pretrain: PretrainConfig
    sft: SFTSettings
    seeds: tuple[int, ...] = (0,)      # seeds a run uses unless --seed/--seeds says otherwise
    per_seed: str | None = None        # the preset each seed of a several-seed run uses (default: this one)
    claims: list[str] | None = None   # claim ids to test (None: every registered claim); they pick the conditions
    c10_k: int = 1000           # size of the curated / random subsets (C10)
    faith_n: int = 150          # test problems the faithfulness battery (C2) runs on, per model
    c9_size: str = "small"      # the larger base proxy-tuning steers (C9), a size of sftlens.models.tiny
    max_new_tokens: int = 96
    max_positions: int = 256    # the model's context: prompt plus completion
    gen_batch: int = 128
    ig_batch: int = 16
    bootstrap: int = 2000
    # reinforcement learning (C7): TRL GRPO settings of every GRPO-trained condition, the fresh problems whose
    # pass rates (profile_k samples each) under the start model set the difficulty bands
    grpo: GRPOSettings = field(default_factory=GRPOSettings)
    rl_pool: int = 1000
    profile_k: int = 8
    rl_band: int | None = None  # at most this many problems per band (every band trains on as many: sftlens.lab.rl)

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, Preset] = {
    "micro": Preset(
        name="micro", world=ShopConfig(n_items=10), n_pretrain=300, n_train=300, n_test=40, n_variant=20,
        fact_repeats=10, probe_repeats=2, size="nano",
        pretrain=PretrainConfig(steps=120, batch_size=32, lr=3e-3, warmup=10),
        sft=SFTSettings(steps=15, batch_size=32, lr=3e-3), max_new_tokens=72, bootstrap=500, c10_k=100, faith_n=20,
        c9_size="tiny",
        # C7 at the least that runs GRPO end to end: a nano model solves nothing, so only the too-hard bands train
        grpo=GRPOSettings(steps=2, batch_size=8, num_generations=4, lr=1e-3, max_completion_length=72),
        rl_pool=16, profile_k=2,
    ),
    # n_test / n_variant sized from the power plan: evaluation costs seconds per model, and C8 needs at
    # least 20 solved 3-item sources among its n_minus_1 variants (at 300 / 150 SFT on correct traces
    # solved 19); more test problems do not help claims whose noise is between seeds (C3, C4, C10)
    "quick": Preset(
        name="quick", world=ShopConfig(n_items=24), n_pretrain=3000, n_train=4000, n_test=600, n_variant=300,
        fact_repeats=20, probe_repeats=5, size="tiny",
        pretrain=PretrainConfig(steps=1200, batch_size=64, lr=3e-3, warmup=50),
        # SFT runs to the plateau of SFT on correct traces, measured on the shop (scripts/sft_curve.sh, two seeds):
        # seed 1 reached 10% of the test problems at 300 steps, 46% at 450, 70% at 600 and 96% at 900 (seed 4:
        # 70%, 94%, 98% at 300/600/900); the same tokens as 600 x 32 gave 38%, lr 1.5e-2 at 300 steps 16%. At
        # 300 steps every condition sat mid-curve, so the claims compared how fast conditions learn and one
        # seed's model learned four times what another's did. Worlds that plateau sooner set their own.
        sft=SFTSettings(steps=900, batch_size=64, lr=6e-3),
        # C7: chosen by its controls alone (the planted shortcut detected, two matched-band seeds alike), before
        # the too-hard run was trained, from the 900-step start model (seed 0, solved band of 446 problems, every
        # band 64 problems of a 4,000-problem pool, 120 steps), planted - matched / matched_b - matched in points:
        # lr 1e-4 -1.8 / -1.1; 2e-4 -6.5 [90%: -9.4, -3.8] / -1.1; 3e-4 -32.1 [-35.9, -28.3] / -2.5 [-5.2, +0.4];
        # 3e-4 x 60 steps -0.4 / -4.7; DAPO dynamic sampling at 1e-4 and 2e-4: -4.0 and -4.3 (the constant answer
        # is too rare in samples for refilled batches to find). Only 3e-4 x 120 detects the planted shortcut.
        grpo=GRPOSettings(steps=120, batch_size=32, num_generations=8, lr=3e-4),
        # 87 of 4,000 fresh problems are too hard (pass@8 = 0) for seed 0's start model (20 of 1,000 before)
        rl_pool=4000, rl_band=64,
    ),
}

# The preset whose verdicts the README quotes: quick's sizes, five seeds (world, initialisation and data
# order all vary), pooled by a two-level bootstrap.
# Each seed is exactly a quick run (DIR/seed_0 of standard equals `make lab`'s run).
PRESETS["standard"] = replace(PRESETS["quick"], name="standard", seeds=(0, 1, 2, 3, 4), per_seed="quick")


def get_preset(name: str, seed: int = 0, claims: list[str] | None = None) -> Preset:
    """A copy of the named preset with every seed set from ``seed`` (and, with ``claims``, testing only
    those claims: the run then trains only what they and their controls need)."""
    import copy

    if name not in PRESETS:
        raise ValueError(f"unknown preset '{name}' (valid: {', '.join(PRESETS)})")
    p = copy.deepcopy(PRESETS[name])
    if claims is not None:
        p.claims = list(claims)
    p.world.seed = seed
    p.pretrain.seed = seed
    p.sft.seed = seed
    p.grpo.seed = seed
    return p
