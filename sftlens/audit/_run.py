"""Orchestration: the model audit and the predictions audit, from inputs to the saved results."""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from pathlib import Path
from typing import Callable, Iterator

from ..core.errors import UserError
from ..core.record import Example, Sample, atomic_write_json, write_jsonl
from ..metrics.stats import bootstrap_mean, unpaired_difference
from ._cache import Store
from ._compare import (FAITH_METRICS, METRICS, TEXT_METRICS, TRAP_RULE, _clean_json, _est, _fmt_pts, _num, _ok,
                       biggest_changes, compare_models, step_gain_profile, summarize_model, trap_verdict)
from ._faithfulness import _curve_points, faithfulness_module, run_faithfulness
from ._io import RESULTS_FILE, ROWS_FILE, SAMPLES_FILE, SCHEMA_VERSION, write_report
from ._models import load_models
from ._predictions import read_predictions
from ._spec import AuditSpec, load_data, pick_verifier
from ._stages import GenSettings, generate_cached, score_cached


@contextlib.contextmanager
def progress_bars(enabled: bool = True) -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """Yields ``start(description, total) -> advance(n)``; rich bars with an ETA on stderr."""
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    prog = Progress(TextColumn("[bold]{task.description:<34}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                    console=Console(stderr=True), transient=False, disable=not enabled)

    def start(desc: str, total: int) -> Callable[[int], None]:
        tid = prog.add_task(desc, total=max(total, 0))
        return lambda n=1: prog.advance(tid, n)

    with prog:
        yield start


def run_audit(spec: AuditSpec) -> dict:
    """Run (or resume) an audit and write ``results.json``, ``report.html`` and ``report.md``;
    returns the results."""
    t0 = time.time()
    if spec.adapter and spec.tuned:
        raise UserError("give either --tuned or --adapter (the tuned model is then base+adapter), not both")
    if not spec.adapter and not spec.tuned:
        raise UserError("missing the tuned model: pass --tuned PATH, or --adapter PATH for a LoRA adapter on --base")
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    data_path = Path(spec.data)
    fields = (spec.fmt, spec.question_field, spec.answer_field, spec.steps_field, spec.step_splitter, spec.id_field)
    examples, fmt = load_data(data_path, spec.limit, *fields)
    verifier, vlabel = pick_verifier(examples, data_path, spec.world)
    world = verifier if vlabel.startswith("shop") else None
    variant_sets: dict[str, list[Example]] = {}
    for name, vp in spec.variants.items():
        variant_sets[name], _ = load_data(vp, spec.limit, *fields)
    gen = GenSettings(spec.max_new_tokens, spec.batch_size, spec.temperature, spec.seed)
    samples_store = Store(out / SAMPLES_FILE)
    rows_store = Store(out / ROWS_FILE, key_field="row_key")
    fmod = faithfulness_module() if spec.faithfulness else None
    notes: list[str] = []
    if samples_store.dropped_partial:
        notes.append("samples.jsonl ended in a truncated line (an interrupted run); it was dropped and regenerated")

    base, load_tuned = load_models(spec.base, spec.tuned, spec.adapter, spec.device, spec.dtype, spec.revision)
    sets = {"main": examples, **variant_sets}
    n_all = sum(map(len, sets.values()))
    generated = {"base": 0, "tuned": 0}
    samples: dict[str, dict[str, list[Sample]]] = {"base": {}, "tuned": {}}
    battery: dict[str, list[dict]] = {}
    with progress_bars(spec.show_progress) as bar:
        for role in ("base", "tuned"):
            h = base if role == "base" else load_tuned()
            adv = bar(f"generate ({role})", n_all)
            for sname, exs in sets.items():
                samples[role][sname], n = generate_cached(h, exs, sname, samples_store, gen, adv)
                generated[role] += n
            if fmod is not None:
                battery[role] = run_faithfulness(h, examples, samples[role]["main"], spec.seed, world, out,
                                                 spec.batch_size, spec.max_new_tokens,
                                                 bar(f"faithfulness ({role})", 4 * len(examples)))
            if role == "tuned":
                tuned = h
        scored = 0
        rows: dict[str, dict[str, list[dict]]] = {"base": {}, "tuned": {}}
        for role in ("base", "tuned"):
            adv = bar(f"score ({role}, scorer = base)", n_all)
            for sname, exs in sets.items():
                rows[role][sname], n = score_cached(samples[role][sname], exs, base if sname == "main" else None,
                                                    verifier, vlabel, rows_store, spec.batch_size, adv)
                scored += n
    if not spec.faithfulness:
        faith = {"status": "off", "reason": "--no-faithfulness"}
    elif fmod is None:
        faith = {"status": "unavailable", "reason": "sftlens.metrics.faithfulness is not installed in this version"}
    else:
        faith = {"status": "ran", "per_example_file": "faithfulness_<role>.json"}

    seed = spec.seed
    models = {}
    for role, h in (("base", base), ("tuned", tuned)):
        models[role] = {"label": role, **h.describe(), "n": len(examples),
                        "metrics": summarize_model(rows[role]["main"], seed=seed),
                        "step_gains": step_gain_profile(rows[role]["main"])}
        if role in battery:
            fs = fmod.summarize_battery(battery[role], seed=seed)
            models[role]["faithfulness"] = fs
            models[role]["early_curve"] = _curve_points(_clean_json(fs))
    comp = {"a": "base", "b": "tuned", **compare_models(rows["base"]["main"], rows["tuned"]["main"], seed=seed)}
    if battery.get("base") and battery.get("tuned"):
        comp["faithfulness_diff"] = fmod.compare_battery(battery["tuned"], battery["base"], seed=seed)
    variants = {}
    for sname in variant_sets:
        variants[sname] = {}
        for role in ("base", "tuned"):
            acc_main = [_num(r["correct"]) for r in rows[role]["main"]]
            acc_var = [_num(r["correct"]) for r in rows[role][sname]]
            variants[sname][role] = {"accuracy": _est(bootstrap_mean(acc_var, seed=seed)),
                                     "gap": _est(unpaired_difference(acc_main, acc_var, seed=seed)),
                                     "n": len(acc_var)}
    v = trap_verdict(comp["diff"].get("correct"), comp["diff"].get("ig_mean"),
                     comp.get("faithfulness_diff", {}).get("aoc"))
    if base.lm.tokenizer is not tuned.lm.tokenizer and len(base.lm.tokenizer) != len(tuned.lm.tokenizer):
        notes.append(f"the tuned model's tokenizer has {len(tuned.lm.tokenizer)} tokens, the base's "
                     f"{len(base.lm.tokenizer)}; the tuned chains are scored as text by the base")
    notes.append("information gain is scored by the base model for both models (one scale), toward the "
                 "reference answer; NaN/n/a marks chains without steps")
    results = {
        "schema": SCHEMA_VERSION, "mode": "models", "verdict": v,
        "inputs": {"base": spec.base, "tuned": spec.tuned, "adapter": spec.adapter, "data": str(data_path),
                   "format": fmt, "n_examples": len(examples), "verifier": vlabel, "variants": dict(spec.variants),
                   "limit": spec.limit, "seed": spec.seed, "generation": gen.as_key() | {"batch_size": gen.batch_size},
                   "device": str(base.lm.device), "dtype": str(next(base.lm.model.parameters()).dtype)},
        "metric_info": {m: {"label": lab, "unit": u} for m, (lab, u) in {**METRICS, **FAITH_METRICS}.items()},
        "models": models, "comparisons": [comp], "variants": variants, "faithfulness": faith,
        "changed_examples": biggest_changes(samples["base"]["main"], samples["tuned"]["main"],
                                            rows["base"]["main"], rows["tuned"]["main"], spec.n_examples_shown),
        "run": {"generated_new": sum(generated.values()), "generated_new_per_model": generated,
                "reused": 2 * n_all - sum(generated.values()), "scored_new": scored,
                "elapsed_s": round(time.time() - t0, 2)},
        "notes": notes,
    }
    results = _clean_json(results)
    atomic_write_json(out / RESULTS_FILE, results)
    write_report(out)
    return results


def audit_predictions(path: str | os.PathLike, out: str | os.PathLike, seed: int = 0,
                      n_examples_shown: int = 5) -> dict:
    """Score saved generations with text metrics only and compare the models in the file pairwise.

    Writes ``samples.jsonl``, ``metrics.jsonl``, ``results.json`` and the reports into ``out``.
    """
    from ..evaluate import score_samples
    from ..tasks.gsm8k import Gsm8kVerifier

    t0 = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    samples, examples, by = read_predictions(path)
    vlabel = "arithmetic annotations <<expr=result>>"
    rows = score_samples(samples, examples, scorer=None, verifier=Gsm8kVerifier())
    for r, s in zip(rows, samples):
        r["format_gap"] = r["flexible_correct"] - r["correct"]
        r.update(key=s.meta["key"], row_key=s.meta["key"], role=s.model, set="main", verifier=vlabel)
    write_jsonl(out / SAMPLES_FILE, [{"key": s.meta["key"], "role": s.model, "set": "main", **s.to_dict()}
                                    for s in samples])
    write_jsonl(out / ROWS_FILE, [_clean_json(r) for r in rows])
    names = list(dict.fromkeys(s.model for s in samples))
    per = {m: ([s for s in samples if s.model == m], [r for s, r in zip(samples, rows) if s.model == m])
           for m in names}
    models = {m: {"label": m, "name": m, "identity": None, "n": len(per[m][0]),
                  "metrics": summarize_model(per[m][1], {k: METRICS[k] for k in TEXT_METRICS}, seed=seed)}
              for m in names}
    comps = []
    for a, b in itertools.combinations(names, 2):
        c = compare_models(per[a][1], per[b][1], metrics={k: METRICS[k] for k in TEXT_METRICS}, seed=seed)
        comps.append({"a": a, "b": b, **c})
    notes = ["text metrics only: generations were scored from the file without loading a model, so "
             "information gain, Knowledge Index and faithfulness are not computed",
             f"models are paired by {by}"]
    if len(names) == 1:
        v = {"status": "n/a", "trap": None, "rule": TRAP_RULE,
             "text": f"Saved generations, one model ('{names[0]}'): text metrics only, nothing to compare"}
    else:
        c = comps[0]
        acc = c["diff"].get("correct")
        flex = c["diff"].get("flexible_correct")
        p = c["mcnemar"].get("strict", {}).get("p_value")
        txt = (f"Text metrics only — {c['b']} vs {c['a']}: strict accuracy {_fmt_pts(acc)}, flexible accuracy "
               f"{_fmt_pts(flex)}, McNemar p = {p:.3g}; the accuracy trap needs information gain or "
               "faithfulness (run with --base/--tuned)") if _ok(acc) and _ok(flex) else \
            "Text metrics only — no example is shared by the models"
        v = {"status": "n/a", "trap": None, "rule": TRAP_RULE, "text": txt}
    results = _clean_json({
        "schema": SCHEMA_VERSION, "mode": "predictions", "text_metrics_only": True, "verdict": v,
        "inputs": {"predictions": str(path), "paired_by": by, "n_lines": len(samples), "models": names,
                   "verifier": vlabel, "seed": seed},
        "metric_info": {m: {"label": lab, "unit": u} for m, (lab, u) in METRICS.items()},
        "models": models, "comparisons": comps, "variants": {},
        "faithfulness": {"status": "off", "reason": "saved generations: no model loaded"},
        "changed_examples": biggest_changes(per[names[0]][0], per[names[1]][0], per[names[0]][1], per[names[1]][1],
                                            n_examples_shown) if len(names) > 1 else [],
        "run": {"generated_new": 0, "scored_new": len(rows), "elapsed_s": round(time.time() - t0, 2)},
        "notes": notes,
    })
    atomic_write_json(out / RESULTS_FILE, results)
    write_report(out)
    return results
