"""Are two final answers the same? HF's math-verify as the default judge, our exact match as ``strict``.

``strict`` compares :func:`~sftlens.core.format.normalize_answer` forms (the first number, or the
lower-cased text): fast, dependency-free, and what the lab uses on its integer and word answers. It
misreads anything richer (``1/5`` is ``1``; ``.5`` is ``5``). ``math`` hands the marked answer and the
reference to `math-verify <https://github.com/huggingface/Math-Verify>`_ (fractions, decimals,
percents, units, thousands separators, LaTeX, ``\\boxed{}``; answers without a digit on either side
that it cannot read — a word, a plan, a JSON object — are compared by exact match), with two repairs
of its known misses:

- **mixed numbers** (``2\\frac{1}{2}``, ``2 1/2``) are rewritten as improper fractions first
  (math-verify reads ``2\\frac{1}{2}`` as ``1/2``);
- **exact numbers are compared exactly**: math-verify rounds before comparing, so
  ``\\frac{1}{2004!}`` equals ``\\frac{1}{2006!}`` to it; when both sides parse to exact rationals
  they must be equal as rationals (unless a ``%`` is involved: math-verify lets ``10`` match ``10%``).

math-verify guards each parse and comparison with ``signal.alarm``, which fails off the main thread;
we call it with its timeouts off and bound the work instead: only the extracted final answer (at
most :data:`MAX_ANSWER_CHARS` characters) is parsed, never a whole completion.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

__all__ = ["EQUIVALENCES", "MAX_ANSWER_CHARS", "equivalent", "judge_rows", "math_equivalent", "reference_text"]

EQUIVALENCES = ("math", "strict")
MAX_ANSWER_CHARS = 200

_MIXED_LATEX = re.compile(r"(?<![\d.])(-?)(\d+)\s*\\d?frac\{(\d+)\}\{(\d+)\}")
_MIXED_PLAIN = re.compile(r"(?<![\d./])(-?)(\d+)\s+(\d+)/(\d+)(?![\d/])")


def _unmix(text: str) -> str:
    """Mixed numbers as improper fractions.

    >>> _unmix("2\\\\frac{1}{2}"), _unmix("-3 1/4 cups"), _unmix("x = 1/2")
    ('5/2', '-13/4 cups', 'x = 1/2')
    """
    def improper(m: re.Match) -> str:
        sign, whole, num, den = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))
        return f"{sign}{whole * den + num}/{den}"

    return _MIXED_PLAIN.sub(improper, _MIXED_LATEX.sub(improper, text))


def _math_verify():
    """math-verify's ``parse`` and ``verify``, or an ImportError saying what to install."""
    try:
        from math_verify import parse, verify
    except ImportError as e:  # pragma: no cover - a dependency of sftlens; only a broken install lands here
        raise ImportError("the 'math' equivalence needs math-verify: pip install math-verify "
                          "(or pass --equivalence strict)") from e
    # math-verify warns once per process that its timeouts are off: we bound the input instead (see above)
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    return parse, verify


@lru_cache(maxsize=65536)
def _parse(text: str):
    parse, _ = _math_verify()
    text = _unmix(text)
    # bare LaTeX such as \\frac{1}{2006!} is read only between math delimiters
    return parse(text, parsing_timeout=None) or (parse(f"${text}$", parsing_timeout=None) if "$" not in text else [])


def _exact(value):
    """``value`` as a sympy Rational when it is an exact number (``1/factorial(2006)`` evaluated),
    else ``None``; integers of 100,000 and more are not evaluated (their factorials would take long).

    >>> import sympy
    >>> _exact(sympy.Mul(1, sympy.Pow(sympy.factorial(5), -1, evaluate=False), evaluate=False))
    1/120
    >>> _exact(sympy.Float(0.5)) is None, _exact(sympy.sqrt(2)) is None, _exact("1/2") is None
    (True, True, True)
    """
    try:
        import sympy
    except ImportError:  # pragma: no cover - math-verify depends on sympy
        return None
    if not isinstance(value, sympy.Basic) or not value.is_number or value.has(sympy.Float):
        return None
    if any(abs(int(a)) >= 100_000 for a in value.atoms(sympy.Integer)):
        return None
    exact = value.doit()
    return exact if isinstance(exact, sympy.Rational) else None


@lru_cache(maxsize=65536)
def math_equivalent(answer: str | None, reference: str) -> bool:
    """Whether ``answer`` (a final answer as the model marked it) equals ``reference``, by math-verify.

    >>> math_equivalent("1/5", "\\\\frac{1}{5}"), math_equivalent(".5", "0.5"), math_equivalent("$29.00", "29")
    (True, True, True)
    >>> math_equivalent("10 + 8 = 18", "18"), math_equivalent("1,200", "1200"), math_equivalent("1,5", "15")
    (True, True, False)
    >>> math_equivalent("2\\\\frac{1}{2}", "5/2"), math_equivalent("\\\\boxed{\\\\frac{1}{2004!}}", "\\\\frac{1}{2006!}")
    (True, False)
    >>> math_equivalent("10", "10%"), math_equivalent("0.1", "10%"), math_equivalent("12", "10%")
    (True, True, False)
    >>> math_equivalent(None, "3"), math_equivalent("7" * 300, "7" * 300)
    (False, False)
    >>> math_equivalent(" Paris", "paris"), math_equivalent('{"bins": [["a"]]}', '{"bins": [["a"]]}'), math_equivalent("Rome", "3")
    (True, True, False)
    """
    if answer is None or not answer.strip() or len(answer) > MAX_ANSWER_CHARS or len(reference) > MAX_ANSWER_CHARS:
        return False
    _, verify = _math_verify()
    gold, pred = _parse(reference), _parse(answer)
    if not gold or not pred:  # no digits on either side (a word, a plan, JSON): exact match of the text
        return not re.search(r"\d", answer + reference) and equivalent(answer, reference, "strict")
    if not verify(gold, pred, timeout_seconds=None):
        return False
    exact_gold, exact_pred = _exact(gold[0]), _exact(pred[0])
    if exact_gold is not None and exact_pred is not None and "%" not in answer + reference:
        return bool(exact_gold == exact_pred)  # no rounding between two exact numbers (10% may equal 10)
    return True


def equivalent(answer: str | None, reference: str, how: str = "math") -> bool:
    """The judge ``how`` (``"math"`` or ``"strict"``) on one final answer and its reference.

    >>> equivalent("A: 1/7", "1/5", "strict"), equivalent("1/7", "1/5", "math")
    (True, False)
    """
    from ..core.format import normalize_answer

    if how == "strict":
        a = normalize_answer(answer)
        return a is not None and a == normalize_answer(reference)
    if how == "math":
        return math_equivalent(answer, reference)
    raise ValueError(f"equivalence must be one of {EQUIVALENCES}, got {how!r}")


def reference_text(example) -> str:
    """The reference as math-verify should read it: the marked answer of the original reference
    text when the example kept it (``meta["reference_text"]``, e.g. a whole GSM8K solution), else
    the example's answer."""
    return (example.meta or {}).get("reference_text") or example.answer


def judge_rows(rows: list[dict], samples: list, examples_by_id: dict, how: str = "math") -> list[dict]:
    """Judge each row's ``correct`` by ``how``, in place: with ``"math"`` the exact-match judgement
    moves to ``exact_correct``, ``correct`` becomes math-verify's on the sample's marked final answer
    (its ``<think>`` block removed), and ``judges_disagree`` is 1.0 where the two differ. ``"strict"``
    leaves the rows as they are. Returns ``rows``.

    >>> from sftlens.core.record import Example, Sample
    >>> ex = Example(id="1", task="t", question="q", answer="1", meta={"reference_text": "\\frac{1}{5}"})
    >>> s = Sample("1", "m", "t", "Q: q", "A: 1/7", [], "1", "1", "1")
    >>> judge_rows([{"correct": 1.0}], [s], {"1": ex})
    [{'correct': 0.0, 'exact_correct': 1.0, 'judges_disagree': 1.0}]
    """
    from ..core.format import marked_answer, split_thinking

    if how == "strict":
        return rows
    if how != "math":
        raise ValueError(f"equivalence must be one of {EQUIVALENCES}, got {how!r}")
    for row, sample in zip(rows, samples):
        exact = float(row["correct"])
        judged = float(math_equivalent(marked_answer(split_thinking(sample.completion)[1]),
                                       reference_text(examples_by_id[sample.id])))
        row.update(correct=judged, exact_correct=exact, judges_disagree=float(judged != exact))
    return rows
