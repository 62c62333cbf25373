"""What an audit is asked to do and where its examples and step verifier come from."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import UserError
from ..core.record import Example, RecordError, iter_dicts
from ._models import CHAT_TEMPLATE_MODES


@dataclass
class AuditSpec:
    """Everything ``sftlens audit`` was asked to do (stored in ``results.json["inputs"]``)."""

    base: str
    data: str
    out: str
    tuned: str | None = None
    adapter: str | None = None
    world: str | None = None
    checker: str | None = None  # --checker: a task name (packing) or json-schema:SCHEMA.json
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
    equivalence: str = "math"  # how final answers are judged equal: math-verify, or "strict" exact match
    show_progress: bool = True
    chat_template: str = "auto"
    system: str | None = None
    samples: int = 1


def check_spec(spec: AuditSpec) -> None:
    """Every cheap check of an audit before any model loads: exactly one tuned model, model folders
    that look like models, input files of UTF-8 text, an ``--out`` folder that can be written and is
    no input, a seed in range and positive sizes. Raises :class:`UserError` naming the option."""
    from ..core.checks import check_at_least, check_local_input, check_model_path, check_output_path, check_seed
    from ..models.proxy_spec import is_proxy_spec, parse_proxy_spec

    if spec.adapter and spec.tuned:
        raise UserError("give either --tuned or --adapter (the tuned model is then base+adapter), not both")
    if not spec.adapter and not spec.tuned:
        raise UserError("missing the tuned model: pass --tuned PATH, or --adapter PATH for a LoRA adapter on --base")
    check_seed(spec.seed)
    if spec.equivalence not in ("math", "strict"):
        raise UserError(f"--equivalence must be 'math' or 'strict', got {spec.equivalence!r}")
    check_at_least(spec.limit, 1, "--limit")
    check_at_least(spec.max_new_tokens, 1, "--max-new-tokens")
    check_at_least(spec.batch_size, 1, "--batch-size")
    if spec.temperature < 0:
        raise UserError(f"--temperature must be at least 0, got {spec.temperature}")
    check_at_least(spec.samples, 1, "--samples")
    if spec.samples > 1 and spec.temperature <= 0:
        raise UserError(f"--samples {spec.samples} needs --temperature above 0 (greedy decoding writes the same "
                        "completion every time); pass e.g. --temperature 0.7, or drop --samples")
    if spec.chat_template not in CHAT_TEMPLATE_MODES:
        raise UserError(f"--chat-template must be one of {', '.join(CHAT_TEMPLATE_MODES)}, got '{spec.chat_template}'")
    if spec.system is not None and spec.chat_template == "none":
        raise UserError("--system adds a system message to the chat template, so it cannot be combined with "
                        "--chat-template none; drop one of them")
    check_local_input(spec.data, "--data")
    check_local_input(spec.world, "--world")
    from ._checker import check_checker

    check_checker(spec.checker)
    for name, path in spec.variants.items():
        check_local_input(path, f"--variants {name}")
    check_model_path(spec.base, "--base")
    tuned_paths = [spec.tuned]
    if is_proxy_spec(spec.tuned):
        tuned_paths = list(parse_proxy_spec(spec.tuned)[:3])
        for role, path in zip(("BASE", "EXPERT", "ANTI"), tuned_paths):
            check_model_path(path, f"--tuned proxy: {role}")
    else:
        check_model_path(spec.tuned, "--tuned")
    check_model_path(spec.adapter, "--adapter", adapter=True)
    check_output_path(spec.out, kind="dir", inputs=[spec.data, spec.world, *spec.variants.values(), spec.base,
                                                    *tuned_paths, spec.adapter])


def load_data(path: str | os.PathLike, limit: int | None = None, fmt: str = "auto",
              question_field: str | None = None, answer_field: str | None = None,
              steps_field: str | None = None, step_splitter: str | None = None,
              id_field: str | None = None) -> tuple[list[Example], str]:
    """Examples from a JSONL file (or a Hub dataset name) and the format they were read as, through
    :func:`sftlens.data.loaders.load_examples`: ``sftlens`` (our schema, e.g. a lab's
    ``data/test.jsonl``), ``gsm8k``, or ``fields`` (a field mapping). Errors name ``FILE:LINE``."""
    from ..data.loaders import detect_format, load_examples

    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}")
    field_mapping = {k: v for k, v in dict(question_field=question_field, steps_field=steps_field,
                                           step_splitter=step_splitter, answer_field=answer_field,
                                           id_field=id_field).items() if v is not None}
    data_format = fmt
    if fmt == "auto":
        data_format = "fields" if field_mapping else "hf"
        if Path(path).is_file():
            for _, first_record in iter_dicts(Path(path)):
                data_format = "fields" if field_mapping else (detect_format(first_record) or "fields")
                break
    examples = list(load_examples(str(path), fmt=fmt, limit=limit, **field_mapping))
    if not examples:
        raise RecordError(f"{path}: no examples (the file is empty)")
    return examples, data_format


def pick_verifier(examples: list[Example], data_path: Path, world_path: str | None, checker: str | None = None):
    """The step verifier for these examples and a label: the shop world when a world file is given
    or lies next to the data as ``world.json``, else what the task registry picks
    (:func:`sftlens.tasks.verifier_for`: the GSM8K annotation checker ``<<a*b=c>>`` for GSM8K and text;
    a task answered as structured output, e.g. packing, checks each output at its levels). With
    ``checker`` (``--checker``), :func:`sftlens.audit._checker.make_checker`'s verifier over that."""
    from ..tasks import task_for, verifier_for

    if checker is not None:
        from ._checker import make_checker

        steps, _ = pick_verifier(examples, data_path, world_path)
        return make_checker(checker, examples, data_path, steps)
    task = task_for(examples)
    if getattr(task, "output_levels", ()) and not world_path:
        return task.verifier, f"{task.name} checker (levels: {', '.join(task.output_levels)})"

    world_file = Path(world_path) if world_path else data_path.parent / "world.json"
    if world_path or (world_file.exists() and any(e.task.startswith("shop.") for e in examples)):
        from ..tasks.shop import load_world

        return verifier_for(examples, load_world(world_file)), f"shop world ({world_file})"
    return verifier_for(examples), "arithmetic annotations <<expr=result>>"
