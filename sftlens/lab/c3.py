"""Claim C3 — instruction tuning teaches the output space, not the task (Kung & Peng 2023).

Pure functions the lab runner wires in:

- :func:`c3_training_sets`: the corrupted-instruction training sets (``instr_empty``,
  ``instr_wrong``: another task's instruction, ``instr_random``: random words of the same length);
  the ``correct`` condition is the lab's standard training set.
- :func:`output_space_baseline`: per test example, 1/0 for a random answer drawn from the task's
  answer distribution in the training set (a model that knows only the output space).
- :func:`analyze_c3`: the claim entry. Rule (an equivalence test with a 5-point margin): C3 is
  *reproduced* when, for every corrupted-instruction model, the 95% bootstrap interval of the paired
  accuracy difference (corrupted - correct) lies inside [-0.05, 0.05]; *not reproduced* when any
  such interval lies entirely below -0.05; *inconclusive* otherwise.
"""

from __future__ import annotations

import math
import random

from ..core.format import normalize_answer
from ..data.ops import instructions_empty, instructions_random, instructions_wrong
from ..core.record import Example
from ..metrics.stats import Estimate, bootstrap_mean, mcnemar, paired_difference

CLAIM = ("Models trained on empty, wrong or random-word instructions score about as well as with the "
         "correct instructions (instruction tuning teaches the output space, not the task).")
CONDITIONS = ("instr_empty", "instr_wrong", "instr_random")
MARGIN = 0.05
RULE = (f"Equivalence test, margin {MARGIN:.2f}: reproduced when every corrupted-instruction model's 95% "
        "bootstrap interval of the paired accuracy difference (corrupted - correct, over the same test "
        f"examples) lies inside [-{MARGIN:.2f}, {MARGIN:.2f}]; not reproduced when any interval lies entirely "
        f"below -{MARGIN:.2f}; inconclusive otherwise. Each model is also compared with the output-space "
        "baseline (a random answer drawn from the task's training answers).")


def c3_training_sets(train: list[Example], seed: int = 0) -> dict[str, list[Example]]:
    """The three corrupted-instruction training sets built from the standard ``train`` set.

    >>> from sftlens.tasks.shop import ShopWorld, ShopConfig, make_splits
    >>> sp = make_splits(ShopWorld(ShopConfig(seed=0)), 5, 20, 5, 2, seed=0)
    >>> sets = c3_training_sets(sp.train, seed=0)
    >>> sorted(sets), {e.instruction for e in sets["instr_empty"]}
    (['instr_empty', 'instr_random', 'instr_wrong'], {''})
    >>> all(e.instruction != o.instruction for e, o in zip(sets["instr_wrong"], sp.train))
    True
    """
    return {
        "instr_empty": instructions_empty(train, seed=seed),
        "instr_wrong": instructions_wrong(train, seed=seed),
        "instr_random": instructions_random(train, seed=seed),
    }


def output_space_baseline(train: list[Example], test: list[Example], seed: int = 0) -> list[float]:
    """Per test example 1.0/0.0: is a random answer, drawn from the training answers of the same
    task (the empirical answer distribution; all training answers when the task is absent), right?

    >>> tr = [Example(id=str(i), task="t", question="q", answer="7") for i in range(3)]
    >>> output_space_baseline(tr, [Example(id="a", task="t", question="q", answer="7"),
    ...                            Example(id="b", task="t", question="q", answer="8")])
    [1.0, 0.0]
    """
    rng = random.Random(seed)
    by_task: dict[str, list[str]] = {}
    for e in train:
        by_task.setdefault(e.task, []).append(normalize_answer(e.answer) or "")
    everything = [a for v in by_task.values() for a in v]
    out = []
    for e in test:
        pool = by_task.get(e.task) or everything
        if not pool:
            out.append(math.nan)
            continue
        out.append(1.0 if rng.choice(pool) == (normalize_answer(e.answer) or "") else 0.0)
    return out


def equivalence(est: Estimate, margin: float = MARGIN) -> str:
    """Where a difference's interval lies relative to the margin: ``inside`` (equivalent),
    ``below`` (entirely below -margin), ``above`` (entirely above +margin), ``undecided`` or ``n/a``.

    >>> equivalence(Estimate(0.0, -0.03, 0.04, 100)), equivalence(Estimate(-0.2, -0.3, -0.1, 100))
    ('inside', 'below')
    """
    if math.isnan(est.mean) or math.isnan(est.lo):
        return "n/a"
    if -margin <= est.lo and est.hi <= margin:
        return "inside"
    if est.hi < -margin:
        return "below"
    if est.lo > margin:
        return "above"
    return "undecided"


def _col(rows: list[dict], key: str) -> list[float]:
    out = []
    for r in rows:
        v = r.get(key, math.nan)
        out.append(math.nan if v is None else float(v))
    return out


def _check_aligned(rows_by_model: dict[str, list[dict]]) -> None:
    lens = {m: len(r) for m, r in rows_by_model.items()}
    if len(set(lens.values())) > 1:
        raise ValueError(f"rows_by_model: models were scored on different numbers of examples {lens}; "
                         "paired statistics need the same test examples in the same order")
    ids = {m: [r.get("id") for r in rows] for m, rows in rows_by_model.items()}
    ref = next(iter(ids.values()), [])
    for m, v in ids.items():
        if None not in v and None not in ref and v != ref:
            raise ValueError(f"rows_by_model: model '{m}' rows are not on the same examples in the same order")


def needed_n(treated: list[float], control: list[float], margin: float = MARGIN) -> int | None:
    """Roughly how many paired examples make the 95% interval of the mean difference as narrow as
    ``±margin/2`` around its estimate (``(2 * 1.96 * sd / margin)^2``), or ``None`` without data.

    >>> needed_n([1, 0, 1, 0], [0, 1, 1, 0])
    4098
    """
    import numpy as np

    d = np.asarray(treated, float) - np.asarray(control, float)
    d = d[~np.isnan(d)]
    if d.size < 2:
        return None
    sd = float(d.std(ddof=1))
    return int(math.ceil((2 * 1.96 * sd / margin) ** 2)) if sd > 0 else None


def _effect(name: str, e: Estimate) -> dict:
    return {"name": name, **e.to_dict()}


def analyze_c3(rows_by_model: dict[str, list[dict]], baseline: list[float], seed: int = 0) -> dict:
    """The C3 claim entry from per-sample rows (key ``correct``) of the models ``correct``,
    ``instr_empty``, ``instr_wrong`` and ``instr_random`` on the same test examples, and the
    output-space baseline's per-example outcomes (see the module docstring for the rule).

    The headline ``effect`` is the corrupted-minus-correct difference whose interval reaches
    furthest from zero (the one that decides the equivalence test).
    """
    notes: list[str] = []
    _check_aligned(rows_by_model)
    per_model: dict[str, dict] = {}
    base = [float(x) for x in baseline]
    for m, rows in rows_by_model.items():
        acc = _col(rows, "correct")
        entry = {"accuracy": bootstrap_mean(acc, seed=seed).to_dict()}
        if len(base) == len(acc):
            entry["vs_baseline"] = paired_difference(acc, base, seed=seed).to_dict()
        per_model[m] = entry
    if base:
        per_model["output_space_baseline"] = {"accuracy": bootstrap_mean(base, seed=seed).to_dict()}
    if "correct" not in rows_by_model:
        return {"claim": CLAIM, "verdict": "inconclusive", "rule": RULE,
                "effect": _effect("accuracy difference", Estimate(math.nan, math.nan, math.nan, 0)),
                "per_condition": {}, "per_model": per_model,
                "notes": ["no 'correct' model in the rows: nothing to compare with"]}
    ref = _col(rows_by_model["correct"], "correct")
    per_condition: dict[str, dict] = {}
    diffs: list[tuple[str, Estimate]] = []
    for c in CONDITIONS:
        if c not in rows_by_model:
            notes.append(f"condition '{c}' missing from the rows")
            continue
        acc = _col(rows_by_model[c], "correct")
        d = paired_difference(acc, ref, seed=seed)
        nm = mcnemar([x == 1 for x in acc], [x == 1 for x in ref])
        per_condition[c] = {"diff_vs_correct": d.to_dict(), "equivalence": equivalence(d), "mcnemar": nm}
        diffs.append((c, d))
    if not diffs:
        verdict = "inconclusive"
        effect = _effect("accuracy difference", Estimate(math.nan, math.nan, math.nan, 0))
    else:
        states = [equivalence(d) for _, d in diffs]
        if len(diffs) == len(CONDITIONS) and all(s == "inside" for s in states):
            verdict = "reproduced"
        elif any(s == "below" for s in states):
            verdict = "not reproduced"
        else:
            verdict = "inconclusive"
        c, d = max(diffs, key=lambda cd: max(abs(cd[1].lo), abs(cd[1].hi)) if not math.isnan(cd[1].lo) else -1)
        effect = _effect(f"accuracy({c}) - accuracy(correct)", d)
        if len(diffs) < len(CONDITIONS) and verdict == "inconclusive":
            notes.append("not every corrupted-instruction condition was run, so equivalence cannot be shown for all")
    corr_vs_base = per_model["correct"].get("vs_baseline")
    if corr_vs_base is not None and not math.isnan(corr_vs_base["lo"]) and corr_vs_base["lo"] <= 0:
        notes.append("the correct-instruction model is not clearly above the output-space baseline: "
                     "equivalence then only shows that no model learned more than the answer distribution")
        if verdict == "reproduced":
            verdict = "inconclusive"  # no signal: equivalence of models that learned nothing proves nothing
    if verdict == "inconclusive":
        for c, d in diffs:
            need = needed_n(_col(rows_by_model[c], "correct"), ref)
            if d.hi - d.lo > 2 * MARGIN and need:
                notes.append(f"{c}: the interval ({d.lo:+.3f}, {d.hi:+.3f}) is wider than the ±{MARGIN:.2f} margin; "
                             f"about {need} paired test examples would resolve it at this disagreement rate")
    return {"claim": CLAIM, "verdict": verdict, "rule": RULE, "effect": effect,
            "per_condition": per_condition, "per_model": per_model, "notes": notes}
