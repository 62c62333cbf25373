"""GSM8K: each solution line is a step, ``<<expr=result>>`` annotations make arithmetic checkable,
the final answer follows ``####`` (Cobbe et al. 2021, MIT licence).

:func:`load_gsm8k` reads the original JSONL (``question``, ``answer``) into examples; the annotations
are kept in the steps. :class:`Gsm8kVerifier` checks each step's annotations with a safe arithmetic
evaluator (no ``eval``); :func:`gsm8k_corrupter` breaks an annotation and the text after it together.
:class:`Gsm8kTask` is the registered task (``gsm8k``).
"""

from __future__ import annotations

import ast
import operator
import random
import re
from pathlib import Path

from ..core.format import normalize_answer
from ..core.record import Example, RecordError, iter_dicts
from .base import StepCheck, no_variants
from .registry import register_task
from .text import digit_corrupter, text_paraphrase, wrong_number

INSTRUCTION = "Solve the math word problem step by step."
ANNOT_RE = re.compile(r"<<([^<>=]*)=([^<>]*)>>")


def parse_solution(solution: str) -> tuple[list[str], str]:
    """Split a GSM8K solution into steps and the answer after ``####``.

    >>> parse_solution("2 + 2 = <<2+2=4>>4 apples.\\n#### 4")
    (['2 + 2 = <<2+2=4>>4 apples.'], '4')
    """
    if "####" not in solution:
        raise RecordError("field 'answer': no '####' final-answer line (GSM8K format expects '#### <number>')")
    body, _, ans = solution.rpartition("####")
    steps = [s.strip() for s in body.split("\n") if s.strip()]
    return steps, ans.strip()


def load_gsm8k(path: str | Path, limit: int | None = None, split_name: str | None = None) -> list[Example]:
    """Read a GSM8K-format JSONL file (fields ``question`` and ``answer``) as examples.

    Errors name the file, the line and the field.
    """
    path = Path(path)
    if not path.exists():
        raise RecordError(f"{path}: no such file")
    out: list[Example] = []
    for lineno, obj in iter_dicts(path):
        if not isinstance(obj, dict):
            raise RecordError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        for fld in ("question", "answer"):
            if not isinstance(obj.get(fld), str):
                raise RecordError(f"{path}:{lineno}: field '{fld}': missing or not a string "
                                  "(GSM8K format has 'question' and 'answer' strings)")
        try:
            steps, ans = parse_solution(obj["answer"])
        except RecordError as e:
            raise RecordError(f"{path}:{lineno}: {e}") from None
        out.append(Example(id=f"{split_name or path.stem}-{lineno - 1}", task="gsm8k", instruction=INSTRUCTION,
                           question=obj["question"].strip(), steps=steps, answer=normalize_answer(ans) or ans,
                           meta={"source": str(path), "line": lineno}))
        if limit is not None and len(out) >= limit:
            break
    return out


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Mod: operator.mod,
        ast.FloorDiv: operator.floordiv}


def safe_eval(expr: str) -> float | None:
    """Evaluate plain arithmetic (numbers, + - * / ** % //, parentheses); ``None`` if it is anything else.

    >>> safe_eval("16-3-4"), safe_eval("2/4"), safe_eval("__import__('os')")
    (9, 0.5, None)
    """
    expr = expr.replace(",", "").replace("$", "").replace("x", "*").strip()
    if not expr or len(expr) > 200:
        return None
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        return None

    def ev(n):
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)):
            return n.value
        if isinstance(n, ast.BinOp) and type(n.op) in _OPS:
            a, b = ev(n.left), ev(n.right)
            if isinstance(n.op, ast.Pow) and abs(b) > 10:
                raise ValueError
            return _OPS[type(n.op)](a, b)
        if isinstance(n, ast.UnaryOp) and type(n.op) in _OPS:
            return _OPS[type(n.op)](ev(n.operand))
        raise ValueError

    try:
        return ev(tree)
    except (ValueError, ZeroDivisionError, OverflowError, TypeError):
        return None


class Gsm8kVerifier:
    """Checks ``<<expr=result>>`` annotations; steps without one are ``other`` with validity ``None``.

    A step is valid when every annotation's expression evaluates to its stated result (within 1e-6);
    it *feeds* when its last result appears as a number in a later step or is the final answer.
    """

    def verify(self, steps: list[str], answer: str | None = None) -> list[StepCheck]:
        results: list[str | None] = []
        out: list[StepCheck] = []
        for s in steps:
            anns = ANNOT_RE.findall(s)
            if not anns:
                out.append(StepCheck(kind="other", valid=None, feeds=False, reason="no annotation"))
                results.append(None)
                continue
            ok, why = True, ""
            for expr, res in anns:
                v, r = safe_eval(expr), safe_eval(res)
                if v is None or r is None or abs(v - r) > 1e-6 * max(1.0, abs(v)):
                    ok, why = False, f"{expr} = {res} is wrong" if v is not None else f"cannot evaluate '{expr}'"
                    break
            out.append(StepCheck(kind="arithmetic", valid=ok, feeds=False, reason=why))
            results.append(normalize_answer(anns[-1][1]))
        for i, res in enumerate(results):
            if res is None:
                continue
            later = " ".join(steps[i + 1:])
            nums = {normalize_answer(x) for x in re.findall(r"-?\d[\d,]*(?:\.\d+)?", later)}
            out[i].feeds = res in nums or (answer is not None and normalize_answer(answer) == res)
        return out


# an annotation, the spacing / dollar sign after it, and the number the text repeats after it
_ANNOT_AND_TEXT_RE = re.compile(r"<<([^<>=]*)=([^<>]*)>>(\s*\$?)(-?[\d,]*\.?\d+)?")
_EQ_RESULT_RE = re.compile(r"=\s*\$?(-?\d[\d,]*(?:\.\d+)?)")


def gsm8k_corrupter(step: str, rng: random.Random) -> str:
    """A GSM8K step with a wrong result: the last ``<<expr=result>>`` annotation's result and the
    number right after it are both changed (so :class:`Gsm8kVerifier` flags the step); without an
    annotation, the last ``= result``; else a digit change (:func:`~sftlens.tasks.text.digit_corrupter`).

    >>> s = gsm8k_corrupter("48/2 = <<48/2=24>>24 clips.", random.Random(0))
    >>> m = re.fullmatch(r"48/2 = <<48/2=(\\d+)>>(\\d+) clips\\.", s)
    >>> m.group(1) == m.group(2) != "24"
    True
    """
    annotations = list(_ANNOT_AND_TEXT_RE.finditer(step))
    if annotations:
        m = annotations[-1]
        wrong = wrong_number(m.group(2).strip().replace("$", "") or "0", rng) \
            if re.fullmatch(r"\s*\$?-?[\d,]*\.?\d+\s*", m.group(2)) else None
        if wrong is None:
            return digit_corrupter(step, rng)
        replacement = f"<<{m.group(1)}={wrong}>>{m.group(3)}"
        if m.group(4) is not None:
            replacement += wrong
        return step[:m.start()] + replacement + step[m.end():]
    equations = list(_EQ_RESULT_RE.finditer(step))
    if equations:
        m = equations[-1]
        return step[:m.start(1)] + wrong_number(m.group(1), rng) + step[m.end(1):]
    return digit_corrupter(step, rng)


@register_task("gsm8k")
class Gsm8kTask:
    """GSM8K and any text with ``<<expr=result>>`` annotations: the annotation checker, the
    annotation-consistent corrupter, synonym paraphrases; no variant builder."""

    name = "gsm8k"

    def __init__(self, world=None):
        self.verifier = Gsm8kVerifier()
        self.corrupter = gsm8k_corrupter
        self.paraphraser = text_paraphrase

    @classmethod
    def claims(cls, example: Example, world=None) -> bool:
        return example.task == "gsm8k" or any("<<" in s for s in example.steps)

    def variants(self, test: list[Example], n: int, seed: int,
                 exclude: set[str] | None = None) -> dict[str, list[Example]]:
        raise no_variants(self.name)
