"""The two models under audit, and the adapter switch that lets base and tuned share weights."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable


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


def _base_fingerprint(model) -> str:
    """Hash of the config and the non-adapter weights of a PEFT model (the base it wraps)."""
    from ..models.lm import fingerprint

    return fingerprint(model, skip=lambda name: "lora_" in name, salt=b"adapter-disabled")


def load_models(base: str, tuned: str | None, adapter: str | None, device: str | None = None,
                dtype: str | None = None, revision: str | None = None) -> tuple[ModelHandle, Callable[[], ModelHandle]]:
    """The base handle and a function that loads the tuned one (called later, so that only the
    models in use are in memory). With ``adapter`` both share one copy of the weights. A ``tuned`` of
    the form ``proxy:BASE,EXPERT,ANTI[,ALPHA]`` is decoded by proxy-tuning
    (:func:`sftlens.models.proxy.load_proxy`)."""
    from ..models.lm import load_lm
    from ..models.proxy import load_proxy
    from ..models.proxy_spec import is_proxy_spec, parse_proxy_spec

    if adapter:
        lm = load_lm(base, adapter=adapter, device=device, dtype=dtype, revision=revision)
        base_handle = ModelHandle("base", lm, base, _base_fingerprint(lm.model), revision, None, adapter_disabled=True)
        tuned_handle = ModelHandle("tuned", lm, lm.name, lm.identity, revision, adapter)
        return base_handle, lambda: tuned_handle
    base_lm = load_lm(base, device=device, dtype=dtype, revision=revision)
    base_handle = ModelHandle("base", base_lm, base, base_lm.identity, revision)

    def load_tuned() -> ModelHandle:
        if is_proxy_spec(tuned):  # proxy-tuning: decoded from three models; the audit's base is reused when named
            proxy_base, expert, anti, alpha = parse_proxy_spec(tuned)
            tuned_lm = load_proxy(proxy_base, expert, anti, alpha, device=device, dtype=dtype, revision=revision,
                                  base_lm=base_lm if proxy_base == base else None)
        else:
            tuned_lm = load_lm(tuned, device=device, dtype=dtype, revision=revision)
        return ModelHandle("tuned", tuned_lm, tuned, tuned_lm.identity, revision)

    return base_handle, load_tuned
