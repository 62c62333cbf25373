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
    """Generation parameters; all of them enter the cache key (``samples`` through each sample's
    index, see :meth:`sample_params`)."""

    max_new_tokens: int = 256
    batch_size: int = 16
    temperature: float = 0.0
    seed: int = 0
    samples: int = 1

    def as_key(self) -> dict:
        """The parameters that change what is generated (batch size does not)."""
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "seed": self.seed,
                "stop_after_answer": True}

    def sample_params(self, index: int) -> dict:
        """The key parameters of an example's ``index``-th sample: :meth:`as_key`, plus the index
        from the second sample on. The first sample's key is the one a one-sample run uses, so a
        run with more samples reuses it and a resumed run finds every sample it made.

        >>> GenSettings(temperature=0.7).sample_params(0) == GenSettings(temperature=0.7, samples=4).sample_params(0)
        True
        >>> GenSettings(temperature=0.7, samples=4).sample_params(2)["sample_index"]
        2
        """
        return self.as_key() if index == 0 else {**self.as_key(), "sample_index": index}


def generate_cached(handle: ModelHandle, examples: list[Example], set_name: str, store: Store, gen: GenSettings,
                    advance: Callable[[int], None] | None = None) -> tuple[list[Sample], int]:
    """Samples of ``handle`` for ``examples`` (``gen.samples`` per example, example by example),
    generating only those not in ``store``; each finished batch is appended to the store. Returns
    the samples and how many were generated. Each sample's ``meta`` records whether it stopped at
    ``max_new_tokens`` (``hit_max_new_tokens``) and, with several samples, its ``sample_index``."""
    lm = handle.lm
    n_samples = max(1, gen.samples)
    prompts = [prompt_text(e) for e in examples]
    formatted = [lm.format_prompt(p) for p in prompts]
    jobs = [(i, index) for i in range(len(examples)) for index in range(n_samples)]  # (example, sample index)
    adapter_state = "disabled" if handle.adapter_disabled else handle.adapter
    keys = [sample_key(handle.identity, handle.name, handle.revision, adapter_state, formatted[i],
                       gen.sample_params(index)) for i, index in jobs]
    todo = [j for j, k in enumerate(keys) if store.get(k) is None]
    if advance and len(jobs) - len(todo):
        advance(len(jobs) - len(todo))
    batch_size = max(1, gen.batch_size)
    for batch_start in range(0, len(todo), batch_size):
        batch = todo[batch_start:batch_start + batch_size]
        seed = _batch_seed(gen, [keys[j] for j in batch])
        with handle.active():
            generations = lm.generate([prompts[jobs[j][0]] for j in batch], max_new_tokens=gen.max_new_tokens,
                                      batch_size=gen.batch_size, temperature=gen.temperature, seed=seed, details=True)
        records = []
        for j, generation in zip(batch, generations):
            i, index = jobs[j]
            extra = {"sample_index": index} if n_samples > 1 else {}
            sample = make_sample(examples[i], handle.name, formatted[i], generation.text, role=handle.role,
                                 set=set_name, key=keys[j], model_identity=handle.identity, gen=gen.as_key(),
                                 hit_max_new_tokens=generation.hit_limit, **extra)
            records.append({"key": keys[j], "role": handle.role, "set": set_name, **sample.to_dict()})
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

    scorer_identity = scorer.scorer_identity if scorer is not None else None
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
