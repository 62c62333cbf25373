"""Reading other tools' evaluation logs as predictions: lm-evaluation-harness ``--log_samples`` files
and inspect_ai eval logs.

Each reader turns a log into rows ``(position, where, record)``: ``record`` holds the fields of a
predictions line (``question``, ``completion``, ``reference``, ``model``, ``id``), ``where`` starts
every error about it (``FILE:LINE`` or ``FILE: sample ...``) and :data:`FIELDS` names, for each of
those fields, the log's own field, so an error points at what is in the file. The rows then go through
the same checks, pairing and scoring as a predictions file (``_predictions.read_predictions``).

* **lm-eval** (``samples_<task>_<date>.jsonl``): one line per document *and filter* (the ``gsm8k``
  task logs each document twice, under ``strict-match`` and ``flexible-extract``, with the same raw
  generation): the first line of each ``doc_id`` is kept. The completion is the raw generation
  ``resps[0][0]``, not a filter's extract, since sftlens extracts answers and steps itself; the
  question is ``doc.question``, else the prompt sent (``arguments.gen_args_0.arg_0``); the reference
  is ``target``; the model is ``model_name`` of the ``results_<date>.json`` lm-eval writes next to
  the samples file, else the samples file's name.
* **inspect** (``.json`` or ``.eval``): one row per sample and epoch; question ``input`` (a string,
  or the text of its user messages), completion ``output.completion``, reference ``target``, model
  ``eval.model``. A JSON log is plain JSON and read here directly, so no inspect_ai is needed; an
  ``.eval`` log is a zip archive whose members are zstd-compressed, which Python's own ``zipfile``
  cannot read before 3.14, so it is read with ``inspect_ai.log.read_eval_log`` (installed on demand).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from ..core.errors import RecordError
from ..core.record import iter_dicts

FORMATS = ("sftlens", "lm-eval", "inspect")

#: for each predictions field, the field of the log that holds it (named in error messages)
FIELDS = {
    "lm-eval": {"question": "doc.question", "completion": "resps", "reference": "target", "id": "doc_id"},
    "inspect": {"question": "input", "completion": "output.completion", "reference": "target", "model": "eval.model",
                "id": "id"},
}

_LM_EVAL_KEYS = ("doc_id", "doc", "target", "resps")


def _short(value, n: int = 60) -> str:
    """``value`` as JSON, cut to ``n`` characters.

    >>> _short([[-1.5, False]])
    '[[-1.5, false]]'
    """
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= n else text[:n - 3] + "..."


def detect_format(path: str | os.PathLike) -> str:
    """``inspect`` for a zip archive (an ``.eval`` log) or a JSON object with ``eval`` and ``samples``,
    ``status`` or ``version``; ``lm-eval`` when the first line has ``doc_id`` or ``resps``, fields no
    predictions line has; else ``sftlens``. A log missing one of its fields is still told apart, so
    that its reader names the missing field."""
    path = Path(path)
    if path.suffix == ".eval" or zipfile.is_zipfile(path):
        return "inspect"
    with path.open("rb") as f:
        first = next((line for line in f if line.strip()), b"")
    try:
        record = json.loads(first)
    except (json.JSONDecodeError, UnicodeDecodeError):
        record = None
    if isinstance(record, dict):
        if "doc_id" in record or "resps" in record:
            return "lm-eval"
        return "inspect" if "eval" in record and {"samples", "status", "version"} & record.keys() else "sftlens"
    if path.suffix == ".json" and first.strip() == b"{":  # a pretty-printed JSON document: inspect's JSON log
        return "inspect"
    return "sftlens"


# --- lm-evaluation-harness ---------------------------------------------------------------------------


def lm_eval_model(path: Path) -> str:
    """``model_name`` from the ``results_<date>.json`` next to ``samples_<task>_<date>.jsonl``, else the
    samples file's name (without ``.jsonl``)."""
    date = path.stem.rsplit("_", 1)[-1]
    results = path.parent / f"results_{date}.json"
    if not path.stem.startswith("samples_") or not results.is_file():
        return path.stem
    try:
        name = json.loads(results.read_text(encoding="utf-8")).get("model_name")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        name = None
    if not isinstance(name, str) or not name:
        raise RecordError(f"{results}: field 'model_name': expected the model's name (a non-empty string) in "
                          f"lm-eval's results file next to {path.name}")
    return name


def lm_eval_completion(resps, where: str) -> str:
    """The one raw generation in ``resps`` (``[[text]]``).

    >>> lm_eval_completion([[" 2 + 2 = 4\\n#### 4"]], "s.jsonl:1")
    ' 2 + 2 = 4\\n#### 4'
    >>> lm_eval_completion([[[-1.5, False]], [[-0.2, True]]], "s.jsonl:1")
    Traceback (most recent call last):
    ...
    sftlens.core.errors.RecordError: s.jsonl:1: field 'resps': expected one generated text, [["..."]] (a generate_until task with repeats: 1), got [[[-1.5, false]], [[-0.2, true]]]
    """
    if (isinstance(resps, list) and len(resps) == 1 and isinstance(resps[0], list) and len(resps[0]) == 1
            and isinstance(resps[0][0], str)):
        return resps[0][0]
    raise RecordError(f"{where}: field 'resps': expected one generated text, [[\"...\"]] (a generate_until task "
                      f"with repeats: 1), got {_short(resps)}")


def lm_eval_question(record: dict, where: str) -> str:
    """``doc.question``, else the prompt the model was sent (``arguments.gen_args_0.arg_0``).

    >>> lm_eval_question({"doc": {"question": "2 + 2?", "answer": "4"}}, "s.jsonl:1")
    '2 + 2?'
    >>> lm_eval_question({"doc": {"problem": "2 + 2?"}, "arguments": {"gen_args_0": {"arg_0": "Q: 2 + 2?\\nA:"}}}, "s.jsonl:1")
    'Q: 2 + 2?\\nA:'
    """
    doc = record["doc"]
    if isinstance(doc, dict) and isinstance(doc.get("question"), str):
        return doc["question"]
    prompt = record.get("arguments", {})
    for key in ("gen_args_0", "arg_0"):
        prompt = prompt.get(key) if isinstance(prompt, dict) else None
    if isinstance(prompt, str):
        return prompt
    raise RecordError(f"{where}: field 'doc.question': missing, and field 'arguments.gen_args_0.arg_0' holds no "
                      "prompt either (one of them gives the question)")


def lm_eval_rows(path: str | os.PathLike) -> list[tuple[int, str, dict]]:
    """One row per ``doc_id`` of an lm-eval ``--log_samples`` file (its first line; the lines of the other
    filters must carry the same generation)."""
    path = Path(path)
    model = lm_eval_model(path)
    rows: list[tuple[int, str, dict]] = []
    seen: dict[str, tuple[int, str]] = {}
    for lineno, record in iter_dicts(path):
        where = f"{path}:{lineno}"
        if not isinstance(record, dict):
            raise RecordError(f"{where}: expected a JSON object, got {type(record).__name__}")
        for name in _LM_EVAL_KEYS:
            if name not in record:
                raise RecordError(f"{where}: field '{name}': missing (each line of an lm-eval --log_samples file "
                                  f"has {', '.join(_LM_EVAL_KEYS)})")
        doc_id = record["doc_id"]
        if not isinstance(doc_id, (int, str)) or isinstance(doc_id, bool):
            raise RecordError(f"{where}: field 'doc_id': expected an integer or a string, got {_short(doc_id)}")
        completion = lm_eval_completion(record["resps"], where)
        if str(doc_id) in seen:  # the same document under another filter
            first_line, first_completion = seen[str(doc_id)]
            if completion != first_completion:
                raise RecordError(f"{where}: field 'resps': differs from line {first_line}, the same doc_id {doc_id} "
                                  "(each document needs one generation)")
            continue
        seen[str(doc_id)] = (lineno, completion)
        rows.append((lineno, where, {"question": lm_eval_question(record, where), "completion": completion,
                                     "reference": record["target"], "model": model, "id": doc_id}))
    return rows


# --- inspect_ai ----------------------------------------------------------------------------------------


def inspect_text(value, where: str) -> str:
    """A sample's ``input``: the string, or the text of its user messages (string contents, or the
    ``text`` parts of a list of contents).

    >>> inspect_text([{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "2 + 2?"}]}], "log.json: sample 1")
    '2 + 2?'
    """
    if isinstance(value, str):
        return value
    parts = []
    if isinstance(value, list):
        for message in value:
            if not isinstance(message, dict) or message.get("role") != "user":
                continue
            content = message.get("content")
            contents = [content] if isinstance(content, str) else content if isinstance(content, list) else []
            parts += [c if isinstance(c, str) else c.get("text", "") for c in contents
                      if isinstance(c, str) or (isinstance(c, dict) and c.get("type") == "text")]
    if not any(p.strip() for p in parts):
        raise RecordError(f"{where}: field 'input': expected a string or chat messages with a user's text, got "
                          f"{_short(value)}")
    return "\n".join(p for p in parts if p.strip())


def inspect_target(value, where: str):
    """A sample's ``target``: a string, or a list holding one.

    >>> inspect_target(["18"], "log.json: sample 1")
    '18'
    """
    if isinstance(value, list):
        if len(set(value)) != 1:
            raise RecordError(f"{where}: field 'target': expected one target, got {_short(value)}")
        return value[0]
    return value


def inspect_log(path: Path) -> dict:
    """The log as the plain dict of its JSON form: read directly for a ``.json`` log, with inspect_ai
    for an ``.eval`` archive."""
    if path.suffix == ".eval" or zipfile.is_zipfile(path):
        try:
            from inspect_ai.log import read_eval_log
        except ImportError:
            raise RecordError(f"{path}: an inspect .eval log needs inspect_ai to be read (pip install inspect-ai), "
                              "or write the log as JSON (inspect eval --log-format json)") from None
        try:
            return json.loads(read_eval_log(str(path)).model_dump_json())
        except Exception as e:  # noqa: BLE001 - a damaged archive fails in many ways inside inspect_ai
            raise RecordError(f"{path}: not a readable inspect .eval log ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else 'no detail'})") from None
    try:
        log = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RecordError(f"{path}:{e.lineno}: not valid JSON ({e.msg}); expected an inspect eval log") from None
    if not isinstance(log, dict):
        raise RecordError(f"{path}: expected an inspect eval log (a JSON object), got {type(log).__name__}")
    return log


def inspect_rows(path: str | os.PathLike) -> list[tuple[int, str, dict]]:
    """One row per sample and epoch of an inspect eval log of a finished eval."""
    path = Path(path)
    log = inspect_log(path)
    for name in ("eval", "status"):
        if name not in log:
            raise RecordError(f"{path}: field '{name}': missing (not an inspect eval log)")
    if log["status"] != "success":
        raise RecordError(f"{path}: field 'status': the eval ended '{log['status']}', not 'success' (sftlens reads "
                          "the logs of finished evals)")
    model = log["eval"].get("model") if isinstance(log["eval"], dict) else None
    samples = log.get("samples")
    if not isinstance(samples, list) or not samples:
        raise RecordError(f"{path}: field 'samples': missing or empty (run inspect eval without --no-log-samples)")
    epochs = {s.get("epoch", 1) for s in samples if isinstance(s, dict)}
    rows = []
    for i, sample in enumerate(samples, 1):
        sample_id = sample.get("id") if isinstance(sample, dict) else None
        where = f"{path}: sample {i} (id {sample_id})"
        if not isinstance(sample, dict):
            raise RecordError(f"{where}: expected an object, got {type(sample).__name__}")
        for name in ("id", "input", "target", "output"):
            if name not in sample:
                raise RecordError(f"{where}: field '{name}': missing (each sample of an inspect log has id, input, "
                                  "target and output)")
        if sample.get("error"):
            raise RecordError(f"{where}: field 'error': the sample failed ({_short(sample['error'])})")
        output = sample["output"]
        if not isinstance(output, dict) or "completion" not in output:
            raise RecordError(f"{where}: field 'output.completion': missing")
        if isinstance(sample_id, (int, str)) and len(epochs) > 1:  # one row per epoch: the id names both
            sample_id = f"{sample_id}/epoch {sample.get('epoch', 1)}"
        rows.append((i, where, {"question": inspect_text(sample["input"], where), "completion": output["completion"],
                                "reference": inspect_target(sample["target"], where), "model": model,
                                "id": sample_id}))
    return rows


READERS = {"lm-eval": lm_eval_rows, "inspect": inspect_rows}
