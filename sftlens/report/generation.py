"""The report's parts about generation itself: the warnings shown on top, how the prompts were built,
how generations ended (cut at ``max_new_tokens``, length of ``<think>`` blocks) and, with several
samples per example, pass@k and maj@k. HTML and Markdown, both from ``results.json``.
"""

from __future__ import annotations

import html
from typing import Any

WARN_CSS = ".banner.warn { color:#93370d; background:#fffaeb; border-color:#fedf89; font-size:15px; }"


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def warning_banners(results: dict) -> str:
    """One warning banner per entry of ``results["warnings"]`` (none: empty).

    >>> warning_banners({"warnings": ["cut <off>"]})
    '<div class="banner warn">⚠ cut &lt;off&gt;</div>'
    """
    return "".join(f'<div class="banner warn">⚠ {_e(w)}</div>' for w in results.get("warnings") or [])


def prompt_line(results: dict) -> str:
    """How the prompts were built, for the line under the title: each model's chat template or plain.

    >>> prompt_line({"inputs": {"chat_template": "auto", "system": "Be brief.", "prompt_format": {
    ...     "base": {"chat_template": False}, "tuned": {"chat_template": True, "template_sha256": "ab12"}}}})
    'prompts (--chat-template auto): base plain, tuned chat template ab12 · system message: Be brief.'
    """
    inputs = results.get("inputs") or {}
    formats = inputs.get("prompt_format") or {}
    if not formats:
        return ""
    parts = [f"{role} " + (f"chat template {fmt.get('template_sha256')}" if fmt.get("chat_template") else "plain")
             for role, fmt in formats.items()]
    system = f" · system message: {inputs['system']}" if inputs.get("system") else ""
    return f"prompts (--chat-template {inputs.get('chat_template')}): " + ", ".join(parts) + system


def _generation_cells(model: dict) -> tuple[str, str]:
    """``(cut at max_new_tokens, mean thinking length)`` of one model as text.

    >>> _generation_cells({"generation": {"hit_max_new_tokens": 0.25, "n_hit_max_new_tokens": 1, "n_measured": 4}})
    ('25.0% (1 of 4)', 'n/a')
    """
    g = model.get("generation") or {}
    cut = (f"{g['hit_max_new_tokens'] * 100:.1f}% ({g['n_hit_max_new_tokens']} of {g['n_measured']})"
           if g.get("hit_max_new_tokens") is not None else "n/a")
    think = (f"{g['think_chars_mean']:.0f} chars ({g['n_thinking']} of {g['n_samples']} samples)"
             if g.get("think_chars_mean") is not None else "n/a")
    return cut, think


def _generation_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the generation table (models as columns); no rows when nothing was recorded."""
    models = list((results.get("models") or {}).values())
    if not any(m.get("generation") for m in models):
        return [], []
    limit = ((results.get("inputs") or {}).get("generation") or {}).get("max_new_tokens")
    cells = [_generation_cells(m) for m in models]
    rows = [[f"cut at max_new_tokens ({limit})" if limit else "cut at max_new_tokens", *(c[0] for c in cells)]]
    if any(m.get("generation", {}).get("think_chars_mean") is not None for m in models):
        rows.append(["mean <think> length", *(c[1] for c in cells)])
    return ["", *(m.get("label", "") for m in models)], rows


def _sampling_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the pass@k / maj@k table; no rows without several samples per example."""
    from .html import fmt_value

    models = [m for m in (results.get("models") or {}).values() if m.get("sampling")]
    if not models:
        return [], []
    names = list(dict.fromkeys(n for m in models for n in m["sampling"]["metrics"]))
    names.sort(key=lambda n: (not n.startswith("pass"), int(n.split("@")[1])))
    rows = [[name, *(" ".join(fmt_value(m["sampling"]["metrics"].get(name), "pct")).strip() for m in models)]
            for name in names]
    return ["", *(f"{m.get('label', '')} (n = {m['sampling']['n_samples']})" for m in models)], rows


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "<tr>" + "".join(f"<th class='num'>{_e(h)}</th>" if i else f"<th>{_e(h)}</th>"
                            for i, h in enumerate(header)) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td class='num'>{_e(c)}</td>" if i else f"<td>{_e(c)}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def generation_html(results: dict) -> str:
    """The "Generation" section (and "Sampling" with several samples per example), or nothing."""
    out = []
    header, rows = _generation_rows(results)
    if rows:
        out += ["<h2>Generation</h2>", "<p class='rule'>Share of generations that stopped at the token limit "
                "without an end of sequence or a finished answer line; mean length of the <code>&lt;think&gt;</code> "
                "blocks of reasoning models (removed before the answer is read).</p>", _html_table(header, rows)]
    header, rows = _sampling_rows(results)
    if rows:
        out += ["<h2>Sampling</h2>", "<p class='rule'>pass@k: unbiased estimate of the chance that at least one of k "
                "samples is right (Chen et al. 2021); maj@k: the answer most of the first k samples give is right. "
                "Means over examples with 95% bootstrap intervals.</p>", _html_table(header, rows)]
    return "".join(out)


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|---|" + "---:|" * (len(header) - 1), *(line(r) for r in rows)]


def generation_markdown(results: dict) -> list[str]:
    """The same sections as :func:`generation_html`, as Markdown lines."""
    out: list[str] = []
    for title, (header, rows) in (("Generation", _generation_rows(results)), ("Sampling", _sampling_rows(results))):
        if rows:
            out += ["", f"## {title}", "", *_md_table(header, rows)]
    return out


__all__ = ["WARN_CSS", "generation_html", "generation_markdown", "prompt_line", "warning_banners"]
