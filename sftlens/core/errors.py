"""One error hierarchy for the whole package.

Library code raises a subclass of :class:`SftlensError` with a one-sentence message that names the
file, line, field or option and what would be valid; ``sftlens.cli`` catches the base class, prints
the sentence and exits with status 2. Nothing here imports torch or any other part of sftlens, so
the CLI can catch these errors without loading models.
"""

from __future__ import annotations


class SftlensError(Exception):
    """A problem the user can fix (bad input, missing model, mismatched run folder)."""


class UserError(SftlensError):
    """A bad argument or a combination of arguments that cannot work."""


class RecordError(SftlensError, ValueError):
    """A record or a JSONL line that does not fit the schema; the message says where and why."""


class MissingFileError(RecordError, FileNotFoundError):
    """A data file that is not there: a :class:`RecordError` for the user, a ``FileNotFoundError`` for
    code that treats a missing optional file as absent."""


class ModelLoadError(SftlensError, RuntimeError):
    """A model or tokenizer that cannot be loaded; the message is one sentence for the user."""


class OpError(SftlensError, ValueError):
    """A data operator called with a bad parameter or on data it cannot handle."""


class LabConfigMismatch(SftlensError, RuntimeError):
    """A lab ``--out`` folder holds a run made with other settings."""


__all__ = ["LabConfigMismatch", "MissingFileError", "ModelLoadError", "OpError", "RecordError", "SftlensError",
           "UserError"]
