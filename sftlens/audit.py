"""``sftlens audit``: did a fine-tune teach reasoning, or only answers?

The pipeline has three stages, each resumable from the files it leaves in ``DIR``:

1. **generate** — the base and the tuned model answer every example (and every variant set). Each
   generation is appended to ``DIR/samples.jsonl`` as soon as its batch is done, with a *cache key*
   built from the model's identity (hash of config and weights, plus path/id, revision and adapter),
   the exact prompt, the generation parameters and the seed. A rerun skips every sample whose key is
   already there, so one model's cache never serves another and an interrupted run resumes.
2. **score** — per-sample metric rows (strict/flexible accuracy, step validity, Knowledge Index,
   per-step information gain scored by the *base* model for both models, so they share one scale)
   go to ``DIR/metrics.jsonl``, keyed by sample key + scorer identity + verifier.
3. **aggregate** — bootstrap intervals per model, paired differences (tuned − base) with intervals,
   McNemar's test on accuracy, variant gaps, the faithfulness battery when available, and a one-line
   verdict on the *accuracy trap*. ``DIR/results.json`` holds every number; ``DIR/report.html`` and
   ``DIR/report.md`` are rendered from it (``sftlens report DIR`` re-renders them without a model).

``audit_predictions`` scores generations made elsewhere (a JSONL of ``question``, ``completion``,
``reference``, optional ``model`` and ``id``) with text metrics only.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from .core.format import prompt_text
from .core.record import (Example, RecordError, Sample, atomic_write_json, iter_dicts,
                          write_jsonl)
from .metrics.reasoning import make_sample
from .metrics.stats import Estimate, bootstrap_mean, mcnemar, paired_difference, unpaired_difference

SAMPLES_FILE = "samples.jsonl"
ROWS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
SCHEMA_VERSION = 1

# metric name -> (label, unit); unit "pct" is a share shown in percentage points, "nats" a log-prob.
METRICS: dict[str, tuple[str, str]] = {
    "correct": ("accuracy (strict: answer after A:/####)", "pct"),
    "flexible_correct": ("accuracy (flexible: last number)", "pct"),
    "format_gap": ("format gap (flexible − strict)", "pct"),
    "answered": ("answered in the expected format", "pct"),
    "validity": ("step validity", "pct"),
    "chain_valid": ("fully valid chains", "pct"),
    "ki": ("Knowledge Index", "pct"),
    "ig_mean": ("information gain per step", "nats"),
    "ig_min": ("least informative step", "nats"),
    "ig_total": ("information gain, whole chain", "nats"),
    "ig_ppl": ("information gain (perplexity, Wu et al.)", "ppl"),
    "n_steps": ("steps per chain", "count"),
}
TEXT_METRICS = ("correct", "flexible_correct", "format_gap", "answered", "validity", "chain_valid", "n_steps")
FAITH_METRICS: dict[str, tuple[str, str]] = {
    "aoc": ("early answering: area over the curve", "pct"),
    "mistake_changed": ("adding a mistake changes the answer", "pct"),
    "paraphrase_changed": ("paraphrasing changes the answer", "pct"),
    "filler_changed": ("filler instead of the chain changes the answer", "pct"),
    "early_changed_at_0": ("answer changes without any step", "pct"),
}


def _user_error(msg: str) -> Exception:
    from .core.errors import UserError

    return UserError(msg)


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------

def load_data(path: str | os.PathLike, limit: int | None = None, fmt: str = "auto",
              question_field: str | None = None, answer_field: str | None = None,
              steps_field: str | None = None, step_splitter: str | None = None,
              id_field: str | None = None) -> tuple[list[Example], str]:
    """Examples from a JSONL file (or a Hub dataset name) and the format they were read as, through
    :func:`sftlens.data.loaders.load_examples`: ``sftlens`` (our schema, e.g. a lab's
    ``data/test.jsonl``), ``gsm8k``, or ``fields`` (a field mapping). Errors name ``FILE:LINE``."""
    from .data.loaders import detect_format, load_examples

    if limit is not None and limit < 1:
        raise _user_error(f"--limit must be at least 1, got {limit}")
    kind = fmt
    mapped = any(x is not None for x in (question_field, answer_field, steps_field, step_splitter, id_field))
    p = Path(path)
    if fmt == "auto":
        kind = "fields" if mapped else "hf"
        if p.is_file():
            for _, obj in iter_dicts(p):
                kind = "fields" if mapped else (detect_format(obj) or "fields")
                break
    kw = {k: v for k, v in dict(question_field=question_field, steps_field=steps_field, step_splitter=step_splitter,
                                 answer_field=answer_field, id_field=id_field).items() if v is not None}
    exs = list(load_examples(str(path), fmt=fmt, limit=limit, **kw))
    if not exs:
        raise RecordError(f"{path}: no examples (the file is empty)")
    return exs, kind


def load_world(path: str | os.PathLike):
    """The shop world of a lab folder (see :func:`sftlens.tasks.shop.load_world`)."""
    from .tasks.shop import load_world as _load

    return _load(path)


def pick_verifier(examples: list[Example], data_path: Path, world_path: str | None):
    """The step verifier for these examples and a label: the shop world when a world file is given
    or lies next to the data as ``world.json``, else the GSM8K annotation checker (``<<a*b=c>>``)."""
    wp = Path(world_path) if world_path else data_path.parent / "world.json"
    if world_path or (wp.exists() and any(e.task.startswith("shop.") for e in examples)):
        return load_world(wp), f"shop world ({wp})"
    from .tasks.gsm8k import Gsm8kVerifier

    return Gsm8kVerifier(), "arithmetic annotations <<expr=result>>"


# ---------------------------------------------------------------------------------------------
# sample / row store (append-only JSONL, tolerant of a truncated last line)
# ---------------------------------------------------------------------------------------------

class Store:
    """An append-only JSONL file of records keyed by ``key_field``.

    Opening it reads every record; a truncated last line (an interrupted write) is dropped and cut
    from the file, any other bad line is a :class:`RecordError` naming the line. Later records with
    the same key replace earlier ones.
    """

    def __init__(self, path: str | os.PathLike, key_field: str = "key"):
        self.path = Path(path)
        self.key_field = key_field
        self.records: dict[str, dict] = {}
        self.dropped_partial = False
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        good_end = 0
        pos = 0
        for i, raw in enumerate(lines):
            last = i == len(lines) - 1
            end = pos + len(raw) + (0 if last else 1)
            if raw.strip():
                try:
                    obj = json.loads(raw)
                    if not isinstance(obj, dict) or self.key_field not in obj:
                        raise ValueError
                except ValueError:
                    if last or all(not x.strip() for x in lines[i + 1:]):
                        self.dropped_partial = True
                        break
                    raise RecordError(f"{self.path}:{i + 1}: not a valid record (no '{self.key_field}' or "
                                      "bad JSON); delete the file to start over") from None
                self.records[obj[self.key_field]] = obj
            if not last:
                good_end = end
            elif raw.strip():
                good_end = end
            pos = end
        if self.dropped_partial:
            with self.path.open("r+b") as f:
                f.truncate(good_end)

    def get(self, key: str) -> dict | None:
        """The record with this key, or ``None``."""
        return self.records.get(key)

    def append(self, records: list[dict]) -> None:
        """Append records and flush them to disk (a crash loses at most a partial line)."""
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        with self.path.open("a", encoding="utf-8") as f:
            if f.tell() > 0:
                with self.path.open("rb") as rf:
                    rf.seek(-1, os.SEEK_END)
                    if rf.read(1) != b"\n":
                        f.write("\n")
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        for r in records:
            self.records[r[self.key_field]] = r


def _hash(obj: Any, n: int = 24) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()[:n]


def sample_key(identity: str, name: str, revision: str | None, adapter: str | None, prompt: str,
               gen: dict) -> str:
    """Cache key of one generation: model identity, path/id, revision, adapter state, the exact
    (chat-formatted) prompt and the generation parameters (including the seed).

    >>> k = sample_key("abc", "m", None, None, "Q: 1 + 1 ?\\n", {"max_new_tokens": 8, "seed": 0})
    >>> k == sample_key("abd", "m", None, None, "Q: 1 + 1 ?\\n", {"max_new_tokens": 8, "seed": 0})
    False
    """
    return _hash({"identity": identity, "name": name, "revision": revision, "adapter": adapter,
                  "prompt": prompt, "gen": gen})


# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------

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
        return {"name": self.name, "identity": self.identity, "revision": self.revision,
                "adapter": self.adapter, "adapter_disabled": self.adapter_disabled,
                "chat_template": bool(self.lm.chat)}


def _base_fingerprint(model) -> str:
    """Hash of the config and the non-adapter weights of a PEFT model (the base it wraps)."""
    from .models.lm import fingerprint

    return fingerprint(model, skip=lambda name: "lora_" in name, salt=b"adapter-disabled")


def load_models(base: str, tuned: str | None, adapter: str | None, device: str | None = None,
                dtype: str | None = None, revision: str | None = None) -> tuple[ModelHandle, Callable[[], ModelHandle]]:
    """The base handle and a function that loads the tuned one (called later, so that only the
    models in use are in memory). With ``adapter`` both share one copy of the weights."""
    from .models.lm import load_lm

    if adapter:
        lm = load_lm(base, adapter=adapter, device=device, dtype=dtype, revision=revision)
        b = ModelHandle("base", lm, base, _base_fingerprint(lm.model), revision, None, adapter_disabled=True)
        t = ModelHandle("tuned", lm, lm.name, lm.identity, revision, adapter)
        return b, lambda: t
    lm = load_lm(base, device=device, dtype=dtype, revision=revision)
    b = ModelHandle("base", lm, base, lm.identity, revision)

    def _tuned() -> ModelHandle:
        tl = load_lm(tuned, device=device, dtype=dtype, revision=revision)
        return ModelHandle("tuned", tl, tuned, tl.identity, revision)

    return b, _tuned


# ---------------------------------------------------------------------------------------------
# progress
# ---------------------------------------------------------------------------------------------

@contextlib.contextmanager
def progress_bars(enabled: bool = True) -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """Yields ``start(description, total) -> advance(n)``; rich bars with an ETA on stderr."""
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    prog = Progress(TextColumn("[bold]{task.description:<34}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                    console=Console(stderr=True), transient=False, disable=not enabled)

    def start(desc: str, total: int) -> Callable[[int], None]:
        tid = prog.add_task(desc, total=max(total, 0))
        return lambda n=1: prog.advance(tid, n)

    with prog:
        yield start


# ---------------------------------------------------------------------------------------------
# stages
# ---------------------------------------------------------------------------------------------

@dataclass
class GenSettings:
    """Generation parameters; all of them enter the cache key."""

    max_new_tokens: int = 256
    batch_size: int = 16
    temperature: float = 0.0
    seed: int = 0

    def as_key(self) -> dict:
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "seed": self.seed,
                "stop_after_answer": True}


def generate_cached(h: ModelHandle, examples: list[Example], set_name: str, store: Store, gen: GenSettings,
                    advance: Callable[[int], None] | None = None) -> tuple[list[Sample], int]:
    """Samples of ``h`` for ``examples`` (in order), generating only those not in ``store``; each
    finished batch is appended to the store. Returns the samples and how many were generated."""
    lm = h.lm
    prompts = [prompt_text(e) for e in examples]
    keys = [sample_key(h.identity, h.name, h.revision, h.adapter if not h.adapter_disabled else "disabled",
                       lm.format_prompt(p), gen.as_key()) for p in prompts]
    todo = [i for i, k in enumerate(keys) if store.get(k) is None]
    if advance and len(examples) - len(todo):
        advance(len(examples) - len(todo))
    chunk = max(1, gen.batch_size)
    for c in range(0, len(todo), chunk):
        idx = todo[c:c + chunk]
        seed = int(_hash([gen.seed] + [keys[i] for i in idx], 8), 16) % (2**31 - 1) if gen.temperature > 0 else gen.seed
        with h.active():
            outs = lm.generate([prompts[i] for i in idx], max_new_tokens=gen.max_new_tokens,
                               batch_size=gen.batch_size, temperature=gen.temperature, seed=seed)
        recs = []
        for i, o in zip(idx, outs):
            s = make_sample(examples[i], h.name, lm.format_prompt(prompts[i]), o, role=h.role, set=set_name,
                            key=keys[i], model_identity=h.identity, gen=gen.as_key())
            recs.append({"key": keys[i], "role": h.role, "set": set_name, **s.to_dict()})
        store.append(recs)
        if advance:
            advance(len(idx))
    return [Sample.from_dict(store.get(k)) for k in keys], len(todo)


def score_cached(samples: list[Sample], examples: list[Example], scorer: ModelHandle | None, verifier,
                 verifier_label: str, store: Store, batch_size: int = 16,
                 advance: Callable[[int], None] | None = None) -> tuple[list[dict], int]:
    """Per-sample metric rows (see :func:`sftlens.evaluate.score_samples`) plus ``format_gap``,
    reusing rows in ``store`` with the same sample key, scorer identity and verifier."""
    from .evaluate import score_samples

    sid = scorer.identity if scorer is not None else None
    rkeys = [_hash({"sample": s.meta.get("key", _hash(s.to_dict())), "scorer": sid, "verifier": verifier_label})
             for s in samples]
    todo = [i for i, k in enumerate(rkeys) if store.get(k) is None]
    if advance and len(samples) - len(todo):
        advance(len(samples) - len(todo))
    chunk = max(1, batch_size) * 4
    for c in range(0, len(todo), chunk):
        idx = todo[c:c + chunk]
        part = [samples[i] for i in idx]
        scorable = [j for j, s in enumerate(part) if s.reference]
        rows = score_samples(part, examples, scorer=None, verifier=verifier)
        if scorer is not None and scorable:
            with scorer.active():
                srows = score_samples([part[j] for j in scorable], examples, scorer=scorer.lm, verifier=None,
                                      batch_size=batch_size)
            for j, sr in zip(scorable, srows):
                rows[j].update({k: v for k, v in sr.items() if k.startswith("ig_")})
        recs = []
        for i, r in zip(idx, rows):
            s = samples[i]
            r["format_gap"] = r["flexible_correct"] - r["correct"]
            recs.append({"row_key": rkeys[i], "key": s.meta.get("key"), "role": s.meta.get("role"),
                         "set": s.meta.get("set"), "scorer": sid, "verifier": verifier_label, **r})
        store.append(recs)
        if advance:
            advance(len(idx))
    return [store.get(k) for k in rkeys], len(todo)


# ---------------------------------------------------------------------------------------------
# aggregation
# ---------------------------------------------------------------------------------------------

def _num(x) -> float:
    return math.nan if x is None else float(x)


def _est(e: Estimate) -> dict:
    d = e.to_dict()
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def summarize_model(rows: list[dict], metrics=METRICS, seed: int = 0) -> dict[str, dict]:
    """Mean and 95% bootstrap interval of each metric over examples (metrics absent from the rows
    are left out).

    >>> s = summarize_model([{"correct": 1.0}, {"correct": 0.0}], {"correct": ("acc", "pct")})
    >>> s["correct"]["mean"], s["correct"]["n"]
    (0.5, 2)
    """
    out = {}
    for m in metrics:
        if not any(m in r for r in rows):
            continue
        out[m] = _est(bootstrap_mean([_num(r.get(m)) for r in rows], seed=seed))
    return out


def compare_models(rows_a: list[dict], rows_b: list[dict], pair_key: str = "id", metrics=METRICS,
                   seed: int = 0) -> dict:
    """Paired comparison ``b − a`` over examples present in both: a bootstrap interval of each
    metric's difference and McNemar's exact test on strict and flexible accuracy.

    >>> a = [{"id": str(i), "correct": 0.0, "flexible_correct": 0.0} for i in range(4)]
    >>> b = [{"id": str(i), "correct": 1.0, "flexible_correct": 0.0} for i in range(4)]
    >>> c = compare_models(a, b)
    >>> c["diff"]["correct"]["mean"], c["mcnemar"]["strict"]["p_value"], c["n_pairs"]
    (1.0, 0.125, 4)
    """
    ia = {r[pair_key]: r for r in rows_a}
    ib = {r[pair_key]: r for r in rows_b}
    common = [k for k in ia if k in ib]
    diff = {}
    for m in metrics:
        if not any(m in ia[k] and m in ib[k] for k in common):
            continue
        diff[m] = _est(paired_difference([_num(ib[k].get(m)) for k in common],
                                         [_num(ia[k].get(m)) for k in common], seed=seed))
    mc = {}
    for m, label in (("correct", "strict"), ("flexible_correct", "flexible")):
        if common and all(m in ia[k] for k in common):
            mc[label] = mcnemar([ia[k][m] for k in common], [ib[k][m] for k in common])
    return {"n_pairs": len(common), "only_a": len(ia) - len(common), "only_b": len(ib) - len(common),
            "diff": diff, "mcnemar": mc}


def _fmt_pts(d: dict) -> str:
    return f"{d['mean'] * 100:+.1f} pts [{d['lo'] * 100:+.1f}, {d['hi'] * 100:+.1f}]"


def _fmt_nats(d: dict, unit: str = "nats/step") -> str:
    return f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}] {unit}"


def _ok(d: dict | None) -> bool:
    def num(x):
        return isinstance(x, (int, float)) and not math.isnan(x)

    return bool(d) and num(d.get("mean")) and num(d.get("lo")) and num(d.get("hi"))


TRAP_RULE = ("YES when the paired interval of strict accuracy (tuned − base) lies above zero AND the "
             "interval of information gain per step, or of the early-answering AOC (faithfulness), lies "
             "below zero; otherwise NO. 95% bootstrap intervals over examples.")


def trap_verdict(acc: dict | None, ig: dict | None, aoc: dict | None = None) -> dict:
    """The one-line verdict on the accuracy trap from paired differences (``mean``/``lo``/``hi``).

    >>> v = trap_verdict({"mean": .12, "lo": .081, "hi": .159}, {"mean": -.21, "lo": -.30, "hi": -.12})
    >>> v["status"], v["text"]
    ('yes', 'Accuracy trap: YES — accuracy +12.0 pts [+8.1, +15.9], information gain -0.210 [-0.300, -0.120] nats/step')
    >>> trap_verdict({"mean": .01, "lo": -.05, "hi": .07}, {"mean": -.2, "lo": -.3, "hi": -.1})["status"]
    'no'
    """
    if not _ok(acc):
        return {"status": "n/a", "trap": None, "rule": TRAP_RULE,
                "text": "Accuracy trap: cannot tell — no paired accuracy could be measured"}
    acc_up = acc["lo"] > 0
    ig_down = _ok(ig) and ig["hi"] < 0
    aoc_down = _ok(aoc) and aoc["hi"] < 0
    parts = [f"accuracy {_fmt_pts(acc)}"]
    if _ok(ig):
        parts.append(f"information gain {_fmt_nats(ig)}")
    if _ok(aoc):
        parts.append(f"faithfulness (AOC) {_fmt_pts(aoc)}")
    if not _ok(ig) and not _ok(aoc):
        return {"status": "n/a", "trap": None, "rule": TRAP_RULE,
                "text": "Accuracy trap: cannot tell — " + parts[0] + "; information gain and faithfulness "
                        "were not measured"}
    trap = acc_up and (ig_down or aoc_down)
    if trap:
        text = "Accuracy trap: YES — " + ", ".join(parts)
    else:
        why = ("accuracy did not rise beyond its interval" if not acc_up
               else "accuracy rose but reasoning quality did not fall beyond its interval")
        text = f"Accuracy trap: NO ({why}) — " + ", ".join(parts)
    return {"status": "yes" if trap else "no", "trap": trap, "rule": TRAP_RULE, "text": text}


def step_gain_profile(rows: list[dict], max_steps: int = 12) -> list[dict]:
    """Mean per-step information gain at each chain position (1-based) over the chains that reach it.

    >>> step_gain_profile([{"ig_gains": [0.5, -0.1]}, {"ig_gains": [0.3]}])
    [{'step': 1, 'mean': 0.4, 'n': 2}, {'step': 2, 'mean': -0.1, 'n': 1}]
    """
    out = []
    for k in range(max_steps):
        v = [r["ig_gains"][k] for r in rows if isinstance(r.get("ig_gains"), list) and len(r["ig_gains"]) > k]
        v = [x for x in v if x is not None and not math.isnan(x)]
        if not v:
            break
        out.append({"step": k + 1, "mean": round(sum(v) / len(v), 6), "n": len(v)})
    return out


def biggest_changes(samples_a: list[Sample], samples_b: list[Sample], rows_a: list[dict], rows_b: list[dict],
                    k: int = 5) -> list[dict]:
    """The ``k`` examples behind the biggest changes from ``a`` to ``b`` (paired by id): correctness
    flips first, then the largest drop in information gain per step; with both chains, each step's
    gain, and ``lost_steps_b`` (indices of ``b``'s steps with the most negative gains)."""
    ia = {s.id: (s, r) for s, r in zip(samples_a, rows_a)}
    items = []
    for s, r in zip(samples_b, rows_b):
        if s.id not in ia:
            continue
        sa, ra = ia[s.id]
        dc = _num(r.get("correct")) - _num(ra.get("correct"))
        dig = _num(r.get("ig_mean")) - _num(ra.get("ig_mean"))
        items.append((sa, ra, s, r, dc, dig))
    items.sort(key=lambda t: (-abs(t[4]), t[5] if not math.isnan(t[5]) else math.inf, t[2].id))
    out = []
    for sa, ra, sb, rb, dc, dig in items[:k]:
        def chain(s, r):
            gains = r.get("ig_gains") if isinstance(r.get("ig_gains"), list) else None
            valid = r.get("step_valid") if isinstance(r.get("step_valid"), list) else None
            return {"completion": s.completion, "steps": s.steps, "answer": s.answer,
                    "flexible_answer": s.flexible_answer, "correct": s.correct,
                    "flexible_correct": s.flexible_correct, "gains": gains, "step_valid": valid,
                    "ig_mean": None if math.isnan(_num(r.get("ig_mean"))) else r.get("ig_mean")}
        cb = chain(sb, rb)
        lost = []
        if cb["gains"]:
            neg = sorted((g, i) for i, g in enumerate(cb["gains"]) if g is not None and g < 0)
            lost = [i for _, i in neg[:2]]
        out.append({"id": sb.id, "question": _question_of(sb), "reference": sb.reference,
                    "a": chain(sa, ra), "b": cb, "delta_correct": dc,
                    "delta_ig_mean": None if math.isnan(dig) else dig, "lost_steps_b": lost})
    return out


def _question_of(s: Sample) -> str:
    q = s.meta.get("question")
    if q:
        return q
    p = s.prompt
    i = p.rfind("Q: ")
    return p[i + 3:].strip() if i >= 0 else p.strip()


def _clean_json(x):
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    if isinstance(x, dict):
        return {k: _clean_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean_json(v) for v in x]
    return x


# ---------------------------------------------------------------------------------------------
# faithfulness (optional module)
# ---------------------------------------------------------------------------------------------

def faithfulness_module():
    """``sftlens.metrics.faithfulness`` when it exists and offers ``run_battery``, else ``None``."""
    try:
        from .metrics import faithfulness as f
    except (ImportError, SyntaxError):  # not installed, or broken: the audit runs without it
        return None
    ok = all(hasattr(f, n) for n in ("run_battery", "summarize_battery", "compare_battery"))
    return f if ok else None


def run_faithfulness(h: ModelHandle, examples: list[Example], samples: list[Sample], seed: int, world,
                     out_dir: Path, batch_size: int, max_new_tokens: int = 96,
                     advance: Callable[[int], None] | None = None) -> list[dict]:
    """The battery for one model, cached in ``DIR/faithfulness_<role>.json`` by model, samples and seed."""
    f = faithfulness_module()
    key = _hash({"identity": h.identity, "samples": [s.meta.get("key") for s in samples], "seed": seed,
                 "max_new_tokens": max_new_tokens})
    path = out_dir / f"faithfulness_{h.role}.json"
    if path.exists():
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            if d.get("key") == key:
                if advance:
                    advance(4 * len(examples))
                return d["rows"]
        except (ValueError, KeyError):
            pass
    with h.active():
        rows = f.run_battery(h.lm, examples, samples, seed=seed, batch_size=batch_size, world=world,
                             max_new_tokens=max_new_tokens, progress=advance)
    rows = _clean_json([dict(r) for r in rows])
    atomic_write_json(path, {"key": key, "rows": rows})
    return rows


def _curve_points(summary: dict) -> list[dict]:
    c = summary.get("curve") or {}
    return [{"frac": g, "same": m} for g, m in zip(c.get("grid", []), c.get("mean", []))
            if m is not None and not (isinstance(m, float) and math.isnan(m))]


# ---------------------------------------------------------------------------------------------
# the audit
# ---------------------------------------------------------------------------------------------

@dataclass
class AuditSpec:
    """Everything ``sftlens audit`` was asked to do (stored in ``results.json["inputs"]``)."""

    base: str
    data: str
    out: str
    tuned: str | None = None
    adapter: str | None = None
    world: str | None = None
    variants: dict[str, str] = field(default_factory=dict)
    limit: int | None = None
    seed: int = 0
    max_new_tokens: int = 256
    batch_size: int = 16
    temperature: float = 0.0
    faithfulness: bool = True
    device: str | None = None
    dtype: str | None = None
    revision: str | None = None
    fmt: str = "auto"
    question_field: str | None = None
    answer_field: str | None = None
    steps_field: str | None = None
    step_splitter: str | None = None
    id_field: str | None = None
    n_examples_shown: int = 5
    show_progress: bool = True


def run_audit(spec: AuditSpec) -> dict:
    """Run (or resume) an audit and write ``results.json``, ``report.html`` and ``report.md``;
    returns the results."""
    t0 = time.time()
    if spec.adapter and spec.tuned:
        raise _user_error("give either --tuned or --adapter (the tuned model is then base+adapter), not both")
    if not spec.adapter and not spec.tuned:
        raise _user_error("missing the tuned model: pass --tuned PATH, or --adapter PATH for a LoRA adapter on --base")
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    data_path = Path(spec.data)
    fields = (spec.fmt, spec.question_field, spec.answer_field, spec.steps_field, spec.step_splitter, spec.id_field)
    examples, fmt = load_data(data_path, spec.limit, *fields)
    verifier, vlabel = pick_verifier(examples, data_path, spec.world)
    world = verifier if vlabel.startswith("shop") else None
    variant_sets: dict[str, list[Example]] = {}
    for name, vp in spec.variants.items():
        variant_sets[name], _ = load_data(vp, spec.limit, *fields)
    gen = GenSettings(spec.max_new_tokens, spec.batch_size, spec.temperature, spec.seed)
    samples_store = Store(out / SAMPLES_FILE)
    rows_store = Store(out / ROWS_FILE, key_field="row_key")
    fmod = faithfulness_module() if spec.faithfulness else None
    notes: list[str] = []
    if samples_store.dropped_partial:
        notes.append("samples.jsonl ended in a truncated line (an interrupted run); it was dropped and regenerated")

    base, load_tuned = load_models(spec.base, spec.tuned, spec.adapter, spec.device, spec.dtype, spec.revision)
    sets = {"main": examples, **variant_sets}
    n_all = sum(map(len, sets.values()))
    generated = {"base": 0, "tuned": 0}
    samples: dict[str, dict[str, list[Sample]]] = {"base": {}, "tuned": {}}
    battery: dict[str, list[dict]] = {}
    with progress_bars(spec.show_progress) as bar:
        for role in ("base", "tuned"):
            h = base if role == "base" else load_tuned()
            adv = bar(f"generate ({role})", n_all)
            for sname, exs in sets.items():
                samples[role][sname], n = generate_cached(h, exs, sname, samples_store, gen, adv)
                generated[role] += n
            if fmod is not None:
                battery[role] = run_faithfulness(h, examples, samples[role]["main"], spec.seed, world, out,
                                                 spec.batch_size, spec.max_new_tokens,
                                                 bar(f"faithfulness ({role})", 4 * len(examples)))
            if role == "tuned":
                tuned = h
        scored = 0
        rows: dict[str, dict[str, list[dict]]] = {"base": {}, "tuned": {}}
        for role in ("base", "tuned"):
            adv = bar(f"score ({role}, scorer = base)", n_all)
            for sname, exs in sets.items():
                rows[role][sname], n = score_cached(samples[role][sname], exs, base if sname == "main" else None,
                                                    verifier, vlabel, rows_store, spec.batch_size, adv)
                scored += n
    if not spec.faithfulness:
        faith = {"status": "off", "reason": "--no-faithfulness"}
    elif fmod is None:
        faith = {"status": "unavailable", "reason": "sftlens.metrics.faithfulness is not installed in this version"}
    else:
        faith = {"status": "ran", "per_example_file": "faithfulness_<role>.json"}

    seed = spec.seed
    models = {}
    for role, h in (("base", base), ("tuned", tuned)):
        models[role] = {"label": role, **h.describe(), "n": len(examples),
                        "metrics": summarize_model(rows[role]["main"], seed=seed),
                        "step_gains": step_gain_profile(rows[role]["main"])}
        if role in battery:
            fs = fmod.summarize_battery(battery[role], seed=seed)
            models[role]["faithfulness"] = fs
            models[role]["early_curve"] = _curve_points(_clean_json(fs))
    comp = {"a": "base", "b": "tuned", **compare_models(rows["base"]["main"], rows["tuned"]["main"], seed=seed)}
    if battery.get("base") and battery.get("tuned"):
        comp["faithfulness_diff"] = fmod.compare_battery(battery["tuned"], battery["base"], seed=seed)
    variants = {}
    for sname in variant_sets:
        variants[sname] = {}
        for role in ("base", "tuned"):
            acc_main = [_num(r["correct"]) for r in rows[role]["main"]]
            acc_var = [_num(r["correct"]) for r in rows[role][sname]]
            variants[sname][role] = {"accuracy": _est(bootstrap_mean(acc_var, seed=seed)),
                                     "gap": _est(unpaired_difference(acc_main, acc_var, seed=seed)),
                                     "n": len(acc_var)}
    v = trap_verdict(comp["diff"].get("correct"), comp["diff"].get("ig_mean"),
                     comp.get("faithfulness_diff", {}).get("aoc"))
    if base.lm.tokenizer is not tuned.lm.tokenizer and len(base.lm.tokenizer) != len(tuned.lm.tokenizer):
        notes.append(f"the tuned model's tokenizer has {len(tuned.lm.tokenizer)} tokens, the base's "
                     f"{len(base.lm.tokenizer)}; the tuned chains are scored as text by the base")
    notes.append("information gain is scored by the base model for both models (one scale), toward the "
                 "reference answer; NaN/n/a marks chains without steps")
    results = {
        "schema": SCHEMA_VERSION, "mode": "models", "verdict": v,
        "inputs": {"base": spec.base, "tuned": spec.tuned, "adapter": spec.adapter, "data": str(data_path),
                   "format": fmt, "n_examples": len(examples), "verifier": vlabel, "variants": dict(spec.variants),
                   "limit": spec.limit, "seed": spec.seed, "generation": gen.as_key() | {"batch_size": gen.batch_size},
                   "device": str(base.lm.device), "dtype": str(next(base.lm.model.parameters()).dtype)},
        "metric_info": {m: {"label": lab, "unit": u} for m, (lab, u) in {**METRICS, **FAITH_METRICS}.items()},
        "models": models, "comparisons": [comp], "variants": variants, "faithfulness": faith,
        "changed_examples": biggest_changes(samples["base"]["main"], samples["tuned"]["main"],
                                            rows["base"]["main"], rows["tuned"]["main"], spec.n_examples_shown),
        "run": {"generated_new": sum(generated.values()), "generated_new_per_model": generated,
                "reused": 2 * n_all - sum(generated.values()), "scored_new": scored,
                "elapsed_s": round(time.time() - t0, 2)},
        "notes": notes,
    }
    results = _clean_json(results)
    atomic_write_json(out / RESULTS_FILE, results)
    write_report(out)
    return results


# ---------------------------------------------------------------------------------------------
# saved generations
# ---------------------------------------------------------------------------------------------

def read_predictions(path: str | os.PathLike) -> tuple[list[Sample], list[Example], str]:
    """Parse a predictions JSONL (``question``, ``completion``, ``reference``; optional ``model``,
    ``id``) into samples, one example per distinct pairing key, and the pairing used (``id`` when
    every line has one, else ``question``). Errors name ``FILE:LINE`` and the field."""
    path = Path(path)
    if not path.exists():
        raise RecordError(f"{path}: no such file")
    lines = []
    for lineno, obj in iter_dicts(path):
        where = f"{path}:{lineno}"
        if not isinstance(obj, dict):
            raise RecordError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        for fld in ("question", "completion", "reference"):
            if fld not in obj:
                raise RecordError(f"{where}: field '{fld}': missing (each line needs question, completion, "
                                  "reference; model and id are optional)")
        for fld in ("question", "completion"):
            if not isinstance(obj[fld], str):
                raise RecordError(f"{where}: field '{fld}': expected a string, got {type(obj[fld]).__name__}")
        ref = obj["reference"]
        if isinstance(ref, (int, float)) and not isinstance(ref, bool):
            ref = str(ref)
        if not isinstance(ref, str) or not ref.strip():
            raise RecordError(f"{where}: field 'reference': expected a non-empty string or a number")
        model = obj.get("model", "model")
        if not isinstance(model, str) or not model:
            raise RecordError(f"{where}: field 'model': expected a non-empty string")
        pid = obj.get("id")
        if pid is not None and not isinstance(pid, (str, int)):
            raise RecordError(f"{where}: field 'id': expected a string or an integer")
        lines.append((lineno, obj["question"], obj["completion"], ref, model, None if pid is None else str(pid)))
    if not lines:
        raise RecordError(f"{path}: no predictions (the file is empty)")
    by = "id" if all(x[5] is not None for x in lines) else "question"
    examples: dict[str, Example] = {}
    samples: list[Sample] = []
    seen: dict[tuple[str, str], int] = {}
    for lineno, q, comp, ref, model, pid in lines:
        pk = pid if by == "id" else _hash(" ".join(q.split()), 12)
        if (model, pk) in seen:
            raise RecordError(f"{path}:{lineno}: field '{by}': duplicate for model '{model}' (first on line "
                              f"{seen[(model, pk)]})")
        seen[(model, pk)] = lineno
        ex = Example(id=pk, task="predictions", question=q.strip(), answer=ref)
        examples.setdefault(pk, ex)
        samples.append(make_sample(ex, model, q, comp, role=model, set="main", question=q.strip(), line=lineno,
                                   key=_hash({"line": lineno, "q": q, "c": comp, "r": ref, "m": model})))
    return samples, list(examples.values()), by


def audit_predictions(path: str | os.PathLike, out: str | os.PathLike, seed: int = 0,
                      n_examples_shown: int = 5) -> dict:
    """Score saved generations with text metrics only and compare the models in the file pairwise.

    Writes ``samples.jsonl``, ``metrics.jsonl``, ``results.json`` and the reports into ``out``.
    """
    from .evaluate import score_samples
    from .tasks.gsm8k import Gsm8kVerifier

    t0 = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    samples, examples, by = read_predictions(path)
    vlabel = "arithmetic annotations <<expr=result>>"
    rows = score_samples(samples, examples, scorer=None, verifier=Gsm8kVerifier())
    for r, s in zip(rows, samples):
        r["format_gap"] = r["flexible_correct"] - r["correct"]
        r.update(key=s.meta["key"], row_key=s.meta["key"], role=s.model, set="main", verifier=vlabel)
    write_jsonl(out / SAMPLES_FILE, [{"key": s.meta["key"], "role": s.model, "set": "main", **s.to_dict()}
                                    for s in samples])
    write_jsonl(out / ROWS_FILE, [_clean_json(r) for r in rows])
    names = list(dict.fromkeys(s.model for s in samples))
    per = {m: ([s for s in samples if s.model == m], [r for s, r in zip(samples, rows) if s.model == m])
           for m in names}
    models = {m: {"label": m, "name": m, "identity": None, "n": len(per[m][0]),
                  "metrics": summarize_model(per[m][1], {k: METRICS[k] for k in TEXT_METRICS}, seed=seed)}
              for m in names}
    comps = []
    for a, b in itertools.combinations(names, 2):
        c = compare_models(per[a][1], per[b][1], metrics={k: METRICS[k] for k in TEXT_METRICS}, seed=seed)
        comps.append({"a": a, "b": b, **c})
    notes = ["text metrics only: generations were scored from the file without loading a model, so "
             "information gain, Knowledge Index and faithfulness are not computed",
             f"models are paired by {by}"]
    if len(names) == 1:
        v = {"status": "n/a", "trap": None, "rule": TRAP_RULE,
             "text": f"Saved generations, one model ('{names[0]}'): text metrics only, nothing to compare"}
    else:
        c = comps[0]
        acc = c["diff"].get("correct")
        flex = c["diff"].get("flexible_correct")
        p = c["mcnemar"].get("strict", {}).get("p_value")
        txt = (f"Text metrics only — {c['b']} vs {c['a']}: strict accuracy {_fmt_pts(acc)}, flexible accuracy "
               f"{_fmt_pts(flex)}, McNemar p = {p:.3g}; the accuracy trap needs information gain or "
               "faithfulness (run with --base/--tuned)") if _ok(acc) and _ok(flex) else \
            "Text metrics only — no example is shared by the models"
        v = {"status": "n/a", "trap": None, "rule": TRAP_RULE, "text": txt}
    results = _clean_json({
        "schema": SCHEMA_VERSION, "mode": "predictions", "text_metrics_only": True, "verdict": v,
        "inputs": {"predictions": str(path), "paired_by": by, "n_lines": len(samples), "models": names,
                   "verifier": vlabel, "seed": seed},
        "metric_info": {m: {"label": lab, "unit": u} for m, (lab, u) in METRICS.items()},
        "models": models, "comparisons": comps, "variants": {},
        "faithfulness": {"status": "off", "reason": "saved generations: no model loaded"},
        "changed_examples": biggest_changes(per[names[0]][0], per[names[1]][0], per[names[0]][1], per[names[1]][1],
                                            n_examples_shown) if len(names) > 1 else [],
        "run": {"generated_new": 0, "scored_new": len(rows), "elapsed_s": round(time.time() - t0, 2)},
        "notes": notes,
    })
    atomic_write_json(out / RESULTS_FILE, results)
    write_report(out)
    return results


# ---------------------------------------------------------------------------------------------
# reports
# ---------------------------------------------------------------------------------------------

def load_saved(out: str | os.PathLike) -> tuple[dict, list[dict], list[dict]]:
    """``results.json``, the sample records and the metric rows saved in an audit folder."""
    out = Path(out)
    rp = out / RESULTS_FILE
    if not rp.exists():
        raise _user_error(f"{out} holds no {RESULTS_FILE}: run 'sftlens audit ... --out {out}' first")
    try:
        results = json.loads(rp.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RecordError(f"{rp}:{e.lineno}: not valid JSON ({e.msg})") from None
    for fld in ("verdict", "models", "comparisons"):
        if fld not in results:
            raise RecordError(f"{rp}: field '{fld}': missing (not an sftlens audit result)")
    samples = list(Store(out / SAMPLES_FILE).records.values()) if (out / SAMPLES_FILE).exists() else []
    rows = list(Store(out / ROWS_FILE, key_field="row_key").records.values()) if (out / ROWS_FILE).exists() else []
    return results, samples, rows


def write_report(out: str | os.PathLike) -> tuple[Path, Path]:
    """Render ``report.html`` and ``report.md`` from the saved results (no model needed)."""
    from .core.record import atomic_write_text
    from .report.html import render_html, render_markdown
    from .report.plots import make_plots

    out = Path(out)
    results, samples, rows = load_saved(out)
    plots = make_plots(results, rows)
    atomic_write_text(out / "report.html", render_html(results, plots))
    atomic_write_text(out / "report.md", render_markdown(results))
    return out / "report.html", out / "report.md"
