"""The two models under audit, and the adapter switch that lets base and tuned share weights."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable

from ..core.errors import UserError
from ._cache import content_hash

#: ``--chat-template``: ``auto`` wraps prompts in the tokenizer's chat template when it has one
CHAT_TEMPLATE_MODES = ("auto", "none")


@dataclass
class ModelHandle:
    """One model under audit: a loaded :class:`~sftlens.models.lm.LM`, its role (``base`` or
    ``tuned``) and, for the base of an adapter audit, a switch that disables the adapter."""

    role: str
    lm: Any
    name: str
    identity: str
    revision: str | None = None
    adapter: str | None = None
    adapter_disabled: bool = False

    def active(self):
        """Context in which ``lm`` behaves as this model (adapter off for the base of an adapter)."""
        if self.adapter_disabled:
            return self.lm.model.disable_adapter()
        return contextlib.nullcontext()

    def describe(self) -> dict:
        """What names this model in ``results.json``."""
        return {"name": self.name, "identity": self.identity, "revision": self.revision,
                "adapter": self.adapter, "adapter_disabled": self.adapter_disabled,
                "chat_template": bool(self.lm.chat)}

    @property
    def scorer_identity(self) -> str:
        """This model's identity as the scorer of information gain: ``identity``, plus its prompt
        format when that is not the default (its tokenizer's chat template if it has one, no system
        message), so that rows scored under another prompt format are never reused."""
        lm = self.lm
        if lm.chat == bool(getattr(lm.tokenizer, "chat_template", None)) and not lm.system:
            return self.identity
        return f"{self.identity}+{content_hash({'chat': lm.chat, 'system': lm.system}, 12)}"

    def prompt_format(self, example_prompt: str) -> dict:
        """How this model's prompts are built, for ``results.json["inputs"]``: whether the chat
        template is applied, a hash of the template, the system message and ``example_prompt`` as
        the model reads it."""
        template = getattr(self.lm.tokenizer, "chat_template", None)
        return {"chat_template": bool(self.lm.chat),
                "template_sha256": content_hash(template, 16) if template else None, "system": self.lm.system,
                "example_prompt": self.lm.format_prompt(example_prompt)}


def set_prompt_format(lm, option: str, chat_template: str = "auto", system: str | None = None) -> None:
    """Set how ``lm`` builds prompts: in its tokenizer's chat template when it has one (``auto``) or
    plain (``none``), with ``system`` as a system message. ``option`` names the model in errors
    (``--base PATH``); a system message for a tokenizer without a template is a :class:`UserError`."""
    if chat_template not in CHAT_TEMPLATE_MODES:
        raise UserError(f"--chat-template must be one of {', '.join(CHAT_TEMPLATE_MODES)}, got '{chat_template}'")
    if chat_template == "none":
        lm.chat = False
    if system is not None:
        if not lm.chat:
            raise UserError(f"--system needs a chat template, but the tokenizer of {option} has none; drop --system "
                            "or audit models whose tokenizers have a chat template")
        lm.system = system


def _base_fingerprint(model) -> str:
    """Hash of the config and the non-adapter weights of a PEFT model (the base it wraps)."""
    from ..models.lm import fingerprint

    return fingerprint(model, skip=lambda name: "lora_" in name, salt=b"adapter-disabled")


def load_models(base: str, tuned: str | None, adapter: str | None, device: str | None = None,
                dtype: str | None = None, revision: str | None = None, chat_template: str = "auto",
                system: str | None = None) -> tuple[ModelHandle, Callable[[], ModelHandle]]:
    """The base handle and a function that loads the tuned one (called later, so that only the
    models in use are in memory). With ``adapter`` both share one copy of the weights. A ``tuned`` of
    the form ``proxy:BASE,EXPERT,ANTI[,ALPHA]`` is decoded by proxy-tuning
    (:func:`sftlens.models.proxy.load_proxy`). Prompts are built as :func:`set_prompt_format` says
    (``chat_template``, ``system``)."""
    from ..models.lm import load_lm
    from ..models.proxy import load_proxy
    from ..models.proxy_spec import is_proxy_spec, parse_proxy_spec

    if adapter:
        lm = load_lm(base, adapter=adapter, device=device, dtype=dtype, revision=revision)
        set_prompt_format(lm, f"--base '{base}'", chat_template, system)
        base_handle = ModelHandle("base", lm, base, _base_fingerprint(lm.model), revision, None, adapter_disabled=True)
        tuned_handle = ModelHandle("tuned", lm, lm.name, lm.identity, revision, adapter)
        return base_handle, lambda: tuned_handle
    base_lm = load_lm(base, device=device, dtype=dtype, revision=revision)
    set_prompt_format(base_lm, f"--base '{base}'", chat_template, system)
    base_handle = ModelHandle("base", base_lm, base, base_lm.identity, revision)

    def load_tuned() -> ModelHandle:
        if is_proxy_spec(tuned):  # proxy-tuning: decoded from three models; the audit's base is reused when named
            proxy_base, expert, anti, alpha = parse_proxy_spec(tuned)
            tuned_lm = load_proxy(proxy_base, expert, anti, alpha, device=device, dtype=dtype, revision=revision,
                                  base_lm=base_lm if proxy_base == base else None)
        else:
            tuned_lm = load_lm(tuned, device=device, dtype=dtype, revision=revision)
        set_prompt_format(tuned_lm, f"--tuned '{tuned}'", chat_template, system)
        return ModelHandle("tuned", tuned_lm, tuned, tuned_lm.identity, revision)

    return base_handle, load_tuned
