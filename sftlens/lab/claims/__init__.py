"""The lab's claims: one file per claim, each registering a :class:`Claim` in :data:`CLAIMS`.

========  ==========================  ================================================
id        file                        what it tests
========  ==========================  ================================================
C1        ``accuracy_trap.py``        accuracy up, information gain of steps down
C2        ``faithfulness.py``         answers depend less on the chain after SFT
C3        ``instructions.py``         wrong/empty/random instructions teach as well
C4        ``swapped_traces.py``       other problems' traces teach as well
C5        ``form_feasibility.py``     SFT teaches valid JSON, not feasible answers
C6        ``criteria.py``             labels alone don't transfer criteria to new types
C7        ``rl_difficulty.py``        GRPO on too-hard problems contaminates skills
C8        ``memorisation.py``         "N-1" variants collapse after SFT
C9        ``proxy_knowledge.py``      proxy-tuning keeps facts direct SFT overwrites
C10       ``curation.py``             a small curated set rivals the full pool
========  ==========================  ================================================

Adding a claim is one new file here (a ``Claim`` subclass under ``@register_claim``, registering
any new data condition with ``register_condition``; a condition may start from another condition's
model and bring its own training, as C7's GRPO does) and its name in the imports below.
"""

from __future__ import annotations

from ...metrics.stats import bootstrap_mean, column
# each import registers its claim (and its conditions); this order is the registration order
from . import accuracy_trap, faithfulness, swapped_traces, instructions, memorisation, curation  # noqa: F401
from . import form_feasibility, proxy_knowledge, rl_difficulty, criteria  # noqa: F401
from ._base import CLAIMS, Arm, Claim, ClaimResult, FinishedRun, model_summary, register_claim


def selected_claims(ids: list[str] | None = None) -> dict[str, Claim]:
    """The registered claims (all, or those named in ``ids``) in registration order."""
    if ids is None:
        return dict(CLAIMS)
    unknown = [i for i in ids if i not in CLAIMS]
    if unknown:
        raise ValueError(f"unknown claim '{unknown[0]}' (valid: {', '.join(CLAIMS)})")
    return {i: c for i, c in CLAIMS.items() if i in ids}


def analyze_run(run, claims: dict[str, Claim] | None = None, seed_runs: list | None = None) -> dict:
    """Every claim's result: the ``results.json`` content.

    ``run`` gives the descriptive tables (per-model and per-condition numbers, plots); the verdict of
    each claim comes from the protocol (:func:`sftlens.lab.protocol.judge`) over ``seed_runs`` (one
    finished run per seed; default ``[run]``), Holm-adjusted across the claims.
    """
    from ..protocol import adjust_across, check_controls, judge

    seed_runs = seed_runs or [run]
    seed, n = run.seed, run.bootstrap
    models = {}
    for m in run.models():
        models[m] = {"info": run.model_info(m), "accuracy": model_summary(run.rows(m, "test"), seed, n).get("correct"),
                     "fact_probe_accuracy": bootstrap_mean(column(run.rows(m, "facts"), "correct"), seed=seed,
                                                           n_resamples=n).to_dict()}
    entries, judgements, controls = {}, {}, {}
    for cid, claim in (claims or CLAIMS).items():
        arms = claim.arms()
        result = claim.analyze(run.world_run(arms["real"].world))
        if result is None:
            continue
        entries[cid] = result.to_dict()
        if claim.protocol is None:
            continue
        judged = {}
        for role, arm in arms.items():
            evidence = [claim.evidence(r.world_run(arm.world), arm) for r in seed_runs]
            if all(e is not None for e in evidence):
                judged[role] = judge(claim.protocol, evidence, n_resamples=n, seed=seed)
        if "real" in judged:
            judgements[cid] = judged.pop("real")
            controls[cid] = check_controls(claim, judged, judgements[cid])
    adjust_across(judgements)
    single = len(seed_runs) == 1
    for cid, verdict in judgements.items():
        entry = entries[cid]
        first = next(iter(verdict["pooled"]))
        entry.update(verdict=verdict["verdict"], rule=CLAIMS[cid].protocol.rule(),
                     effect={"name": first, **verdict["pooled"][first]["estimate"], "n": verdict["pooled"][first]["n"]},
                     exploratory=single, **{k: v for k, v in verdict.items() if k != "verdict"})
        entry["controls"] = controls[cid]
        if single:
            entry["notes"].insert(0, "single seed: exploratory (the verdict covers test-set sampling only, not "
                                     "training variance; the standard preset runs five seeds)")
    return {"sftlens_lab": 2, "preset": run.preset.name, "seeds": [r.seed for r in seed_runs], "seed": seed,
            "models": models, "claims": dict(sorted(entries.items(), key=lambda kv: int(kv[0][1:])))}


__all__ = ["Arm", "CLAIMS", "Claim", "ClaimResult", "FinishedRun", "analyze_run", "register_claim", "selected_claims"]
