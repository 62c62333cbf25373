"""Information gain of reasoning steps (claim C1), scored for all prefixes of a chain at once.

For a chain ``s_1..s_N`` and an answer ``a``, let ``lp_k`` be the mean log-probability of the
answer's tokens after ``prompt + s_1..s_k + "A:"``. Then (ReCEval-style, the default):

    gain_k = lp_k - lp_{k-1}          (k = 1..N)
    total  = lp_N - lp_0               (= the sum of the gains)

The Wu et al. variant uses the perplexity ``PPL_k`` of the whole string ``prompt + s_1..s_k + A: a``
and ``InfoGain = sum_k (PPL_{k-1} - PPL_k) / (N + 1)``.

All N+1 prefixes cost one forward pass: the chain is laid out once, followed by N+1 short answer
segments; a 4D attention mask lets segment ``k`` see only the prompt and the first ``k`` steps, and
``position_ids`` place it right after them. :func:`prefix_scores_naive` is the one-pass-per-prefix
reference the tests and ``bench/infogain.py`` compare against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..data.format import ANSWER_MARK, prompt_text, steps_text
from ..data.record import Example


@dataclass
class ChainScore:
    """Scores of one chain's N+1 prefixes (k = 0..N steps kept).

    Attributes:
        logp: mean log-probability of the answer tokens after k steps.
        ppl: perplexity of the whole string (prompt, k steps, answer line) — the Wu et al. variant.
    """

    logp: list[float]
    ppl: list[float] = field(default_factory=list)

    @property
    def n_steps(self) -> int:
        return len(self.logp) - 1

    @property
    def gains(self) -> list[float]:
        """Per-step gain ``lp_k - lp_{k-1}``."""
        return [self.logp[k] - self.logp[k - 1] for k in range(1, len(self.logp))]

    @property
    def mean_gain(self) -> float:
        """Mean per-step gain; NaN for a chain without steps."""
        g = self.gains
        return sum(g) / len(g) if g else math.nan

    @property
    def min_gain(self) -> float:
        """The least informative step's gain; NaN without steps."""
        g = self.gains
        return min(g) if g else math.nan

    @property
    def total(self) -> float:
        """``lp_N - lp_0``: how much the whole chain raises the answer's log-probability."""
        return self.logp[-1] - self.logp[0]

    @property
    def ppl_infogain(self) -> float:
        """Wu et al.: ``sum_k (PPL_{k-1} - PPL_k) / (N + 1)``."""
        if len(self.ppl) < 2:
            return math.nan
        return sum(self.ppl[k - 1] - self.ppl[k] for k in range(1, len(self.ppl))) / len(self.ppl)

    def to_dict(self) -> dict:
        return {"logp": self.logp, "ppl": self.ppl, "gains": self.gains, "mean_gain": self.mean_gain,
                "min_gain": self.min_gain, "total": self.total, "ppl_infogain": self.ppl_infogain}


@dataclass
class _Layout:
    prefix_ids: list[list[int]]  # ids of prompt + k steps, k = 0..N
    ctx_tails: list[list[int]]   # ids that "A:" adds after prefix k
    answer_ids: list[int]


def _layout(tokenizer, ex: Example, steps: list[str], answer: str, chat_format=None) -> _Layout:
    enc = lambda t, sp=True: tokenizer(t, add_special_tokens=sp)["input_ids"]  # noqa: E731
    fmt = chat_format or (lambda s: s)
    prefixes = [fmt(prompt_text(ex)) + steps_text(steps[:k]) for k in range(len(steps) + 1)]
    prefix_ids = [enc(p) for p in prefixes]
    ctx_tails = []
    for p, ids in zip(prefixes, prefix_ids):
        full = enc(p + ANSWER_MARK)
        if full[:len(ids)] != ids:
            raise _NotShareable
        ctx_tails.append(full[len(ids):])
    ans = enc(" " + answer, False)
    if not ans:
        raise ValueError(f"example {ex.id}: empty answer cannot be scored")
    return _Layout(prefix_ids, ctx_tails, ans)


class _NotShareable(Exception):
    pass


def _shareable(lay: _Layout) -> bool:
    full = lay.prefix_ids[-1]
    return all(full[:len(p)] == p for p in lay.prefix_ids)


@torch.no_grad()
def _forward_rows(model, rows: list[list[int]], positions: list[list[int]], allowed: list[list[list[int]]],
                  pad_id: int) -> torch.Tensor:
    """Log-softmax logits for rows given explicit positions and, for each token, the list of key
    indices it may attend to (as ranges encoded by :func:`_build_mask`)."""
    dev = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    B, L = len(rows), max(map(len, rows))
    ids = torch.full((B, L), pad_id, dtype=torch.long)
    pos = torch.zeros((B, L), dtype=torch.long)
    mask = torch.zeros((B, 1, L, L), dtype=torch.bool)
    for r, (row, p, al) in enumerate(zip(rows, positions, allowed)):
        ids[r, :len(row)] = torch.tensor(row)
        pos[r, :len(p)] = torch.tensor(p)
        for q, spans in enumerate(al):
            for a, b in spans:
                mask[r, 0, q, a:b] = True
        for q in range(len(row), L):  # padding queries see themselves only (no NaN rows)
            mask[r, 0, q, q] = True
    fmask = torch.zeros((B, 1, L, L), dtype=dtype).masked_fill(~mask, torch.finfo(dtype).min)
    out = model(input_ids=ids.to(dev), position_ids=pos.to(dev), attention_mask=fmask.to(dev))
    return torch.log_softmax(out.logits.float(), dim=-1).cpu()


def _chain_row(lay: _Layout):
    """One row: the full chain, then segment k = ctx_tail_k + answer for k = 0..N."""
    chain = lay.prefix_ids[-1]
    row = list(chain)
    pos = list(range(len(chain)))
    allowed = [[(0, q + 1)] for q in range(len(chain))]
    segs = []
    for k, (pre, tail) in enumerate(zip(lay.prefix_ids, lay.ctx_tails)):
        seg = tail + lay.answer_ids
        start = len(row)
        row += seg
        pos += list(range(len(pre), len(pre) + len(seg)))
        for j in range(len(seg)):
            allowed.append([(0, len(pre)), (start, start + j + 1)])
        segs.append((start, len(tail)))
    return row, pos, allowed, segs


def _scores_from_logp(lp: torch.Tensor, row, lay: _Layout, segs) -> ChainScore:
    chain = lay.prefix_ids[-1]
    # token log-probs of the chain itself (for perplexity): position t predicts token t+1
    chain_tok = [lp[t - 1, chain[t]].item() for t in range(1, len(chain))]
    logps, ppls = [], []
    for k, (start, tail_len) in enumerate(segs):
        seg = row[start:start + tail_len + len(lay.answer_ids)]
        pre_len = len(lay.prefix_ids[k])
        seg_tok = []
        for j, tok in enumerate(seg):
            # the last prefix token predicts the segment's first token; then the segment itself
            src = pre_len - 1 if j == 0 else start + j - 1
            seg_tok.append(lp[src, tok].item())
        ans = seg_tok[tail_len:]
        logps.append(sum(ans) / len(ans))
        nll = -(sum(chain_tok[:pre_len - 1]) + sum(seg_tok))
        ppls.append(math.exp(nll / (pre_len - 1 + len(seg_tok))))
    return ChainScore(logp=logps, ppl=ppls)


def prefix_scores(model, tokenizer, items: list[tuple[Example, list[str], str]], batch_size: int = 16,
                  chat_format=None) -> list[ChainScore]:
    """:class:`ChainScore` for each ``(example, steps, answer)``, all prefixes in one pass per batch.

    ``steps`` is the chain to score (a model's own or the reference), ``answer`` the answer whose
    probability is tracked (normally the reference). Chains whose tokenisation is not prefix-stable
    (rare with BPE merges across a newline) are scored one prefix per row, exactly.
    """
    model.eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out: list[ChainScore | None] = [None] * len(items)
    shared: list[tuple[int, _Layout]] = []
    for i, (ex, steps, ans) in enumerate(items):
        try:
            lay = _layout(tokenizer, ex, steps, ans, chat_format)
            if not _shareable(lay):
                raise _NotShareable
            shared.append((i, lay))
        except _NotShareable:
            out[i] = prefix_scores_naive(model, tokenizer, [(ex, steps, ans)], chat_format=chat_format)[0]
    order = sorted(shared, key=lambda t: len(t[1].prefix_ids[-1]))
    for b in range(0, len(order), batch_size):
        batch = order[b:b + batch_size]
        built = [_chain_row(lay) for _, lay in batch]
        lp = _forward_rows(model, [r for r, *_ in built], [p for _, p, _, _ in built],
                           [a for _, _, a, _ in built], pad)
        for r, ((i, lay), (row, _, _, segs)) in enumerate(zip(batch, built)):
            out[i] = _scores_from_logp(lp[r], row, lay, segs)
    return out  # type: ignore[return-value]


@torch.no_grad()
def prefix_scores_naive(model, tokenizer, items: list[tuple[Example, list[str], str]],
                        chat_format=None) -> list[ChainScore]:
    """Reference implementation: one forward pass per prefix, no masks, no sharing."""
    model.eval()
    dev = next(model.parameters()).device
    fmt = chat_format or (lambda s: s)
    out = []
    for ex, steps, answer in items:
        ans = tokenizer(" " + answer, add_special_tokens=False)["input_ids"]
        logps, ppls = [], []
        for k in range(len(steps) + 1):
            ctx = tokenizer(fmt(prompt_text(ex)) + steps_text(steps[:k]) + ANSWER_MARK)["input_ids"]
            ids = torch.tensor([ctx + ans], device=dev)
            lp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1).cpu()
            tok = [lp[t - 1, ids[0, t].item()].item() for t in range(1, ids.shape[1])]
            a = tok[len(ctx) - 1:]
            logps.append(sum(a) / len(a))
            ppls.append(math.exp(-sum(tok) / len(tok)))
        out.append(ChainScore(logp=logps, ppl=ppls))
    return out
