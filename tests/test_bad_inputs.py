"""One table of bad command lines: each fails with exit 2 and one sentence, before any model loads
(unless loading the model is the check), and leaves nothing behind. A new command adds rows here.

Placeholders in argv: {data} a valid sftlens JSONL, {model} the tiny saved model, {mismatch} a copy
of it whose config.json does not fit its weights, {wider} a wider Llama on the same tokenizer, {file}
an existing plain file, {binary} a binary file, {empty} an empty file, {ctrl} a JSONL line with a raw
control character, {out} a fresh path.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass

import pytest

from sftlens.cli import main
from sftlens.core.record import write_jsonl


@dataclass
class Case:
    id: str
    argv: list[str]
    fragment: str  # must be in stderr
    left_alone: str = "{out}"  # a path that must not exist afterwards, or (for an input) be unchanged
    loads_model: bool = False  # whether the check itself needs to load a model
    not_in: str | None = None  # must not be in stderr
    rc: int = 2


AUDIT = ["audit", "--base", "{model}", "--data", "{data}"]
TRAIN = ["train", "sft", "--model", "{model}", "--data", "{data}", "--steps", "1"]
GRPO = ["train", "grpo", "--model", "{model}", "--data", "{data}", "--steps", "1", "--num-generations", "2",
        "--batch-size", "4"]
PROXY = ["proxy", "--base", "{model}", "--expert", "{model}", "--anti-expert", "{model}", "--data", "{data}"]

CASES = [
    # an output that is an input
    Case("curate IN IN", ["data", "curate", "{data}", "{data}"], "is also an input", left_alone="{data}"),
    Case("corrupt IN IN", ["data", "corrupt", "--traces", "swap", "{data}", "{data}"], "is also an input",
         left_alone="{data}"),
    Case("convert IN IN", ["data", "convert", "{data}", "{data}"], "is also an input", left_alone="{data}"),
    Case("profile IN IN", ["data", "profile", "--model", "{model}", "{data}", "{data}"], "is also an input",
         left_alone="{data}"),
    Case("train --out is --model", ["train", "sft", "--model", "{model}", "--data", "{data}", "--out", "{model}"],
         "is also an input", left_alone="{model}/config.json"),
    # seeds
    Case("lab --seed -1", ["lab", "--preset", "micro", "--quiet", "--out", "{out}", "--seed", "-1"], "--seed must be"),
    Case("audit --seed -1", AUDIT + ["--tuned", "{model}", "--out", "{out}", "--seed", "-1"], "--seed must be"),
    Case("train --seed -1", TRAIN + ["--out", "{out}", "--seed", "-1"], "--seed must be"),
    Case("curate --seed -1", ["data", "curate", "--seed", "-1", "{data}", "{out}"], "--seed must be"),
    # --out an existing file
    Case("train --out file", TRAIN + ["--out", "{file}"], "is an existing file", left_alone="{file}"),
    Case("audit --out file", AUDIT + ["--tuned", "{model}", "--out", "{file}"], "is an existing file",
         left_alone="{file}"),
    Case("lab --out file", ["lab", "--preset", "micro", "--quiet", "--out", "{file}"], "is an existing file",
         left_alone="{file}"),
    # --out that cannot be written (under a file: a read-only folder is writable for root)
    Case("train --out unwritable", TRAIN + ["--out", "{file}/out"], "cannot be created"),
    Case("audit --out unwritable", AUDIT + ["--tuned", "{model}", "--out", "{file}/out"], "cannot be created"),
    Case("lab --out unwritable", ["lab", "--preset", "micro", "--quiet", "--out", "{file}/out"], "cannot be created"),
    Case("curate OUT unwritable", ["data", "curate", "{data}", "{file}/out.jsonl"], "cannot be created"),
    # inputs that are not UTF-8 text
    Case("train binary --data", ["train", "sft", "--model", "{model}", "--data", "{binary}", "--out", "{out}"],
         "binary file"),
    Case("curate binary IN", ["data", "curate", "{binary}", "{out}"], "binary file"),
    Case("audit binary --data", ["audit", "--base", "{model}", "--tuned", "{model}", "--data", "{binary}",
                                 "--out", "{out}"], "binary file"),
    Case("audit binary --predictions", ["audit", "--predictions", "{binary}", "--out", "{out}"], "binary file"),
    Case("convert latin-1 IN", ["data", "convert", "{latin1}", "{out}"], "latin1.jsonl:2: not UTF-8"),
    # empty or missing inputs
    Case("train empty data", ["train", "sft", "--model", "{model}", "--data", "{empty}", "--out", "{out}"],
         "no examples"),
    Case("audit missing --tuned", AUDIT + ["--out", "{out}"], "missing the tuned model"),
    Case("audit --tuned not there", AUDIT + ["--tuned", "{out}-nope", "--out", "{out}"], "does not exist"),
    Case("train --model not a model", ["train", "sft", "--model", "{empty_dir}", "--data", "{data}", "--out", "{out}"],
         "not a saved model"),
    # a model whose config does not match its weights (loading is the check)
    Case("audit --tuned config mismatch", AUDIT + ["--tuned", "{mismatch}", "--out", "{out}", "--no-faithfulness",
                                                   "--no-progress"],
         "config.json does not match", loads_model=True),
    Case("train --model config mismatch", ["train", "sft", "--model", "{mismatch}", "--data", "{data}",
                                           "--out", "{out}"], "config.json does not match", loads_model=True),
    # GRPO's own options ({data} was never profiled: it has no bands)
    Case("grpo --out is --model", GRPO + ["--out", "{model}"], "is also an input", left_alone="{model}/config.json"),
    Case("grpo missing band", GRPO + ["--out", "{out}", "--keep-band", "learnable"],
         "--keep-band learnable: {data}:1: example 'train00000' has no field 'meta.band'"),
    Case("grpo unknown reward", GRPO + ["--out", "{out}", "--reward", "correct=1,lenght=2"],
         "--reward 'correct=1,lenght=2': unknown reward 'lenght' (valid: correct, format, steps)"),
    Case("grpo bad reward weight", GRPO + ["--out", "{out}", "--reward", "correct=x"], "the weight of 'correct'"),
    Case("grpo batch not a multiple of G", GRPO + ["--out", "{out}", "--batch-size", "5"],
         "--batch-size 5 must be a multiple of --num-generations 2"),
    Case("grpo steps reward without world", GRPO + ["--out", "{out}", "--reward", "correct,steps=0.1"],
         "--reward steps: shop examples are verified against their world; give --world"),
    Case("grpo empty data", GRPO[:5] + ["{empty}"] + GRPO[6:] + ["--out", "{out}"], "no examples"),
    Case("unknown option: grpo", GRPO + ["--out", "{out}", "--bogus"], "usage: sftlens train grpo"),
    # messages
    Case("control character", ["data", "curate", "{ctrl}", "{out}"], "Invalid control character at column",
         not_in="at at"),
    Case("unknown option: curate", ["data", "curate", "{data}", "{out}", "--bogus"], "usage: sftlens data curate"),
    Case("unknown option: train", TRAIN + ["--out", "{out}", "--bogus"], "usage: sftlens train sft"),
    Case("unknown option: audit", ["audit", "--out", "{out}", "--bogus"], "usage: sftlens audit"),
    # --checker: a schema that is not JSON Schema, a file that is not JSON, an unknown name, data not the task's
    Case("audit --checker bad schema", AUDIT + ["--tuned", "{model}", "--out", "{out}", "--checker",
                                                "json-schema:{bad_schema}"],
         "bad_schema.json: not a valid JSON Schema: field 'properties/bins/type'"),
    Case("audit --predictions --checker not JSON", ["audit", "--predictions", "{data}", "--out", "{out}", "--checker",
                                                    "json-schema:{file}"], "file.txt:1: not JSON"),
    Case("audit --checker unknown", AUDIT + ["--tuned", "{model}", "--out", "{out}", "--checker", "maze"],
         "--checker maze: unknown (valid: packing, json-schema:SCHEMA.json)"),
    Case("audit --checker packing, shop data", AUDIT + ["--tuned", "{model}", "--out", "{out}", "--checker", "packing"],
         "example 'train00000', field 'question'"),
    # proxy-tuning: sftlens proxy and the audit's --tuned proxy:BASE,EXPERT,ANTI
    Case("proxy --out is --data", PROXY + ["--out", "{data}"], "is also an input", left_alone="{data}"),
    Case("proxy --seed -1", PROXY + ["--out", "{out}", "--seed", "-1"], "--seed must be"),
    Case("proxy --expert not there", ["proxy", "--base", "{model}", "--expert", "{out}-nope", "--anti-expert",
                                      "{model}", "--data", "{data}", "--out", "{out}"],
         "out-nope: does not exist (expected a saved model folder"),
    Case("audit --tuned proxy: two models", AUDIT + ["--tuned", "proxy:{model},{model}", "--out", "{out}"],
         "expected proxy:BASE,EXPERT,ANTI"),
    Case("audit --tuned proxy: ANTI not there", AUDIT + ["--tuned", "proxy:{model},{model},{out}-nope",
                                                         "--out", "{out}"], "error: --tuned proxy: ANTI "),
    Case("audit --tuned proxy: bad alpha", AUDIT + ["--tuned", "proxy:{model},{model},{model},strong",
                                                    "--out", "{out}"], "ALPHA must be a number"),
    Case("unknown option: proxy", PROXY + ["--out", "{out}", "--bogus"], "usage: sftlens proxy"),
    # drift
    Case("drift TUNED and --adapter", ["drift", "{model}", "{model}", "--adapter", "{empty_dir}", "--out", "{out}"],
         "not both"),
    Case("drift missing TUNED", ["drift", "{model}", "--out", "{out}"], "missing the tuned model"),
    Case("drift --out file", ["drift", "{model}", "{model}", "--out", "{file}"], "is an existing file",
         left_alone="{file}"),
    Case("drift --adapter not an adapter", ["drift", "{model}", "--adapter", "{empty_dir}", "--out", "{out}"],
         "no adapter_config.json inside"),
    Case("drift other architecture", ["drift", "{model}", "{wider}", "--out", "{out}"],
         "different architectures: parameter 'model.embed_tokens.weight' has shape", loads_model=True),
    Case("drift config mismatch", ["drift", "{model}", "{mismatch}", "--out", "{out}"], "config.json does not match",
         loads_model=True),
    Case("unknown option: drift", ["drift", "{model}", "{model}", "--out", "{out}", "--bogus"], "usage: sftlens drift"),
]


@pytest.fixture(scope="module")
def paths(tmp_path_factory, tiny_saved, world_splits):
    d = tmp_path_factory.mktemp("bad")
    _, sp = world_splits
    write_jsonl(d / "data.jsonl", sp.train[:8])
    (d / "file.txt").write_text("an existing file\n")
    (d / "binary.jsonl").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)))
    (d / "latin1.jsonl").write_bytes(b'{"id": "1", "question": "q", "answer": "1"}\n{"question": "caf\xe9"}\n')
    (d / "empty.jsonl").write_text("")
    (d / "ctrl.jsonl").write_text('{"id": "1", "question": "a\x01b", "answer": "1"}\n')
    (d / "empty_dir").mkdir()
    (d / "bad_schema.json").write_text(json.dumps({"type": "object", "properties": {"bins": {"type": "arrey"}}}))
    mismatch = d / "mismatch"
    shutil.copytree(tiny_saved, mismatch)
    cfg = json.loads((mismatch / "config.json").read_text())
    cfg["intermediate_size"] *= 2
    (mismatch / "config.json").write_text(json.dumps(cfg))
    wider = d / "wider"  # another architecture on the same tokenizer: a tiny (64 wide) Llama
    from transformers import AutoTokenizer

    from sftlens.models.tiny import make_model

    tok = AutoTokenizer.from_pretrained(tiny_saved)
    make_model(tok, "tiny", seed=0).save_pretrained(wider)
    tok.save_pretrained(wider)
    return {"data": d / "data.jsonl", "model": tiny_saved, "mismatch": mismatch, "wider": wider, "file": d / "file.txt",
            "binary": d / "binary.jsonl", "latin1": d / "latin1.jsonl", "empty": d / "empty.jsonl",
            "ctrl": d / "ctrl.jsonl", "empty_dir": d / "empty_dir", "bad_schema": d / "bad_schema.json"}


def _snapshot(path):
    return path.read_bytes() if path.is_file() else None


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, paths, tmp_path, capsys, monkeypatch):
    import sftlens.models.lm as lm_module

    names = {k: str(v) for k, v in paths.items()} | {"out": str(tmp_path / "out")}
    argv = [a.format(**names) for a in case.argv]
    watched = tmp_path.__class__(case.left_alone.format(**names))
    before = _snapshot(watched)
    if not case.loads_model:
        def no_loading(*a, **kw):
            raise AssertionError("a model was loaded before the inputs were checked")

        monkeypatch.setattr(lm_module, "load_lm", no_loading)
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse errors
        rc = e.code
    err = capsys.readouterr().err
    assert rc == case.rc, err
    assert case.fragment.format(**names) in err
    assert "Traceback" not in err
    if case.not_in:
        assert case.not_in not in err
    if case.fragment.startswith("usage:"):
        assert "unrecognized arguments: --bogus" in err
    else:  # one sentence on one line
        assert len(err.strip().splitlines()) == 1, err
    if before is None:
        assert not watched.exists(), f"{watched} was left behind"
    else:
        assert watched.read_bytes() == before, f"{watched} was changed"
