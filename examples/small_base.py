"""A larger base for trying proxy-tuning on a lab run: pretrain a ``small`` Llama (3 layers, 96 wide)
exactly as the run pretrained its ``tiny`` base — same world, texts, tokenizer and settings — so the
run's ``models/base`` (anti-expert) and ``models/<condition>`` (expert) can steer it.

    python examples/small_base.py runs/quick runs/quick-small     # then: runs/quick-small/models/base

RUN is only read (its ``config.json`` and ``data/``); OUT gets a copy of the data and the new base.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from sftlens.core.console import make_console
from sftlens.lab.presets import get_preset
from sftlens.lab.runner import Lab, quiet_libraries


def main(run: str, out: str, size: str = "small") -> Path:
    from transformers import AutoTokenizer

    from sftlens.models.proxy import check_same_vocab

    cfg = json.loads((Path(run) / "config.json").read_text())
    seed = cfg["seed"]
    preset = get_preset(cfg["preset"]["name"], seed)
    # the run's own sizes (a preset may have changed since the run), then the new model size
    scalars = {k: v for k, v in cfg["preset"].items() if k not in ("name", "size") and isinstance(v, (int, str))}
    preset = replace(preset, **scalars, size=size)
    lab = Lab(out=Path(out), preset=preset, seed=seed, console=make_console(stderr=True))
    lab.check_config()
    if not (lab.data_dir / "DONE").exists():
        shutil.copytree(Path(run) / "data", lab.data_dir, dirs_exist_ok=True)
    quiet_libraries()
    lab.stage_base()
    check_same_vocab([(f"'{run}/models/base'", AutoTokenizer.from_pretrained(Path(run) / "models" / "base")),
                      (f"'{lab.model_dir('base')}'", AutoTokenizer.from_pretrained(lab.model_dir("base")))])
    return lab.model_dir("base")


if __name__ == "__main__":
    print(main(*sys.argv[1:]))
