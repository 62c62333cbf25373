"""The task registry: lookups, the one picking rule, and that each old dispatch site keeps its output."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sftlens.tasks as tasks
from sftlens.core.record import Example
from sftlens.data import ops
from sftlens.tasks import TaskError, get_task, register_task, task_for, task_names, verifier_for
from sftlens.tasks import registry
from sftlens.tasks.gsm8k import Gsm8kVerifier, gsm8k_corrupter
from sftlens.tasks.shop import ShopConfig, ShopWorld, corrupt_step, make_splits
from sftlens.tasks.text import digit_corrupter


def ex(task: str, steps: list[str]) -> Example:
    return Example(id="1", task=task, question="q", steps=steps, answer="1")


@pytest.fixture(scope="module")
def world():
    return ShopWorld(ShopConfig(seed=0))


def test_unknown_task_names_the_valid_ones():
    with pytest.raises(TaskError, match=r"unknown task 'nope' \(valid: shop, gsm8k, maze, packing, judge, text\)"):
        get_task("nope")
    assert task_names() == ["shop", "gsm8k", "maze", "packing", "judge", "text"]


def test_task_for_picks_as_the_old_sites_did(world):
    shop_ex, gsm_ex = ex("shop.price", ["a lamp costs 7"]), ex("gsm8k", ["4 + 4 = 8"])
    annotated, plain = ex("math", ["2+2 = <<2+2=4>>4"]), ex("math", ["so 2 + 2 = 4"])
    assert task_for([shop_ex], world).name == "shop"
    assert task_for([shop_ex]).name == "text"  # no world: nothing shop-specific can be checked
    assert task_for([gsm_ex], world).name == "gsm8k"
    assert task_for([annotated]).name == "gsm8k"
    assert task_for([plain], world).name == "text"
    assert task_for([plain, shop_ex], world).name == "shop"  # a set: the first task claiming any example
    assert task_for([plain, annotated]).name == "gsm8k"
    assert task_for([]).name == "text"


def test_task_contract(world):
    shop = get_task("shop", world)
    assert shop.verifier is world and shop.paraphraser("a lamp costs 7", None) == "a lamp is priced at 7"
    assert set(shop.variants(make_splits(world, 0, 0, 5, 2, seed=0).test, 2, seed=1)) == {
        "long", "n_minus_1", "unseen_combo", "unseen_range"}
    assert get_task("shop").verifier is None
    with pytest.raises(TaskError, match="world"):
        get_task("shop").variants([], 1, 0)
    for name in ("gsm8k", "text"):
        task = get_task(name)
        assert isinstance(task.verifier, Gsm8kVerifier) and task.corrupter is gsm8k_corrupter
        with pytest.raises(TaskError, match="no variant builder"):
            task.variants([], 1, 0)


def test_verifier_for_is_the_audit_rule(world):
    assert verifier_for([ex("gsm8k", [])], world) is world  # a world given: the world, whatever the tasks
    assert isinstance(verifier_for([ex("shop.price", [])]), Gsm8kVerifier)
    assert isinstance(verifier_for([ex("anything", ["x"])]), Gsm8kVerifier)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789 =<>+*-.$,abc", max_size=30), st.integers(0, 10_000))
def test_text_corrupter_equals_the_old_battery_rule(step, seed):
    """The battery's old default for a non-shop, non-gsm8k task: annotation/equation steps -> the
    GSM8K corrupter, others -> a digit change. The text task's corrupter gives the same steps."""
    old = gsm8k_corrupter if "<<" in step or "=" in step else digit_corrupter
    assert get_task("text").corrupter(step, random.Random(seed)) == old(step, random.Random(seed))


def test_ops_auto_keeps_its_rules(world):
    steps = ["a lamp costs 7", "3 * 7 = 21", "so x = 12 cups"]
    pick = ops.auto_corrupter(world)
    shop_corrupt = pick(ex("shop.price", steps))
    for step in steps[:2]:
        assert shop_corrupt(step, random.Random(0)) == corrupt_step(world, step, random.Random(0))
    assert pick(ex("gsm8k", steps)) is gsm8k_corrupter
    assert pick(ex("math", ["2+2 = <<2+2=4>>4"])) is gsm8k_corrupter
    assert pick(ex("math", steps)) is digit_corrupter  # plain text: a digit change, as before
    assert ops.auto_corrupter(None)(ex("shop.price", steps)) is digit_corrupter  # no world: as before
    with pytest.raises(ops.OpError, match="needs the world"):
        ops.corrupt_steps([ex("shop.price", steps)], corrupter="shop")
    with pytest.raises(ops.OpError, match="valid: auto, digit, gsm8k, shop"):
        ops.corrupt_steps([ex("shop.price", steps)], corrupter="nope")


def test_a_new_task_is_one_class_and_its_registration(monkeypatch):
    monkeypatch.setattr(registry, "_TASKS", dict(registry._TASKS))

    @register_task("chess")
    class ChessTask:
        def __init__(self, world=None):
            self.verifier = None
            self.corrupter = digit_corrupter
            self.paraphraser = lambda step, rng: step

        @classmethod
        def claims(cls, example, world=None):
            return example.task == "chess"

    assert task_for([ex("chess", ["e4"])]).name == "chess"
    assert task_for([ex("math", ["x"])]).name == "text"
    assert "chess" in str(pytest.raises(TaskError, get_task, "nope").value)


def test_tasks_import_only_core():
    root = Path(tasks.__file__).parent
    for path in root.glob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            m = re.match(r"\s*from \.\.(\w+)", line)
            assert m is None or m.group(1) == "core", f"{path.name}: {line.strip()}"
