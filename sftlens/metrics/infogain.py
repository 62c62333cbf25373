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

from ..core.format import ANSWER_MARK, prompt_text, steps_text
from ..core.record import Example


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


def answer_in_context(tokenizer, context: str, answer: str, add_special_tokens: bool = True) -> list[int]:
    """The ids of ``" " + answer`` as they come after ``context``: ``context + " " + answer`` is encoded
    whole and the context's own ids are cut off (as lm-evaluation-harness encodes a continuation), so a
    SentencePiece or BPE tokenizer that treats a text-initial space differently, or merges across the
    boundary, gives the answer's ids as the model sees them after the context.

    >>> from sftlens.models.tiny import build_tokenizer
    >>> tok = build_tokenizer(["A: 18"])
    >>> tok.convert_ids_to_tokens(answer_in_context(tok, "A:", "18"))
    ['▁1', '8']
    """
    ctx = tokenizer(context, add_special_tokens=add_special_tokens)["input_ids"]
    whole = tokenizer(context + " " + answer, add_special_tokens=add_special_tokens)["input_ids"]
    return whole[len(ctx):]


def _layouts(tokenizer, items: list[tuple[Example, list[str], str]], chat_format=None) -> list[_Layout | None]:
    """Token layouts of every chain; tokenised in batched calls (prefixes, prefixes + "A:", answers in
    context). ``None`` marks a chain whose tokenisation is not prefix-stable (scored the naive way)."""
    fmt = chat_format or (lambda s: s)
    special = chat_format is None  # a chat template writes its own BOS: never a second one
    prefixes = [[fmt(prompt_text(ex)) + steps_text(steps[:k]) for k in range(len(steps) + 1)] for ex, steps, _ in items]
    flat = [p for ps in prefixes for p in ps]
    enc = tokenizer(flat + [p + ANSWER_MARK for p in flat], add_special_tokens=special)["input_ids"]
    pre_ids, ctx_ids = enc[:len(flat)], enc[len(flat):]
    # the answer as it follows "A:" (the same after every prefix): encoded in the context of the full chain
    whole = tokenizer([ps[-1] + ANSWER_MARK + " " + a for ps, (_, _, a) in zip(prefixes, items)],
                      add_special_tokens=special)["input_ids"]
    out: list[_Layout | None] = []
    i = 0
    for (ex, _, _), ps, w in zip(items, prefixes, whole):
        pids, cids = pre_ids[i:i + len(ps)], ctx_ids[i:i + len(ps)]
        i += len(ps)
        ans = w[len(cids[-1]):]  # the whole text's ids after the full chain + "A:"
        if not ans:
            raise ValueError(f"example {ex.id}: empty answer cannot be scored")
        lay = _Layout(pids, [c[len(p):] for p, c in zip(pids, cids)], ans)
        ok = all(c[:len(p)] == p for p, c in zip(pids, cids)) and _shareable(lay)
        out.append(lay if ok else None)
    return out


def _shareable(lay: _Layout) -> bool:
    full = lay.prefix_ids[-1]
    return all(full[:len(p)] == p for p in lay.prefix_ids)


# An attention block: queries [q0, q1) may see keys [k0, k1), causally within the block or fully.
Block = tuple[int, int, int, int, bool]


@torch.no_grad()
def _forward_rows(model, rows: list[list[int]], positions: list[list[int]], blocks: list[list[Block]],
                  pad_id: int) -> torch.Tensor:
    """Log-softmax logits for rows with explicit ``position_ids`` and a 4D mask made of blocks."""
    dev = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    B, L = len(rows), max(map(len, rows))
    ids = torch.full((B, L), pad_id, dtype=torch.long)
    pos = torch.zeros((B, L), dtype=torch.long)
    mask = torch.zeros((B, 1, L, L), dtype=torch.bool)
    tril = torch.ones((L, L), dtype=torch.bool).tril()
    for r, (row, p, bl) in enumerate(zip(rows, positions, blocks)):
        ids[r, :len(row)] = torch.tensor(row)
        pos[r, :len(p)] = torch.tensor(p)
        for q0, q1, k0, k1, causal in bl:
            mask[r, 0, q0:q1, k0:k1] = tril[:q1 - q0, :k1 - k0] if causal else True
        pad = torch.arange(len(row), L)
        mask[r, 0, pad, pad] = True  # padding queries see themselves only (no NaN rows)
    fmask = torch.zeros((B, 1, L, L), dtype=dtype).masked_fill(~mask, torch.finfo(dtype).min)
    out = model(input_ids=ids.to(dev), position_ids=pos.to(dev), attention_mask=fmask.to(dev))
    return torch.log_softmax(out.logits.float(), dim=-1).cpu()


def _chain_row(lay: _Layout):
    """One row: the full chain, then segment k = ctx_tail_k + answer for k = 0..N. Segment k sees
    the first ``len(prefix_k)`` chain tokens and itself (causally), at the positions that follow."""
    chain = lay.prefix_ids[-1]
    row = list(chain)
    pos = list(range(len(chain)))
    blocks: list[Block] = [(0, len(chain), 0, len(chain), True)]
    segs = []
    for pre, tail in zip(lay.prefix_ids, lay.ctx_tails):
        seg = tail + lay.answer_ids
        start = len(row)
        row += seg
        pos += list(range(len(pre), len(pre) + len(seg)))
        blocks += [(start, start + len(seg), 0, len(pre), False), (start, start + len(seg), start, start + len(seg), True)]
        segs.append((start, len(tail)))
    return row, pos, blocks, segs


def _scores_from_logp(lp: torch.Tensor, row, lay: _Layout, segs) -> ChainScore:
    """Answer log-probabilities and perplexities of every prefix from one row's log-softmax."""
    chain = lay.prefix_ids[-1]
    # position t predicts token t+1: the chain's own tokens (for perplexity) ...
    src, tgt = list(range(len(chain) - 1)), list(chain[1:])
    # ... then each segment: its first token is predicted by the last prefix token, the rest by the segment
    for k, (start, tail_len) in enumerate(segs):
        n = tail_len + len(lay.answer_ids)
        src += [len(lay.prefix_ids[k]) - 1] + list(range(start, start + n - 1))
        tgt += row[start:start + n]
    tok = lp[torch.tensor(src), torch.tensor(tgt)].tolist()
    chain_tok, off = tok[:len(chain) - 1], len(chain) - 1
    logps, ppls = [], []
    for k, (start, tail_len) in enumerate(segs):
        n = tail_len + len(lay.answer_ids)
        seg_tok, off = tok[off:off + n], off + n
        ans = seg_tok[tail_len:]
        pre_len = len(lay.prefix_ids[k])
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
    for i, lay in enumerate(_layouts(tokenizer, items, chat_format) if items else []):
        if lay is None:
            out[i] = prefix_scores_naive(model, tokenizer, [items[i]], chat_format=chat_format)[0]
        else:
            shared.append((i, lay))
    order = sorted(shared, key=lambda t: len(t[1].prefix_ids[-1]))
    for b in range(0, len(order), batch_size):
        batch = order[b:b + batch_size]
        built = [_chain_row(lay) for _, lay in batch]
        lp = _forward_rows(model, [r for r, *_ in built], [p for _, p, _, _ in built],
                           [bl for _, _, bl, _ in built], pad)
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
    special = chat_format is None
    for ex, steps, answer in items:
        ans = answer_in_context(tokenizer, fmt(prompt_text(ex)) + steps_text(steps) + ANSWER_MARK, answer, special)
        logps, ppls = [], []
        for k in range(len(steps) + 1):
            ctx = tokenizer(fmt(prompt_text(ex)) + steps_text(steps[:k]) + ANSWER_MARK,
                            add_special_tokens=special)["input_ids"]
            ids = torch.tensor([ctx + ans], device=dev)
            lp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1).cpu()
            tok = [lp[t - 1, ids[0, t].item()].item() for t in range(1, ids.shape[1])]
            a = tok[len(ctx) - 1:]
            logps.append(sum(a) / len(a))
            ppls.append(math.exp(-sum(tok) / len(tok)))
        out.append(ChainScore(logp=logps, ppl=ppls))
    return out
