#!/usr/bin/env bash
# A short check of the GPU code paths (auto device/dtype, 4D-mask scoring in bf16, batched
# generation) on a machine with CUDA. Needs a finished `make lab` (runs/quick) and an output folder.
# Usage: scripts/gpu_check.sh OUTDIR
set -euo pipefail
out=${1:?usage: scripts/gpu_check.sh OUTDIR}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())"
python3 - <<'PY'
import time, torch
from sftlens.core.record import read_jsonl
from sftlens.metrics.infogain import prefix_scores, prefix_scores_naive
from sftlens.models.lm import load_lm
exs = read_jsonl("runs/quick/data/test.jsonl")[:40]
items = [(e, e.steps, e.answer) for e in exs]
for dtype in ("float32", "bfloat16"):
    lm = load_lm("runs/quick/models/base", dtype=dtype)
    t = time.time(); fast = prefix_scores(lm.model, lm.tokenizer, items); t1 = time.time() - t
    t = time.time(); slow = prefix_scores_naive(lm.model, lm.tokenizer, items); t2 = time.time() - t
    err = max(abs(a - b) for f, s in zip(fast, slow) for a, b in zip(f.logp, s.logp))
    print(f"{lm.device} {dtype}: infogain shared vs per-prefix max |diff| {err:.2e}; {t1:.2f}s vs {t2:.2f}s")
PY
for i in 1 2; do
  python3 -m sftlens.cli audit --base runs/quick/models/base --tuned runs/quick/models/correct \
    --data runs/quick/data/test.jsonl --variants n_minus_1=runs/quick/data/variant_n_minus_1.jsonl \
    --out "$out/audit" --no-progress 2>&1 | tail -3
done
python3 -c "import json; r=json.load(open('$out/audit/results.json')); c=[v for v in r.values() if isinstance(v, dict) and 'device' in v][0]; print('device', c['device'], 'dtype', c['dtype'], 'generated_new (2nd run)', r['run']['generated_new'])"
