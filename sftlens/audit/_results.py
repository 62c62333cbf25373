"""The one builder of ``results.json``, shared by the model audit and the predictions audit."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ..core.record import Sample
from ._changes import biggest_changes, step_gain_profile
from ._compare import (FAITH_METRICS, METRICS, TEXT_METRICS, compare_models, comparison_verdict, summarize_model,
                       text_only_verdict, variant_gap)
from ._faithfulness import compare_batteries, curve_points, summarize_battery
from ._io import SCHEMA_VERSION, clean_json
from ._samples import first_samples, generation_summary, limit_warnings, per_example, sampling_summary

MODES = ("models", "predictions")


@dataclass
class ModelEvidence:
    """One model's evidence on the main example set, as the results builder needs it."""

    label: str  # its key under results["models"] and in comparisons: "base"/"tuned", or a model name
    identity: dict  # what names the model in results.json: name, identity hash, revision, adapter, ...
    samples: list[Sample]  # one or (--samples N) several per example, an example's samples together
    rows: list[dict]  # metric rows, one per sample, in sample order
    battery: list[dict] | None = None  # faithfulness battery rows, when the battery ran


def build_results(mode: str, evidence: list[ModelEvidence], *, inputs: dict, seed: int, n_examples_shown: int,
                  faithfulness: dict, run: dict, notes: list[str],
                  variant_rows: dict[str, dict[str, list[dict]]] | None = None) -> dict:
    """``results.json`` of an audit, JSON-clean (NaN and infinities as ``None``).

    ``mode`` is ``"models"`` (every metric, faithfulness labels, the accuracy-trap verdict) or
    ``"predictions"`` (text metrics only, an ``n/a`` verdict). Each pair of models is compared
    ``b − a`` in the order of ``evidence``; the changed examples are those of the first pair.
    ``variant_rows`` maps a variant set's name to each model label's rows on it. Several samples per
    example are averaged per example (:func:`~sftlens.audit._samples.per_example`) before any
    statistic; ``warnings`` lists models with many generations cut at ``max_new_tokens``.

    >>> ev = [ModelEvidence("m", {"name": "m", "identity": None}, [], [{"id": "1", "correct": 1.0}])]
    >>> r = build_results("predictions", ev, inputs={}, seed=0, n_examples_shown=5, faithfulness={}, run={}, notes=[])
    >>> r["models"]["m"]["metrics"]["correct"]["mean"], r["comparisons"], r["verdict"]["status"]
    (1.0, [], 'n/a')
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    text_only = mode == "predictions"
    metrics = {m: METRICS[m] for m in TEXT_METRICS} if text_only else METRICS
    labelled = METRICS if text_only else {**METRICS, **FAITH_METRICS}
    models = {e.label: _model_summary(e, metrics, seed) for e in evidence}
    comparisons = [_comparison(a, b, metrics, seed) for a, b in itertools.combinations(evidence, 2)]
    verdict = (text_only_verdict(comparisons, [e.label for e in evidence]) if text_only
               else comparison_verdict(per_example(evidence[0].rows), per_example(evidence[1].rows),
                                       evidence[0].battery, evidence[1].battery))
    variants = {name: {e.label: variant_gap(per_example(e.rows), per_example(rows_by_label[e.label]), seed=seed)
                       for e in evidence}
                for name, rows_by_label in (variant_rows or {}).items()}
    changed = []
    if len(evidence) > 1:
        first, second = evidence[:2]
        changed = biggest_changes(first_samples(first.samples), first_samples(second.samples),
                                  per_example(first.rows), per_example(second.rows), n_examples_shown)
    warnings = limit_warnings(models, (inputs.get("generation") or {}).get("max_new_tokens"))
    return clean_json({
        "schema": SCHEMA_VERSION, "mode": mode, **({"text_metrics_only": True} if text_only else {}),
        "verdict": verdict, "inputs": inputs,
        "metric_info": {m: {"label": label, "unit": unit} for m, (label, unit) in labelled.items()},
        "models": models, "comparisons": comparisons, "variants": variants, "faithfulness": faithfulness,
        "changed_examples": changed, "run": run, "notes": notes, "warnings": warnings,
    })


def _model_summary(evidence: ModelEvidence, metrics: dict, seed: int) -> dict:
    """One entry of ``results["models"]``: identity, size (examples), metric intervals over examples,
    and when measured the per-step gain profile (over every chain), how generations ended
    (``generation``), pass@k and maj@k (``sampling``, with several samples per example) and the
    faithfulness summary with its early-answering curve."""
    rows = per_example(evidence.rows)
    entry = {"label": evidence.label, **evidence.identity, "n": len(rows),
             "metrics": summarize_model(rows, metrics, seed=seed)}
    if "ig_mean" in metrics:
        entry["step_gains"] = step_gain_profile(evidence.rows)
    generation = generation_summary(evidence.samples)
    if generation is not None:
        entry["generation"] = generation
    sampling = sampling_summary(evidence.samples, evidence.rows, seed=seed) if evidence.samples else None
    if sampling is not None:
        entry["sampling"] = sampling
    if evidence.battery is not None:
        summary = summarize_battery(evidence.battery, seed=seed)
        entry["faithfulness"] = summary
        entry["early_curve"] = curve_points(clean_json(summary))
    return entry


def _comparison(a: ModelEvidence, b: ModelEvidence, metrics: dict, seed: int) -> dict:
    """One entry of ``results["comparisons"]``: ``b − a``, with the faithfulness difference when
    both batteries ran."""
    comparison = {"a": a.label, "b": b.label, **compare_models(per_example(a.rows), per_example(b.rows),
                                                                metrics=metrics, seed=seed)}
    if a.battery and b.battery:
        comparison["faithfulness_diff"] = compare_batteries(b.battery, a.battery, seed=seed)
    return comparison
