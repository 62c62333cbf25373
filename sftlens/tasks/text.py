"""The plain-text fallback task: chains of free text, for data no other task claims.

Steps are checked where they carry ``<<expr=result>>`` annotations (the GSM8K checker; other steps
are ``other`` with validity ``None``), broken by making their arithmetic wrong where they show some
(the GSM8K corrupter: an annotation's result, else the last ``= result``, else one digit), and
reworded by conservative synonym swaps (:func:`text_paraphrase`). The generic step helpers the other
tasks share live here too: :func:`digit_corrupter` and :func:`wrong_number`.
"""

from __future__ import annotations

import random
import re

from ..core.record import Example
from .base import no_variants
from .registry import register_task

_DIGIT_RE = re.compile(r"\d")


def digit_corrupter(step: str, rng: random.Random) -> str:
    """Change one digit of the step to a different digit (a leading digit never becomes 0); a step
    without digits is returned unchanged. The task-agnostic corrupter.

    >>> s = digit_corrupter("3 * 7 = 21", random.Random(0))
    >>> s != "3 * 7 = 21" and len(s) == len("3 * 7 = 21")
    True
    """
    positions = [m.start() for m in _DIGIT_RE.finditer(step)]
    if not positions:
        return step
    i = rng.choice(positions)
    leading = (i == 0 or not step[i - 1].isdigit()) and i + 1 < len(step) and step[i + 1].isdigit()
    choices = [d for d in "0123456789" if d != step[i] and not (leading and d == "0")]
    return step[:i] + rng.choice(choices) + step[i + 1:]


def wrong_number(text: str, rng: random.Random) -> str:
    """A different number of the same kind: integers shifted by a small nonzero delta (never
    negative when the original was not), decimals shifted by one unit of their last place.

    >>> wrong_number("12", random.Random(0)) != "12", wrong_number("0.5", random.Random(0)).count(".")
    (True, 1)
    """
    raw = text.replace(",", "")
    if "." in raw:
        places = len(raw.split(".")[1])
        value = float(raw)
        unit = 10 ** -places
        delta = rng.choice([-3, -2, -1, 1, 2, 3])
        if value + delta * unit < 0 <= value:
            delta = abs(delta)
        return f"{value + delta * unit:.{places}f}"
    value = int(raw)
    delta = rng.choice([d for d in (-3, -2, -1, 1, 2, 3) if value < 0 or value + d >= 0])
    return str(value + delta)


# Conservative swaps of function words and common verbs; never a number, never inside <<...>>.
_SWAPS = {
    "so": "thus", "thus": "so", "therefore": "hence", "hence": "therefore", "then": "next",
    "altogether": "in total", "in total": "altogether", "buys": "purchases", "bought": "purchased", "buy": "purchase",
    "needs": "requires", "need": "require", "gets": "receives", "got": "received",
    "additional": "extra", "extra": "additional", "because": "since", "also": "additionally",
    "makes": "earns", "spends": "pays", "spent": "paid",
}
# An annotation (kept as is) or a whole word to swap, longest words first.
_SWAP_RE = re.compile(r"<<[^<>]*>>|\b(" + "|".join(sorted(_SWAPS, key=len, reverse=True)) + r")\b", re.IGNORECASE)


def text_paraphrase(step: str, rng: random.Random | None = None) -> str:
    """A conservative rule-based paraphrase of free text: whole-word synonym swaps of function
    words and common verbs (case kept); numbers and ``<<expr=result>>`` annotations are never touched.

    >>> text_paraphrase("So she needs 3 + 4 = <<3+4=7>>7 cups in total.")
    'Thus she requires 3 + 4 = <<3+4=7>>7 cups altogether.'
    >>> text_paraphrase("12 / 4 = 3")
    '12 / 4 = 3'
    """

    def swap(match: re.Match) -> str:
        word = match.group(1)
        if word is None:  # an annotation: keep as is
            return match.group(0)
        new = _SWAPS[word.lower()]
        if word.isupper() and len(word) > 1:
            return new.upper()
        return new[0].upper() + new[1:] if word[0].isupper() else new

    return _SWAP_RE.sub(swap, step)


@register_task("text", fallback=True)
class TextTask:
    """Free text: annotation checks where present, arithmetic-aware corruption, synonym paraphrases."""

    name = "text"

    def __init__(self, world=None):
        from .gsm8k import Gsm8kVerifier, gsm8k_corrupter  # gsm8k imports this module's helpers

        self.verifier = Gsm8kVerifier()
        self.corrupter = gsm8k_corrupter
        self.paraphraser = text_paraphrase

    @classmethod
    def claims(cls, example: Example, world=None) -> bool:
        return True

    def variants(self, test: list[Example], n: int, seed: int,
                 exclude: set[str] | None = None) -> dict[str, list[Example]]:
        raise no_variants(self.name)
