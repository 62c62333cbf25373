"""Weight drift: how far fine-tuning moved each parameter, ``‖W_t − W_b‖ / ‖W_b‖`` (Frobenius norms).

:func:`weight_drift` compares two sets of named parameters (same names, same shapes) and returns a
row per parameter and one per layer (the parameters under ``...layers.N.``; embeddings, final norm
and head are their own groups), where a layer's drift is ``sqrt(Σ‖ΔW‖²) / sqrt(Σ‖W_b‖²)`` over its
parameters. :func:`model_drift` loads the two models (a LoRA adapter is merged into a fresh copy of
the base with PEFT's ``merge_and_unload``, so an adapter and its merged model drift the same) and
refuses two architectures whose parameters differ, naming the first one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from ..core.errors import ModelLoadError, UserError

_LAYER_RE = re.compile(r"^(.*?\.(?:layers|layer|h|blocks|block)\.\d+)\.")


def layer_of(name: str) -> str:
    """The layer a parameter belongs to: its transformer block, else its module.

    >>> layer_of("model.layers.3.mlp.up_proj.weight")
    'model.layers.3'
    >>> layer_of("model.embed_tokens.weight"), layer_of("lm_head.weight")
    ('model.embed_tokens', 'lm_head')
    """
    match = _LAYER_RE.match(name)
    if match:
        return match.group(1)
    return name.rsplit(".", 1)[0] if "." in name else name


def first_difference(base: Mapping[str, tuple], tuned: Mapping[str, tuple],
                     labels: tuple[str, str] = ("BASE", "TUNED")) -> str | None:
    """A phrase naming the first parameter (in the base's order, then the tuned's) that the two
    name-to-shape maps do not share with the same shape; ``None`` when they match. ``labels`` name
    the two models.

    >>> first_difference({"a": (2, 3), "b": (3,)}, {"a": (2, 3), "b": (4,)})
    "parameter 'b' has shape (3,) in BASE but (4,) in TUNED"
    >>> first_difference({"a": (2,)}, {"a": (2,), "c": (1,)})
    "parameter 'c' is in TUNED but not in BASE"
    """
    b, t = labels
    for name, shape in base.items():
        if name not in tuned:
            return f"parameter '{name}' is in {b} but not in {t}"
        if tuple(tuned[name]) != tuple(shape):
            return f"parameter '{name}' has shape {tuple(shape)} in {b} but {tuple(tuned[name])} in {t}"
    for name in tuned:
        if name not in base:
            return f"parameter '{name}' is in {t} but not in {b}"
    return None


def _relative(diff: float, norm: float) -> float:
    """``diff / norm``; 0 when nothing moved, infinity when a zero tensor moved.

    >>> _relative(1.0, 4.0), _relative(0.0, 0.0), _relative(1.0, 0.0)
    (0.25, 0.0, inf)
    """
    if norm > 0:
        return diff / norm
    return 0.0 if diff == 0 else math.inf


def weight_drift(base: Mapping, tuned: Mapping, labels: tuple[str, str] = ("BASE", "TUNED")) -> dict:
    """Relative change of every parameter and every layer between two ``name -> tensor`` maps.

    Returns ``{"parameters": [{name, layer, shape, numel, norm, diff_norm, drift}], "layers":
    [{layer, parameters, numel, norm, diff_norm, drift}], "total": {...}}`` in the base's parameter
    order. Norms are computed in float64 from float32 differences. Raises :class:`UserError` naming
    the first parameter the two do not share (by name and shape), the models named by ``labels``.
    """
    import torch

    mismatch = first_difference({n: tuple(t.shape) for n, t in base.items()},
                                {n: tuple(t.shape) for n, t in tuned.items()}, labels)
    if mismatch:
        raise UserError(f"the two models have different architectures: {mismatch}; drift compares a model with a "
                        "fine-tune of that same model")
    params, layers = [], {}
    with torch.no_grad():
        for name, w_base in base.items():
            w_base = w_base.detach().float()
            diff = tuned[name].detach().float() - w_base
            norm = float(torch.linalg.vector_norm(w_base, dtype=torch.float64))
            diff_norm = float(torch.linalg.vector_norm(diff, dtype=torch.float64))
            layer = layer_of(name)
            params.append({"name": name, "layer": layer, "shape": list(w_base.shape), "numel": w_base.numel(),
                           "norm": norm, "diff_norm": diff_norm, "drift": _relative(diff_norm, norm)})
            group = layers.setdefault(layer, {"layer": layer, "parameters": 0, "numel": 0, "sq": 0.0, "dsq": 0.0})
            group["parameters"] += 1
            group["numel"] += w_base.numel()
            group["sq"] += norm ** 2
            group["dsq"] += diff_norm ** 2

    def summary(g: dict) -> dict:
        norm, diff_norm = math.sqrt(g.pop("sq")), math.sqrt(g.pop("dsq"))
        return {**g, "norm": norm, "diff_norm": diff_norm, "drift": _relative(diff_norm, norm)}

    total = {"layer": "all", "parameters": len(params), "numel": sum(p["numel"] for p in params),
             "sq": sum(g["sq"] for g in layers.values()), "dsq": sum(g["dsq"] for g in layers.values())}
    return {"parameters": params, "layers": [summary(g) for g in layers.values()], "total": summary(total)}


def _named_parameters(model) -> dict:
    """Every parameter by name (a tied embedding and head count once, under its first name)."""
    return dict(model.named_parameters())


def model_drift(base: str, tuned: str, adapter: bool = False, dtype: str = "float32") -> dict:
    """:func:`weight_drift` between the model at ``base`` and the one at ``tuned`` (with
    ``adapter``, ``tuned`` is a PEFT adapter folder for ``base``, merged into a fresh copy of it)."""
    import torch

    from ..models.lm import load_model

    dt = getattr(torch, dtype)
    base_model = load_model(base, dtype=dt)
    if adapter:
        from peft import PeftModel

        try:
            merged = PeftModel.from_pretrained(load_model(base, dtype=dt), tuned).merge_and_unload()
        except (ValueError, RuntimeError, KeyError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ModelLoadError(f"adapter '{tuned}' does not fit the base '{base}': {first[:200]}") from None
        tuned_model = merged
    else:
        tuned_model = load_model(tuned, dtype=dt)
    labels = (f"BASE {base}", f"TUNED {base}+{tuned}" if adapter else f"TUNED {tuned}")
    result = weight_drift(_named_parameters(base_model), _named_parameters(tuned_model), labels)
    result["inputs"] = {"base": base, "tuned": tuned, "adapter": adapter, "dtype": dtype}
    return result


def drift_markdown(result: dict, top: int = 10) -> str:
    """The drift per layer, and the ``top`` parameters that moved most, as Markdown tables."""
    from ..report.format import md_table

    inputs = result.get("inputs", {})
    what = f"adapter `{inputs.get('tuned')}` merged into" if inputs.get("adapter") else f"`{inputs.get('tuned')}` vs"
    lines = [f"# Weight drift: {what} `{inputs.get('base')}`", "",
             "Relative change ‖W_t − W_b‖ / ‖W_b‖ (Frobenius); a layer pools its parameters.", ""]
    rows = [[g["layer"], str(g["parameters"]), f"{g['numel']:,}", f"{g['drift']:.3e}"]
            for g in [*result["layers"], result["total"]]]
    lines += [md_table(["layer", "parameters", "weights", "drift"], rows), ""]
    moved = sorted(result["parameters"], key=lambda p: -p["drift"])[:top]
    lines += [f"Top {len(moved)} parameters by drift:", "",
              md_table(["parameter", "shape", "drift"],
                       [[p["name"], "×".join(map(str, p["shape"])), f"{p['drift']:.3e}"] for p in moved])]
    return "\n".join(lines) + "\n"


def drift_figure(result: dict):
    """A bar chart of the drift per layer (log scale when it spans more than two decades)."""
    from ..report.figures import pyplot

    plt = pyplot()
    layers = result["layers"]
    values = [g["drift"] if math.isfinite(g["drift"]) else float("nan") for g in layers]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(layers) + 1.5), 3.6))
    ax.bar(range(len(layers)), values, color="#4C72B0")
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels([g["layer"] for g in layers], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("‖W_t − W_b‖ / ‖W_b‖")
    ax.set_title("weight drift per layer")
    positive = [v for v in values if v and v > 0]
    if positive and max(positive) / min(positive) > 100:
        ax.set_yscale("log")
    fig.tight_layout()
    return fig


__all__ = ["drift_figure", "drift_markdown", "first_difference", "layer_of", "model_drift", "weight_drift"]
