"""`sftlens audit --predictions` on evaluation logs written by the real tools: lm-evaluation-harness
``--log_samples`` and inspect_ai. The fixtures are made by ``scripts/make_log_fixtures.py`` (a nano
model trained to recite the solutions of the first half of six GSM8K test problems); the tests read
only the committed files.

Each check compares what sftlens read (the audit's own ``samples.jsonl``) with two independent
sources: the GSM8K lines the logs were made from (``fixtures/gsm8k_fixture.jsonl``), and the tool's
own per-sample score kept in the log.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from sftlens.cli import main
from sftlens.core.format import reference_answer

FIX = Path(__file__).parent / "fixtures"
SOURCE = [json.loads(x) for x in (FIX / "gsm8k_fixture.jsonl").read_text().splitlines()]
(LM_SAMPLES,) = (FIX / "lm_eval").glob("samples_*.jsonl")
(LM_RESULTS,) = (FIX / "lm_eval").glob("results_*.json")
INSPECT_JSON = FIX / "inspect" / "gsm8k_fixture.json"
INSPECT_EVAL = FIX / "inspect" / "gsm8k_fixture.eval"


def _audit(path, out, *extra) -> tuple[dict, list[dict], list[dict]]:
    """Run the CLI; return results.json, the samples it read (in order) and their metric rows."""
    assert main(["audit", "--predictions", str(path), "--out", str(out), *extra]) == 0
    return _saved(out)


def _saved(out) -> tuple[dict, list[dict], list[dict]]:
    results = json.loads((out / "results.json").read_text())
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    rows = {r["key"]: r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())}
    return results, samples, [rows[s["key"]] for s in samples]


def source_mismatches(samples: list[dict], ids: list[str]) -> list[str]:
    """Where the samples read differ from the GSM8K lines the log was made from (``ids[i]`` is the
    source line of ``samples[i]``): question text and reference answer."""
    bad = []
    for s, i in zip(samples, ids):
        src = SOURCE[i]
        if s["meta"]["question"] != src["question"]:
            bad.append(f"{s['id']}: question {s['meta']['question'][:40]!r} != {src['question'][:40]!r}")
        if s["reference"] != reference_answer(src["answer"]):
            bad.append(f"{s['id']}: reference {s['reference']!r} != {reference_answer(src['answer'])!r}")
    return bad


def lm_eval_lines() -> list[dict]:
    return [json.loads(x) for x in LM_SAMPLES.read_text().splitlines()]


def check_lm_eval(results: dict, samples: list[dict], rows: list[dict]) -> list[str]:
    """Every way the audit of the lm-eval fixture can be wrong, as a list of problems."""
    lines = lm_eval_lines()
    doc_ids = list(dict.fromkeys(d["doc_id"] for d in lines))
    n_log = json.loads(LM_RESULTS.read_text())["n-samples"]["sftlens_gsm8k_fixture"]["effective"]
    bad = []
    if not len(samples) == len(doc_ids) == n_log == results["inputs"]["n_lines"]:
        bad.append(f"{len(samples)} samples read, {len(doc_ids)} documents, {n_log} in lm-eval's results")
    if [s["id"] for s in samples] != [str(i) for i in doc_ids]:
        bad.append(f"ids {[s['id'] for s in samples]} != doc_ids {doc_ids}")
    bad += source_mismatches(samples, doc_ids)
    # the raw generation, scored as lm-eval's strict-match filter scored it ('#### N')
    strict = {d["doc_id"]: d["exact_match"] for d in lines if d["filter"] == "strict-match"}
    first = {d["doc_id"]: d["resps"][0][0] for d in reversed(lines)}
    for s, r, i in zip(samples, rows, doc_ids):
        if s["completion"] != first[i]:
            bad.append(f"{i}: completion {s['completion'][:40]!r} is not the raw generation")
        if r["correct"] != strict[i]:
            bad.append(f"{i}: strict correct {r['correct']} but lm-eval's strict-match says {strict[i]}")
    return bad


def test_lm_eval_samples_file(tmp_path, capsys):
    results, samples, rows = _audit(LM_SAMPLES, tmp_path / "out")
    assert check_lm_eval(results, samples, rows) == []
    assert results["inputs"]["predictions_format"] == "lm-eval"
    assert results["inputs"]["models"] == [json.loads(LM_RESULTS.read_text())["model_name"]]
    # the fixture holds right and wrong answers both, so the per-sample comparison above can fail
    assert 0 < sum(r["correct"] for r in rows) < len(rows)
    assert "scored 6 saved generations" in capsys.readouterr().out
    assert "(lm-eval)" in (tmp_path / "out" / "report.html").read_text()


def test_lm_eval_format_chosen_and_model_from_file_name(tmp_path):
    """Without lm-eval's results file next to it the model is the samples file's name; the format given
    explicitly reads the same samples."""
    alone = tmp_path / LM_SAMPLES.name
    shutil.copy(LM_SAMPLES, alone)
    results, samples, rows = _audit(alone, tmp_path / "out", "--predictions-format", "lm-eval")
    assert results["inputs"]["models"] == [LM_SAMPLES.stem]
    assert check_lm_eval(results, samples, rows) == []


def inspect_samples() -> list[dict]:
    return json.loads(INSPECT_JSON.read_text())["samples"]


def check_inspect(results: dict, samples: list[dict], rows: list[dict]) -> list[str]:
    """Every way the audit of the inspect fixture can be wrong, as a list of problems."""
    log = json.loads(INSPECT_JSON.read_text())
    logged = log["samples"]
    bad = []
    if not len(samples) == len(logged) == log["eval"]["dataset"]["samples"] == results["inputs"]["n_lines"]:
        bad.append(f"{len(samples)} samples read, {len(logged)} in the log")
    if [s["id"] for s in samples] != [str(x["id"]) for x in logged]:
        bad.append(f"ids {[s['id'] for s in samples]} != {[x['id'] for x in logged]}")
    bad += source_mismatches(samples, [x["id"] - 1 for x in logged])  # the task numbers the lines from 1
    # inspect's match(numeric=True) compares the last number of the output with the target, as the
    # flexible score does
    for s, r, x in zip(samples, rows, logged):
        if s["completion"] != x["output"]["completion"]:
            bad.append(f"{x['id']}: completion {s['completion'][:40]!r} is not the output")
        if r["flexible_correct"] != (x["scores"]["match"]["value"] == "C"):
            bad.append(f"{x['id']}: flexible correct {r['flexible_correct']} but inspect scored "
                       f"{x['scores']['match']['value']}")
    return bad


def test_inspect_json_log(tmp_path):
    results, samples, rows = _audit(INSPECT_JSON, tmp_path / "out")
    assert check_inspect(results, samples, rows) == []
    assert results["inputs"]["predictions_format"] == "inspect"
    assert results["inputs"]["models"] == [json.loads(INSPECT_JSON.read_text())["eval"]["model"]]
    assert 0 < sum(r["flexible_correct"] for r in rows) < len(rows)


def test_inspect_eval_log_reads_as_its_json_twin(tmp_path):
    """The zipped .eval log of the same run reads as the JSON log does (needs inspect_ai)."""
    pytest.importorskip("inspect_ai")
    results, samples, rows = _audit(INSPECT_EVAL, tmp_path / "eval")
    assert check_inspect(results, samples, rows) == []
    _, twin, _ = _audit(INSPECT_JSON, tmp_path / "json")
    fields = ("id", "model", "completion", "reference")
    assert [[s[f] for f in fields] + [s["meta"]["question"]] for s in samples] == \
           [[s[f] for f in fields] + [s["meta"]["question"]] for s in twin]


def test_inspect_eval_log_without_inspect_ai_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "inspect_ai.log", None)  # as if inspect_ai were not installed
    assert main(["audit", "--predictions", str(INSPECT_EVAL), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install inspect-ai" in err and "--log-format json" in err
    assert not (tmp_path / "out").exists()


def _exit_2(path, out, capsys) -> str:
    assert main(["audit", "--predictions", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and not out.exists()
    return err


@pytest.mark.parametrize("field", ["target", "resps", "doc_id"])
@pytest.mark.parametrize("line", [1, 4])
def test_lm_eval_line_without_a_field_names_line_and_field(tmp_path, capsys, field, line):
    """On the first line too: the file is still told from a predictions file, and the field named."""
    lines = lm_eval_lines()
    lines[line - 1].pop(field)
    bad = tmp_path / LM_SAMPLES.name
    bad.write_text("".join(json.dumps(d) + "\n" for d in lines))
    assert f"{bad}:{line}: field '{field}': missing" in _exit_2(bad, tmp_path / "out", capsys)


def test_lm_eval_bad_values_name_the_log_field(tmp_path, capsys):
    bad = tmp_path / LM_SAMPLES.name
    lines = lm_eval_lines()
    lines[0]["target"] = "48/2 = 24 clips"  # no single final answer
    bad.write_text("".join(json.dumps(d) + "\n" for d in lines))
    assert f"{bad}:1: field 'target': " in _exit_2(bad, tmp_path / "out", capsys)
    lines = lm_eval_lines()
    lines[-1]["resps"] = [["a different generation"]]  # the flexible-extract line of a document disagrees
    bad.write_text("".join(json.dumps(d) + "\n" for d in lines))
    err = _exit_2(bad, tmp_path / "out", capsys)
    assert f"{bad}:{len(lines)}: field 'resps': differs from line {len(lines) // 2}" in err


@pytest.mark.parametrize("field", ["target", "input", "output"])
def test_inspect_sample_without_a_field_names_sample_and_field(tmp_path, capsys, field):
    log = json.loads(INSPECT_JSON.read_text())
    log["samples"][2].pop(field)
    bad = tmp_path / "log.json"
    bad.write_text(json.dumps(log, indent=2))
    assert f"{bad}: sample 3 (id 3): field '{field}': missing" in _exit_2(bad, tmp_path / "out", capsys)


def test_inspect_bad_values_name_the_log_field(tmp_path, capsys):
    bad = tmp_path / "log.json"
    log = json.loads(INSPECT_JSON.read_text())
    log["samples"][0]["output"].pop("completion")
    bad.write_text(json.dumps(log))
    assert f"{bad}: sample 1 (id 1): field 'output.completion': missing" in _exit_2(bad, tmp_path / "out", capsys)
    log = json.loads(INSPECT_JSON.read_text())
    log["samples"][1]["target"] = ["3", "4"]
    bad.write_text(json.dumps(log))
    assert f"{bad}: sample 2 (id 2): field 'target': expected one target" in _exit_2(bad, tmp_path / "out", capsys)
    log = json.loads(INSPECT_JSON.read_text())
    log.pop("samples")  # inspect eval --no-log-samples
    bad.write_text(json.dumps(log, indent=2))
    assert f"{bad}: field 'samples': missing" in _exit_2(bad, tmp_path / "out", capsys)
    log = json.loads(INSPECT_JSON.read_text())
    log["status"] = "error"
    bad.write_text(json.dumps(log))
    assert f"{bad}: field 'status': the eval ended 'error'" in _exit_2(bad, tmp_path / "out", capsys)


def _remapped(monkeypatch, fmt: str, change):
    """Make the ``fmt`` reader pass each row through ``change(raw, n, record) -> record``: ``raw`` are the
    log's lines or samples, ``raw[n - 1]`` the one the record was read from."""
    from sftlens.audit import _logs

    real = _logs.READERS[fmt]

    def reader(path):
        raw = lm_eval_lines() if fmt == "lm-eval" else inspect_samples()
        return [(n, where, change(raw, n, record)) for n, where, record in real(path)]

    monkeypatch.setitem(_logs.READERS, fmt, reader)


@pytest.mark.parametrize("fmt, wrong", [
    ("lm-eval", lambda raw, n, r: {**r, "completion": raw[n - 1]["filtered_resps"][0]}),  # a filter's extract
    ("lm-eval", lambda raw, n, r: {**r, "question": raw[n - 1]["arguments"]["gen_args_0"]["arg_0"]}),  # the prompt
    ("lm-eval", lambda raw, n, r: {**r, "reference": raw[n % 6]["target"]}),  # the next document's target
    ("inspect", lambda raw, n, r: {**r, "question": raw[n - 1]["messages"][0]["content"]}),  # the templated prompt
    ("inspect", lambda raw, n, r: {**r, "completion": raw[n - 1]["scores"]["match"]["answer"]}),  # the scorer's extract
    ("inspect", lambda raw, n, r: {**r, "reference": raw[n % len(raw)]["target"]}),  # the next sample's target
])
def test_the_checks_catch_a_wrong_field_mapping(tmp_path, monkeypatch, fmt, wrong):
    """The comparisons above can fail: a reader that maps a wrong field of the real log is caught."""
    _remapped(monkeypatch, fmt, wrong)
    check, path = (check_lm_eval, LM_SAMPLES) if fmt == "lm-eval" else (check_inspect, INSPECT_JSON)
    assert check(*_audit(path, tmp_path / "out"))


def test_fixture_source_lines_are_gsm8k_test_lines():
    """The fixtures were made from the first lines of the GSM8K test set (when it is present here)."""
    from sftlens.paths import GSM8K_DIR

    src = GSM8K_DIR / "test.jsonl"
    if not src.exists():
        pytest.skip(f"{src} not present")
    assert SOURCE == [json.loads(x) for x in src.read_text().splitlines()[:len(SOURCE)]]


def test_predictions_format_needs_predictions(tmp_path, capsys):
    assert main(["audit", "--base", "b", "--data", "d.jsonl", "--predictions-format", "inspect",
                 "--out", str(tmp_path / "out")]) == 2
    assert "--predictions-format is the format of --predictions" in capsys.readouterr().err
