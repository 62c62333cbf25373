"""Greedy decoding on token ids for the metrics: forced answers and chain continuation.

Everything here takes an :class:`~sftlens.models.lm.LM` and raw token ids (or raw text that already
holds any chat template), and decodes greedily:

- :func:`forced_answers`: the answer tokens after many contexts that share a long prefix, in about
  one pass over the prefix (a 4D attention mask and the KV cache); :func:`forced_answers_naive` is
  the one-``generate``-per-context reference it must equal;
- :func:`continue_chains`: batched continuation until an answer line (``A: ...`` / ``#### ...``);
- the pieces they share: :func:`encode_context`, :func:`left_pad`, :class:`LineEnds` (EOS or a
  newline token), :func:`answer_from_ids` and :func:`cache_kwarg` (the KV-cache keyword of
  ``forward`` across transformers versions).
"""

from __future__ import annotations

import inspect
from typing import Callable

import torch

from ..core.format import normalize_answer
from .lm import ANSWER_LINE_RE


def encode_context(lm, text: str) -> list[int]:
    """Token ids of a context as the model reads it: special tokens (BOS) are added only when the
    text does not already hold the chat template."""
    return lm.tokenizer(text, add_special_tokens=not lm.chat)["input_ids"]


def encode_contexts(lm, texts: list[str]) -> list[list[int]]:
    """:func:`encode_context` of many texts in one tokenizer call."""
    return lm.tokenizer(texts, add_special_tokens=not lm.chat)["input_ids"] if texts else []


def left_pad(seqs: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask of ``seqs`` left-padded to one length (for batched generation).

    >>> left_pad([[5, 6], [7]], 0)
    (tensor([[5, 6],
            [0, 7]]), tensor([[1, 1],
            [0, 1]]))
    """
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)  # (B, W)
    attention = torch.zeros((len(seqs), width), dtype=torch.long)  # (B, W)
    for row, seq in enumerate(seqs):
        ids[row, width - len(seq):] = torch.tensor(seq)
        attention[row, width - len(seq):] = 1
    return ids, attention


def eos_ids(lm) -> set[int]:
    """Every end-of-sequence id of the tokenizer and of the model's generation config."""
    ids: set[int] = set()
    for value in (lm.tokenizer.eos_token_id,
                  getattr(getattr(lm.model, "generation_config", None), "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(x) for x in value)
    return ids


def pad_id(lm) -> int:
    """The tokenizer's padding id (0 when it has none)."""
    return lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0


class LineEnds:
    """Token ids that end an answer line (EOS, or a token whose text contains a newline); cached."""

    def __init__(self, lm):
        self.tokenizer = lm.tokenizer
        self.eos = eos_ids(lm)
        self.has_newline: dict[int, bool] = {}

    def __call__(self, token: int) -> bool:
        if token in self.eos:
            return True
        if token not in self.has_newline:
            self.has_newline[token] = "\n" in self.tokenizer.decode([token], skip_special_tokens=False)
        return self.has_newline[token]

    def mask(self, ids: torch.Tensor) -> torch.Tensor:
        """Boolean tensor of ``ids``' shape: which of ``ids`` end a line."""
        ends = [t for t in ids.unique().tolist() if self(t)]
        return torch.isin(ids, torch.tensor(ends, dtype=ids.dtype)) if ends else torch.zeros_like(ids, dtype=torch.bool)

    def cut(self, ids: list[int]) -> list[int]:
        """``ids`` up to and including the first line end."""
        for j, token in enumerate(ids):
            if self(token):
                return ids[:j + 1]
        return ids


def answer_from_ids(lm, ids: list[int]) -> str | None:
    """The normalised answer in generated ids: the text up to the first newline."""
    text = lm.tokenizer.decode(ids, skip_special_tokens=True).split("\n")[0]
    return normalize_answer(text) if text.strip() else None


def cache_kwarg(model) -> str:
    """The forward() keyword of the KV cache: ``cache`` in recent transformers 5.x,
    ``past_key_values`` before the rename."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def common_prefix_len(a: list[int], b: list[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share.

    >>> common_prefix_len([1, 2, 3], [1, 2, 4, 5])
    2
    """
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _layout(contexts: list[list[int]]):
    """One group as one row: the trunk (the longest context minus its last token) and, per context,
    ``(shared, segment, context_len)``: how many trunk tokens it shares, the tokens after them."""
    if any(len(c) < 1 for c in contexts):
        raise ValueError("forced_answers: an empty context has no next token to predict")
    trunk = max(contexts, key=len)[:-1]
    segments = []
    for context in contexts:
        shared = min(common_prefix_len(context, trunk), len(context) - 1)
        segments.append((shared, context[shared:], len(context)))
    return trunk, segments


@torch.no_grad()
def forced_answers(lm, groups: list[list[list[int]]], max_answer_tokens: int = 12, batch_size: int = 32,
                   progress: Callable[[int], None] | None = None) -> list[list[list[int]]]:
    """Greedy answer tokens (up to and including the end of the line) for every context of every
    group, where the contexts of a group share a long token prefix.

    Each group is laid out as one row: a *trunk* (its longest context minus the last token), then
    for each context the segment of tokens that departs from the trunk, placed at its true positions
    (``position_ids``); a 4D attention mask lets a segment see only its shared trunk prefix and
    itself. One forward pass gives every context's first answer token; then each step feeds one new
    token per context with the KV cache (``DynamicCache``), still under the 4D mask. The cost is one
    pass over the chain plus ``max_answer_tokens`` tiny steps, instead of N+1 full generations.
    The tokens are identical to :func:`forced_answers_naive` up to float rounding on near-ties: all
    306 answers of ``bench/faithfulness.py``'s chains matched on CPU and on an H100 in float32 (eager
    and sdpa); in bfloat16 one of 306 flipped with sdpa.

    Needs an attention implementation that accepts a 4D float mask (eager, sdpa; not flash-attention).

    Shapes: B groups in a batch; P the longest prefill row (trunk + segments); S the most contexts
    (segments) in a group; A = ``max_answer_tokens``; K = P + S * (A - 1), the cache length after
    the last decoding step (each step appends one column per segment); V the vocabulary.
    """
    from transformers import DynamicCache

    model = lm.model
    model.eval()
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    pad = pad_id(lm)
    ends = LineEnds(lm)
    blocked = torch.finfo(dtype).min  # the additive mask value of a hidden position
    cache_kw = cache_kwarg(model)

    layouts = [_layout(contexts) if contexts else None for contexts in groups]
    out: list[list[list[int]]] = [[[] for _ in contexts] for contexts in groups]
    todo = [g for g, lay in enumerate(layouts) if lay is not None]
    todo.sort(key=lambda g: len(layouts[g][0]) + sum(len(seg[1]) for seg in layouts[g][1]))
    for b in range(0, len(todo), batch_size):
        batch = todo[b:b + batch_size]
        rows, seg_starts = [], []  # per group: (tokens, positions) and where each segment starts in the row
        for g in batch:
            trunk, segments = layouts[g]
            tokens, positions, starts = list(trunk), list(range(len(trunk))), []
            for shared, segment, _ in segments:
                starts.append(len(tokens))
                tokens += segment
                positions += list(range(shared, shared + len(segment)))
            rows.append((tokens, positions))
            seg_starts.append(starts)
        n_groups = len(batch)                                   # B
        prefill_len = max(len(tokens) for tokens, _ in rows)    # P
        n_segs = max(len(layouts[g][1]) for g in batch)         # S
        n_answer = max(1, max_answer_tokens)                    # A
        cache_len = prefill_len + n_segs * (n_answer - 1)       # K

        # ---- prefill: every group's row under a block mask ---------------------------------------
        ids = torch.full((n_groups, prefill_len), pad, dtype=torch.long)       # (B, P)
        position_ids = torch.zeros((n_groups, prefill_len), dtype=torch.long)  # (B, P)
        mask = torch.zeros((n_groups, 1, prefill_len, prefill_len), dtype=torch.bool)  # (B, 1, P, P)
        visible = torch.zeros((n_groups, n_segs, cache_len), dtype=torch.bool)  # (B, S, K): what each segment's new tokens may see
        for r, g in enumerate(batch):
            (tokens, positions), (trunk, segments) = rows[r], layouts[g]
            ids[r, :len(tokens)] = torch.tensor(tokens)
            position_ids[r, :len(positions)] = torch.tensor(positions)
            n = len(trunk)
            mask[r, 0, :n, :n] = torch.ones(n, n, dtype=torch.bool).tril()
            for k, (shared, segment, _) in enumerate(segments):
                s, e = seg_starts[r][k], seg_starts[r][k] + len(segment)
                mask[r, 0, s:e, :shared] = True
                mask[r, 0, s:e, s:e] = torch.ones(e - s, e - s, dtype=torch.bool).tril()
                visible[r, k, :shared] = True
                visible[r, k, s:e] = True
            for q in range(len(tokens), prefill_len):  # padding sees itself only (no all-masked rows)
                mask[r, 0, q, q] = True
        float_mask = torch.zeros(mask.shape, dtype=dtype).masked_fill(~mask, blocked)  # (B, 1, P, P)
        # filled in place by every forward below; a model that is several models (proxy-tuning) brings its own
        cache = model.new_cache() if hasattr(model, "new_cache") else DynamicCache(config=model.config)
        output = model(input_ids=ids.to(device), position_ids=position_ids.to(device),
                       attention_mask=float_mask.to(device), use_cache=True, **{cache_kw: cache})
        last = torch.zeros((n_groups, n_segs), dtype=torch.long)           # (B, S) index of each segment's last token
        real = torch.zeros((n_groups, n_segs), dtype=torch.bool)           # (B, S) False where a group has fewer segments
        next_position = torch.zeros((n_groups, n_segs), dtype=torch.long)  # (B, S) position of the first answer token
        for r, g in enumerate(batch):
            for k, (shared, segment, context_len) in enumerate(layouts[g][1]):
                last[r, k] = seg_starts[r][k] + len(segment) - 1
                real[r, k] = True
                next_position[r, k] = context_len
        logits = output.logits.float().cpu()                                 # (B, P, V)
        next_tokens = logits[torch.arange(n_groups)[:, None], last].argmax(-1)  # (B, S)
        generated = torch.full((n_groups, n_segs, n_answer), -1, dtype=torch.long)  # (B, S, A); -1: none
        generated[:, :, 0] = next_tokens.masked_fill(~real, -1)
        done = ~real | ends.mask(next_tokens)                                # (B, S)

        # ---- decode: one new token per segment per step, appended as S new cache columns ---------
        for step in range(1, n_answer):
            if bool(done.all()):
                break
            col = prefill_len + n_segs * (step - 1)  # first cache column of this step
            visible[:, torch.arange(n_segs), col + torch.arange(n_segs)] = True  # each segment sees its own new token
            step_visible = visible[:, :, :col + n_segs].unsqueeze(1)             # (B, 1, S, col + S)
            step_mask = torch.zeros(step_visible.shape, dtype=dtype).masked_fill(~step_visible, blocked)
            positions = (next_position + step - 1).masked_fill(~real, 0)         # (B, S)
            output = model(input_ids=next_tokens.to(device), position_ids=positions.to(device),
                           attention_mask=step_mask.to(device), use_cache=True, **{cache_kw: cache})
            next_tokens = output.logits.float().cpu().argmax(-1)                 # (B, S, V) -> (B, S)
            generated[:, :, step] = next_tokens.masked_fill(done, -1)
            done = done | ends.mask(next_tokens)
        for r, g in enumerate(batch):
            for k in range(len(layouts[g][1])):
                answer = generated[r, k]  # (A,)
                out[g][k] = answer[answer >= 0].tolist()
        if progress:
            progress(len(batch))
    return out


@torch.no_grad()
def forced_answers_naive(lm, contexts: list[list[int]], max_answer_tokens: int = 12,
                         batch_size: int = 1) -> list[list[int]]:
    """Reference: one independent greedy ``model.generate`` per context (no sharing), cut after the
    first end-of-line token. ``batch_size > 1`` batches with left padding."""
    model = lm.model
    model.eval()
    device = next(model.parameters()).device
    pad = pad_id(lm)
    eos = sorted(eos_ids(lm))
    ends = LineEnds(lm)
    out: list[list[int]] = [[] for _ in contexts]
    order = sorted(range(len(contexts)), key=lambda i: len(contexts[i]))
    for b in range(0, len(order), batch_size):
        idx = order[b:b + batch_size]
        ids, attention = left_pad([contexts[i] for i in idx], pad)  # (B, W)
        width = ids.shape[1]
        seqs = model.generate(input_ids=ids.to(device), attention_mask=attention.to(device),
                              max_new_tokens=max_answer_tokens, do_sample=False, pad_token_id=pad,
                              eos_token_id=eos or None, use_cache=True)  # (B, W + new)
        for r, i in enumerate(idx):
            out[i] = ends.cut(seqs[r, width:].tolist())
    return out


@torch.no_grad()
def continue_chains(lm, texts: list[str], max_new_tokens: int = 96, batch_size: int = 32,
                    progress: Callable[[int], None] | None = None) -> list[str]:
    """Greedy continuation of raw texts (no chat template is added: the texts already hold it),
    stopping at EOS or once an ``A:``/``####`` line is complete. Returns the new text only."""
    from transformers import StoppingCriteria, StoppingCriteriaList

    tok = lm.tokenizer
    model = lm.model
    device = next(model.parameters()).device
    pad = pad_id(lm)
    eos = sorted(eos_ids(lm))

    class _AnswerLineDone(StoppingCriteria):
        """Every row whose new text holds a complete answer line."""

        def __init__(self, start):
            self.start = start

        def __call__(self, input_ids, scores, **kw):
            new = tok.batch_decode(input_ids[:, self.start:], skip_special_tokens=True)
            return torch.tensor([bool(ANSWER_LINE_RE.search(t)) for t in new], device=input_ids.device)

    encoded = [encode_context(lm, t) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
    out = [""] * len(texts)
    for b in range(0, len(order), batch_size):
        idx = order[b:b + batch_size]
        ids, attention = left_pad([encoded[i] for i in idx], pad)  # (B, W)
        width = ids.shape[1]
        seqs = model.generate(input_ids=ids.to(device), attention_mask=attention.to(device),
                              max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad,
                              eos_token_id=eos or None, use_cache=True,
                              stopping_criteria=StoppingCriteriaList([_AnswerLineDone(width)]))  # (B, W + new)
        for r, i in enumerate(idx):
            out[i] = tok.decode(seqs[r, width:], skip_special_tokens=True)
        if progress:
            progress(len(idx))
    return out
