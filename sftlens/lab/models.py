"""Loading a lab run's models, of which a proxy-tuned one is a folder naming three others.

``models/<name>/proxy.json`` (``{"base", "expert", "anti", "alpha"}``, names of models of the same
run) stands for ``models/<base>`` decoded by proxy-tuning (:mod:`sftlens.models.proxy`): the lab
evaluates it like any model (:meth:`RunModels.load_model`) and ties its evaluations to the three
models' weights and the alpha (:meth:`RunModels.model_identity`). C9 uses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

from ..core.record import atomic_write_json


class RunModels:
    """Mixed into :class:`sftlens.lab.runner.Lab` (which gives ``out`` and ``model_dir``)."""

    def save_proxy(self, name: str, base: str, expert: str, anti: str, alpha: float) -> None:
        """``models/<name>``: ``models/<base>`` decoded by proxy-tuning with ``models/<expert>`` and
        ``models/<anti>`` (:mod:`sftlens.models.proxy`), as ``proxy.json``; no weights of its own."""
        spec = {"base": base, "expert": expert, "anti": anti, "alpha": float(alpha)}
        d = self.model_dir(name)
        if (d / "proxy.json").exists() and json.loads((d / "proxy.json").read_text()) == spec:
            return
        tmp = self.out / "models" / f".tmp-{name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        atomic_write_json(tmp / "proxy.json", spec)
        atomic_write_json(tmp / "sftlens.json", {"kind": "proxy", **spec})
        shutil.rmtree(d, ignore_errors=True)
        os.replace(tmp, d)

    def proxy_spec(self, model: str) -> dict | None:
        path = self.model_dir(model) / "proxy.json"
        return json.loads(path.read_text()) if path.exists() else None

    def load_model(self, model: str):
        """The :class:`~sftlens.models.lm.LM` of ``models/<model>`` (a proxy-tuned one for a proxy folder)."""
        from ..models.lm import load_lm
        from ..models.proxy import load_proxy

        spec = self.proxy_spec(model)
        if spec is None:
            lm = load_lm(str(self.model_dir(model)))
        else:
            lm = load_proxy(*(str(self.model_dir(spec[k])) for k in ("base", "expert", "anti")), alpha=spec["alpha"])
        lm.name = model
        return lm

    def model_identity(self, model: str) -> str:
        """A hash of the model's weights and of the base's (the information-gain scorer): the
        evaluation files in ``eval/<model>/`` belong to exactly this pair (a proxy: its three models
        and its alpha)."""
        h = hashlib.sha256()
        spec = self.proxy_spec(model)
        parts = [spec[k] for k in ("base", "expert", "anti")] if spec else [model]
        if spec:
            h.update(json.dumps(spec, sort_keys=True).encode())
        for name in dict.fromkeys(parts + ["base"]):
            for f in sorted(self.model_dir(name).glob("*.safetensors")):
                h.update(f.read_bytes())
        return h.hexdigest()[:16]


__all__ = ["RunModels"]
