"""SFT through TRL: completion-only loss, full and LoRA, and the `sftlens train sft` command."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sftlens.cli import main
from sftlens.core.record import write_jsonl
from sftlens.models.lm import load_lm
from sftlens.train.sft import SFTSettings, sft


def _params(m):
    return {n: p.detach().clone() for n, p in m.named_parameters()}


def test_full_sft_changes_weights_and_lowers_loss(tiny_saved, world_splits):
    _, sp = world_splits
    tok = AutoTokenizer.from_pretrained(tiny_saved)
    model = AutoModelForCausalLM.from_pretrained(tiny_saved)
    before = _params(model)
    losses = []
    out = sft(model, tok, sp.train[:64], SFTSettings(steps=12, batch_size=16, lr=1e-2),
              on_step=lambda s, l: l is not None and losses.append(l))
    after = _params(out)
    assert any(not torch.equal(before[n], after[n]) for n in before)
    assert losses and losses[-1] < losses[0]


def test_lora_trains_only_the_adapter_and_round_trips(tiny_saved, world_splits, tmp_path):
    _, sp = world_splits
    tok = AutoTokenizer.from_pretrained(tiny_saved)
    model = AutoModelForCausalLM.from_pretrained(tiny_saved)
    base_w = {n: p.detach().clone() for n, p in model.named_parameters()}
    peft_model = sft(model, tok, sp.train[:32], SFTSettings(steps=4, batch_size=8, lr=1e-2, lora=True, lora_r=4))
    names = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    for n, p in peft_model.named_parameters():  # frozen base weights did not move
        key = n.replace("base_model.model.", "").replace(".base_layer", "")
        if "lora_" not in n and key in base_w:
            assert torch.equal(p.detach(), base_w[key])
    peft_model.save_pretrained(tmp_path / "adapter")
    lm = load_lm(str(tiny_saved), adapter=str(tmp_path / "adapter"))
    assert lm.name.endswith("adapter") and hasattr(lm.model, "disable_adapter")


def test_train_sft_command(tiny_saved, world_splits, tmp_path, capsys):
    _, sp = world_splits
    data = tmp_path / "train.jsonl"
    write_jsonl(data, sp.train[:32])
    out = tmp_path / "tuned"
    rc = main(["train", "sft", "--model", str(tiny_saved), "--data", str(data), "--out", str(out),
               "--steps", "3", "--batch-size", "8", "--lr", "1e-3"])
    assert rc == 0
    info = json.loads((out / "sftlens.json").read_text())
    assert info["examples"] == 32 and info["steps"] == 3
    assert load_lm(str(out)).identity != load_lm(str(tiny_saved)).identity
    assert main(["train", "sft", "--model", str(tmp_path / "nope"), "--data", str(data), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err


def _stop_at(step):
    """A TrainerCallback that stops training after ``step`` optimizer steps (an interruption)."""
    from transformers import TrainerCallback

    class Stop(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step >= step:
                control.should_training_stop = True

    return Stop()


def test_interrupted_sft_resumes_to_the_same_weights(tiny_saved, world_splits, tmp_path):
    _, sp = world_splits
    data = sp.train[:40]  # 5 batches per epoch: the stop falls inside the first epoch, the end in the second
    settings = SFTSettings(steps=8, batch_size=8, lr=1e-2, save_steps=3)

    def fresh():
        return AutoModelForCausalLM.from_pretrained(tiny_saved), AutoTokenizer.from_pretrained(tiny_saved)

    model, tok = fresh()
    whole = _params(sft(model, tok, data, settings, checkpoint_dir=tmp_path / "a"))

    model, tok = fresh()
    stopped = _params(sft(model, tok, data, settings, checkpoint_dir=tmp_path / "b", callbacks=[_stop_at(3)]))
    assert any(not torch.equal(stopped[n], whole[n]) for n in whole)  # it really stopped early
    assert (tmp_path / "b" / "checkpoint-3").is_dir()

    steps_seen = []
    model, tok = fresh()
    resumed = _params(sft(model, tok, data, settings, checkpoint_dir=tmp_path / "b",
                          on_step=lambda s, l: steps_seen.append(s)))
    assert min(steps_seen) == 4  # continued after the checkpoint, not from step 0
    assert all(torch.equal(resumed[n], whole[n]) for n in whole)


def test_resume_refuses_checkpoints_of_another_run(tiny_saved, world_splits, tmp_path):
    from sftlens.core.errors import UserError

    _, sp = world_splits
    model, tok = AutoModelForCausalLM.from_pretrained(tiny_saved), AutoTokenizer.from_pretrained(tiny_saved)
    sft(model, tok, sp.train[:16], SFTSettings(steps=2, batch_size=8, save_steps=1), checkpoint_dir=tmp_path / "c")
    model = AutoModelForCausalLM.from_pretrained(tiny_saved)
    with pytest.raises(UserError, match="other data, settings"):
        sft(model, tok, sp.train[:16], SFTSettings(steps=2, batch_size=8, lr=1e-3, save_steps=1),
            checkpoint_dir=tmp_path / "c")
