"""The model contract every metric uses: a causal LM, its tokenizer, and two operations.

:class:`LM` wraps any Hugging Face causal LM (a local path, a Hub id when online, or a LoRA adapter
on a base). Metrics only need :meth:`LM.generate` (batched greedy or sampled continuation of prompts,
with the KV cache) and :meth:`LM.encode`; scoring functions use ``lm.model`` directly for one batched
forward pass. Greedy decoding on token ids (forced answers, chain continuation) is in
:mod:`sftlens.models.decoding`. Device and dtype are chosen automatically (CUDA, then MPS, then CPU).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch


from ..core.errors import ModelLoadError  # noqa: F401  (re-exported)


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA, then MPS, then CPU."""
    if device:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device, dtype: str | None = None) -> torch.dtype:
    """``dtype`` by name if given, else bfloat16 on CUDA with bf16 support, float32 elsewhere."""
    if dtype:
        return getattr(torch, dtype)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def fingerprint(model, skip=None, salt: bytes = b"") -> str:
    """A short hash of the config and (a strided sample of) every weight tensor whose name ``skip``
    does not reject; ``salt`` separates kinds of identity (e.g. an adapter switched off)."""
    cfg = {k: v for k, v in model.config.to_dict().items()
           if not k.startswith("_") and k not in ("transformers_version", "dtype", "torch_dtype")}
    h = hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode())
    h.update(salt)
    with torch.no_grad():
        for name, p in model.state_dict().items():
            if skip is not None and skip(name):
                continue
            flat = p.detach().reshape(-1)
            step = max(1, flat.numel() // 4096)
            h.update(name.encode())
            h.update(flat[::step].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


#: A complete answer line (``A: ...`` or ``#### ...`` with something on it, then a newline).
ANSWER_LINE_RE = re.compile(r"(^|\n)\s*(A:|####)[^\n]*\S[^\n]*\n")


@dataclass
class LM:
    """A loaded causal LM with its tokenizer.

    Attributes:
        model: the ``PreTrainedModel`` (possibly a ``PeftModel``).
        tokenizer: its tokenizer; padding is on the left for generation.
        name: a label for reports (path, Hub id, or ``base+adapter``).
        identity: a hash of the config and weights, so caches never mix two models.
        chat: whether prompts are wrapped in the tokenizer's chat template.
        system: a system message put before the user turn (only with ``chat``).
    """

    model: Any
    tokenizer: Any
    name: str
    identity: str = ""
    chat: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    system: str | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def format_prompt(self, text: str) -> str:
        """Apply the chat template (the system message if any, the user turn, the generation prompt)
        when prompts are wrapped in it (``chat``); else ``text`` as it is."""
        if not self.chat:
            return text
        messages = [{"role": "system", "content": self.system}] if self.system else []
        return self.tokenizer.apply_chat_template(messages + [{"role": "user", "content": text}], tokenize=False,
                                                  add_generation_prompt=True)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of ``text`` (with BOS when the tokenizer adds one and ``add_special_tokens``)."""
        return self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]

    @torch.no_grad()
    def generate(self, prompts: list[str], max_new_tokens: int = 64, batch_size: int = 64,
                 temperature: float = 0.0, seed: int = 0, stop_after_answer: bool = True,
                 progress=None, details: bool = False) -> list[str] | list[Generation]:
        """Continue each prompt; greedy when ``temperature == 0``, else sampling seeded by ``seed``.

        Rows stop at EOS, or (``stop_after_answer``) once an answer line (``A: ...`` or ``#### ...``)
        is complete. Returns only the new text, in prompt order; with ``details``, a
        :class:`Generation` per prompt (the text, and whether it stopped at ``max_new_tokens``).
        Prompts are sorted by length into batches so padding stays small. ``progress`` is called
        with the number of prompts done.
        """
        from transformers import StoppingCriteria, StoppingCriteriaList

        tok = self.tokenizer
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        self.model.eval()
        texts = [self.format_prompt(p) for p in prompts]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[str] = [""] * len(texts)
        hit_limit = [False] * len(texts)

        nl_ids = _newline_token_ids(tok).to(self.device)

        class _AnswerDone(StoppingCriteria):
            """A row is done once an answer line is complete; only rows whose newest token holds a
            newline are decoded, so the check costs almost nothing per step."""

            def __init__(self, start: int):
                self.start = start
                self.done: torch.Tensor | None = None

            def __call__(self, input_ids, scores, **kw):
                if self.done is None:
                    self.done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
                check = torch.isin(input_ids[:, -1], nl_ids) & ~self.done
                for r in check.nonzero().flatten().tolist():
                    text = tok.decode(input_ids[r, self.start:], skip_special_tokens=True)
                    self.done[r] = bool(ANSWER_LINE_RE.search(text))
                return self.done.clone()

        gen = torch.Generator(device="cpu").manual_seed(seed)
        for b in range(0, len(order), batch_size):
            idx = order[b:b + batch_size]
            enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True,
                      add_special_tokens=not self.chat).to(self.device)
            start = enc["input_ids"].shape[1]
            kw: dict[str, Any] = dict(max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                                      eos_token_id=tok.eos_token_id, use_cache=True)
            if temperature > 0:
                torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
                kw.update(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
            else:
                kw.update(do_sample=False)
            answer_done = _AnswerDone(start) if stop_after_answer else None
            if answer_done is not None:
                kw["stopping_criteria"] = StoppingCriteriaList([answer_done])
            seqs = self.model.generate(**enc, **kw)
            for j, i in enumerate(idx):
                out[i] = tok.decode(seqs[j, start:], skip_special_tokens=True)
                answered = answer_done is not None and answer_done.done is not None and bool(answer_done.done[j])
                hit_limit[i] = stopped_by_limit(seqs[j, start:].tolist(), max_new_tokens, {tok.eos_token_id},
                                                answered)
            if progress:
                progress(len(idx))
        return [Generation(t, h) for t, h in zip(out, hit_limit)] if details else out


class Generation(NamedTuple):
    """One continuation from :meth:`LM.generate` with ``details``: its text, and whether it
    stopped because it reached ``max_new_tokens`` (not at EOS, not at a finished answer line)."""

    text: str
    hit_limit: bool


def stopped_by_limit(new_ids: list[int], max_new_tokens: int, eos: set[int], answered: bool = False) -> bool:
    """Whether a generated row stopped at the length limit: it holds ``max_new_tokens`` tokens, none
    of them an end-of-sequence id (padding after an early stop is EOS when the tokenizer pads with
    it), and it did not complete its answer line (a row stopped by the answer rule is padded too).

    >>> stopped_by_limit([5, 6], 2, {0}), stopped_by_limit([5, 0], 2, {0}), stopped_by_limit([5], 2, {0})
    (True, False, False)
    >>> stopped_by_limit([5, 6], 2, {0}, answered=True)
    False
    """
    return len(new_ids) >= max_new_tokens and not answered and not any(t in eos for t in new_ids)


_NEWLINE_CACHE: dict[int, torch.Tensor] = {}


def _newline_token_ids(tok) -> torch.Tensor:
    """Ids of every token whose text contains a newline (computed once per tokenizer)."""
    key = id(tok)
    if key not in _NEWLINE_CACHE:
        n = len(tok)
        texts = tok.batch_decode([[i] for i in range(n)])
        _NEWLINE_CACHE[key] = torch.tensor([i for i, t in enumerate(texts) if "\n" in t] or [-1])
    return _NEWLINE_CACHE[key]


@contextlib.contextmanager
def _loading(path: str):
    """Turn what transformers raises on a model that cannot be loaded into one-sentence
    :class:`ModelLoadError` messages."""
    try:
        yield
    except ModelLoadError:
        raise
    except RuntimeError as e:  # transformers: weights whose shapes do not fit the config
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        if "mismatch" not in first:
            raise ModelLoadError(f"cannot load model '{path}': {first[:200]}") from None
        raise ModelLoadError(f"model '{path}': config.json does not match the saved weights (weight shapes differ "
                             "from the ones the config implies); restore the config.json saved with these "
                             "weights") from None
    except OSError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(f"cannot load model '{path}': {first}") from None
    except ValueError as e:
        raise ModelLoadError(f"cannot load model '{path}': {str(e).splitlines()[0]}") from None


def _check_model_folder(path: str) -> None:
    """A path that looks local exists and holds a model (or an adapter)."""
    p = Path(path)
    looks_local = path.startswith((".", "/", "~")) or p.exists() or len(path.split("/")) > 2
    if looks_local and not p.exists():
        raise ModelLoadError(f"model path '{path}' does not exist")
    if p.exists() and not (p / "config.json").exists() and not (p / "adapter_config.json").exists():
        raise ModelLoadError(f"'{path}' is a folder but not a saved model (no config.json inside)")


def load_model(path: str, dtype: torch.dtype = torch.float32, revision: str | None = None):
    """The causal LM alone (no tokenizer), on the CPU, with :func:`load_lm`'s checks and errors: a
    ``config.json`` that does not fit the saved weights is a :class:`ModelLoadError`, never a model
    with randomly initialised weights."""
    from transformers import AutoModelForCausalLM

    _check_model_folder(path)
    with _loading(path):
        model, info = AutoModelForCausalLM.from_pretrained(path, revision=revision, dtype=dtype,
                                                           output_loading_info=True)
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise ModelLoadError(f"model '{path}': config.json does not match the saved weights ({len(missing)} weights "
                             f"the config needs are not in the files, e.g. '{missing[0]}'); restore the config.json "
                             "saved with these weights")
    return model


def load_lm(path: str, adapter: str | None = None, device: str | None = None, dtype: str | None = None,
            revision: str | None = None) -> LM:
    """Load a causal LM and its tokenizer from a local folder or a Hub id (when online).

    ``adapter`` is a PEFT (LoRA) adapter folder applied on top. Errors are :class:`ModelLoadError`
    with one sentence: a path that does not exist, a folder that is not a model, a tokenizer whose
    vocabulary does not fit the model.
    """
    from transformers import AutoTokenizer

    _check_model_folder(path)
    dev = pick_device(device)
    dt = pick_dtype(dev, dtype)
    with _loading(path):
        tok = AutoTokenizer.from_pretrained(path, revision=revision)
    model = load_model(path, dtype=dt, revision=revision)
    if len(tok) > model.get_input_embeddings().weight.shape[0]:
        raise ModelLoadError(f"tokenizer of '{path}' has {len(tok)} tokens but the model's embedding has "
                             f"{model.get_input_embeddings().weight.shape[0]} rows: they do not belong together")
    name = path
    if adapter:
        from peft import PeftModel

        if not Path(adapter).exists():
            raise ModelLoadError(f"adapter path '{adapter}' does not exist")
        model = PeftModel.from_pretrained(model, adapter)
        name = f"{path}+{adapter}"
    model.to(dev).eval()
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return LM(model=model, tokenizer=tok, name=name, identity=fingerprint(model),
              chat=bool(getattr(tok, "chat_template", None)), meta={"revision": revision, "adapter": adapter})


def lm_from_model(model, tokenizer, name: str) -> LM:
    """Wrap an in-memory model (e.g. right after training) as an :class:`LM`."""
    model.eval()
    return LM(model=model, tokenizer=tokenizer, name=name, identity=fingerprint(model),
              chat=bool(getattr(tokenizer, "chat_template", None)))
