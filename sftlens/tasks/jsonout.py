"""Structured answers: reading a model's JSON answer and checking it against a JSON Schema.

Any task answered as JSON (the packing task, :mod:`sftlens.tasks.packing`; or a user's own data
audited with ``sftlens audit --checker json-schema:SCHEMA.json``) separates the first two levels of
an answer here: it **parses** as JSON, and it is **schema-valid** (``jsonschema``, not hand-written
field checks). Feasibility and optimality need the task's own instance and solver.

The answer is the ``A:`` line of the completion (:func:`sftlens.core.format.parse_completion`) when
there is one, else the whole visible completion (a model that writes bare JSON). A ``<think>``
block is never read as the answer.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import UserError
from ..core.format import parse_completion, split_thinking

LEVELS = ("json_parses", "schema_valid")


def answer_text(completion: str) -> str:
    """The text a structured answer is read from: the ``A:`` line, else the whole visible completion.

    >>> answer_text('A: {"bins":[["a"]]}\\nQ: next'), answer_text(' {"x": 1} ')
    ('{"bins":[["a"]]}', '{"x": 1}')
    """
    _, visible = split_thinking(completion)
    _, answer = parse_completion(visible)
    return answer if answer is not None else visible.strip()


def validator_for(schema: dict, where: str = "schema"):
    """A ``jsonschema`` validator of ``schema`` (its ``$schema`` draft, else 2020-12); :class:`UserError`
    naming ``where`` and the offending field when ``schema`` is not a valid JSON Schema.

    >>> validator_for({"type": "object"}).is_valid({})
    True
    >>> validator_for({"type": "objekt"}, "s.json")
    Traceback (most recent call last):
    ...
    sftlens.core.errors.UserError: s.json: not a valid JSON Schema: field 'type': 'objekt' is not valid under any of the given schemas
    """
    import jsonschema
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, dict):
        raise UserError(f"{where}: not a valid JSON Schema: expected an object at the top, got "
                        f"{type(schema).__name__}")
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as e:
        path = "/".join(str(p) for p in e.path) or "(top level)"
        raise UserError(f"{where}: not a valid JSON Schema: field '{path}': {e.message}") from None
    return cls(schema)


def load_schema(path: str | os.PathLike) -> Any:
    """The validator of a schema file; :class:`UserError` naming the file (and line, or field) when it
    is missing, not JSON or not a valid JSON Schema."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"--checker json-schema:{p}: no such file")
    try:
        schema = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"--checker json-schema:{p}: not UTF-8 text; expected a JSON Schema file") from None
    except json.JSONDecodeError as e:
        raise UserError(f"--checker json-schema:{p}:{e.lineno}: not JSON ({e.msg}); expected a JSON Schema "
                        "object") from None
    return validator_for(schema, f"--checker json-schema:{p}")


@dataclass
class JsonCheck:
    """The first two levels of one answer: the parsed value (``None`` if it does not parse), whether
    it parses, whether it is schema-valid, and why the first level not reached failed."""

    value: Any = None
    parses: bool = False
    schema_valid: bool = False
    failed: list[str] = field(default_factory=list)

    def levels(self) -> dict[str, float]:
        return {"json_parses": float(self.parses), "schema_valid": float(self.schema_valid)}


def check_json(text: str, validator) -> JsonCheck:
    """Parse ``text`` as JSON and validate it; a failure says where (jsonschema's best error).

    >>> v = validator_for({"type": "object", "required": ["bins"]})
    >>> check_json('{"bins": []}', v).schema_valid, check_json('[1]', v).failed
    (True, ["schema: [1] is not of type 'object'"])
    >>> check_json('{"bins": [', v).failed[0][:24]
    'json: does not parse (Ex'
    """
    from jsonschema.exceptions import best_match

    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        why = e.msg if isinstance(e, json.JSONDecodeError) else "nested too deep"
        return JsonCheck(failed=[f"json: does not parse ({why})"])
    error = best_match(validator.iter_errors(value))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path)
        return JsonCheck(value, True, False, [f"schema: {where + ': ' if where else ''}{error.message}"])
    return JsonCheck(value, True, True)


class JsonSchemaChecker:
    """``sftlens audit --checker json-schema:SCHEMA.json``: the two levels any JSON answer has, added
    to each metric row (``check_output``), with step checking left to ``steps`` (the verifier the
    audit would use anyway)."""

    def __init__(self, validator, steps=None):
        self.validator, self.steps = validator, steps

    def verify(self, steps: list[str], answer: str | None = None):
        return self.steps.verify(steps, answer) if self.steps is not None else []

    def check_output(self, completion: str) -> dict:
        c = check_json(answer_text(completion), self.validator)
        return {**c.levels(), "output_check": "; ".join(c.failed) or "schema-valid"}


__all__ = ["JsonCheck", "JsonSchemaChecker", "LEVELS", "answer_text", "check_json", "load_schema", "validator_for"]
