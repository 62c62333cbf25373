#!/bin/bash
# The learning curve that sets the lab's SFT budget: SFT on one condition's saved data from a finished
# lab run's base, for each step count, then `sftlens audit` of the tuned model on the run's test set.
#
#   scripts/sft_curve.sh RUN_DIR/seed_1 300,600,900            # the shop world
#   scripts/sft_curve.sh RUN_DIR/seed_3/worlds/maze 300,900    # another world of that seed
#
# Optional: COND (default correct), BATCH (64), LR (6e-3), SEED (read from RUN_DIR's name, else 0),
# OUT (a scratch folder, default /tmp/sft_curve), MAX_NEW_TOKENS (160). Prints one line per step
# count: steps, seconds of training, final training loss, accuracy of the tuned model and of the base.
set -euo pipefail
run=${1:?usage: sft_curve.sh RUN_DIR STEPS[,STEPS...]}
steps=${2:?usage: sft_curve.sh RUN_DIR STEPS[,STEPS...]}
cond=${COND:-correct}; bs=${BATCH:-64}; lr=${LR:-6e-3}; out=${OUT:-/tmp/sft_curve}
seed=${SEED:-$(echo "$run" | grep -o 'seed_[0-9]*' | head -1 | tr -dc 0-9)}; seed=${seed:-0}
bin=$(dirname "$(readlink -f "$0")")/../.venv/bin
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
mkdir -p "$out"
for st in ${steps//,/ }; do
  o="$out/$(basename "$run")_${cond}_${st}_${bs}_${lr}"
  t0=$(date +%s)
  "$bin/sftlens" train sft --model "$run/models/base" --data "$run/data/conditions/$cond.jsonl" --out "$o" \
    --steps "$st" --batch-size "$bs" --lr "$lr" --seed "$seed" > "$o.log" 2>&1
  t1=$(date +%s)
  "$bin/sftlens" audit --base "$run/models/base" --tuned "$o" --data "$run/data/test.jsonl" \
    --world "$run/data/world.json" --no-faithfulness --no-progress --out "${o}_audit" \
    --max-new-tokens "${MAX_NEW_TOKENS:-160}" --batch-size 64 > "$o.audit.log" 2>&1
  "$bin/python" - "$o" "$st" "$((t1 - t0))" <<'EOF'
import json, re, sys
o, steps, secs = sys.argv[1:]
log = open(o + ".log").read()
loss = re.findall(r"loss ([0-9.]+)", log)
acc = {m: d["metrics"]["correct"]["mean"] for m, d in json.load(open(o + "_audit/results.json"))["models"].items()}
print(f"steps {steps}  train {secs} s  final loss {loss[-1] if loss else '?'}  "
      f"accuracy tuned {acc['tuned']:.3f}  base {acc['base']:.3f}")
EOF
done
