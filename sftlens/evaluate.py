"""The audit core shared by ``sftlens lab`` and ``sftlens audit``: generate, then score.

Generation and scoring are separate stages. :func:`generate_samples` turns a model and examples into
:class:`~sftlens.core.record.Sample` records; :func:`score_samples` adds per-sample metrics
(accuracy, step validity, Knowledge Index, information gain scored by a fixed *scorer* model).
Per-sample rows are what every aggregate, interval and report is computed from.
"""

from __future__ import annotations

from typing import Callable

from .core.format import prompt_text
from .core.record import Example, Sample
from .metrics.infogain import prefix_scores
from .metrics.reasoning import chain_metrics, make_sample
from .models.lm import LM
from .tasks.base import Verifier


def generate_samples(lm: LM, examples: list[Example], max_new_tokens: int = 96, batch_size: int = 64,
                     instruction: str | None = None, progress: Callable[[int], None] | None = None,
                     **meta) -> list[Sample]:
    """Greedy generation for each example, parsed into samples (``meta`` is stored on each)."""
    prompts = [prompt_text(e, instruction) for e in examples]
    outs = lm.generate(prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
    return [make_sample(e, lm.name, lm.format_prompt(p), o, **meta) for e, p, o in zip(examples, prompts, outs)]


def score_samples(samples: list[Sample], examples: list[Example], scorer: LM | None = None,
                  verifier: Verifier | None = None, batch_size: int = 16,
                  progress: Callable[[int], None] | None = None) -> list[dict]:
    """Per-sample metric rows, in sample order.

    Each row has ``id``, ``correct``, ``flexible_correct``, ``n_steps``; with a ``verifier``:
    ``validity`` (share of valid steps), ``chain_valid`` and ``ki`` (Knowledge Index), and when the
    (per-example) verifier also offers ``check_output(completion) -> dict`` (a task answered as JSON,
    :mod:`sftlens.tasks.packing`) its levels (``json_parses``, ``schema_valid``, ``feasible``,
    ``optimal``, and ``output_check``: why the first level not reached failed); with a
    ``scorer``: ``ig_mean``, ``ig_min``, ``ig_total``, ``ig_ppl`` and ``ig_gains`` — information gain of
    the sample's own steps toward the *reference* answer, scored by ``scorer``. NaN marks a metric
    that does not apply (e.g. information gain of a chain without steps).
    """
    by_id = {e.id: e for e in examples}
    rows: list[dict] = []
    for s in samples:
        r = {"id": s.id, "correct": float(s.correct), "flexible_correct": float(s.flexible_correct),
             "n_steps": len(s.steps), "answered": float(s.answer is not None)}
        if verifier is not None:
            # a world whose every example has its own facts (a maze) gives one verifier per example
            v = verifier.for_example(by_id[s.id]) if hasattr(verifier, "for_example") else verifier
            checks = v.verify(s.steps, s.answer)
            r.update(chain_metrics(checks))
            r["step_kinds"] = [c.kind for c in checks]
            r["step_valid"] = [c.valid for c in checks]
            if hasattr(v, "check_output"):  # a structured answer checked whole (JSON: parses, schema, ...)
                r.update(v.check_output(s.completion))
        rows.append(r)
    if scorer is not None:
        items = [(by_id[s.id], s.steps, s.reference) for s in samples]
        fmt = scorer.format_prompt if scorer.chat else None
        scores = []
        for b in range(0, len(items), batch_size * 4):
            chunk = items[b:b + batch_size * 4]
            scores += prefix_scores(scorer.model, scorer.tokenizer, chunk, batch_size=batch_size, chat_format=fmt)
            if progress:
                progress(len(chunk))
        for r, sc in zip(rows, scores):
            r.update(ig_mean=sc.mean_gain, ig_min=sc.min_gain, ig_total=sc.total, ig_ppl=sc.ppl_infogain,
                     ig_gains=sc.gains, ig_logp=sc.logp)
    return rows
