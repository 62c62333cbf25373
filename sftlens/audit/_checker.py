"""``--checker``: check each answer as a structured output, at the levels its checker knows.

- ``json-schema:SCHEMA.json``: any JSON answer, two levels (parses, schema-valid), for any data;
- a task name whose examples carry their own instance (``packing``): four levels (parses,
  schema-valid, feasible, optimal), each example's instance read from its question or meta.

The levels land in each metric row (``json_parses``, ``schema_valid``, ``feasible``, ``optimal``,
and ``output_check``: why the first level not reached failed), so the audit summarises and pairs
them like every other metric. A model output that is not an object is a failed schema level, never
an error; a checker that cannot work (an unknown name, a bad schema file, an example that is not
the task's) is refused before any model loads, in one sentence naming the file and field.
"""

from __future__ import annotations

from ..core.errors import UserError
from ..core.record import Example

PREFIX = "json-schema:"


def checker_tasks() -> list[str]:
    """The task names ``--checker`` accepts: tasks whose examples' outputs are checked at levels
    (their class declares ``output_levels``; ``packing``)."""
    from ..tasks import get_task, task_names

    return [n for n in task_names() if getattr(get_task(n), "output_levels", ())]


def check_checker(checker: str | None) -> None:
    """Refuse a ``--checker`` that cannot work, before anything loads (the schema file is read here)."""
    if checker is None:
        return
    if checker.startswith(PREFIX):
        from ..tasks.jsonout import load_schema

        load_schema(checker[len(PREFIX):])
        return
    valid = checker_tasks()
    if checker not in valid:
        raise UserError(f"--checker {checker}: unknown (valid: {', '.join(valid + [PREFIX + 'SCHEMA.json'])})")


def make_checker(checker: str, examples: list[Example], data_path, steps_verifier) -> tuple[object, str]:
    """The verifier that adds the checker's levels to each row, and its label (part of each row's cache
    key). ``steps_verifier`` still checks steps under a JSON Schema checker; a task checker is the
    task's own verifier and must be able to read every example (else :class:`UserError` naming the
    data file, the example and the field)."""
    if checker.startswith(PREFIX):
        from pathlib import Path

        from ..tasks.jsonout import JsonSchemaChecker, load_schema
        from ._cache import content_hash

        path = checker[len(PREFIX):]
        label = f"{checker} ({content_hash(Path(path).read_text(encoding='utf-8'), 12)})"
        return JsonSchemaChecker(load_schema(path), steps_verifier), label
    from ..tasks import get_task

    verifier = get_task(checker).verifier
    for e in examples:
        try:
            verifier.for_example(e)
        except ValueError as err:
            raise UserError(f"--checker {checker}: {data_path}: example '{e.id}', field 'question': {err}") from None
    return verifier, f"{checker} checker (levels: {', '.join(get_task(checker).output_levels)})"


__all__ = ["PREFIX", "check_checker", "checker_tasks", "make_checker"]
