"""``sftlens drift``: relative weight change per parameter and per layer, for full models and LoRA adapters."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from sftlens.cli import main
from sftlens.core.errors import UserError
from sftlens.metrics.drift import model_drift, weight_drift


def _layers(result: dict) -> dict[str, float]:
    return {g["layer"]: g["drift"] for g in result["layers"]}


def test_a_model_against_itself_drifts_zero_and_a_trained_one_does_not(tiny_saved, trained_nano, tmp_path, capsys):
    shutil.copytree(tiny_saved, tmp_path / "copy")
    out = tmp_path / "same"
    assert main(["drift", str(tiny_saved), str(tmp_path / "copy"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| model.layers.0 | 0.000e+00 |" in printed and f"wrote {out}/drift.json" in printed
    same = json.loads((out / "drift.json").read_text())
    assert [p["drift"] for p in same["parameters"]] == [0.0] * len(same["parameters"])
    from transformers import AutoModelForCausalLM

    n_weights = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_saved).parameters())
    assert same["total"]["drift"] == 0.0 and same["total"]["numel"] == n_weights  # every weight, tied ones once
    assert (out / "drift.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| model.layers.1 |" in (out / "drift.md").read_text()
    # the same measure on a model that was trained: every layer moved
    trained = model_drift(str(tiny_saved), str(trained_nano.path))
    assert all(d > 1e-3 for d in _layers(trained).values())
    assert set(_layers(trained)) == {"model.embed_tokens", "model.layers.0", "model.layers.1", "model.norm"}


def test_one_perturbed_layer_drifts_alone(tiny_saved, tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_saved)
    name = "model.layers.1.mlp.up_proj.weight"
    w = dict(model.named_parameters())[name]
    layer_norm = math.sqrt(sum(p.detach().double().norm() ** 2 for n, p in model.named_parameters()
                               if n.startswith("model.layers.1.")))
    noise = torch.randn(w.shape, generator=torch.Generator().manual_seed(0))
    noise *= 0.1 * w.detach().norm() / noise.norm()  # ||dW|| = 0.1 ||W||
    with torch.no_grad():
        w += noise
    model.save_pretrained(tmp_path / "perturbed")
    r = model_drift(str(tiny_saved), str(tmp_path / "perturbed"))
    moved = {p["name"]: p["drift"] for p in r["parameters"] if p["drift"] > 0}
    assert list(moved) == [name] and moved[name] == pytest.approx(0.1, rel=1e-5)
    layers = _layers(r)
    assert layers.pop("model.layers.1") == pytest.approx(float(noise.double().norm()) / layer_norm, rel=1e-5)
    assert set(layers.values()) == {0.0}


def test_an_adapter_drifts_like_its_merged_model(tiny_saved, tmp_path, capsys):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_saved)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))  # random B: the adapter changes weights
    peft_model.save_pretrained(tmp_path / "adapter")
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_saved),
                                       tmp_path / "adapter").merge_and_unload()
    merged.save_pretrained(tmp_path / "merged")
    assert main(["drift", str(tiny_saved), "--adapter", str(tmp_path / "adapter"), "--out", str(tmp_path / "a")]) == 0
    assert main(["drift", str(tiny_saved), str(tmp_path / "merged"), "--out", str(tmp_path / "m")]) == 0
    a, m = (json.loads((tmp_path / d / "drift.json").read_text()) for d in ("a", "m"))
    assert [p["name"] for p in a["parameters"]] == [p["name"] for p in m["parameters"]]
    for pa, pm in zip(a["parameters"], m["parameters"]):
        assert pa["drift"] == pytest.approx(pm["drift"], rel=1e-6, abs=1e-12), pa["name"]
        assert (pa["drift"] > 0) == pa["name"].endswith(("q_proj.weight", "v_proj.weight")), pa["name"]
    assert a["inputs"]["adapter"] is True and a["total"]["drift"] > 0


def test_weight_drift_names_the_first_differing_parameter():
    base = {"a": torch.ones(2, 2), "b": torch.ones(3)}
    with pytest.raises(UserError, match=r"parameter 'b' has shape \(3,\) in BASE but \(4,\) in TUNED"):
        weight_drift(base, {"a": torch.ones(2, 2), "b": torch.ones(4)})
    r = weight_drift(base, {"a": 2 * torch.ones(2, 2), "b": torch.ones(3)})
    assert [p["drift"] for p in r["parameters"]] == [1.0, 0.0]  # ||2W - W|| / ||W||
