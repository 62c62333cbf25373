"""Several sampled completions per example: unbiased pass@k and majority voting (maj@k).

:func:`pass_at_k` is the unbiased estimator of Chen et al. (2021, "Evaluating Large Language Models
Trained on Code"): from ``n`` samples of which ``c`` are right, the chance that at least one of
``k`` samples drawn without replacement is right, ``1 - C(n-c, k) / C(n, k)``. :func:`majority_vote`
is the answer most of the first ``k`` samples give (maj@k, self-consistency). :func:`powers_of_two`
gives the k to report for n samples.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Hashable, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples with ``c`` right: ``1 - C(n-c, k) / C(n, k)``.

    >>> pass_at_k(4, 1, 1), pass_at_k(4, 1, 2), pass_at_k(4, 0, 4), pass_at_k(4, 3, 2)
    (0.25, 0.5, 0.0, 1.0)
    >>> pass_at_k(2, 1, 4)
    Traceback (most recent call last):
    ...
    ValueError: pass@k needs 1 <= k <= n and 0 <= c <= n, got n=2, c=1, k=4
    """
    if not (1 <= k <= n and 0 <= c <= n):
        raise ValueError(f"pass@k needs 1 <= k <= n and 0 <= c <= n, got n={n}, c={c}, k={k}")
    if n - c < k:  # every draw of k samples holds a right one
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority_vote(answers: Sequence[Hashable | None]) -> Hashable | None:
    """The most frequent answer (``None``, no answer, does not vote); a tie goes to the answer given
    first; ``None`` when no sample answered.

    >>> majority_vote(["7", None, "8", "8"]), majority_vote(["7", "8"]), majority_vote([None, None])
    ('8', '7', None)
    """
    counts = Counter(a for a in answers if a is not None)
    return counts.most_common(1)[0][0] if counts else None


def powers_of_two(n: int) -> list[int]:
    """1 and every power of two up to ``n``: the k reported for ``n`` samples.

    >>> powers_of_two(1), powers_of_two(6), powers_of_two(8)
    ([1], [1, 2, 4], [1, 2, 4, 8])
    """
    return [2 ** i for i in range(n.bit_length())] if n >= 1 else []


__all__ = ["majority_vote", "pass_at_k", "powers_of_two"]
