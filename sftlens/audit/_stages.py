"""The generate and score stages: each reuses what the cache already holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..core.format import prompt_text
from ..core.record import Example, Sample
from ..metrics.reasoning import make_sample
from ._cache import Store, content_hash, row_key, sample_key
from ._models import ModelHandle


@dataclass
class GenSettings:
    """Generation parameters; all of them enter the cache key."""

    max_new_tokens: int = 256
    batch_size: int = 16
    temperature: float = 0.0
    seed: int = 0

    def as_key(self) -> dict:
        """The parameters that change what is generated (batch size does not)."""
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "seed": self.seed,
                "stop_after_answer": True}


def generate_cached(handle: ModelHandle, examples: list[Example], set_name: str, store: Store, gen: GenSettings,
                    advance: Callable[[int], None] | None = None) -> tuple[list[Sample], int]:
    """Samples of ``handle`` for ``examples`` (in order), generating only those not in ``store``;
    each finished batch is appended to the store. Returns the samples and how many were generated."""
    lm = handle.lm
    prompts = [prompt_text(e) for e in examples]
    adapter_state = "disabled" if handle.adapter_disabled else handle.adapter
    keys = [sample_key(handle.identity, handle.name, handle.revision, adapter_state, lm.format_prompt(p),
                       gen.as_key()) for p in prompts]
    todo = [i for i, k in enumerate(keys) if store.get(k) is None]
    if advance and len(examples) - len(todo):
        advance(len(examples) - len(todo))
    batch_size = max(1, gen.batch_size)
    for batch_start in range(0, len(todo), batch_size):
        batch = todo[batch_start:batch_start + batch_size]
        seed = _batch_seed(gen, [keys[i] for i in batch])
        with handle.active():
            completions = lm.generate([prompts[i] for i in batch], max_new_tokens=gen.max_new_tokens,
                                      batch_size=gen.batch_size, temperature=gen.temperature, seed=seed)
        records = []
        for i, completion in zip(batch, completions):
            sample = make_sample(examples[i], handle.name, lm.format_prompt(prompts[i]), completion, role=handle.role,
                                 set=set_name, key=keys[i], model_identity=handle.identity, gen=gen.as_key())
            records.append({"key": keys[i], "role": handle.role, "set": set_name, **sample.to_dict()})
        store.append(records)
        if advance:
            advance(len(batch))
    return [Sample.from_dict(store.get(k)) for k in keys], len(todo)


def _batch_seed(gen: GenSettings, keys: list[str]) -> int:
    """The sampling seed of one batch: ``gen.seed`` when greedy, else derived from the seed and the
    batch's sample keys (so a resumed run samples each batch as before).

    >>> _batch_seed(GenSettings(seed=7), ["k"])
    7
    """
    if gen.temperature > 0:
        return int(content_hash([gen.seed] + keys, 8), 16) % (2**31 - 1)
    return gen.seed


def add_format_gap(row: dict) -> dict:
    """Add ``format_gap`` (flexible minus strict accuracy) to a metric row and return it.

    >>> add_format_gap({"correct": 0.0, "flexible_correct": 1.0})["format_gap"]
    1.0
    """
    row["format_gap"] = row["flexible_correct"] - row.get("exact_correct", row["correct"])
    return row


def score_cached(samples: list[Sample], examples: list[Example], scorer: ModelHandle | None, verifier,
                 verifier_label: str, store: Store, batch_size: int = 16,
                 advance: Callable[[int], None] | None = None, equivalence: str = "strict") -> tuple[list[dict], int]:
    """Per-sample metric rows (see :func:`sftlens.evaluate.score_samples`) plus ``format_gap`` (by
    exact match), with ``correct`` judged by ``equivalence``
    (:func:`sftlens.metrics.equivalence.judge_rows`), reusing rows in ``store`` with the same sample
    key, scorer identity, verifier and equivalence."""
    from ..evaluate import score_samples
    from ..metrics.equivalence import judge_rows

    scorer_identity = scorer.identity if scorer is not None else None
    row_keys = [row_key(s.meta["key"] if "key" in s.meta else content_hash(s.to_dict()), scorer_identity,
                        verifier_label, equivalence) for s in samples]
    by_id = {e.id: e for e in examples}
    todo = [i for i, k in enumerate(row_keys) if store.get(k) is None]
    if advance and len(samples) - len(todo):
        advance(len(samples) - len(todo))
    chunk = max(1, batch_size) * 4
    for chunk_start in range(0, len(todo), chunk):
        batch = todo[chunk_start:chunk_start + chunk]
        batch_samples = [samples[i] for i in batch]
        with_reference = [j for j, s in enumerate(batch_samples) if s.reference]
        rows = score_samples(batch_samples, examples, scorer=None, verifier=verifier)
        if scorer is not None and with_reference:
            with scorer.active():
                gain_rows = score_samples([batch_samples[j] for j in with_reference], examples, scorer=scorer.lm,
                                          verifier=None, batch_size=batch_size)
            for j, gain_row in zip(with_reference, gain_rows):
                rows[j].update({k: v for k, v in gain_row.items() if k.startswith("ig_")})
        judge_rows([add_format_gap(row) for row in rows], batch_samples, by_id, equivalence)
        records = []
        for i, row in zip(batch, rows):
            sample = samples[i]
            records.append({"row_key": row_keys[i], "key": sample.meta.get("key"), "role": sample.meta.get("role"),
                            "set": sample.meta.get("set"), "scorer": scorer_identity, "verifier": verifier_label,
                            **row})
        store.append(records)
        if advance:
            advance(len(batch))
    return [store.get(k) for k in row_keys], len(todo)
