"""Curation: keep the ``k`` best and most diverse examples (LIMA-style selection, claim C10).

Two stages:

1. **Quality filters**, applied in order; each example is dropped for the *first* reason it fails
   and every reason is counted:

   - ``no_answer``: the answer is empty;
   - ``length``: step count or text length outside the configured bounds;
   - ``invalid_steps``: the example's task's verifier (:func:`sftlens.tasks.task_for`) finds a wrong
     step (shop: :meth:`ShopWorld.verify`, every step must be valid; GSM8K and other text: every
     ``<<expr=result>>`` annotation must be consistent);
   - ``answer_mismatch``: for the shop world, the last step's value is not the answer;
   - ``duplicate``: the normalised question was already kept (first one wins).

2. **Diversity**: greedy k-center (farthest-point) selection over TF-IDF vectors of the questions
   (cosine distance, computed incrementally with sparse products; the start point is drawn from the
   seed), or over a model's mean hidden states (``diversity="hidden"``).

The report's counts always add up: ``n_input = sum(dropped) + not_selected + kept``.
"""

from __future__ import annotations

import copy
import random
import re
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from ..core.record import Example
from ..tasks import task_for

REASONS = ("no_answer", "length", "invalid_steps", "answer_mismatch", "duplicate")
DIVERSITY = ("tfidf", "hidden", "none")


@dataclass
class CurateConfig:
    """Selection settings. ``max_steps``/``max_chars`` of ``None`` mean no upper bound; ``chars`` is
    the length of the question plus all steps."""

    k: int = 1000
    seed: int = 0
    diversity: str = "tfidf"
    min_steps: int = 1
    max_steps: int | None = 32
    min_chars: int = 1
    max_chars: int | None = 4000
    verify: bool = True
    dedup: bool = True

    def __post_init__(self):
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        if self.diversity not in DIVERSITY:
            raise ValueError(f"diversity '{self.diversity}': unknown (valid: {', '.join(DIVERSITY)})")


@dataclass
class CurateResult:
    """The kept examples (in input order, each marked with its selection rank) and the report."""

    kept: list[Example]
    report: dict = field(default_factory=dict)


def normalize_question(q: str) -> str:
    """Lower case, punctuation removed, whitespace collapsed (for duplicate detection).

    >>> normalize_question("  Tom buys 3 cups.  How much? ") == normalize_question("tom buys 3 cups how much")
    True
    """
    return " ".join(re.sub(r"[^\w\s]", " ", q.lower()).split())


def quality_reason(ex: Example, config: CurateConfig, world=None) -> str | None:
    """The first quality filter ``ex`` fails (one of :data:`REASONS` except ``duplicate``), or ``None``.

    >>> cfg = CurateConfig(k=1)
    >>> quality_reason(Example(id="1", task="gsm8k", question="q", steps=["2+2 = <<2+2=5>>5"], answer="5"), cfg)
    'invalid_steps'
    >>> quality_reason(Example(id="1", task="gsm8k", question="q", steps=["2+2 = <<2+2=4>>4"], answer="4"), cfg) is None
    True
    """
    if not ex.answer.strip():
        return "no_answer"
    n = len(ex.steps)
    chars = len(ex.question) + sum(len(s) for s in ex.steps)
    if n < config.min_steps or (config.max_steps is not None and n > config.max_steps):
        return "length"
    if chars < config.min_chars or (config.max_chars is not None and chars > config.max_chars):
        return "length"
    if not config.verify:
        return None
    task = task_for([ex], world)  # shop only with its world; shop examples without one stay unverified
    checks = task.verifier.verify(ex.steps, ex.answer)
    if task.name == "shop":  # the shop's stricter rules: every step valid, the last one states the answer
        if not checks or not all(c.valid for c in checks):
            return "invalid_steps"
        last = world.check_step(ex.steps[-1])[3]
        if last is None or str(last) != ex.answer.strip():
            return "answer_mismatch"
    elif any(c.valid is False for c in checks):  # text without annotations is never invalid
        return "invalid_steps"
    return None


def tfidf_vectors(texts: list[str]):
    """L2-normalised TF-IDF rows (a scipy CSR matrix); words of one character (digits) count.

    >>> X = tfidf_vectors(["tom buys 3 cup", "ann buys 2 lamp"])
    >>> X.shape[0], round(float(X.multiply(X).sum()), 6)
    (2, 2.0)
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(token_pattern=r"(?u)\b\w+\b", sublinear_tf=True, dtype=np.float32)
    return vec.fit_transform(texts).tocsr()


def k_center(X, k: int, seed: int = 0) -> tuple[list[int], list[float]]:
    """Greedy farthest-point (k-center) selection under cosine distance ``1 - x . y`` for
    L2-normalised rows of a sparse or dense matrix ``X``.

    Returns the chosen row indices in selection order and, for each, its distance to the nearest
    earlier choice when it was picked (the first one's is ``inf``). The start row is drawn from
    ``seed``; ties go to the lowest index. Distances are updated incrementally with one sparse
    matrix-vector product per pick, so no n x n matrix is built.

    >>> X = np.array([[1, 0], [0.995, 0.0998], [0, 1], [0.7071, 0.7071]])
    >>> k_center(X, 3, seed=0)[0]
    [3, 0, 2]
    """
    import scipy.sparse as sp

    n = X.shape[0]
    if n == 0:
        return [], []
    k = min(k, n)
    start = random.Random(seed).randrange(n)
    sparse = sp.issparse(X)
    Xt = X.T.tocsr() if sparse else None

    def dist_to(j: int) -> np.ndarray:
        if sparse:
            row = X.getrow(j)
            sims = Xt[row.indices].T @ row.data if row.nnz else np.zeros(n)
        else:
            sims = X @ X[j]
        return 1.0 - np.asarray(sims, dtype=np.float64).ravel()

    chosen = [start]
    radii = [float("inf")]
    dist = dist_to(start)
    dist[start] = -np.inf
    for _ in range(k - 1):
        j = int(np.argmax(dist))
        chosen.append(j)
        radii.append(float(dist[j]))
        np.minimum(dist, dist_to(j), out=dist)
        dist[j] = -np.inf
    return chosen, radii


def hidden_vectors(lm, texts: list[str], batch_size: int = 32, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """L2-normalised mean last-layer hidden state of each text (padding masked out)."""
    import torch

    tok = lm.tokenizer
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    out = []
    lm.model.eval()
    with torch.no_grad():
        for b in range(0, len(texts), batch_size):
            enc = tok(texts[b:b + batch_size], return_tensors="pt", padding=True).to(lm.device)
            h = lm.model(**enc, output_hidden_states=True).hidden_states[-1].float()
            m = enc["attention_mask"].unsqueeze(-1).float()
            v = (h * m).sum(1) / m.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(v, dim=-1).cpu().numpy())
            if progress:
                progress(len(texts[b:b + batch_size]))
    return np.concatenate(out) if out else np.zeros((0, 1), dtype=np.float32)


def curate(examples: list[Example], config: CurateConfig, world=None, lm=None,
           progress: Callable[[int], None] | None = None) -> CurateResult:
    """Filter ``examples`` for quality, then pick ``config.k`` diverse ones (see the module docstring).

    ``world`` verifies ``shop.*`` examples (without it they are counted as ``unverified``); ``lm`` is
    required for ``diversity="hidden"``. Deterministic for a seed.

    >>> exs = [Example(id=str(i), task="t", question=f"item {i % 5} costs {i}", steps=["s"], answer=str(i)) for i in range(8)]
    >>> r = curate(exs + [Example(id="x", task="t", question="item 1 costs 1", steps=["s"], answer="1")], CurateConfig(k=3))
    >>> r.report["kept"], r.report["dropped"]["duplicate"], r.report["not_selected"]
    (3, 1, 5)
    """
    dropped = {r: 0 for r in REASONS}
    unverified = 0
    seen: set[str] = set()
    passing: list[int] = []
    for i, ex in enumerate(examples):
        if progress:
            progress(1)
        reason = quality_reason(ex, config, world)
        if reason is None and config.dedup:
            key = normalize_question(ex.question)
            if key in seen:
                reason = "duplicate"
            else:
                seen.add(key)
        if reason is not None:
            dropped[reason] += 1
            continue
        if config.verify and ex.task.startswith("shop.") and world is None:
            unverified += 1
        passing.append(i)
    k = min(config.k, len(passing))
    if config.diversity == "none" or k == len(passing):
        order = list(passing)
        random.Random(config.seed).shuffle(order)
        picks = order[:k]
        radii = [float("nan")] * k
    else:
        if config.diversity == "tfidf":
            X = tfidf_vectors([examples[i].question for i in passing])
        else:
            if lm is None:
                raise ValueError("diversity 'hidden' needs a model (--model PATH)")
            from ..core.format import prompt_text

            X = hidden_vectors(lm, [prompt_text(examples[i]) for i in passing])
        sel, radii = k_center(X, k, seed=config.seed)
        picks = [passing[j] for j in sel]
    rank = {i: r for r, i in enumerate(picks)}
    kept = []
    for i in sorted(picks):
        new = copy.deepcopy(examples[i])
        rad = radii[rank[i]]
        new.meta.setdefault("ops", []).append({"op": "curate", "rank": rank[i], "seed": config.seed,
                                               "diversity": config.diversity,
                                               "radius": None if not np.isfinite(rad) else round(rad, 6)})
        kept.append(new)
    report = {
        "n_input": len(examples),
        "dropped": dropped,
        "passed_filters": len(passing),
        "not_selected": len(passing) - k,
        "kept": k,
        "unverified": unverified,
        "config": asdict(config),
        "coverage_radius": (None if k == 0 or not np.isfinite(radii[-1]) else round(float(radii[-1]), 6)),
    }
    if unverified:
        report["notes"] = [f"{unverified} shop examples were not verified: give --world DIR/data/world.json"]
    return CurateResult(kept=kept, report=report)


def random_subset(examples: list[Example], k: int, seed: int = 0) -> list[Example]:
    """``k`` examples drawn uniformly without replacement (seeded), in input order, each marked.

    >>> exs = [Example(id=str(i), task="t", question=f"q{i}", answer="1") for i in range(10)]
    >>> [e.id for e in random_subset(exs, 3, seed=0)] == [e.id for e in random_subset(exs, 3, seed=0)]
    True
    """
    idx = sorted(random.Random(seed).sample(range(len(examples)), min(k, len(examples))))
    out = []
    for i in idx:
        new = copy.deepcopy(examples[i])
        new.meta.setdefault("ops", []).append({"op": "random_subset", "k": k, "seed": seed})
        out.append(new)
    return out
