"""What changed per example: the step-gain profile of a model and the examples that changed most."""

from __future__ import annotations

import math

from ..core.record import Sample
from ._compare import as_float


def step_gain_profile(rows: list[dict], max_steps: int = 12) -> list[dict]:
    """Mean per-step information gain at each chain position (1-based) over the chains that reach it.

    >>> step_gain_profile([{"ig_gains": [0.5, -0.1]}, {"ig_gains": [0.3]}])
    [{'step': 1, 'mean': 0.4, 'n': 2}, {'step': 2, 'mean': -0.1, 'n': 1}]
    """
    profile = []
    for position in range(max_steps):
        gains = [r["ig_gains"][position] for r in rows
                 if isinstance(r.get("ig_gains"), list) and len(r["ig_gains"]) > position]
        gains = [g for g in gains if g is not None and not math.isnan(g)]
        if not gains:
            break
        profile.append({"step": position + 1, "mean": round(sum(gains) / len(gains), 6), "n": len(gains)})
    return profile


def biggest_changes(samples_a: list[Sample], samples_b: list[Sample], rows_a: list[dict], rows_b: list[dict],
                    k: int = 5) -> list[dict]:
    """The ``k`` examples behind the biggest changes from ``a`` to ``b`` (paired by id): correctness
    flips first, then the largest drop in information gain per step; with both chains, each step's
    gain, and ``lost_steps_b`` (indices of ``b``'s steps with the most negative gains)."""
    by_id_a = {s.id: (s, r) for s, r in zip(samples_a, rows_a)}
    pairs = []
    for sample_b, row_b in zip(samples_b, rows_b):
        if sample_b.id not in by_id_a:
            continue
        sample_a, row_a = by_id_a[sample_b.id]
        delta_correct = as_float(row_b.get("correct")) - as_float(row_a.get("correct"))
        delta_gain = as_float(row_b.get("ig_mean")) - as_float(row_a.get("ig_mean"))
        pairs.append((sample_a, row_a, sample_b, row_b, delta_correct, delta_gain))
    pairs.sort(key=lambda t: (-abs(t[4]), t[5] if not math.isnan(t[5]) else math.inf, t[2].id))
    changes = []
    for sample_a, row_a, sample_b, row_b, delta_correct, delta_gain in pairs[:k]:
        chain_b = _chain_view(sample_b, row_b)
        lost = []
        if chain_b["gains"]:
            negative = sorted((g, i) for i, g in enumerate(chain_b["gains"]) if g is not None and g < 0)
            lost = [i for _, i in negative[:2]]
        changes.append({"id": sample_b.id, "question": _question_of(sample_b), "reference": sample_b.meta.get("reference_text", sample_b.reference),
                        "a": _chain_view(sample_a, row_a), "b": chain_b, "delta_correct": delta_correct,
                        "delta_ig_mean": None if math.isnan(delta_gain) else delta_gain, "lost_steps_b": lost})
    return changes


def _chain_view(sample: Sample, row: dict) -> dict:
    """One model's chain as the report shows it: text, steps, answers (as written, and normalised),
    correctness as the row judged it, per-step gains and validity."""
    from ..core.format import marked_answer, split_thinking

    gains = row.get("ig_gains") if isinstance(row.get("ig_gains"), list) else None
    valid = row.get("step_valid") if isinstance(row.get("step_valid"), list) else None
    written = marked_answer(split_thinking(sample.completion)[1])
    return {"completion": sample.completion, "steps": sample.steps,
            "answer": written.strip() if written is not None else sample.answer, "normalised_answer": sample.answer,
            "flexible_answer": sample.flexible_answer, "correct": bool(row.get("correct", sample.correct)),
            "flexible_correct": sample.flexible_correct, "gains": gains, "step_valid": valid,
            "ig_mean": None if math.isnan(as_float(row.get("ig_mean"))) else row.get("ig_mean")}


def _question_of(sample: Sample) -> str:
    """The question of a sample: its ``question`` meta field, else the prompt after the last ``Q: ``."""
    question = sample.meta.get("question")
    if question:
        return question
    prompt = sample.prompt
    start = prompt.rfind("Q: ")
    return prompt[start + 3:].strip() if start >= 0 else prompt.strip()
