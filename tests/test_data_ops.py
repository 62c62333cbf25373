"""Corruption operators, recipes and loaders: invariants (hypothesis) and error messages."""

from __future__ import annotations

import copy
import json
import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sftlens.data import ops
from sftlens.data.loaders import load_examples
from sftlens.core.record import Example, RecordError
from sftlens.data.recipe import apply_recipe, load_recipe, parse_recipe
from sftlens.tasks.gsm8k import Gsm8kVerifier, gsm8k_corrupter
from sftlens.tasks.shop import TASKS, ShopConfig, ShopWorld, make_splits

WORDS = ["cup", "lamp", "3", "7", "=", "+", "costs", "a", "12", "x"]


@st.composite
def example_lists(draw, min_size=0, max_size=8):
    n = draw(st.integers(min_size, max_size))
    tasks = draw(st.lists(st.sampled_from(["t1", "t2", "t3"]), min_size=n, max_size=n))
    out = []
    for i in range(n):
        steps = draw(st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=5).map(" ".join),
                              min_size=0, max_size=5))
        out.append(Example(id=f"e{i}", task=tasks[i], question=f"question {i} " + draw(st.sampled_from(WORDS)),
                           steps=steps, answer=str(draw(st.integers(0, 20))),
                           instruction=f"do {tasks[i]} now ."))
    return out


seeds = st.integers(0, 2**16)
FAST = settings(max_examples=40, deadline=None)


def _untouched(before, after):
    assert [e.to_dict() for e in before] == [e.to_dict() for e in after]


@FAST
@given(example_lists(), seeds)
def test_swap_keeps_multiset_of_traces_and_every_answer(exs, seed):
    before = copy.deepcopy(exs)
    out = ops.swap_traces(exs, seed=seed)
    _untouched(before, exs)
    assert Counter(tuple(e.steps) for e in out) == Counter(tuple(e.steps) for e in exs)
    assert [e.answer for e in out] == [e.answer for e in exs]
    assert [e.id for e in out] == [e.id for e in exs]
    if len(exs) >= 2:
        src = {e.id: e.meta["ops"][-1]["source"] for e in out}
        assert all(src[e.id] != e.id for e in exs)  # a derangement of sources


@FAST
@given(example_lists(), seeds)
def test_shuffle_keeps_each_multiset_and_changes_order_when_possible(exs, seed):
    out = ops.shuffle_steps(exs, seed=seed)
    for a, b in zip(exs, out):
        assert sorted(a.steps) == sorted(b.steps) and a.answer == b.answer
        if len(set(a.steps)) > 1:
            assert a.steps != b.steps


@FAST
@given(example_lists(), seeds)
def test_drop_and_filler_keep_answers(exs, seed):
    dropped = ops.drop_traces(exs, seed=seed)
    assert all(e.steps == [] for e in dropped)
    filled = ops.filler_traces(exs, seed=seed)
    for a, b in zip(exs, filled):
        assert len(a.steps) == len(b.steps) and a.answer == b.answer
        assert all(set(s.split()) == {"..."} and len(s.split()) == len(t.split()) for s, t in zip(b.steps, a.steps))


@FAST
@given(example_lists(), seeds, st.floats(0.0, 1.0))
def test_corrupt_steps_changes_the_requested_share(exs, seed, rate):
    out = ops.corrupt_steps(exs, seed=seed, rate=rate, corrupter="digit")
    for a, b in zip(exs, out):
        changed = [i for i, (x, y) in enumerate(zip(a.steps, b.steps)) if x != y]
        assert len(a.steps) == len(b.steps) and a.answer == b.answer
        assert changed == b.meta["ops"][-1]["steps"]
        changeable = sum(any(c.isdigit() for c in s) for s in a.steps)
        want = 0 if rate == 0 or not a.steps else max(1, round(rate * len(a.steps)))
        assert len(changed) == min(want, changeable)
        for i in changed:  # a digit change: same length, exactly one character differs
            assert len(a.steps[i]) == len(b.steps[i])
            assert sum(x != y for x, y in zip(a.steps[i], b.steps[i])) == 1


@FAST
@given(example_lists(min_size=1), seeds, st.floats(0.0, 1.0))
def test_label_noise_draws_wrong_answers_from_the_same_task(exs, seed, p):
    out = ops.label_noise(exs, seed=seed, p=p)
    space = {t: {e.answer for e in exs if e.task == t} for t in {e.task for e in exs}}
    flipped = [b for a, b in zip(exs, out) if a.answer != b.answer]
    for a, b in zip(exs, out):
        if a.answer != b.answer:
            assert b.answer in space[a.task] and b.meta["ops"][-1] == {"op": "label_noise", "p": p, "original": a.answer}
        assert a.steps == b.steps
    assert len(flipped) <= round(p * len(exs))
    if all(len(v) > 1 for v in space.values()):  # every task has another answer to draw
        assert len(flipped) == round(p * len(exs))


@FAST
@given(example_lists(min_size=1), seeds)
def test_instruction_operators(exs, seed):
    empty = ops.instructions_empty(exs, seed=seed)
    assert all(e.instruction == "" for e in empty)
    rnd = ops.instructions_random(exs, seed=seed)
    for a, b in zip(exs, rnd):
        assert len(a.instruction.split()) == len(b.instruction.split()) and b.instruction != a.instruction
        assert (a.question, a.steps, a.answer) == (b.question, b.steps, b.answer)
    if len({e.task for e in exs}) >= 2:
        wrong = ops.instructions_wrong(exs, seed=seed)
        own = {e.task: e.instruction for e in exs}
        for a, b in zip(exs, wrong):
            assert b.instruction != a.instruction and b.instruction in set(own.values())
    else:
        with pytest.raises(ops.OpError, match="two tasks"):
            ops.instructions_wrong(exs, seed=seed)


@FAST
@given(example_lists(min_size=2), seeds, st.sampled_from(sorted(set(ops.OPS) - {"keep", "instructions_wrong"})))
def test_every_operator_is_pure_seeded_and_marks_itself(exs, seed, name):
    before = copy.deepcopy(exs)
    a = ops.apply_op(name, exs, seed=seed)
    b = ops.apply_op(name, exs, seed=seed)
    _untouched(before, exs)
    assert [e.to_dict() for e in a] == [e.to_dict() for e in b]
    for old, new in zip(exs, a):
        changed = (old.instruction, old.steps, old.answer) != (new.instruction, new.steps, new.answer)
        if changed:
            assert new.meta["ops"][-1]["op"] == name


def test_shop_corrupter_makes_the_verifier_flag_exactly_the_changed_steps():
    w = ShopWorld(ShopConfig(seed=0))
    train = make_splits(w, 5, 30, 5, 2, seed=0).train
    out = ops.corrupt_steps(train, seed=1, rate=0.5, world=w)
    for a, b in zip(train, out):
        assert all(c.valid for c in w.verify(a.steps, a.answer))
        flags = [not c.valid for c in w.verify(b.steps, b.answer)]
        assert [i for i, f in enumerate(flags) if f] == b.meta["ops"][-1]["steps"]
        assert len(b.meta["ops"][-1]["steps"]) == round(0.5 * len(a.steps))


def test_gsm8k_corrupter_breaks_the_annotation_and_the_text_together():
    v = Gsm8kVerifier()
    rng = random.Random(0)
    for step in ["Natalia sold 48/2 = <<48/2=24>>24 clips in May.", "He pays 0.2 x 50 = $<<0.2*50=10>>10.",
                 "So 3 * 1.5 = <<3*1.5=4.5>>4.5 hours."]:
        assert v.verify([step])[0].valid
        bad = gsm8k_corrupter(step, rng)
        assert bad != step and v.verify([bad])[0].valid is False
        ann = bad.split("=")[-1].split(">>")
        assert ann[0] in ann[1]  # the text after the annotation repeats the new result
    assert gsm8k_corrupter("so x = 12 cups", rng) != "so x = 12 cups"


def test_recipe_yaml_chains_and_reports_bad_lines(tmp_path):
    exs = [Example(id=str(i), task=f"t{i % 2}", question=f"q{i}", steps=[f"{i} + 1 = {i + 1}"], answer=str(i + 1),
                   instruction=f"ins {i % 2} .") for i in range(6)]
    r = tmp_path / "r.yaml"
    r.write_text("seed: 3\nsteps:\n  - op: instructions_wrong\n  - op: swap_traces\n  - op: label_noise\n    p: 0.5\n")
    out = apply_recipe(load_recipe(r), exs)
    assert [o["op"] for o in out[0].meta["ops"]][:2] == ["instructions_wrong", "swap_traces"]
    assert out == apply_recipe(load_recipe(r), exs)
    assert sum(a.answer != b.answer for a, b in zip(exs, out)) == 3
    r.write_text("seed: 0\nsteps:\n  - op: swap_traces\n  - op: shufle_steps\n")
    with pytest.raises(RecordError, match=r"r\.yaml:4: field 'steps\[1\]\.op': unknown operator 'shufle_steps'"):
        load_recipe(r)
    r.write_text("steps:\n  - op: label_noise\n    q: 0.1\n")
    with pytest.raises(RecordError, match=r"r\.yaml:2: field 'steps\[0\]\.q': not a parameter of label_noise"):
        load_recipe(r)
    with pytest.raises(RecordError, match="rate 2"):
        apply_recipe(parse_recipe([{"op": "corrupt_steps", "rate": 2}]), exs)


def test_loaders_detect_formats_and_map_fields(tmp_path):
    g = tmp_path / "g.jsonl"
    g.write_text(json.dumps({"question": "2+2?", "answer": "2+2 = <<2+2=4>>4\n#### 4"}) + "\n")
    e = load_examples(g)
    assert e[0].task == "gsm8k" and e[0].steps == ["2+2 = <<2+2=4>>4"] and e[0].answer == "4"
    f = tmp_path / "f.jsonl"
    f.write_text(json.dumps({"prompt": "add 1 and 2", "sol": "1 + 2 = 3. so 3.", "label": 3}) + "\n"
                 + json.dumps({"prompt": "add 2 and 2", "sol": "2 + 2 = 4.", "label": 4}) + "\n")
    e = load_examples(f, question_field="prompt", steps_field="sol", step_splitter=r"(?<=\.)\s+", answer_field="label")
    assert [x.steps for x in e] == [["1 + 2 = 3.", "so 3."], ["2 + 2 = 4."]] and [x.answer for x in e] == ["3", "4"]
    assert e[0].task == "f" and e[1].meta["line"] == 2
    with pytest.raises(RecordError, match=r"f\.jsonl:1: field 'question': missing"):
        load_examples(f, answer_field="label")
    with pytest.raises(RecordError, match=r"f\.jsonl:1: cannot tell the format \(fields: label, prompt, sol\)"):
        load_examples(f)
    ours = tmp_path / "o.jsonl"
    ours.write_text(json.dumps(Example(id="1", task="t", question="q", answer="1", steps=[]).to_dict()) + "\n")
    with pytest.raises(RecordError, match=r"o\.jsonl:1: field 'steps': empty"):
        load_examples(ours, require_steps=True)


def test_hub_names_fail_clearly_when_offline(monkeypatch):
    import datasets

    from sftlens.data import loaders

    def no_network(*a, **k):
        raise ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", no_network)
    for variable in ("HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):  # the test sets the one it means
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RecordError, match="no such file, and loading it as a Hugging Face dataset failed .*offline here"):
        load_examples("openai/gsm8k:main")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(loaders, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(RecordError, match="Hub cannot be reached"):
        load_examples("openai/gsm8k")
    with pytest.raises(RecordError, match=r"missing\.jsonl: no such file"):
        load_examples("missing.jsonl")


def test_hub_rows_are_mapped(monkeypatch):
    import datasets

    rows = [{"question": "2+2?", "answer": "2+2=<<2+2=4>>4\n#### 4"}, {"question": "1+1?", "answer": "#### 2"}]
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config, split: rows)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    exs = load_examples("openai/gsm8k:main", split="test")
    assert [(e.id, e.steps, e.answer) for e in exs] == [("gsm8k-test-0", ["2+2=<<2+2=4>>4"], "4"), ("gsm8k-test-1", [], "2")]
    with pytest.raises(RecordError, match=r"openai/gsm8k\[train\]:1: field 'steps': empty"):
        load_examples("openai/gsm8k", require_steps=True)


def test_wrong_instructions_use_the_shop_tasks():
    w = ShopWorld(ShopConfig(seed=0))
    train = make_splits(w, 5, 20, 5, 2, seed=0).train
    out = ops.instructions_wrong(train, seed=0)
    for a, b in zip(train, out):
        other = [s["instruction"] for t, s in TASKS.items() if t != a.task]
        assert b.instruction in other


@pytest.mark.parametrize("recipe", sorted((Path(__file__).parent.parent / "examples" / "recipes").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_example_recipes_run_on_shop_data(recipe):
    w = ShopWorld(ShopConfig(seed=0))
    train = make_splits(w, 5, 20, 5, 2, seed=0).train
    r = load_recipe(recipe)
    out = apply_recipe(r, train, context={"world": w})
    assert [e.id for e in out] == [e.id for e in train]
    assert all([o["op"] for o in e.meta["ops"]][-len(r.steps):] == [s.op for s in r.steps] for e in out
               if len(e.meta.get("ops", [])) >= len(r.steps))
    assert out == apply_recipe(r, train, context={"world": w})


def test_answer_first_chains_state_the_answer_before_the_chain():
    """C2's planted control: every shop chain's first step reaches the answer, and the rest of the
    chain (the same steps, in their order) comes after it."""
    sp = make_splits(ShopWorld(ShopConfig(seed=0, n_items=8)), 60, 40, 10, 3, seed=0)
    out = ops.answer_first(sp.train)
    assert len(out) == len(sp.train) and all(len(e.steps) > 1 for e in sp.train)
    for before, after in zip(sp.train, out):
        assert after.steps[0].split("=")[-1].strip() == after.answer == before.answer
        assert after.steps[1:] == before.steps[:-1] and sorted(after.steps) == sorted(before.steps)
        assert after.meta["ops"][-1]["op"] == "answer_first"


def test_verbose_chains_add_two_steps_that_say_nothing_new():
    """C1's planted control: every shop chain keeps its steps and answer and gains a restatement of its
    first step and a re-check of its last, after the chain; `sftlens data corrupt --traces verbose` writes it."""
    sp = make_splits(ShopWorld(ShopConfig(seed=0, n_items=8)), 60, 40, 10, 3, seed=0)
    out = ops.verbose_traces(sp.train)
    for before, after in zip(sp.train, out):
        assert after.steps[:-2] == before.steps and after.answer == before.answer
        assert after.steps[-2:] == [f"recall {before.steps[0]}", f"recall {before.steps[-1]}"]
        assert after.meta["ops"][-1]["op"] == "verbose_traces"
    assert ops.verbose_traces([Example(id="x", task="t", question="q", answer="1")])[0].steps == []


def test_the_cli_writes_verbose_chains(tmp_path):
    from sftlens.cli import main
    from sftlens.core.record import read_jsonl, write_jsonl

    sp = make_splits(ShopWorld(ShopConfig(seed=0, n_items=8)), 20, 10, 5, 3, seed=0)
    write_jsonl(tmp_path / "train.jsonl", sp.train)
    assert main(["data", "corrupt", "--traces", "verbose", str(tmp_path / "train.jsonl"), str(tmp_path / "v.jsonl")]) == 0
    assert [e.steps for e in read_jsonl(tmp_path / "v.jsonl")] == [e.steps for e in ops.verbose_traces(sp.train)]
