#!/usr/bin/env python3
"""Make the evaluation-log fixtures of ``tests/test_audit_logs.py`` with the real tools.

    python3 -m venv /tmp/fixvenv
    /tmp/fixvenv/bin/pip install torch==2.13.0            # the CPU wheel
    /tmp/fixvenv/bin/pip install "lm-eval[hf]" inspect-ai transformers tokenizers
    /tmp/fixvenv/bin/python scripts/make_log_fixtures.py   # from the repository root, ~1 min on a CPU

Made with lm-eval 0.4.13, inspect-ai 0.3.285, transformers 5.24.0, torch 2.13.0 (CPU); the tools
live in their own virtual environment, never in sftlens' own, and sftlens itself is imported from
this checkout only for its tiny-model helpers.

A tiny Llama (``sftlens.models.tiny``, ~120k parameters) and a word-level tokenizer are built locally
(no hub, no download), trained a few seconds until it has memorised the solutions of the first half
of the problems, and saved with ``save_pretrained``. So the logs hold right and wrong answers both, and their questions and
references are real GSM8K lines (the first ``N`` of ``../shared/data/gsm8k/test.jsonl``, copied to
``tests/fixtures/gsm8k_fixture.jsonl``). Then:

* **lm-eval**: a local copy of the ``gsm8k`` task (the same prompt, target, stop strings and the two
  filters, strict-match and flexible-extract) over a JSON file of those lines, zero-shot, with
  ``--log_samples --output_path``; the samples file and the aggregated results file next to it are
  copied to ``tests/fixtures/lm_eval/``.
* **inspect_ai**: ``eval`` of a task over the same lines (``input`` = question, ``target`` = the
  final answer) with the ``hf/`` provider on the saved folder, a prompt template of the same shape,
  and the ``match(numeric=True)`` scorer; the log is written in both of inspect's formats (``.json``
  and the zipped ``.eval``) to ``tests/fixtures/inspect/``.

The fixtures are regenerated from scratch each run; the tests read only what is committed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from sftlens.paths import GSM8K_DIR  # after the path to this checkout

PROMPT = "Question: {question}\nAnswer:"  # lm-eval's gsm8k doc_to_text; inspect uses the same shape

TASK_YAML = """\
task: sftlens_gsm8k_fixture
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
output_type: generate_until
test_split: test
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    ignore_punctuation: false
    regexes_to_ignore: [",", "\\\\$", "(?s).*#### ", "\\\\.$"]
generation_kwargs:
  until: ["Question:", "</s>"]
  do_sample: false
  temperature: 0.0
  max_gen_toks: {max_new}
repeats: 1
num_fewshot: 0
filter_list:
  - name: "strict-match"
    filter:
      - function: "regex"
        regex_pattern: "#### (\\\\-?[0-9\\\\.\\\\,]+)"
      - function: "take_first"
  - name: "flexible-extract"
    filter:
      - function: "regex"
        group_select: -1
        regex_pattern: "(-?[$0-9.,]{{2,}})|(-?[0-9]+)"
      - function: "take_first"
metadata:
  version: 1.0
"""

INSPECT_TASK = '''\
import json

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import match
from inspect_ai.solver import generate, prompt_template


@task
def gsm8k_fixture():
    rows = [json.loads(line) for line in open({data!r})]
    samples = [Sample(input=r["question"], target=r["answer"].split("####")[-1].strip(), id=i + 1)
               for i, r in enumerate(rows)]
    return Task(dataset=samples, solver=[prompt_template({prompt!r}), generate()],
                scorer=match(numeric=True))
'''


def build_model(rows: list[dict], folder: Path, n_memorised: int, seed: int = 0) -> None:
    """A tiny Llama that has memorised ``PROMPT + ' ' + solution`` for the first ``n_memorised`` rows."""
    import torch

    from sftlens.models.tiny import build_tokenizer, make_model
    from sftlens.train.pretrain import PretrainConfig, pretrain

    torch.set_num_threads(1)

    texts = [PROMPT.format(question=r["question"]) + " " + r["answer"] for r in rows]
    tok = build_tokenizer(texts)
    # a chat template that renders the user turn as is, so inspect's hf provider prompts exactly as lm-eval does
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    model = make_model(tok, "tiny", max_positions=512, seed=seed)
    losses = pretrain(model, tok, [t + tok.eos_token for t in texts[:n_memorised]],
                      PretrainConfig(steps=300, batch_size=n_memorised, lr=1e-2, warmup=10, seed=seed))
    print(f"trained {len(losses)} steps: loss {losses[0]:.2f} -> {losses[-1]:.3f}", flush=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)


def run(cmd: list[str], cwd: Path, env: dict) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, env=env, check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6, help="how many GSM8K test lines (default 6)")
    ap.add_argument("--max-new-tokens", type=int, default=128, help="generation limit (default 128)")
    ap.add_argument("--out", default=str(ROOT / "tests" / "fixtures"), help="fixtures folder")
    args = ap.parse_args()
    from inspect_ai.log import read_eval_log

    bindir = Path(sys.executable).parent
    rows = [json.loads(x) for x in (GSM8K_DIR / "test.jsonl").read_text().splitlines()[:args.n]]
    out = Path(args.out)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = "nano-gsm8k"  # a folder in tmp, the tools' working directory: the logs name the model by it
        build_model(rows, tmp / model, n_memorised=args.n // 2)
        data = tmp / "gsm8k_fixture.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(data, out / data.name)  # the source lines, which the tests compare the readers with

        # lm-eval: a local task folder, one run, the samples file and the results file next to it
        tasks = tmp / "tasks"
        tasks.mkdir()
        # paths relative to tmp, the tools' working directory, so that the logs hold no temporary folder
        yaml = TASK_YAML.format(data=data.name, max_new=args.max_new_tokens)
        (tasks / "sftlens_gsm8k_fixture.yaml").write_text(yaml)
        run([str(bindir / "lm-eval"), "run", "--model", "hf", "--model_args", f"pretrained={model},dtype=float32",
             "--device", "cpu", "--include_path", str(tasks), "--tasks", "sftlens_gsm8k_fixture",
             "--batch_size", "1", "--log_samples", "--output_path", str(tmp / "lm_eval_out")], tmp, env)
        lm_out = out / "lm_eval"
        shutil.rmtree(lm_out, ignore_errors=True)
        lm_out.mkdir(parents=True)
        for f in sorted((tmp / "lm_eval_out").rglob("*.json*")):
            shutil.copy(f, lm_out / f.name)

        # inspect_ai: the same lines, both log formats
        (tmp / "gsm8k_fixture_task.py").write_text(INSPECT_TASK.format(data=data.name, prompt=PROMPT.replace(
            "{question}", "{prompt}")))
        ins_out = out / "inspect"
        shutil.rmtree(ins_out, ignore_errors=True)
        ins_out.mkdir(parents=True)
        for fmt in ("json", "eval"):
            logs = tmp / f"inspect_{fmt}"
            run([str(bindir / "inspect"), "eval", "gsm8k_fixture_task.py", "--model", f"hf/{model}",
                 "-M", "device=cpu", "-M", "do_sample=False", "--max-tokens", str(args.max_new_tokens),
                 "--log-format", fmt, "--log-dir", str(logs), "--display", "plain", "--no-log-realtime"],
                tmp, env)
            (log,) = logs.glob(f"*.{fmt}")
            status = read_eval_log(str(log), header_only=True).status
            if status != "success":
                raise SystemExit(f"inspect eval ended with status '{status}': see {log}")
            shutil.copy(log, ins_out / f"gsm8k_fixture.{fmt}")
    for f in sorted(out.rglob("*")):
        if f.is_file():
            print(f"{f.relative_to(ROOT)}: {f.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
