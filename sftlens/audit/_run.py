"""Orchestration: the model audit and the predictions audit, from inputs to the saved results."""

from __future__ import annotations

import contextlib
import os
import time
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

from ..core.console import make_console, progress
from ..core.format import prompt_text
from ..core.record import Example, Sample, atomic_write_json, write_jsonl
from ._cache import Store
from ._faithfulness import faithfulness_module, run_faithfulness
from ._io import RESULTS_FILE, ROWS_FILE, SAMPLES_FILE, clean_json, write_report
from ._models import ModelHandle, load_models
from ._logs import detect_format
from ._predictions import read_prediction_files
from ._results import ModelEvidence, build_results
from ._samples import first_samples
from ._spec import AuditSpec, check_spec, load_data, pick_verifier
from ._stages import GenSettings, add_format_gap, generate_cached, score_cached

ROLES = ("base", "tuned")


@contextlib.contextmanager
def _stage_bars(enabled: bool = True) -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """Yields ``start(description, total) -> advance(n)``: bars with an ETA on stderr, or nothing."""
    bars = progress(make_console(stderr=True) if enabled else None, width=34)

    def start(description: str, total: int) -> Callable[[int], None]:
        task_id = bars.add_task(description, total=max(total, 0), info="")
        return lambda n=1: bars.advance(task_id, n)

    with bars:
        yield start


def _faithfulness_status(requested: bool, module) -> dict:
    """``results["faithfulness"]``: whether the battery ran, and why not."""
    if not requested:
        return {"status": "off", "reason": "--no-faithfulness"}
    if module is None:
        return {"status": "unavailable", "reason": "sftlens.metrics.faithfulness is not installed in this version"}
    return {"status": "ran", "per_example_file": "faithfulness_<role>.json"}


def _launched_ranks():
    """``PartialState`` when launched with several processes (``accelerate launch``, ``torchrun``: the
    ``WORLD_SIZE`` variable), else ``None``. On a host without CUDA the processes talk over gloo."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def _generate_and_score_shard(state, out: Path, shared_samples: Store, shared_rows: Store, handles: dict,
                              example_sets: dict, gen, verifier, verifier_label, spec: AuditSpec) -> None:
    """This rank's share of the work (every ``num_processes``-th example of each set, from its
    ``process_index``): generations and metric rows go to ``samples.rank<r>.jsonl`` and
    ``metrics.rank<r>.jsonl``; what the shared caches already hold is not redone."""
    rank, world = state.process_index, state.num_processes
    samples_store = Store(out / f"samples.rank{rank}.jsonl")
    rows_store = Store(out / f"metrics.rank{rank}.jsonl", key_field="row_key")
    samples_store.records = {**shared_samples.records, **samples_store.records}  # read both, append to our own
    rows_store.records = {**shared_rows.records, **rows_store.records}
    for role in ROLES:
        for set_name, set_examples in example_sets.items():
            shard = set_examples[rank::world]
            samples, _ = generate_cached(handles[role], shard, set_name, samples_store, gen)
            scorer = handles["base"] if set_name == "main" else None
            score_cached(samples, shard, scorer, verifier, verifier_label, rows_store, spec.batch_size,
                         equivalence=spec.equivalence)


def _merge_shards(out: Path, world: int) -> dict[str, int]:
    """Rank 0: append every rank's new records to the shared caches, then remove the rank files;
    returns how many records each cache gained."""
    added = {"samples": 0, "metrics": 0, **{f"samples_{role}": 0 for role in ROLES}}
    for stem, key_field in (("samples", "key"), ("metrics", "row_key")):
        shared = Store(out / (SAMPLES_FILE if stem == "samples" else ROWS_FILE), key_field=key_field)
        for rank in range(world):
            part = out / f"{stem}.rank{rank}.jsonl"
            if part.exists():
                new = [r for k, r in Store(part, key_field=key_field).records.items() if shared.get(k) is None]
                shared.append(new)
                added[stem] += len(new)
                if stem == "samples":
                    for r in new:
                        added[f"samples_{r['role']}"] += 1
                part.unlink()
    return added


def run_audit(spec: AuditSpec) -> dict | None:
    """Run (or resume) an audit and write ``results.json``, ``report.html`` and ``report.md``;
    returns the results.

    Launched with several processes (``accelerate launch --multi_gpu --num_processes N -m sftlens audit
    ...`` or ``torchrun --nproc_per_node N -m sftlens audit ...``; one device per rank) each rank
    generates and scores its share of the examples into its own cache file; rank 0 then merges them,
    runs the faithfulness battery and writes the reports from the merged caches, so the results equal a
    one-process run (greedy decoding; sampled batches are drawn per rank). Other ranks return ``None``.
    """
    started = time.time()
    check_spec(spec)
    by_ranks: dict[str, int] = {}
    state = _launched_ranks()
    if state is not None and spec.device is None:
        spec = replace(spec, device=str(state.device))
    if state is not None and state.process_index != 0:
        spec = replace(spec, show_progress=False)
    out = Path(spec.out)
    data_path = Path(spec.data)
    fields = (spec.fmt, spec.question_field, spec.answer_field, spec.steps_field, spec.step_splitter, spec.id_field)
    examples, data_format = load_data(data_path, spec.limit, *fields)
    verifier, verifier_label = pick_verifier(examples, data_path, spec.world, spec.checker)
    world = verifier if verifier_label.startswith("shop") else None
    example_sets: dict[str, list[Example]] = {"main": examples}
    for name, variant_path in spec.variants.items():
        example_sets[name], _ = load_data(variant_path, spec.limit, *fields)
    gen = GenSettings(spec.max_new_tokens, spec.batch_size, spec.temperature, spec.seed, spec.samples)
    samples_store = Store(out / SAMPLES_FILE)
    rows_store = Store(out / ROWS_FILE, key_field="row_key")
    faith_module = faithfulness_module() if spec.faithfulness else None
    notes: list[str] = []
    if samples_store.dropped_partial:
        notes.append("samples.jsonl ended in a truncated line (an interrupted run); it was dropped and regenerated")

    # both models load before any generation, so a tuned model that does not load fails in seconds
    base, load_tuned = load_models(spec.base, spec.tuned, spec.adapter, spec.device, spec.dtype, spec.revision,
                                   spec.chat_template, spec.system)
    handles: dict[str, ModelHandle] = {"base": base, "tuned": load_tuned()}
    vocab_note = _vocab_note(base.lm.tokenizer, handles["tuned"].lm.tokenizer)
    out.mkdir(parents=True, exist_ok=True)  # only now that every input is known to be good
    if state is not None:
        _generate_and_score_shard(state, out, samples_store, rows_store, handles, example_sets, gen, verifier,
                                  verifier_label, spec)
        state.wait_for_everyone()
        if state.process_index != 0:
            return None
        by_ranks = _merge_shards(out, state.num_processes)
        samples_store = Store(out / SAMPLES_FILE)
        rows_store = Store(out / ROWS_FILE, key_field="row_key")
    n_all = sum(map(len, example_sets.values())) * gen.samples  # generations per model
    generated = {role: 0 for role in ROLES}
    samples: dict[str, dict[str, list[Sample]]] = {role: {} for role in ROLES}
    rows: dict[str, dict[str, list[dict]]] = {role: {} for role in ROLES}
    batteries: dict[str, list[dict] | None] = {role: None for role in ROLES}
    scored = 0
    with _stage_bars(spec.show_progress) as start_bar:
        for role in ROLES:
            handle = handles[role]
            advance = start_bar(f"generate ({role})", n_all)
            for set_name, set_examples in example_sets.items():
                samples[role][set_name], n_new = generate_cached(handle, set_examples, set_name, samples_store, gen,
                                                                 advance)
                generated[role] += n_new
            if faith_module is not None:
                batteries[role] = run_faithfulness(handle, examples, first_samples(samples[role]["main"]), spec.seed,
                                                   world, out, spec.batch_size, spec.max_new_tokens,
                                                   start_bar(f"faithfulness ({role})", 4 * len(examples)))
        for role in ROLES:
            advance = start_bar(f"score ({role}, scorer = base)", n_all)
            for set_name, set_examples in example_sets.items():
                scorer = base if set_name == "main" else None
                rows[role][set_name], n_new = score_cached(samples[role][set_name], set_examples, scorer, verifier,
                                                           verifier_label, rows_store, spec.batch_size, advance,
                                                           equivalence=spec.equivalence)
                scored += n_new

    if vocab_note:
        notes.append(vocab_note)
    notes.append("information gain is scored by the base model for both models (one scale), toward the "
                 "reference answer; NaN/n/a marks chains without steps")
    if gen.samples > 1:
        notes.append(f"{gen.samples} samples per example at temperature {gen.temperature}: each metric is first "
                     "averaged over an example's samples (accuracy is its pass@1), then intervals and paired "
                     "differences are taken over examples; McNemar's test needs one binary outcome per example and "
                     "is left out; the faithfulness battery and the changed examples read each example's first sample")
    inputs = {"base": spec.base, "tuned": spec.tuned, "adapter": spec.adapter, "data": str(data_path),
              "format": data_format, "n_examples": len(examples), "verifier": verifier_label, "checker": spec.checker,
              "equivalence": spec.equivalence, "variants": dict(spec.variants), "limit": spec.limit, "seed": spec.seed,
              "generation": gen.as_key() | {"batch_size": gen.batch_size, "samples": gen.samples},
              "chat_template": spec.chat_template, "system": spec.system,
              "prompt_format": {role: handles[role].prompt_format(prompt_text(examples[0])) for role in ROLES},
              "device": str(base.lm.device), "dtype": str(next(base.lm.model.parameters()).dtype)}
    evidence = [ModelEvidence(role, handles[role].describe(), samples[role]["main"], rows[role]["main"],
                              batteries[role]) for role in ROLES]
    variant_rows = {name: {role: rows[role][name] for role in ROLES} for name in spec.variants}
    run = {"generated_new": sum(generated.values()), "generated_new_per_model": generated,
           "reused": 2 * n_all - sum(generated.values()), "scored_new": scored,
           "elapsed_s": round(time.time() - started, 2)}
    if state is not None:  # what the ranks made counts as new; rank 0's own pass found it all cached
        run.update(ranks=state.num_processes, generated_new=run["generated_new"] + by_ranks["samples"],
                   generated_new_per_model={role: generated[role] + by_ranks[f"samples_{role}"]
                                            for role in ROLES},
                   reused=run["reused"] - by_ranks["samples"], scored_new=scored + by_ranks["metrics"])
    results = build_results("models", evidence, inputs=inputs, seed=spec.seed,
                            n_examples_shown=spec.n_examples_shown,
                            faithfulness=_faithfulness_status(spec.faithfulness, faith_module), run=run, notes=notes,
                            variant_rows=variant_rows)
    # the report first, then the results: a results.json never stands without its report
    write_report(out, results)
    atomic_write_json(out / RESULTS_FILE, results)
    return results


def _vocab_note(base_tok, tuned_tok) -> str | None:
    """A note when the two tokenizers differ in vocabulary (not only in size: the same size with
    tokens mapped to other ids counts too); ``None`` when they are identical."""
    if base_tok is tuned_tok:
        return None
    base_vocab, tuned_vocab = base_tok.get_vocab(), tuned_tok.get_vocab()
    if base_vocab == tuned_vocab:
        return None
    if len(base_vocab) != len(tuned_vocab):
        how = f"has {len(tuned_vocab)} tokens, the base's {len(base_vocab)}"
    else:
        moved = sum(1 for t, i in tuned_vocab.items() if base_vocab.get(t) != i)
        how = f"has the base's size ({len(base_vocab)} tokens) but maps {moved} tokens to other ids"
    return f"the tuned model's tokenizer {how}; the tuned chains are scored as text by the base"


def audit_predictions(path: str | os.PathLike | list, out: str | os.PathLike, seed: int = 0,
                      n_examples_shown: int = 5, fmt: str = "auto", equivalence: str = "math",
                      pair_by: str = "auto", checker: str | None = None) -> dict:
    """Score saved generations with text metrics only and compare the models in the file pairwise;
    final answers are judged equal by ``equivalence`` (math-verify, or ``"strict"`` exact match);
    ``checker`` (``--checker``) adds the structured-output levels of each answer.

    ``path`` is a predictions JSONL, an lm-eval ``--log_samples`` file or an inspect eval log (``fmt``:
    ``sftlens``, ``lm-eval``, ``inspect``, or ``auto`` to tell them apart each), or a list of them
    (e.g. a base model's log and a tuned model's: their models are compared in the order given).
    Writes ``samples.jsonl``, ``metrics.jsonl``, ``results.json`` and the reports into ``out``.
    """
    from ..evaluate import score_samples
    from ..metrics.equivalence import judge_rows
    from ..tasks.gsm8k import Gsm8kVerifier

    from ..core.checks import check_input_file, check_output_path, check_seed

    started = time.time()
    check_seed(seed)
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    for one in paths:
        if not zipfile.is_zipfile(one):  # an inspect .eval log is a zip archive; every other format is UTF-8 text
            check_input_file(one, "--predictions")
    check_output_path(out, kind="dir", inputs=paths)
    from ._checker import check_checker, make_checker

    check_checker(checker)
    out = Path(out)
    formats = [detect_format(one) if fmt == "auto" else fmt for one in paths]
    samples, examples, paired_by, names = read_prediction_files(paths, fmt, pair_by)
    verifier, verifier_label = Gsm8kVerifier(), "arithmetic annotations <<expr=result>>"
    if checker is not None:
        verifier, verifier_label = make_checker(checker, examples, paths[0], verifier)
    out.mkdir(parents=True, exist_ok=True)
    rows = score_samples(samples, examples, scorer=None, verifier=verifier)
    judge_rows([add_format_gap(row) for row in rows], samples, {e.id: e for e in examples}, equivalence)
    for row, sample in zip(rows, samples):
        row.update(key=sample.meta["key"], row_key=sample.meta["key"], role=sample.model, set="main",
                   verifier=verifier_label)
    write_jsonl(out / SAMPLES_FILE, [{"key": s.meta["key"], "role": s.model, "set": "main", **s.to_dict()}
                                    for s in samples])
    write_jsonl(out / ROWS_FILE, [clean_json(r) for r in rows])
    evidence = [ModelEvidence(name, {"name": name, "identity": None}, [s for s in samples if s.model == name],
                              [r for s, r in zip(samples, rows) if s.model == name]) for name in names]
    notes = ["text metrics only: generations were scored from the file without loading a model, so "
             "information gain, Knowledge Index and faithfulness are not computed",
             f"models are paired by {paired_by}"]
    inputs = {"predictions": ", ".join(map(str, paths)), "predictions_format": ", ".join(dict.fromkeys(formats)),
              "paired_by": paired_by, "n_lines": len(samples), "models": names, "verifier": verifier_label,
              "checker": checker, "equivalence": equivalence, "seed": seed}
    run = {"mode": "predictions", "generated_new": 0, "scored_new": len(rows),
           "elapsed_s": round(time.time() - started, 2)}
    results = build_results("predictions", evidence, inputs=inputs, seed=seed, n_examples_shown=n_examples_shown,
                            faithfulness={"status": "off", "reason": "saved generations: no model loaded"},
                            run=run, notes=notes)
    write_report(out, results)
    atomic_write_json(out / RESULTS_FILE, results)
    return results
