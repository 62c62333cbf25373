"""Gap closed: how much of the way from a base model to its directly tuned version another model
(e.g. the base proxy-tuned, :mod:`sftlens.models.proxy`) goes, per metric and on average.

As in Liu et al. 2024 ("Tuning Language Models by Proxy", arXiv 2401.08565, §3): per metric,
``(proxy - base) / (tuned - base)``, then the plain mean over metrics. The ratio needs no sign
convention (a lower-is-better metric such as % toxic has both differences negative), and it is not
capped: a proxy that beats direct tuning on a metric counts above 1, as the paper's 91.1% (13B) and
88.1% (70B) do (``tests/test_proxy.py`` recomputes both from the authors' released numbers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping


def gap_closed(base: Mapping[str, float], proxy: Mapping[str, float], tuned: Mapping[str, float]) -> dict:
    """Per metric ``(proxy - base) / (tuned - base)`` and their mean.

    Returns ``{"per_metric": {name: fraction}, "mean": fraction, "n": metrics averaged, "undefined":
    [names where tuned == base]}``; an undefined metric (no gap to close) is left out of the mean, and
    the mean is NaN when every metric is undefined. The three mappings must name the same metrics.

    >>> r = gap_closed({"acc": 10.0, "toxic": 60.0}, {"acc": 40.0, "toxic": 15.0}, {"acc": 50.0, "toxic": 0.0})
    >>> r["per_metric"], r["mean"]
    ({'acc': 0.75, 'toxic': 0.75}, 0.75)
    >>> gap_closed({"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 5.0}, {"a": 2.0, "b": 2.0})["undefined"]
    ['b']
    """
    if not (set(base) == set(proxy) == set(tuned)):
        names = sorted(set(base) ^ set(proxy) | set(base) ^ set(tuned))
        raise ValueError(f"gap_closed: base, proxy and tuned must name the same metrics; '{names[0]}' is not in all three")
    per_metric: dict[str, float] = {}
    undefined: list[str] = []
    for name in base:
        gap = tuned[name] - base[name]
        if gap == 0:
            undefined.append(name)
            continue
        per_metric[name] = (proxy[name] - base[name]) / gap
    mean = sum(per_metric.values()) / len(per_metric) if per_metric else math.nan
    return {"per_metric": per_metric, "mean": mean, "n": len(per_metric), "undefined": undefined}


__all__ = ["gap_closed"]
