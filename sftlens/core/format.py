"""How an :class:`~sftlens.core.record.Example` becomes text, and how generated text becomes steps.

One format for every task, kept deliberately plain so that tiny models can learn it::

    {instruction}            (omitted when empty)
    Q: {question}
    {step 1}
    ...
    {step N}
    A: {answer}

The prompt ends after the question's newline; the completion is the steps and the answer line.
``forced_answer_prefix`` truncates the chain after any number of steps and appends ``A:``, which is
how information gain and early answering ask a model for its answer.
"""

from __future__ import annotations

import re

from .record import Example

ANSWER_MARK = "A:"
QUESTION_MARK = "Q:"


def prompt_text(ex: Example, instruction: str | None = None) -> str:
    """The text a model is conditioned on: optional instruction line, then ``Q: question``.

    ``instruction`` overrides ``ex.instruction`` (``""`` drops it).

    >>> prompt_text(Example(id="1", task="t", question="2 + 2 ?", answer="4", instruction="add ."))
    'add .\\nQ: 2 + 2 ?\\n'
    """
    ins = ex.instruction if instruction is None else instruction
    head = f"{ins}\n" if ins.strip() else ""
    return f"{head}{QUESTION_MARK} {ex.question}\n"


def steps_text(steps: list[str]) -> str:
    """Steps joined one per line, each ending in a newline (``""`` for no steps)."""
    return "".join(s + "\n" for s in steps)


def completion_text(ex: Example) -> str:
    """What SFT trains on: the steps, then ``A: answer``.

    >>> completion_text(Example(id="1", task="t", question="q", steps=["2 + 2 = 4"], answer="4"))
    '2 + 2 = 4\\nA: 4'
    """
    return f"{steps_text(ex.steps)}{ANSWER_MARK} {ex.answer}"


def forced_answer_prefix(ex: Example, steps: list[str], instruction: str | None = None) -> str:
    """Prompt plus the given (possibly truncated or edited) steps plus ``A:``: the model's next
    tokens are its answer."""
    return f"{prompt_text(ex, instruction)}{steps_text(steps)}{ANSWER_MARK}"


_ANSWER_RE = re.compile(r"(?:^|\n)\s*A:\s*(.*?)\s*$", re.S)
_NUM_RE = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def parse_completion(text: str) -> tuple[list[str], str | None]:
    """Split a generated completion into its steps and its answer (``None`` if no ``A:`` line).

    Only the first line after ``A:`` counts as the answer; steps are the non-empty lines before it.

    >>> parse_completion("a cup costs 4\\n2 * 4 = 8\\nA: 8\\nQ: more")
    (['a cup costs 4', '2 * 4 = 8'], '8')
    >>> parse_completion("a cup costs 4")
    (['a cup costs 4'], None)
    """
    lines = text.split("\n")
    steps: list[str] = []
    for line in lines:
        s = line.strip()
        if s.startswith(ANSWER_MARK):
            return steps, s[len(ANSWER_MARK):].strip()
        if s.startswith(QUESTION_MARK):
            break
        if s:
            steps.append(s)
    return steps, None


def normalize_answer(ans: str | None) -> str | None:
    """Canonical form for comparing answers: the first number (commas, ``$`` and trailing ``.0``
    removed) if there is one, else the lower-cased stripped text.

    >>> normalize_answer("$1,200.00")
    '1200'
    >>> normalize_answer(" Paris ")
    'paris'
    """
    if ans is None:
        return None
    m = _NUM_RE.search(ans)
    if m:
        num = m.group(0).replace(",", "")
        if "." in num:
            num = num.rstrip("0").rstrip(".")
        return num
    s = ans.strip().lower()
    return s or None


_THINK_RE = re.compile(r"<think>(.*?)(?:</think>|$)", re.S)


def split_thinking(text: str) -> tuple[str | None, str]:
    """``(thinking, visible)``: what a reasoning model wrote inside ``<think>...</think>`` (``None``
    without such a block; an unclosed block runs to the end) and the rest, where answers are read.

    >>> split_thinking("<think>hmm, 3 + 4 = 7</think>\\nA: 7")
    ('hmm, 3 + 4 = 7', '\\nA: 7')
    >>> split_thinking("<think>still thinking 12")
    ('still thinking 12', '')
    >>> split_thinking("A: 7")
    (None, 'A: 7')
    """
    m = _THINK_RE.search(text)
    if m is None:
        return None, text
    return m.group(1).strip(), text[:m.start()] + text[m.end():]


_BOXED_RE = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_THE_ANSWER_RE = re.compile(r"the (?:final )?answer is\s*:?\s*([^\n]*)", re.I)


def marked_answer(text: str) -> str | None:
    """The answer ``text`` marks as final, by the first rule that applies: an ``A:`` line, ``#### N``,
    the last ``\\boxed{...}``, the last "the answer is ..."; ``None`` when no answer is marked.
    The same rules read a model's completion and a reference solution.

    >>> marked_answer("2 * 4 = 8\\nA: 8")
    '8'
    >>> marked_answer("Natalia sold 48/2 = 24 clips.\\n#### 72")
    '72'
    >>> marked_answer("so the total is \\\\boxed{\\\\frac{1}{2}}.")
    '\\\\frac{1}{2}'
    >>> marked_answer("The answer is 18 apples.")
    '18 apples.'
    >>> marked_answer("10 + 8 = 18") is None
    True
    """
    _, ans = parse_completion(text)
    if ans is not None:
        return ans
    if "####" in text:
        return text.partition("####")[2].strip().split("\n")[0]
    boxed = _BOXED_RE.findall(text)
    if boxed:
        return boxed[-1].strip()
    said = _THE_ANSWER_RE.findall(text)
    return said[-1].strip() if said else None


def reference_answer(text: str) -> str:
    """The normalised final answer of a reference: its marked answer (:func:`marked_answer`), else the
    whole text when it holds at most one number. ``ValueError`` when neither gives a single answer —
    never a silent first number.

    >>> reference_answer("Natalia sold 48/2 = 24 clips.\\n#### 72"), reference_answer("$1,200"), reference_answer("Paris")
    ('72', '1200', 'paris')
    >>> reference_answer("\\\\frac{1}{2}"), reference_answer("2 1/2")  # one expression: math-verify reads it whole
    ('1', '2')
    >>> reference_answer("48/2 = 24 clips")
    Traceback (most recent call last):
    ...
    ValueError: '48/2 = 24 clips' holds 3 numbers and marks none as the final answer (valid: the bare answer, or a solution ending in '#### N', 'A: N', '\\boxed{N}' or 'The answer is N')
    """
    marked = marked_answer(text)
    if marked is not None and normalize_answer(marked) is not None:
        return normalize_answer(marked)
    numbers = _NUM_RE.findall(text)
    if (len(numbers) > 1 and not _is_expression(text)) or normalize_answer(text) is None:
        short = text if len(text) <= 60 else text[:57] + "..."
        raise ValueError(f"{short!r} holds {len(numbers)} numbers and marks none as the final answer (valid: the "
                         "bare answer, or a solution ending in '#### N', 'A: N', '\\boxed{N}' or 'The answer is N')")
    return normalize_answer(text)


_LATEX_COMMAND_RE = re.compile(r"\\[A-Za-z]+")


def _is_expression(text: str) -> bool:
    """Whether ``text`` is one short math expression (no words, no ``=``, one line), so its several
    numbers are parts of one answer (``\\frac{1}{2}``, ``2 1/2``, ``(1, 3]``), not a worked solution.

    >>> _is_expression("\\\\frac{3}{4}"), _is_expression("48/2 = 24"), _is_expression("24 clips and 3 more")
    (True, False, False)
    """
    bare = _LATEX_COMMAND_RE.sub(" ", text)
    return len(text) <= 60 and "\n" not in text.strip() and "=" not in bare and not re.search(r"[A-Za-z]{2,}", bare)


def last_number(text: str) -> str | None:
    """The last number in ``text`` (the "flexible" answer extraction), or ``None``.

    >>> last_number("so 3 + 4 = 7 apples")
    '7'
    """
    nums = _NUM_RE.findall(text)
    return normalize_answer(nums[-1]) if nums else None
