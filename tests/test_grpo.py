"""GRPO through TRL: lone-success advantages, DAPO dynamic sampling, and the `sftlens train grpo` command.

Bad command lines of `train grpo` (a missing band, an unknown reward, ...) are rows of tests/test_bad_inputs.py.
"""

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sftlens.cli import main
from sftlens.core.record import write_jsonl
from sftlens.train.grpo import GRPOSettings, build_trainer, grpo, zero_std_groups

G = 4


def _fresh(path):
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def test_lone_success_advantage_is_sqrt_g_minus_1_up_to_trls_sample_std(tiny_saved, world_splits):
    """Even groups: one success (1.0) among G; odd groups: two. Only the lone successes are logged.

    TRL's group std is the *sample* std (Bessel's correction, ``trl.trainer.utils.nanstd``), so a lone
    success gets ``(1 - 1/G) / (s + 1e-4)`` with ``s = 1/sqrt(G)``: ``(G - 1)/sqrt(G)``, not the
    population-std ``sqrt(G - 1)`` of Cheng et al.; the two differ by ``sqrt((G - 1)/G)``. The test
    expects TRL's value and recovers ``sqrt(G - 1)`` from it with that factor.
    """
    _, sp = world_splits
    examples = sp.train[:16]

    def controlled(prompts, completions, id, **kwargs):
        out = []
        for i in range(len(completions)):
            group, k = divmod(i, G)
            out.append(1.0 if k == 0 or (group % 2 == 1 and k == 1) else 0.0)
        return out

    model, tok = _fresh(tiny_saved)
    settings = GRPOSettings(steps=2, batch_size=4 * G, num_generations=G, max_completion_length=6, lr=1e-3)
    _, history = grpo(model, tok, examples, [controlled], None, settings)
    lone = [a for h in history if "loss" in h for a in h["lone_success_advantages"]]
    assert len(lone) == 2 * 2  # two lone-success groups in each of the two steps, the two-success groups not
    sample_std = math.sqrt((G * (1 / G) * (1 - 1 / G)) / (G - 1))  # Bessel-corrected std of one 1 and G-1 zeros
    trl_value = (1 - 1 / G) / (sample_std + 1e-4)
    for a in lone:
        assert a == pytest.approx(trl_value, rel=1e-5)
        assert a * math.sqrt(G / (G - 1)) == pytest.approx(math.sqrt(G - 1), rel=1e-3)
        assert a != pytest.approx(math.sqrt(G - 1), rel=1e-2)  # TRL does not use the population std


def test_zero_std_is_an_epsilon_not_an_exact_zero():
    rewards = torch.tensor([1.0, 1.0 + 1e-9, 0.0, 1.0, 0.5, 0.5], dtype=torch.float64)
    assert (rewards.view(-1, 2).std(dim=1) == 0).tolist() == [False, False, True]  # why `== 0` is not enough
    assert zero_std_groups(rewards, 2, 1e-6).tolist() == [True, False, True]


@pytest.mark.parametrize("dynamic", [False, True])
def test_dynamic_sampling_drops_near_constant_groups_and_refills_the_batch(tiny_saved, world_splits, tmp_path, dynamic):
    """Half the prompts get rewards 1.0 and 1.0 + 1e-6 (distinct in float32: TRL's own zero-std test,
    ``isclose(std, 0)``, does not see them as constant, and they get advantages of about ±0.005); the
    other half one success per group (advantages ±0.5 and 1.5). With dynamic sampling every trained
    group is informative and the batch is full; without it, the near-constant groups are trained on."""
    _, sp = world_splits
    examples = sp.train[:16]
    flat = {e.id for e in examples[::2]}

    def reward(prompts, completions, id, **kwargs):
        return [(1.0 + 1e-6 * (i % 2)) if key in flat else float(i % G == 0) for i, key in enumerate(id)]

    model, tok = _fresh(tiny_saved)
    settings = GRPOSettings(steps=3, batch_size=2 * G, num_generations=G, max_completion_length=6, lr=1e-3,
                            dynamic_sampling=dynamic, max_rounds=8)
    trainer = build_trainer(model, tok, examples, [reward], None, settings, str(tmp_path))
    trained_on = []
    prepare = trainer._prepare_inputs
    trainer._prepare_inputs = lambda batch: trained_on.append(prepare(batch)) or trained_on[-1]
    trainer.train()
    advantages = torch.cat([b["advantages"] for b in trained_on]).abs()
    steps = [h for h in trainer.state.log_history if "loss" in h]
    assert all(len(b["advantages"]) == settings.batch_size for b in trained_on)
    assert sum(h["frac_reward_zero_std"] for h in steps) > 0  # near-constant groups were sampled and counted
    if dynamic:
        assert advantages.min() > 0.1
        assert max(h["dynamic_sampling/rounds"] for h in steps) > 1 and all(
            h["dynamic_sampling/short_groups"] == 0 for h in steps)
    else:
        assert advantages.min() < 0.01


@pytest.fixture(scope="module")
def profiled(trained_nano, tmp_path_factory):
    """The memorised and unseen problems, profiled against ``trained_nano`` by `sftlens data profile`,
    and the band most of them fell in."""
    d = tmp_path_factory.mktemp("grpo_data")
    data = d / "data.jsonl"
    write_jsonl(data, trained_nano.seen + trained_nano.unseen)
    prof = d / "profiled.jsonl"
    assert main(["data", "profile", str(data), str(prof), "--model", str(trained_nano.path), "--k", "4",
                 "--quiet"]) == 0
    bands = [json.loads(line)["meta"]["band"] for line in prof.read_text().splitlines()]
    return prof, max(("too_easy", "learnable"), key=bands.count), bands


def _train(trained_nano, profiled, out, *options):
    prof, band, _ = profiled
    return main(["train", "grpo", "--model", str(trained_nano.path), "--data", str(prof), "--keep-band", band,
                 "--out", str(out), "--steps", "2", "--num-generations", str(G), "--batch-size", str(2 * G),
                 "--max-completion-length", "48", "--temperature", "1.0", "--lr", "1e-3",
                 "--reward", "correct=1,format=0.1", "--dynamic-sampling", *options])


def test_train_grpo_command_writes_a_trained_model(trained_nano, profiled, tmp_path):
    _, band, bands = profiled
    out = tmp_path / "grpo"
    assert _train(trained_nano, profiled, out) == 0
    info = json.loads((out / "sftlens.json").read_text())
    assert info["kind"] == "grpo" and info["examples"] == bands.count(band) and info["keep_band"] == band
    log = [json.loads(line) for line in (out / "grpo_log.jsonl").read_text().splitlines()]
    assert [h["step"] for h in log if "loss" in h] == [1, 2]
    assert all("frac_reward_zero_std" in h and "rewards/correct/mean" in h for h in log if "loss" in h)
    start = AutoModelForCausalLM.from_pretrained(trained_nano.path).state_dict()
    tuned = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert start.keys() == tuned.keys()
    assert any(not torch.equal(start[k], tuned[k]) for k in start)


def test_train_grpo_lora_writes_an_adapter_that_moves_the_model(trained_nano, profiled, tmp_path):
    from sftlens.core.format import prompt_text
    from sftlens.models.lm import load_lm

    out = tmp_path / "adapter"
    assert _train(trained_nano, profiled, out, "--lora", "--lora-r", "4", "--lr", "1e-2") == 0
    assert (out / "adapter_config.json").exists() and not (out / "model.safetensors").exists()
    lm = load_lm(str(trained_nano.path), adapter=str(out))
    ids = torch.tensor([lm.encode(prompt_text(trained_nano.seen[0]))])
    with torch.no_grad():
        tuned = lm.model(ids).logits
        with lm.model.disable_adapter():
            base = lm.model(ids).logits
    assert not torch.allclose(tuned, base)  # LoRA's B starts at zero: a change means the adapter trained


def test_train_grpo_help_names_trls_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "grpo", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for option in ("--num-generations", "--scale-rewards", "--loss-type", "--beta", "--lr", "--steps",
                   "--max-completion-length", "--temperature", "--keep-band", "--reward", "--dynamic-sampling"):
        assert option in text
