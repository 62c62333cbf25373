"""Proxy-tuning (Liu et al. 2024, "Tuning Language Models by Proxy", arXiv 2401.08565): decode a
large untuned *base* with the logits ``base + alpha * (expert - anti_expert)``, where the *expert* is
a small tuned model and the *anti-expert* the same small model untuned.

How it plugs in: :class:`ProxyModel` looks to sftlens like any causal LM, so an
:class:`~sftlens.models.lm.LM` wraps it and every metric, the audit and the faithfulness battery use
it unchanged (``load_proxy``; the audit's ``--tuned proxy:BASE,EXPERT,ANTI``).

- ``generate`` is the base's own transformers ``generate`` (its KV cache, sampling, stopping criteria,
  end-of-sequence padding) with one :class:`ProxyLogitsProcessor` first in the processor list. The
  processor holds the expert and the anti-expert, each with its own KV cache: at every step it feeds
  them the tokens ``generate`` appended since its last call (the whole prompt at the first), with the
  same attention mask and position ids the base gets, and adds ``alpha * (expert - anti)`` to the
  base's raw scores. It runs before transformers' temperature/top-k/top-p warpers, so sampling draws
  from ``softmax((base + alpha * (expert - anti)) / T)``, as in the paper's code.
- ``forward`` runs the three models on the same inputs (a 4D mask, ``position_ids`` and a
  :class:`ProxyCache` included) and returns the combined logits: what scoring and the faithfulness
  battery's forced answers need.

A processor alone cannot serve those forward passes, and a hand-written decoding loop would
re-implement what ``generate`` already does; hence both, sharing :func:`combine_logits`. The three
tokenizers must map every token to the same id (:func:`check_same_vocab`). The prompt is the same
text for all three (the base's chat template, if any); the paper's code could format the expert's
prompt as a chat turn, which this does not.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import LogitsProcessor

from ..core.errors import ModelLoadError
from .proxy_spec import is_proxy_spec, parse_proxy_spec


def combine_logits(base: torch.Tensor, expert: torch.Tensor, anti: torch.Tensor, alpha: float) -> torch.Tensor:
    """``base + alpha * (expert - anti)`` in float32, on the vocabulary the three share: where a model's
    output layer is wider than another's (padding rows past the tokenizer), the extra columns get
    ``-inf`` so they are never picked.

    >>> combine_logits(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, 0.0]]), torch.tensor([[0.0, 0.5]]), 2.0)
    tensor([[2., 1.]])
    >>> combine_logits(torch.tensor([[1.0, 2.0, 9.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 0.0]]), 1.0)
    tensor([[1., 3., -inf]])
    """
    width = min(base.shape[-1], expert.shape[-1], anti.shape[-1])
    out = base.float().clone()
    out[..., :width] += alpha * (expert[..., :width].float() - anti[..., :width].float())
    out[..., width:] = float("-inf")
    return out


def first_vocab_difference(a: dict[str, int], b: dict[str, int]) -> tuple[int, str | None, str | None] | None:
    """The lowest id that two vocabularies (``token -> id``) map differently, with its token in each
    (``None`` where one has no token at that id); ``None`` when they are the same mapping.

    >>> first_vocab_difference({"a": 0, "b": 1}, {"a": 0, "b": 1}) is None
    True
    >>> first_vocab_difference({"a": 0, "b": 1, "c": 2}, {"a": 0, "c": 1})
    (1, 'b', 'c')
    """
    if a == b:
        return None
    by_id_a = {i: t for t, i in a.items()}
    by_id_b = {i: t for t, i in b.items()}
    for i in sorted(set(by_id_a) | set(by_id_b)):
        if by_id_a.get(i) != by_id_b.get(i):
            return i, by_id_a.get(i), by_id_b.get(i)
    return None  # pragma: no cover - equal id maps mean equal dicts


def check_same_vocab(tokenizers: list[tuple[str, Any]]) -> None:
    """Raise :class:`ModelLoadError` naming the first tokenizer (``(label, tokenizer)``) whose
    vocabulary differs from the first one's, and the first token id they map differently."""
    (ref_label, ref_tok), *others = tokenizers
    ref = ref_tok.get_vocab()
    for label, tok in others:
        diff = first_vocab_difference(ref, tok.get_vocab())
        if diff is not None:
            i, a, b = diff
            raise ModelLoadError(f"the tokenizers of {ref_label} and {label} differ: token id {i} is {a!r} in the "
                                 f"first and {b!r} in the second, so their logits cannot be added id by id "
                                 "(proxy-tuning needs one vocabulary for the base, the expert and the anti-expert)")


def _forward(model, input_ids, attention_mask, position_ids, cache, cache_kw: str | None = None) -> torch.Tensor:
    """Logits of ``model`` on one chunk of tokens, extending ``cache`` in place (``cache_kw``: the
    forward keyword of the cache, looked up when not given)."""
    from .decoding import cache_kwarg

    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True,
                **{cache_kw or cache_kwarg(model): cache})
    return out.logits


class ProxyLogitsProcessor(LogitsProcessor):
    """A transformers ``LogitsProcessor`` that adds ``alpha * (expert - anti)`` to the base's scores.

    Built once per ``generate`` call with the prompt's attention mask ``(B, W)``. Each call feeds the
    expert and the anti-expert the tokens appended since the previous call, with their own KV caches,
    the attention mask grown by ones (as ``generate`` grows the base's) and the position ids
    ``generate`` gives the base (cumulative sum of the mask minus one, then one more per step), so the
    three models read the same sequence under the same positions.
    """

    def __init__(self, expert, anti, alpha: float, attention_mask: torch.Tensor):
        from transformers import DynamicCache

        from .decoding import cache_kwarg

        self.models = (expert, anti)
        self.alpha = alpha
        self.mask = attention_mask.long()  # (B, W) at first; (B, W + t) after t steps
        self.caches = [DynamicCache(config=m.config) for m in self.models]
        self.cache_kws = [cache_kwarg(m) for m in self.models]  # once, not at every step
        self.fed = 0  # tokens of input_ids already in the caches
        self.last_position: torch.Tensor | None = None  # (B, 1)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[0] != self.mask.shape[0]:
            raise ValueError("proxy-tuning decodes one sequence per prompt (no beams, num_return_sequences=1)")
        new = input_ids[:, self.fed:]  # (B, n)
        n = new.shape[1]
        if self.fed == 0:
            positions = (self.mask.cumsum(-1) - 1).masked_fill(self.mask == 0, 0)  # (B, W)
        else:
            self.mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], n))], dim=-1)
            positions = self.last_position + torch.arange(1, n + 1, device=new.device)  # (B, n)
        expert, anti = (_forward(m, new, self.mask, positions, c, kw)[:, -1]
                        for m, c, kw in zip(self.models, self.caches, self.cache_kws))  # (B, V) each
        self.fed = input_ids.shape[1]
        self.last_position = positions[:, -1:]
        return combine_logits(scores, expert, anti, self.alpha).to(scores.dtype)


class ProxyCache:
    """The KV caches of the three models of a :class:`ProxyModel` (base, expert, anti-expert)."""

    def __init__(self, models):
        from transformers import DynamicCache

        self.parts = [DynamicCache(config=m.config) for m in models]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.parts[0].get_seq_length(layer_idx)


class ProxyModel(torch.nn.Module):
    """A causal LM whose next-token logits are ``base + alpha * (expert - anti)`` (see the module
    docstring). ``config`` and ``generation_config`` are the base's."""

    def __init__(self, base, expert, anti, alpha: float = 1.0):
        super().__init__()
        self.base, self.expert, self.anti = base, expert, anti
        self.alpha = float(alpha)

    @property
    def config(self):
        return self.base.config

    @property
    def generation_config(self):
        return self.base.generation_config

    def new_cache(self) -> ProxyCache:
        """An empty cache for :meth:`forward` (one per model)."""
        return ProxyCache((self.base, self.expert, self.anti))

    def forward(self, input_ids, attention_mask=None, position_ids=None, cache: ProxyCache | None = None,
                use_cache: bool = False, **kwargs):
        """Combined logits ``(B, T, V)`` of the three models on the same inputs; with a ``cache``
        (from :meth:`new_cache`) each model extends its own part."""
        from transformers.modeling_outputs import CausalLMOutputWithPast

        if cache is None and use_cache:
            cache = self.new_cache()
        parts = cache.parts if cache is not None else [None, None, None]
        logits = [(_forward(m, input_ids, attention_mask, position_ids, part) if part is not None else
                   m(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits)
                  for m, part in zip((self.base, self.expert, self.anti), parts)]
        return CausalLMOutputWithPast(logits=combine_logits(*logits, self.alpha))

    @torch.no_grad()
    def generate(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None,
                 logits_processor=None, **kwargs) -> torch.LongTensor:
        """The base's ``generate`` with :class:`ProxyLogitsProcessor` first; every other keyword
        (``max_new_tokens``, ``do_sample``, ``temperature``, ``stopping_criteria``, ...) goes through."""
        from transformers import LogitsProcessorList

        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        proxy = ProxyLogitsProcessor(self.expert, self.anti, self.alpha, attention_mask)
        processors = LogitsProcessorList([proxy, *(logits_processor or [])])
        return self.base.generate(input_ids=input_ids, attention_mask=attention_mask, logits_processor=processors,
                                  **kwargs)


def load_proxy(base: str, expert: str, anti: str, alpha: float = 1.0, device: str | None = None,
               dtype: str | None = None, revision: str | None = None, base_lm=None):
    """An :class:`~sftlens.models.lm.LM` that decodes by proxy-tuning ``base`` with ``expert`` and
    ``anti``. ``base_lm`` reuses an already loaded base (the audit's). The tokenizers are checked
    first: a mismatch raises :class:`ModelLoadError` naming the two models and the first differing id."""
    from .lm import LM, fingerprint, load_lm

    base_lm = base_lm or load_lm(base, device=device, dtype=dtype, revision=revision)
    expert_lm = load_lm(expert, device=device, dtype=dtype, revision=revision)
    anti_lm = expert_lm if anti == expert else load_lm(anti, device=device, dtype=dtype, revision=revision)
    check_same_vocab([(f"the base '{base}'", base_lm.tokenizer), (f"the expert '{expert}'", expert_lm.tokenizer),
                      (f"the anti-expert '{anti}'", anti_lm.tokenizer)])
    model = ProxyModel(base_lm.model, expert_lm.model, anti_lm.model, alpha).eval()
    name = f"proxy:{base},{expert},{anti},{alpha:g}"
    return LM(model=model, tokenizer=base_lm.tokenizer, name=name,
              identity=fingerprint(model, salt=f"proxy alpha={alpha!r}".encode()), chat=base_lm.chat,
              meta={"revision": revision, "proxy": {"base": base, "expert": expert, "anti": anti, "alpha": alpha}})


__all__ = ["ProxyCache", "ProxyLogitsProcessor", "ProxyModel", "check_same_vocab", "combine_logits",
           "first_vocab_difference", "is_proxy_spec", "load_proxy", "parse_proxy_spec"]
