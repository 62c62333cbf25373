"""What every task offers the metrics: a step verifier with a common verdict type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass
class StepCheck:
    """The verifier's verdict on one step.

    ``kind`` is ``knowledge``, ``arithmetic`` or ``other``; ``valid`` means a true fact or correct
    arithmetic, ``None`` when the verifier cannot tell (e.g. free text without annotation); ``feeds``
    means the step's value is used by a later step or is the final answer.
    """

    kind: str
    valid: bool | None
    feeds: bool
    reason: str = ""


class Verifier(Protocol):
    """Checks a chain step by step: one :class:`StepCheck` per step."""

    def verify(self, steps: list[str], answer: str | None = None) -> list[StepCheck]: ...
