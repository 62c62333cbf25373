"""Recipes: a YAML file that chains corruption operators into one reproducible data condition.

A recipe is a seed and a list of steps, each ``{op: NAME, ...params}`` (the names and parameters of
:data:`sftlens.data.ops.OPS`)::

    seed: 0
    steps:
      - op: instructions_wrong
      - op: corrupt_steps
        rate: 0.5
      - op: label_noise
        p: 0.1

Step ``i`` runs with seed ``seed + i`` unless it sets its own ``seed``. A bad recipe raises
:class:`~sftlens.core.record.RecordError` as ``FILE:LINE: field 'x': ...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ops import OPS, OpError, apply_op, op_params
from ..core.record import Example, RecordError


@dataclass
class RecipeStep:
    """One operator call: its name, parameters, optional own seed and the line it came from."""

    op: str
    params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    line: int = 0


@dataclass
class Recipe:
    """A seed and an ordered list of operator steps."""

    seed: int = 0
    steps: list[RecipeStep] = field(default_factory=list)
    source: str = "<recipe>"

    def to_dict(self) -> dict:
        """The recipe as plain data (what a results file records)."""
        return {"seed": self.seed, "steps": [{"op": s.op, **s.params, **({"seed": s.seed} if s.seed is not None else {})}
                                             for s in self.steps]}


def parse_recipe(data: Any, source: str = "<recipe>", lines: dict | None = None) -> Recipe:
    """Validate recipe data (a dict, or a bare list of steps); ``lines`` maps step index (and
    ``"seed"``) to a line number for error messages.

    >>> r = parse_recipe({"seed": 3, "steps": [{"op": "label_noise", "p": 0.2}]})
    >>> r.seed, r.steps[0].op, r.steps[0].params
    (3, 'label_noise', {'p': 0.2})
    """
    lines = lines or {}

    def err(where: Any, msg: str) -> RecordError:
        ln = lines.get(where)
        return RecordError(f"{source}:{ln}: {msg}" if ln else f"{source}: {msg}")

    if isinstance(data, list):
        data = {"steps": data}
    if not isinstance(data, dict):
        raise err(None, f"expected a mapping with 'seed' and 'steps', got {type(data).__name__}")
    unknown = set(data) - {"seed", "steps", "name", "description"}
    if unknown:
        raise err(None, f"field '{sorted(unknown)[0]}': unknown (valid: seed, steps, name, description)")
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise err("seed", f"field 'seed': expected an integer, got {type(seed).__name__}")
    steps_raw = data.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise err(None, "field 'steps': expected a non-empty list of {op: NAME, ...params}")
    steps: list[RecipeStep] = []
    for i, st in enumerate(steps_raw):
        if not isinstance(st, dict):
            raise err(i, f"field 'steps[{i}]': expected a mapping like {{op: swap_traces}}, got {type(st).__name__}")
        st = dict(st)
        name = st.pop("op", None)
        if not isinstance(name, str):
            raise err(i, f"field 'steps[{i}].op': missing or not a string (valid: {', '.join(OPS)})")
        if name not in OPS:
            raise err(i, f"field 'steps[{i}].op': unknown operator '{name}' (valid: {', '.join(OPS)})")
        own_seed = st.pop("seed", None)
        if own_seed is not None and (not isinstance(own_seed, int) or isinstance(own_seed, bool)):
            raise err(i, f"field 'steps[{i}].seed': expected an integer")
        allowed = [p for p in op_params(name) if p != "world"]  # the world comes from the caller
        for k in st:
            if k not in allowed:
                raise err(i, f"field 'steps[{i}].{k}': not a parameter of {name} (valid: {', '.join(allowed) or 'none'})")
        steps.append(RecipeStep(op=name, params=st, seed=own_seed, line=lines.get(i, 0)))
    return Recipe(seed=seed, steps=steps, source=source)


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a YAML recipe; errors name the file and the line of the bad step."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise RecordError(f"{path}: no such recipe file")
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise RecordError(f"{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    lines: dict[Any, int] = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == "seed":
                lines["seed"] = k.start_mark.line + 1
            if k.value == "steps" and isinstance(v, yaml.SequenceNode):
                for i, item in enumerate(v.value):
                    lines[i] = item.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[i] = item.start_mark.line + 1
    return parse_recipe(data, source=str(path), lines=lines)


def apply_recipe(recipe: Recipe, examples: list[Example], context: dict | None = None) -> list[Example]:
    """Run the recipe's steps in order (step ``i`` seeded ``recipe.seed + i`` unless it has its own).

    ``context`` supplies caller-side parameters such as ``{"world": world}``. Operator errors are
    re-raised as :class:`RecordError` naming the recipe line.

    >>> from sftlens.core.record import Example
    >>> exs = [Example(id=str(i), task="t", question=f"q{i}", steps=[f"s{i}"], answer=str(i)) for i in range(4)]
    >>> out = apply_recipe(parse_recipe([{"op": "swap_traces"}, {"op": "drop_traces"}]), exs)
    >>> [len(e.steps) for e in out], [o["op"] for o in out[0].meta["ops"]]
    ([0, 0, 0, 0], ['swap_traces', 'drop_traces'])
    """
    out = examples
    for i, st in enumerate(recipe.steps):
        seed = st.seed if st.seed is not None else recipe.seed + i
        try:
            out = apply_op(st.op, out, seed=seed, context=context, **st.params)
        except (OpError, TypeError) as e:
            where = f"{recipe.source}:{st.line}" if st.line else recipe.source
            raise RecordError(f"{where}: step {i} ({st.op}): {e}") from None
    return out
