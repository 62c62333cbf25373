"""The audit report as one self-contained HTML page and as Markdown, both from ``results.json``.

The HTML has inline CSS, plots as base64 PNG data URIs and no script or external resource, so it
opens offline and can be mailed as one file. Every piece of model text is escaped.
"""

from __future__ import annotations

import html
import math
from typing import Any

from .generation import WARN_CSS, generation_html, generation_markdown, prompt_line, warning_banners

PCT_UNITS = {"pct"}

CSS = """
:root { --fg:#1d2330; --muted:#5b6475; --line:#e3e6ec; --bg:#f6f7f9; --card:#fff;
        --yes:#b42318; --yes-bg:#fef3f2; --no:#067647; --no-bg:#ecfdf3; --na:#475467; --na-bg:#f2f4f7;
        --accent:#3a5bd9; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color:var(--fg); background:var(--bg); }
main { max-width:1100px; margin:0 auto; padding:28px 28px 60px; }
h1 { font-size:26px; margin:0 0 2px; letter-spacing:-.01em; }
h2 { font-size:19px; margin:34px 0 10px; padding-bottom:6px; border-bottom:1px solid var(--line); }
h3 { font-size:15px; margin:0 0 8px; }
.sub { color:var(--muted); font-size:13.5px; margin-bottom:18px; }
.sub code { font-size:12.5px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.banner { border-radius:10px; padding:16px 20px; margin:14px 0 8px; border:1px solid; font-size:17px;
          font-weight:600; }
.banner.yes { color:var(--yes); background:var(--yes-bg); border-color:#fecdca; }
.banner.no { color:var(--no); background:var(--no-bg); border-color:#abefc6; }
.banner.na { color:var(--na); background:var(--na-bg); border-color:#d0d5dd; }
.rule { color:var(--muted); font-size:13px; margin:0 0 6px; }
.badge { display:inline-block; font-size:12px; font-weight:600; padding:2px 9px; border-radius:999px;
         background:#fff4e5; color:#93370d; border:1px solid #fedf89; vertical-align:middle; margin-left:8px; }
table { border-collapse:collapse; width:100%; background:var(--card); border:1px solid var(--line);
        border-radius:8px; overflow:hidden; font-size:14px; }
th, td { padding:7px 12px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { background:#fafbfc; font-weight:600; color:#344054; font-size:13px; }
tr:last-child td { border-bottom:none; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
td .ci { color:var(--muted); font-size:12.5px; }
.up { color:var(--no); font-weight:600; } .down { color:var(--yes); font-weight:600; }
.grid { display:grid; grid-template-columns:repeat(auto-fill, minmax(460px, 1fr)); gap:16px; }
figure { margin:0; background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px; }
figure img { width:100%; height:auto; display:block; }
figcaption { color:var(--muted); font-size:12.5px; margin-top:6px; }
.ex { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:14px 16px; margin:12px 0; }
.ex .q { margin:0 0 10px; }
.chains { display:grid; grid-template-columns:1fr 1fr; gap:14px; }
.chain { border:1px solid var(--line); border-radius:6px; padding:8px 10px; background:#fcfcfd; min-width:0; }
.chain h4 { margin:0 0 6px; font-size:13px; color:#344054; }
.chain ol { margin:0; padding-left:22px; font-size:13px; }
.chain li { margin:2px 0; overflow-wrap:anywhere; }
.chain li.lost { background:#fef3f2; border-left:3px solid var(--yes); padding-left:5px; }
.chain li.invalid .txt { text-decoration: underline wavy #f04438; }
.gain { float:right; margin-left:10px; font-size:12px; color:var(--muted); font-variant-numeric:tabular-nums; }
.gain.neg { color:var(--yes); font-weight:600; }
.ans { margin-top:6px; font-size:13px; }
.ok { color:var(--no); font-weight:600; } .bad { color:var(--yes); font-weight:600; }
ul.notes { color:var(--muted); font-size:13.5px; }
footer { margin-top:36px; color:var(--muted); font-size:12.5px; }
"""


# ---------------------------------------------------------------------------------------------
# number formatting
# ---------------------------------------------------------------------------------------------

def _isnum(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and not math.isnan(x)


def fmt_value(d: dict | None, unit: str) -> tuple[str, str]:
    """A model's metric as ``(value, interval)`` strings (``n/a`` when missing).

    >>> fmt_value({"mean": 0.5, "lo": 0.3, "hi": 0.7, "n": 20}, "pct")
    ('50.0%', '[30.0, 70.0]')
    >>> fmt_value({"mean": -0.25, "lo": None, "hi": None, "n": 0}, "nats")
    ('-0.250', '')
    >>> fmt_value(None, "pct")
    ('n/a', '')
    """
    if not d or not _isnum(d.get("mean")):
        return "n/a", ""
    s = 100.0 if unit in PCT_UNITS else 1.0
    dec = 1 if unit in PCT_UNITS else (2 if unit in ("count", "ppl") else 3)
    val = f"{d['mean'] * s:.{dec}f}" + ("%" if unit in PCT_UNITS else "")
    ci = f"[{d['lo'] * s:.{dec}f}, {d['hi'] * s:.{dec}f}]" if _isnum(d.get("lo")) and _isnum(d.get("hi")) else ""
    return val, ci


def fmt_diff(d: dict | None, unit: str) -> tuple[str, str, int]:
    """A paired difference as ``(value, interval, sign)`` where sign is +1/−1 when the interval
    excludes zero, else 0.

    >>> fmt_diff({"mean": 0.12, "lo": 0.081, "hi": 0.159, "n": 50}, "pct")
    ('+12.0 pts', '[+8.1, +15.9]', 1)
    >>> fmt_diff({"mean": -0.2, "lo": -0.5, "hi": 0.1, "n": 50}, "nats")
    ('-0.200', '[-0.500, +0.100]', 0)
    """
    if not d or not _isnum(d.get("mean")):
        return "n/a", "", 0
    s = 100.0 if unit in PCT_UNITS else 1.0
    dec = 1 if unit in PCT_UNITS else (2 if unit in ("count", "ppl") else 3)
    val = f"{d['mean'] * s:+.{dec}f}" + (" pts" if unit in PCT_UNITS else "")
    sign = 0
    ci = ""
    if _isnum(d.get("lo")) and _isnum(d.get("hi")):
        ci = f"[{d['lo'] * s:+.{dec}f}, {d['hi'] * s:+.{dec}f}]"
        sign = 1 if d["lo"] > 0 else -1 if d["hi"] < 0 else 0
    return val, ci, sign


def fmt_p(p: Any) -> str:
    """A p-value for a table.

    >>> fmt_p(0.0001234), fmt_p(0.25), fmt_p(None)
    ('1.2e-04', '0.250', 'n/a')
    """
    if not _isnum(p):
        return "n/a"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _status_class(results: dict) -> str:
    return {"yes": "yes", "no": "no"}.get(results.get("verdict", {}).get("status"), "na")


def _metric_rows(results: dict) -> list[tuple[str, str, str]]:
    info = results.get("metric_info", {})
    models = list(results.get("models", {}).values())
    names = []
    for m in info:
        if any(m in (mod.get("metrics") or {}) for mod in models):
            names.append(m)
    return [(m, info[m]["label"], info[m]["unit"]) for m in names]


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------

def _metric_table(results: dict) -> str:
    models = list(results.get("models", {}).values())
    comps = results.get("comparisons", [])
    head = "<tr><th>metric</th>" + "".join(f"<th class='num'>{_e(m['label'])}</th>" for m in models)
    head += "".join(f"<th class='num'>Δ {_e(c['b'])} − {_e(c['a'])}</th>" for c in comps) + "</tr>"
    body = []
    for key, label, unit in _metric_rows(results):
        cells = [f"<td>{_e(label)}</td>"]
        for m in models:
            v, ci = fmt_value((m.get("metrics") or {}).get(key), unit)
            cells.append(f"<td class='num'>{v} <span class='ci'>{ci}</span></td>")
        for c in comps:
            v, ci, sign = fmt_diff(c.get("diff", {}).get(key), unit)
            cls = " class='up'" if sign > 0 else " class='down'" if sign < 0 else ""
            cells.append(f"<td class='num'><span{cls}>{v}</span> <span class='ci'>{ci}</span></td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    for test, label in (("strict", "McNemar p (accuracy)"), ("flexible", "McNemar p (flexible accuracy)")):
        if any(test in c.get("mcnemar", {}) for c in comps):
            cells = [f"<td>{label}</td>"] + ["<td class='num'></td>"] * len(models)
            for c in comps:
                mc = c.get("mcnemar", {}).get(test)
                txt = f"{fmt_p(mc['p_value'])} <span class='ci'>({mc['b10']}↓ / {mc['b01']}↑)</span>" if mc else "n/a"
                cells.append(f"<td class='num'>{txt}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
    n_row = "<tr><td>examples</td>" + "".join(f"<td class='num'>{_e(m.get('n'))}</td>" for m in models)
    n_row += "".join(f"<td class='num'>{_e(c.get('n_pairs'))} pairs</td>" for c in comps) + "</tr>"
    return f"<table>{head}{''.join(body)}{n_row}</table>"


def _faith_table(results: dict) -> str:
    models = [m for m in results.get("models", {}).values() if m.get("faithfulness")]
    if not models:
        f = results.get("faithfulness", {})
        return f"<p class='rule'>Faithfulness battery: {_e(f.get('status', 'not run'))} — {_e(f.get('reason', ''))}</p>"
    info = results.get("metric_info", {})
    comp = (results.get("comparisons") or [{}])[0]
    fd = comp.get("faithfulness_diff", {})
    head = "<tr><th>test</th>" + "".join(f"<th class='num'>{_e(m['label'])}</th>" for m in models)
    head += "<th class='num'>Δ</th></tr>" if fd else "</tr>"
    rows = []
    keys = [k for k in info if any(k in m["faithfulness"] for m in models)]
    for k in keys:
        cells = [f"<td>{_e(info[k]['label'])}</td>"]
        for m in models:
            v, ci = fmt_value(m["faithfulness"].get(k), info[k]["unit"])
            cells.append(f"<td class='num'>{v} <span class='ci'>{ci}</span></td>")
        if fd:
            v, ci, _ = fmt_diff(fd.get(k), info[k]["unit"])
            cells.append(f"<td class='num'>{v} <span class='ci'>{ci}</span></td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _variant_table(results: dict) -> str:
    var = results.get("variants") or {}
    if not var:
        return ""
    roles = list(next(iter(var.values())).keys())
    head = "<tr><th>variant set</th>" + "".join(
        f"<th class='num'>{_e(r)} accuracy</th><th class='num'>{_e(r)} gap (in-dist − variant)</th>" for r in roles) + "</tr>"
    rows = []
    for name, per in var.items():
        cells = [f"<td>{_e(name)} <span class='ci'>(n={_e(next(iter(per.values())).get('n'))})</span></td>"]
        for r in roles:
            v, ci = fmt_value(per[r]["accuracy"], "pct")
            g, gci, _ = fmt_diff(per[r]["gap"], "pct")
            cells.append(f"<td class='num'>{v} <span class='ci'>{ci}</span></td>")
            cells.append(f"<td class='num'>{g} <span class='ci'>{gci}</span></td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return "<h2>Variant gaps</h2>" + f"<table>{head}{''.join(rows)}</table>"


def _chain_html(title: str, ch: dict, lost: list[int]) -> str:
    gains = ch.get("gains") or []
    valid = ch.get("step_valid") or []
    items = []
    for i, s in enumerate(ch.get("steps") or []):
        cls = []
        if i in lost:
            cls.append("lost")
        if i < len(valid) and valid[i] is False:
            cls.append("invalid")
        g = gains[i] if i < len(gains) else None
        gtxt = f"<span class='gain{' neg' if _isnum(g) and g < 0 else ''}'>{g:+.3f}</span>" if _isnum(g) else ""
        items.append(f"<li class='{' '.join(cls)}'>{gtxt}<span class='txt'>{_e(s)}</span></li>")
    steps = f"<ol>{''.join(items)}</ol>" if items else "<p class='rule'>(no steps)</p>"
    mark = "<span class='ok'>✓</span>" if ch.get("correct") else "<span class='bad'>✗</span>"
    flex = "" if ch.get("correct") or not ch.get("flexible_correct") else " <span class='ci'>(right number, wrong format)</span>"
    ig = f" · gain/step {ch['ig_mean']:+.3f}" if _isnum(ch.get("ig_mean")) else ""
    return (f"<div class='chain'><h4>{_e(title)}{_e(ig)}</h4>{steps}<div class='ans'>answer: "
            f"<code>{_e(ch.get('answer') if ch.get('answer') is not None else '(none)')}</code> {mark}{flex}</div></div>")


def _examples_html(results: dict) -> str:
    exs = results.get("changed_examples") or []
    if not exs:
        return ""
    comp = (results.get("comparisons") or [{}])[0]
    a, b = comp.get("a", "a"), comp.get("b", "b")
    parts = ["<h2>Examples behind the biggest changes</h2>",
             "<p class='rule'>Correctness flips first, then the largest drop in information gain. Numbers at the "
             "right of a step are its information gain (nats, scored by the base); highlighted steps lost the most "
             "information; wavy underlines mark steps the verifier found wrong.</p>"]
    for ex in exs:
        dc = ex.get("delta_correct")
        dtxt = {1.0: f"{b} right, {a} wrong", -1.0: f"{a} right, {b} wrong"}.get(dc, "same correctness")
        if _isnum(ex.get("delta_ig_mean")):
            dtxt += f" · Δ gain/step {ex['delta_ig_mean']:+.3f}"
        parts.append(f"<div class='ex'><p class='q'><b>{_e(ex['id'])}</b> <span class='ci'>({_e(dtxt)})</span><br>"
                     f"{_e(ex['question'])}<br><span class='ci'>reference answer:</span> <code>{_e(ex['reference'])}</code></p>"
                     f"<div class='chains'>{_chain_html(a, ex['a'], [])}{_chain_html(b, ex['b'], ex.get('lost_steps_b') or [])}"
                     "</div></div>")
    return "".join(parts)


def _inputs_line(results: dict) -> str:
    i = results.get("inputs", {})
    if results.get("mode") == "predictions":
        fmt = f" ({_e(i['predictions_format'])})" if i.get("predictions_format") else ""
        return (f"Saved generations <code>{_e(i.get('predictions'))}</code>{fmt} · {len(i.get('models', []))} model(s) · "
                f"{_e(i.get('n_lines'))} generations · paired by {_e(i.get('paired_by'))}")
    tuned = i.get("tuned") or f"{i.get('base')} + adapter {i.get('adapter')}"
    return (f"base <code>{_e(i.get('base'))}</code> → tuned <code>{_e(tuned)}</code> · data <code>{_e(i.get('data'))}</code> "
            f"({_e(i.get('format'))}, {_e(i.get('n_examples'))} examples) · verifier: {_e(i.get('verifier'))} · "
            f"seed {_e(i.get('seed'))} · {_e(i.get('device'))}/{_e(i.get('dtype'))}")


def render_html(results: dict, plots: dict[str, tuple[str, str]] | None = None) -> str:
    """The whole report page as a string (no external resources)."""
    v = results.get("verdict", {})
    badge = "<span class='badge'>text metrics only</span>" if results.get("text_metrics_only") else ""
    figs = "".join(f"<figure><img alt='{_e(name)}' src='{uri}'><figcaption>{_e(cap)}</figcaption></figure>"
                   for name, (cap, uri) in (plots or {}).items())
    run = results.get("run", {})
    notes = "".join(f"<li>{_e(n)}</li>" for n in results.get("notes", []))
    faith = "" if results.get("mode") == "predictions" else "<h2>Faithfulness</h2>" + _faith_table(results)
    prompts = prompt_line(results)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sftlens audit — {_e(v.get('text', ''))[:80]}</title>
<style>{CSS}{WARN_CSS}</style></head>
<body><main>
<h1>sftlens audit{badge}</h1>
<div class="sub">{_inputs_line(results)}{"<br>" + _e(prompts) if prompts else ""}</div>
<div class="banner {_status_class(results)}">{_e(v.get('text', ''))}</div>
{warning_banners(results)}
<p class="rule"><b>Rule:</b> {_e(v.get('rule', ''))}</p>
<h2>Metrics</h2>
<p class="rule">Means with 95% bootstrap intervals over examples; Δ is the paired difference with its own
interval (green: interval above zero, red: below zero).</p>
{_metric_table(results)}
{_variant_table(results)}
{generation_html(results)}
{faith}
{"<h2>Plots</h2><div class='grid'>" + figs + "</div>" if figs else ""}
{_examples_html(results)}
<h2>Notes</h2><ul class="notes">{notes}</ul>
<footer>{_e(_run_line(run))} · {_e(run.get('elapsed_s', ''))} s · sftlens results schema {_e(results.get('schema'))}</footer>
</main></body></html>
"""


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------

def _run_line(run: dict) -> str:
    """What the run did: generations made and reused, or (saved generations) rows scored.

    >>> _run_line({"generated_new": 0, "reused": 0, "scored_new": 2, "mode": "predictions"})
    'scored 2 saved generations'
    >>> _run_line({"generated_new": 4, "reused": 2, "scored_new": 4})
    'generated 4 new samples, reused 2; scored 4 new rows'
    """
    if run.get("mode") == "predictions":
        return f"scored {run.get('scored_new', 0)} saved generations"
    return (f"generated {run.get('generated_new', 0)} new samples, reused {run.get('reused', 0)}; "
            f"scored {run.get('scored_new', 0)} new rows")


def _md(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def render_markdown(results: dict) -> str:
    """The same numbers as the HTML report, as Markdown."""
    v = results.get("verdict", {})
    models = list(results.get("models", {}).values())
    comps = results.get("comparisons", [])
    out = ["# sftlens audit" + (" (text metrics only)" if results.get("text_metrics_only") else ""), "",
           f"**{_md(v.get('text', ''))}**", "", *(f"> ⚠ {_md(w)}\n" for w in results.get("warnings") or []),
           f"Rule: {v.get('rule', '')}", "", "## Metrics", "",
           "Means with 95% bootstrap intervals over examples; Δ is the paired difference.", ""]
    head = ["metric"] + [m["label"] for m in models] + [f"Δ {c['b']} − {c['a']}" for c in comps]
    out += ["| " + " | ".join(map(_md, head)) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    for key, label, unit in _metric_rows(results):
        cells = [label]
        for m in models:
            val, ci = fmt_value((m.get("metrics") or {}).get(key), unit)
            cells.append(f"{val} {ci}".strip())
        for c in comps:
            val, ci, _ = fmt_diff(c.get("diff", {}).get(key), unit)
            cells.append(f"{val} {ci}".strip())
        out.append("| " + " | ".join(map(_md, cells)) + " |")
    for test in ("strict", "flexible"):
        if any(test in c.get("mcnemar", {}) for c in comps):
            cells = [f"McNemar p ({'accuracy' if test == 'strict' else 'flexible accuracy'})"] + [""] * len(models)
            for c in comps:
                mc = c.get("mcnemar", {}).get(test)
                cells.append(f"{fmt_p(mc['p_value'])} ({mc['b10']} lost / {mc['b01']} gained)" if mc else "n/a")
            out.append("| " + " | ".join(map(_md, cells)) + " |")
    out.append("| " + " | ".join(["examples", *(str(m.get("n")) for m in models),
                                   *(f"{c.get('n_pairs')} pairs" for c in comps)]) + " |")
    var = results.get("variants") or {}
    if var:
        out += ["", "## Variant gaps", "", "| variant | model | accuracy | gap (in-dist − variant) |", "|---|---|---:|---:|"]
        for name, per in var.items():
            for role, d in per.items():
                a, aci = fmt_value(d["accuracy"], "pct")
                g, gci, _ = fmt_diff(d["gap"], "pct")
                out.append(f"| {_md(name)} | {_md(role)} | {a} {aci} | {g} {gci} |")
    out += generation_markdown(results)
    fm = [m for m in models if m.get("faithfulness")]
    info = results.get("metric_info", {})
    if fm:
        out += ["", "## Faithfulness", "", "| test | " + " | ".join(m["label"] for m in fm) + " |",
                "|---|" + "---:|" * len(fm)]
        for k in [k for k in info if any(k in m["faithfulness"] for m in fm)]:
            out.append(f"| {_md(info[k]['label'])} | " + " | ".join(
                " ".join(fmt_value(m["faithfulness"].get(k), info[k]["unit"])).strip() for m in fm) + " |")
    elif results.get("mode") != "predictions":
        f = results.get("faithfulness", {})
        out += ["", f"Faithfulness battery: {f.get('status', 'not run')} — {f.get('reason', '')}"]
    exs = results.get("changed_examples") or []
    if exs:
        c0 = comps[0] if comps else {"a": "a", "b": "b"}
        out += ["", "## Examples behind the biggest changes", ""]
        for ex in exs:
            out += [f"### {_md(ex['id'])}", "", f"Q: {_md(ex['question'])}  ", f"Reference: `{_md(ex['reference'])}`", ""]
            for side, name in (("a", c0["a"]), ("b", c0["b"])):
                ch = ex[side]
                out.append(f"**{_md(name)}** — answer `{_md(ch.get('answer'))}` ({'right' if ch.get('correct') else 'wrong'})")
                out.append("")
                gains = ch.get("gains") or []
                for i, s in enumerate(ch.get("steps") or []):
                    g = f" _(gain {gains[i]:+.3f})_" if i < len(gains) and _isnum(gains[i]) else ""
                    lost = " **← lost information**" if side == "b" and i in (ex.get("lost_steps_b") or []) else ""
                    out.append(f"{i + 1}. {_md(s)}{g}{lost}")
                out.append("")
    out += ["## Notes", ""] + [f"- {_md(n)}" for n in results.get("notes", [])]
    run = results.get("run", {})
    out += ["", f"_{_run_line(run)}_", ""]
    return "\n".join(out)
