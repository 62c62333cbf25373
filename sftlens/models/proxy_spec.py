"""The ``proxy:BASE,EXPERT,ANTI[,ALPHA]`` model name (no torch here: the audit checks it before
any model loads); the model itself is :mod:`sftlens.models.proxy`."""

from __future__ import annotations

from ..core.errors import UserError


def parse_proxy_spec(spec: str, option: str = "--tuned") -> tuple[str, str, str, float]:
    """``proxy:BASE,EXPERT,ANTI[,ALPHA]`` as ``(base, expert, anti, alpha)`` (alpha 1.0 by default).

    >>> parse_proxy_spec("proxy:big,small-chat,small")
    ('big', 'small-chat', 'small', 1.0)
    >>> parse_proxy_spec("proxy:big,small-chat,small,0.5")[3]
    0.5
    >>> parse_proxy_spec("proxy:big,small")
    Traceback (most recent call last):
    ...
    sftlens.core.errors.UserError: --tuned proxy:big,small: expected proxy:BASE,EXPERT,ANTI or proxy:BASE,EXPERT,ANTI,ALPHA (three model paths and an optional number)
    """
    parts = [p.strip() for p in spec.removeprefix("proxy:").split(",")]
    if len(parts) not in (3, 4) or not all(parts):
        raise UserError(f"{option} {spec}: expected proxy:BASE,EXPERT,ANTI or proxy:BASE,EXPERT,ANTI,ALPHA "
                        "(three model paths and an optional number)")
    alpha = 1.0
    if len(parts) == 4:
        try:
            alpha = float(parts[3])
        except ValueError:
            raise UserError(f"{option} {spec}: ALPHA must be a number, got {parts[3]!r}") from None
    return parts[0], parts[1], parts[2], alpha


def is_proxy_spec(name: str | None) -> bool:
    """Whether a model name is a ``proxy:`` spec.

    >>> is_proxy_spec("proxy:a,b,c"), is_proxy_spec("runs/model")
    (True, False)
    """
    return bool(name) and name.startswith("proxy:")


__all__ = ["is_proxy_spec", "parse_proxy_spec"]
