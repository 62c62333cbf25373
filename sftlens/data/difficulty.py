"""Difficulty profiling: how often does a model solve each example when sampling k times?

:func:`pass_rates` samples ``k`` solutions per example (prompts replicated ``k`` times, one seeded
batched :meth:`~sftlens.models.lm.LM.generate` call) and counts strict-correct answers;
:func:`band` bins a pass rate into ``too_easy`` / ``learnable`` / ``too_hard`` (the bands of claim
C7); :func:`profile` writes both into ``meta["pass_rate"]`` and ``meta["band"]``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

from ..core.format import normalize_answer, parse_completion, prompt_text
from ..core.record import Example

BANDS = ("too_easy", "learnable", "too_hard")


@dataclass
class BandThresholds:
    """``too_easy`` when pass rate >= ``easy``; ``too_hard`` when pass rate <= ``hard`` (0 means only
    never-solved examples); ``learnable`` in between."""

    easy: float = 0.9
    hard: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.hard < self.easy <= 1.0:
            raise ValueError(f"band thresholds: need 0 <= hard ({self.hard}) < easy ({self.easy}) <= 1")


def band(rate: float, thresholds: BandThresholds | None = None) -> str:
    """The difficulty band of a pass rate.

    >>> [band(r) for r in (1.0, 0.9, 0.5, 0.125, 0.0)]
    ['too_easy', 'too_easy', 'learnable', 'learnable', 'too_hard']
    >>> band(0.125, BandThresholds(easy=0.8, hard=0.2))
    'too_hard'
    """
    t = thresholds or BandThresholds()
    if rate >= t.easy:
        return "too_easy"
    if rate <= t.hard:
        return "too_hard"
    return "learnable"


def is_correct(completion: str, reference: str) -> bool:
    """Strict correctness of one completion: its ``A:`` (or ``####``) answer equals the reference.

    >>> is_correct("2 * 4 = 8\\nA: 8", "8"), is_correct("A: 9", "8"), is_correct("#### 1,000", "1000")
    (True, False, True)
    """
    _, ans = parse_completion(completion)
    if ans is None and "####" in completion:
        ans = completion.partition("####")[2].strip().split("\n")[0]
    got = normalize_answer(ans)
    return got is not None and got == normalize_answer(reference)


def pass_rates(lm, examples: list[Example], k: int = 8, temperature: float = 0.8, seed: int = 0,
               max_new_tokens: int = 96, batch_size: int = 64,
               progress: Callable[[int], None] | None = None) -> list[float]:
    """Share of ``k`` sampled completions per example whose answer is right (one value per example).

    With ``temperature == 0`` all k samples are the greedy one, so rates are 0 or 1.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    prompts = [prompt_text(e) for e in examples for _ in range(k)]
    outs = lm.generate(prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                       temperature=temperature, seed=seed, progress=progress)
    rates = []
    for i, e in enumerate(examples):
        rates.append(sum(is_correct(o, e.answer) for o in outs[i * k:(i + 1) * k]) / k)
    return rates


def annotate(examples: list[Example], rates: list[float], k: int,
             thresholds: BandThresholds | None = None, model: str = "") -> list[Example]:
    """Copies of ``examples`` with ``meta["pass_rate"]``, ``meta["band"]`` and ``meta["profile"]``
    (k, thresholds, model).

    >>> e = Example(id="1", task="t", question="q", answer="4")
    >>> out = annotate([e, e], [1.0, 0.25], k=4)
    >>> [(x.meta["pass_rate"], x.meta["band"]) for x in out]
    [(1.0, 'too_easy'), (0.25, 'learnable')]
    """
    t = thresholds or BandThresholds()
    out = []
    for e, r in zip(examples, rates, strict=True):
        new = copy.deepcopy(e)
        new.meta["pass_rate"] = r
        new.meta["band"] = band(r, t)
        new.meta["profile"] = {"k": k, "easy": t.easy, "hard": t.hard, "model": model}
        out.append(new)
    return out


def profile(lm, examples: list[Example], k: int = 8, temperature: float = 0.8, seed: int = 0,
            thresholds: BandThresholds | None = None, keep_band: str | None = None,
            max_new_tokens: int = 96, batch_size: int = 64,
            progress: Callable[[int], None] | None = None) -> list[Example]:
    """Pass rate and band for every example; ``keep_band`` keeps only that band."""
    if keep_band is not None and keep_band not in BANDS:
        raise ValueError(f"band '{keep_band}': unknown (valid: {', '.join(BANDS)})")
    rates = pass_rates(lm, examples, k=k, temperature=temperature, seed=seed, max_new_tokens=max_new_tokens,
                       batch_size=batch_size, progress=progress)
    out = annotate(examples, rates, k, thresholds, model=getattr(lm, "name", ""))
    return [e for e in out if keep_band is None or e.meta["band"] == keep_band]


def band_counts(examples: list[Example]) -> dict[str, int]:
    """How many examples fall in each band (examples without a band are not counted).

    >>> band_counts(annotate([Example(id="1", task="t", question="q", answer="4")], [0.0], k=2))
    {'too_easy': 0, 'learnable': 0, 'too_hard': 1}
    """
    counts = {b: 0 for b in BANDS}
    for e in examples:
        if e.meta.get("band") in counts:
            counts[e.meta["band"]] += 1
    return counts


def select_band(examples: list[Example], keep: str, source: str = "", option: str = "--keep-band") -> list[Example]:
    """The examples of band ``keep``, as :func:`profile` marked them (``meta["band"]``).

    Raises :class:`~sftlens.core.errors.UserError` naming ``option``, the file and line (where it is
    known) when an example has no band or an unknown one, or when no example is in the band.

    >>> exs = annotate([Example(id=str(i), task="t", question="q", answer="4") for i in range(3)], [0.0, 0.5, 1.0], k=2)
    >>> [e.id for e in select_band(exs, "learnable")]
    ['1']
    >>> select_band([Example(id="7", task="t", question="q", answer="4")], "learnable", "d.jsonl")
    Traceback (most recent call last):
    ...
    sftlens.core.errors.UserError: --keep-band learnable: d.jsonl: example '7' has no field 'meta.band'; profile the data against the model first (sftlens data profile --model MODEL IN OUT)
    """
    from ..core.errors import UserError

    if keep not in BANDS:
        raise UserError(f"{option} '{keep}': unknown band (valid: {', '.join(BANDS)})")
    for e in examples:
        got = e.meta.get("band")
        if got not in BANDS:
            where = _where(source, e)
            what = ("has no field 'meta.band'; profile the data against the model first (sftlens data profile "
                    "--model MODEL IN OUT)" if got is None else
                    f"has meta.band '{got}', not a band (valid: {', '.join(BANDS)})")
            raise UserError(f"{option} {keep}: {where}: example '{e.id}' {what}")
    kept = [e for e in examples if e.meta["band"] == keep]
    if not kept:
        counts = ", ".join(f"{b} {n}" for b, n in band_counts(examples).items())
        raise UserError(f"{option} {keep}: none of the {len(examples)} examples in {source or 'the data'} is in "
                        f"this band ({counts}); pick another band or profile with other --easy/--hard thresholds")
    return kept


def _where(source: str, example: Example) -> str:
    """``FILE:LINE`` of ``example`` when its line is known (in its meta, or found by id in the file),
    else ``FILE``."""
    from pathlib import Path

    from ..core.record import iter_dicts

    line = example.meta.get("line")
    if line is None and source and Path(source).is_file():
        line = next((n for n, obj in iter_dicts(source) if isinstance(obj, dict) and str(obj.get("id")) == example.id),
                    None)
    return f"{source}:{line}" if line is not None else (source or "the data")
