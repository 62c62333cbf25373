"""The generate and score stages: each reuses what the cache already holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..core.format import prompt_text
from ..core.record import Example, Sample
from ..metrics.reasoning import make_sample
from ._cache import Store, _hash, sample_key
from ._models import ModelHandle


@dataclass
class GenSettings:
    """Generation parameters; all of them enter the cache key."""

    max_new_tokens: int = 256
    batch_size: int = 16
    temperature: float = 0.0
    seed: int = 0

    def as_key(self) -> dict:
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "seed": self.seed,
                "stop_after_answer": True}


def generate_cached(h: ModelHandle, examples: list[Example], set_name: str, store: Store, gen: GenSettings,
                    advance: Callable[[int], None] | None = None) -> tuple[list[Sample], int]:
    """Samples of ``h`` for ``examples`` (in order), generating only those not in ``store``; each
    finished batch is appended to the store. Returns the samples and how many were generated."""
    lm = h.lm
    prompts = [prompt_text(e) for e in examples]
    keys = [sample_key(h.identity, h.name, h.revision, h.adapter if not h.adapter_disabled else "disabled",
                       lm.format_prompt(p), gen.as_key()) for p in prompts]
    todo = [i for i, k in enumerate(keys) if store.get(k) is None]
    if advance and len(examples) - len(todo):
        advance(len(examples) - len(todo))
    chunk = max(1, gen.batch_size)
    for c in range(0, len(todo), chunk):
        idx = todo[c:c + chunk]
        seed = int(_hash([gen.seed] + [keys[i] for i in idx], 8), 16) % (2**31 - 1) if gen.temperature > 0 else gen.seed
        with h.active():
            outs = lm.generate([prompts[i] for i in idx], max_new_tokens=gen.max_new_tokens,
                               batch_size=gen.batch_size, temperature=gen.temperature, seed=seed)
        recs = []
        for i, o in zip(idx, outs):
            s = make_sample(examples[i], h.name, lm.format_prompt(prompts[i]), o, role=h.role, set=set_name,
                            key=keys[i], model_identity=h.identity, gen=gen.as_key())
            recs.append({"key": keys[i], "role": h.role, "set": set_name, **s.to_dict()})
        store.append(recs)
        if advance:
            advance(len(idx))
    return [Sample.from_dict(store.get(k)) for k in keys], len(todo)


def score_cached(samples: list[Sample], examples: list[Example], scorer: ModelHandle | None, verifier,
                 verifier_label: str, store: Store, batch_size: int = 16,
                 advance: Callable[[int], None] | None = None) -> tuple[list[dict], int]:
    """Per-sample metric rows (see :func:`sftlens.evaluate.score_samples`) plus ``format_gap``,
    reusing rows in ``store`` with the same sample key, scorer identity and verifier."""
    from ..evaluate import score_samples

    sid = scorer.identity if scorer is not None else None
    rkeys = [_hash({"sample": s.meta.get("key", _hash(s.to_dict())), "scorer": sid, "verifier": verifier_label})
             for s in samples]
    todo = [i for i, k in enumerate(rkeys) if store.get(k) is None]
    if advance and len(samples) - len(todo):
        advance(len(samples) - len(todo))
    chunk = max(1, batch_size) * 4
    for c in range(0, len(todo), chunk):
        idx = todo[c:c + chunk]
        part = [samples[i] for i in idx]
        scorable = [j for j, s in enumerate(part) if s.reference]
        rows = score_samples(part, examples, scorer=None, verifier=verifier)
        if scorer is not None and scorable:
            with scorer.active():
                srows = score_samples([part[j] for j in scorable], examples, scorer=scorer.lm, verifier=None,
                                      batch_size=batch_size)
            for j, sr in zip(scorable, srows):
                rows[j].update({k: v for k, v in sr.items() if k.startswith("ig_")})
        recs = []
        for i, r in zip(idx, rows):
            s = samples[i]
            r["format_gap"] = r["flexible_correct"] - r["correct"]
            recs.append({"row_key": rkeys[i], "key": s.meta.get("key"), "role": s.meta.get("role"),
                         "set": s.meta.get("set"), "scorer": sid, "verifier": verifier_label, **r})
        store.append(recs)
        if advance:
            advance(len(idx))
    return [store.get(k) for k in rkeys], len(todo)
