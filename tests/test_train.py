"""SFT through TRL: completion-only loss, full and LoRA, and the `sftlens train sft` command."""

import json

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
