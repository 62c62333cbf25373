"""Tiny models and a word-level tokenizer for training from scratch on the CPU.

The tokenizer splits text on spaces (kept as ``▁`` markers so decoding is exact), isolates newlines
and punctuation, and splits numbers into single digits, so a tiny model does arithmetic digit by
digit. Models are ``LlamaForCausalLM`` built from a named :class:`TinySize`. Both are saved with
``save_pretrained`` and loaded with ``from_pretrained`` so the real loading code is exercised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

SPECIAL = {"pad": "<pad>", "bos": "<s>", "eos": "</s>", "unk": "<unk>"}


@dataclass(frozen=True)
class TinySize:
    """Shape of a tiny Llama."""

    hidden: int
    layers: int
    heads: int
    intermediate: int


SIZES: dict[str, TinySize] = {
    "nano": TinySize(hidden=32, layers=2, heads=2, intermediate=96),
    "tiny": TinySize(hidden=64, layers=2, heads=4, intermediate=192),
    "small": TinySize(hidden=96, layers=3, heads=4, intermediate=288),
    "base": TinySize(hidden=128, layers=4, heads=4, intermediate=384),
}


def _pre_tokenizer():
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\n"), behavior="isolated"),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True),
        pre_tokenizers.Split(Regex(r"▁?\d"), behavior="isolated"),
        pre_tokenizers.Split(Regex(r"▁?[^\w▁\s]"), behavior="isolated"),
    ])


def build_tokenizer(corpus: Iterable[str], extra_words: Iterable[str] = ()):
    """A word-level ``PreTrainedTokenizerFast`` whose vocabulary is every piece of ``corpus``.

    Digits 0-9 are always in the vocabulary; unseen pieces map to ``<unk>``. Decoding restores the
    exact text (spaces are ``▁`` markers), so ``decode(encode(t)) == t`` for text made of known pieces.

    >>> tok = build_tokenizer(["a lamp costs 7", "3 * 7 = 21"])
    >>> tok.tokenize("3 * 7 = 21")
    ['3', '▁*', '▁7', '▁=', '▁2', '1']
    >>> tok.decode(tok("a lamp costs 21")["input_ids"], skip_special_tokens=True)
    'a lamp costs 21'
    """
    from tokenizers import Tokenizer, decoders, models, processors
    from transformers import PreTrainedTokenizerFast

    pre = _pre_tokenizer()
    pieces: dict[str, None] = {}
    for text in list(corpus) + list(extra_words):
        for piece, _ in pre.pre_tokenize_str(text):
            pieces.setdefault(piece, None)
    vocab: dict[str, int] = {}
    for t in [SPECIAL["pad"], SPECIAL["bos"], SPECIAL["eos"], SPECIAL["unk"], "▁", "\n", *map(str, range(10)),
              *(f"▁{d}" for d in range(10))]:
        vocab.setdefault(t, len(vocab))
    for p in sorted(pieces):
        vocab.setdefault(p, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL["unk"]))
    tk.pre_tokenizer = pre
    tk.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    bos, bos_id = SPECIAL["bos"], vocab[SPECIAL["bos"]]
    tk.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A $B",
                                                      special_tokens=[(bos, bos_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token=bos, eos_token=SPECIAL["eos"],
                                   pad_token=SPECIAL["pad"], unk_token=SPECIAL["unk"], padding_side="left",
                                   model_max_length=1024)


def make_model(tokenizer, size: str | TinySize = "tiny", max_positions: int = 256, seed: int = 0):
    """A freshly initialised tiny ``LlamaForCausalLM`` (eager attention: faster at these sizes)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    s = SIZES[size] if isinstance(size, str) else size
    if isinstance(size, str) and size not in SIZES:
        raise ValueError(f"unknown size '{size}' (valid: {', '.join(SIZES)})")
    cfg = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=s.hidden, num_hidden_layers=s.layers,
        num_attention_heads=s.heads, num_key_value_heads=s.heads, intermediate_size=s.intermediate,
        max_position_embeddings=max_positions, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, attn_implementation="eager",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def n_params(model) -> int:
    """Number of parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())
