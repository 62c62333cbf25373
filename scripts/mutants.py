"""Hand-made mutants of core functions: each must make some test fail ("killed").

    python scripts/mutants.py            # every mutant; exit 1 if one survives
    python scripts/mutants.py --list     # what each mutant breaks and which tests should catch it

Each mutant replaces one exact snippet in one file (refused if the snippet is not found exactly once,
so the list cannot rot silently), runs the named tests in a subprocess, and restores the file whatever
happens. A mutant *survives* when those tests still pass: the suite would not notice that bug.

Left out as an equivalent mutant: dropping ``attention_mask`` from the reference decoder's
``model.generate`` (``forced_answers_naive``) changes nothing, because ``generate`` rebuilds the mask
from the pad token when none is given (checked: the batched reference still equals the unbatched one).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: list[str]


MUTANTS = [
    Mutant("drop the block mask of prefix-shared forced answers (segments see each other)",
           "sftlens/models/decoding.py",
           "attention_mask=float_mask.to(device), use_cache=True",
           "attention_mask=None, use_cache=True",
           ["tests/test_faithfulness.py", "tests/test_infogain.py"]),
    Mutant("shift the information-gain prefix by one token", "sftlens/metrics/infogain.py",
           "src += [len(lay.prefix_ids[k]) - 1]", "src += [len(lay.prefix_ids[k]) - 2]",
           ["tests/test_infogain.py"]),
    Mutant("flip a verdict comparison (superiority: reproduced below the SESOI)", "sftlens/lab/protocol.py",
           "        if lo_d > s:", "        if lo_d < s:",
           ["tests/test_verdicts.py", "sftlens/lab/protocol.py", "-k", "not micro"]),
    Mutant("skip the SFT loss mask (train on the prompt too)", "sftlens/train/sft.py",
           "completion_only_loss=True", "completion_only_loss=False",
           ["tests/test_sft_batch.py"]),
    Mutant("accept a failed control (a positive control not detected passes)", "sftlens/lab/protocol.py",
           'passed = verdict == "reproduced" if role == "positive" else verdict != "reproduced"',
           'passed = True',
           ["tests/test_verdicts.py", "-k", "control"]),
    Mutant("pad prompts on the right in batched generation", "sftlens/models/lm.py",
           '        tok.padding_side = "left"\n        if tok.pad_token_id is None:',
           '        tok.padding_side = "right"\n        if tok.pad_token_id is None:',
           ["tests/test_models.py", "-k", "batched"]),
    Mutant("pair each example with another example's samples when profiling", "sftlens/data/difficulty.py",
           "prompts = [prompt_text(e) for e in examples for _ in range(k)]",
           "prompts = [prompt_text(e) for _ in range(k) for e in examples]",
           ["tests/test_data_cli.py", "-k", "profile"]),
    Mutant("compare base against tuned the wrong way round in the audit", "sftlens/audit/_compare.py",
           "as_float(r.get(metric)) - as_float(by_key[r[key]].get(metric))",
           "as_float(by_key[r[key]].get(metric)) - as_float(r.get(metric))",
           ["tests/test_audit.py", "-k", "lab_layout"]),
    Mutant("let A* traces walk through walls", "sftlens/tasks/astar.py",
           "return self.in_bounds(cell) and cell not in self.walls", "return self.in_bounds(cell)",
           ["tests/test_maze.py"]),
    Mutant("score an lm-eval filter's extract instead of the raw generation (log reader)", "sftlens/audit/_logs.py",
           '"completion": completion,', '"completion": str(record.get("filtered_resps", [""])[0]),',
           ["tests/test_audit_logs.py", "-k", "not wrong_field_mapping"]),
    Mutant("read an inspect sample's question from the prompt sent, not its input (log reader)",
           "sftlens/audit/_logs.py",
           'inspect_text(sample["input"], where)', 'inspect_text(sample.get("messages"), where)',
           ["tests/test_audit_logs.py", "-k", "not wrong_field_mapping"]),
    Mutant("pair an inspect sample with the next sample's target (log reader)", "sftlens/audit/_logs.py",
           '"reference": inspect_target(sample["target"], where)',
           '"reference": inspect_target(samples[i % len(samples)]["target"], where)',
           ["tests/test_audit_logs.py", "-k", "not wrong_field_mapping"]),
]


def run(m: Mutant) -> tuple[bool, float]:
    """Apply ``m``, run its tests, restore; ``(killed, seconds)``."""
    path = ROOT / m.path
    text = path.read_text(encoding="utf-8")
    if text.count(m.old) != 1:
        raise SystemExit(f"{m.path}: the snippet of mutant '{m.name}' occurs {text.count(m.old)} times "
                         "(expected exactly once); update scripts/mutants.py")
    t0 = time.time()
    try:
        path.write_text(text.replace(m.old, m.new), encoding="utf-8")
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        r = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *m.tests],
                           cwd=ROOT, env=env, capture_output=True, text=True)
    finally:
        path.write_text(text, encoding="utf-8")
    return r.returncode != 0, time.time() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description="Run hand-made mutants of core functions against the tests.")
    ap.add_argument("--list", action="store_true", help="list the mutants and their tests, run nothing")
    ap.add_argument("--only", metavar="TEXT", help="run only the mutants whose name contains TEXT")
    args = ap.parse_args()
    chosen = [m for m in MUTANTS if not args.only or args.only in m.name]
    if not chosen:
        raise SystemExit(f"no mutant's name contains '{args.only}' (see --list)")
    survived = 0
    for m in chosen:
        if args.list:
            print(f"- {m.name}: {m.path} ({' '.join(m.tests)})")
            continue
        killed, secs = run(m)
        survived += not killed
        print(f"{'killed  ' if killed else 'SURVIVED'}  {m.name}  ({m.path}, {secs:.0f} s)", flush=True)
    if not args.list:
        print(f"{len(chosen) - survived} of {len(chosen)} mutants killed")
    return 1 if survived else 0


if __name__ == "__main__":
    raise SystemExit(main())
