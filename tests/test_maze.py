"""The maze world: seeded unique-path mazes, A* traces that a replaying checker accepts, every kind
of broken event caught, swapped traces that belong to their donor's maze, the open world, and a
tokenizer that never needs <unk>."""

from __future__ import annotations

import random
from collections import deque
from itertools import pairwise

import pytest

from sftlens.core.format import completion_text, prompt_text
from sftlens.core.record import Example
from sftlens.data import ops
from sftlens.tasks import TaskError, get_task, task_for, verifier_for
from sftlens.tasks.maze import (MOVES, Maze, MazeConfig, MazeTask, MazeWorld, astar, check_plan, check_trace,
                                corrupt_event, make_maze_splits, maze_of, maze_paraphrase, n_tokens, n_walls,
                                parse_event)
from sftlens.tasks.shop import ShopConfig, ShopWorld

# The module docstring's maze: A* closes 4 1, 3 1, 4 2, 4 3, 3 3.
DOC_Q = "grid 5 5 start 4 1 goal 3 3 walls 0 0 , 0 3 , 1 0 , 1 3 , 2 2 , 2 4 , 3 2 , 4 4"
DOC_TRACE = [
    "create 4 1 g 0 h 3", "close 4 1 g 0 h 3",
    "create 3 1 g 1 h 2", "create 4 0 g 1 h 4", "create 4 2 g 1 h 2", "close 3 1 g 1 h 2",
    "create 2 1 g 2 h 3", "create 3 0 g 2 h 3", "close 4 2 g 1 h 2",
    "create 4 3 g 2 h 1", "close 4 3 g 2 h 1",
    "create 3 3 g 3 h 0", "close 3 3 g 3 h 0",
]
# A maze whose A* trace updates an open node: 2 2 is created with g 4, then again with g 2.
UPDATE_Q = "grid 5 5 start 2 0 goal 1 4 walls 0 0 , 0 2 , 1 3 , 3 1 , 3 2 , 4 0 , 4 2 , 4 4"


@pytest.fixture(scope="module")
def world():
    return MazeWorld(MazeConfig(seed=0))


@pytest.fixture(scope="module")
def splits(world):
    return make_maze_splits(world, 60, 200, 60, 40, seed=0)


def every(sp) -> list[Example]:
    return sp.pretrain_problems + sp.train + sp.test + [e for v in sp.variants.values() for e in v]


def reference_bfs(maze: Maze):
    """An independent BFS: distances, shortest-path counts and predecessors from the start."""
    dist, count, preds = {maze.start: 0}, {maze.start: 1}, {maze.start: []}
    queue = deque([maze.start])
    while queue:
        x = queue.popleft()
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            y = (x[0] + dr, x[1] + dc)
            if not (0 <= y[0] < maze.rows and 0 <= y[1] < maze.cols) or y in maze.walls:
                continue
            if y not in dist:
                dist[y], count[y], preds[y] = dist[x] + 1, 0, []
                queue.append(y)
            if dist[y] == dist[x] + 1:
                count[y] += count[x]
                preds[y].append(x)
    return dist, count, preds


def moves_of(cells) -> list[str]:
    names = {v: k for k, v in MOVES.items()}
    return [names[(b[0] - a[0], b[1] - a[1])] for a, b in pairwise(cells)]


def valid(checks) -> list[bool | None]:
    return [c.valid for c in checks]


# ---- generation ---------------------------------------------------------------------------------
def test_generator_is_seeded_and_deterministic():
    a = MazeWorld(MazeConfig(seed=0)).problems(40, seed=3)
    b = MazeWorld(MazeConfig(seed=0)).problems(40, seed=3)
    c = MazeWorld(MazeConfig(seed=0)).problems(40, seed=4)
    assert [e.to_dict() for e in a] == [e.to_dict() for e in b]
    assert [e.question for e in a] != [e.question for e in c]
    assert len({e.question for e in a}) == 40  # distinct by question
    sp1 = make_maze_splits(MazeWorld(), 5, 10, 5, 3, seed=1)
    sp2 = make_maze_splits(MazeWorld(), 5, 10, 5, 3, seed=1)
    assert [e.to_dict() for e in every(sp1)] == [e.to_dict() for e in every(sp2)]


def test_unique_shortest_path_and_the_plan_is_the_bfs_path(splits):
    exs = every(splits)
    assert len(exs) >= 200
    for e in exs:
        maze = maze_of(e)
        assert Maze.from_question(e.question) == maze  # question and meta describe one maze
        assert maze.start != maze.goal and maze.start not in maze.walls and maze.goal not in maze.walls
        dist, count, preds = reference_bfs(maze)
        assert maze.goal in dist and count[maze.goal] == 1, e.question
        path = [maze.goal]
        while path[-1] != maze.start:
            (p,) = preds[path[-1]]  # a unique shortest path has one predecessor at each step
            path.append(p)
        plan = e.answer.split()
        assert plan == moves_of(path[::-1]) and len(plan) == dist[maze.goal] >= 2
        assert e.meta["plan"] == e.answer and e.meta["plan_len"] == len(plan)
        assert not any(ch.isdigit() for ch in e.answer)


def test_grid_sizes_densities_and_splits(world, splits):
    c = world.config
    assert {(e.meta["rows"], e.meta["cols"]) for e in splits.train + splits.test} == {(c.rows, c.cols)}
    assert {(e.meta["rows"], e.meta["cols"]) for e in splits.pretrain_problems} == {c.pretrain_size}
    assert {(e.meta["rows"], e.meta["cols"]) for e in splits.variants["long"]} == {c.long_size}
    assert min(e.meta["plan_len"] for e in splits.variants["long"]) >= c.long_min_plan > c.min_plan
    assert {len(e.meta["walls"]) for e in splits.train} == {n_walls(c.rows, c.cols, c.wall_density)}
    assert {len(e.meta["walls"]) for e in splits.variants["dense"]} == {n_walls(c.rows, c.cols, c.dense_density)}
    assert n_walls(c.rows, c.cols, c.dense_density) > n_walls(c.rows, c.cols, c.wall_density)
    assert all(e.meta["variant"] == name for name, v in splits.variants.items() for e in v)
    assert [e.meta["split"] for e in splits.train[:1] + splits.test[:1] + splits.pretrain_problems[:1]] == [
        "train", "test", "pretrain"]
    qs = [e.question for e in every(splits)]
    assert len(qs) == len(set(qs))  # disjoint by question
    assert splits.facts == [] and world.fact_probes() == [] and world.fact_corpus() == []
    assert all(e.task == "maze.plan" and e.instruction == "find the shortest path ." for e in every(splits))


def test_texts_fit_the_model(world, splits):
    for e in every(splits):
        assert world.n_tokens(e) <= world.config.max_tokens
        assert n_tokens(e.question) <= 90


# ---- plans --------------------------------------------------------------------------------------
def test_plan_checker():
    m = Maze(3, 3, frozenset({(1, 1)}), (0, 0), (2, 0))
    assert check_plan(m, "down down") == (True, True)
    assert check_plan(m, "right down down left") == (False, False)  # through the wall 1 1
    assert check_plan(m, "left down down") == (False, False)  # off the grid
    assert check_plan(m, "up down down") == (False, False)  # off the grid
    assert check_plan(m, "down") == (False, False)  # does not reach the goal
    assert check_plan(m, "down down down") == (False, False)  # reaches it, then leaves the grid
    assert check_plan(m, "right right down down left left") == (True, False)  # valid, not optimal
    assert check_plan(m, "down south") == (False, False) and check_plan(m, None) == (False, False)
    assert check_plan(m, "") == (False, False)


def test_plan_checker_on_generated_mazes(splits):
    for e in every(splits):
        assert check_plan(e, e.answer) == (True, True)
        assert check_plan(e.meta, e.answer) == (True, True)
        maze = maze_of(e)
        move, _ = maze.neighbours(maze.goal)[0]
        back = {"up": "down", "down": "up", "left": "right", "right": "left"}[move]
        assert check_plan(e, f"{e.answer} {move} {back}") == (True, False)  # a detour at the goal
        assert check_plan(e, " ".join(e.answer.split()[:-1])) == (False, False)


# ---- traces -------------------------------------------------------------------------------------
def test_generated_traces_pass(splits):
    exs = every(splits)
    assert len(exs) >= 200
    for e in exs:
        checks = check_trace(maze_of(e), e.steps, e.answer)
        assert len(checks) == len(e.steps) and all(c.kind == "search" for c in checks)
        assert all(valid(checks)), [c.reason for c in checks if not c.valid]
        assert all(valid(check_trace(maze_of(e), e.steps, strict=True)))  # and A*'s own tie-break
        # feeds: the closes of the path's cells (start and goal included)
        assert sum(c.feeds for c in checks) == e.meta["plan_len"] + 1
        assert checks[-1].feeds and e.steps[-1].startswith("close")


def test_trace_with_an_update():
    m = Maze.from_question(UPDATE_Q)
    trace, plan = astar(m)
    assert trace.count("create 2 2 g 4 h 3") == 1 and trace.count("create 2 2 g 2 h 3") == 1
    assert all(valid(check_trace(m, trace, " ".join(plan), strict=True)))
    i = trace.index("create 2 2 g 2 h 3")
    missing = trace[:i] + trace[i + 1:]  # the update never made: the next close must notice
    checks = check_trace(m, missing)
    assert all(valid(checks[:i])) and checks[i].valid is False and "did not create 2 2" in checks[i].reason
    stale = list(trace)
    stale[i + 1] = "close 2 2 g 4 h 3"  # closing with the g of before the update
    assert "g of 2 2 is 2, not 4" in check_trace(m, stale)[i + 1].reason


def broken(step_index: int, new: str | None = None, insert: str | None = None) -> list[str]:
    steps = list(DOC_TRACE)
    if insert is not None:
        steps.insert(step_index, insert)
    else:
        steps[step_index] = new
    return steps


@pytest.mark.parametrize("steps, index, reason", [
    (broken(2, "create 3 1 g 2 h 2"), 2, "g of 3 1 is 1, not 2"),  # wrong g
    (broken(4, "create 4 2 g 1 h 3"), 4, "h of 4 2 is 2, not 3"),  # wrong h
    (broken(10, "close 4 3 g 3 h 1"), 10, "g of 4 3 is 2, not 3"),  # wrong g on a close
    (broken(6, insert="create 3 2 g 2 h 1"), 6, "cell 3 2 is a wall"),  # a wall next to 3 1
    (broken(2, insert="create 5 1 g 1 h 4"), 2, "outside the 5x5 grid"),  # below the grid
    (broken(8, "close 0 1 g 4 h 3"), 8, "never created"),  # a free cell nobody created
    (broken(8, "close 4 0 g 1 h 4"), 8, "f of 4 0 is 5 but the open node 4 2 has f 3"),  # not minimal f
    (broken(6, "create 1 1 g 2 h 4"), 6, "not a neighbour of the last closed node 3 1"),  # a non-neighbour
    (broken(0, "create 4 2 g 0 h 2"), 0, "the first event creates the start 4 1"),
    (broken(3, insert="create 3 1 g 1 h 2"), 3, "created already"),  # the same create twice
    (broken(7, insert="create 4 1 g 2 h 3"), 7, "already closed"),  # the start, closed, again
    (broken(8, "close 3 1 g 1 h 2"), 8, "already closed"),
    (broken(13, insert="create 2 3 g 4 h 1"), 13, "the goal was already closed"),
    (broken(3, insert="so we go right"), 3, "not an event"),
])
def test_each_kind_of_broken_event_is_caught(steps, index, reason):
    m = Maze.from_question(DOC_Q)
    assert all(valid(check_trace(m, DOC_TRACE)))
    checks = check_trace(m, steps)
    assert all(valid(checks[:index])), [c.reason for c in checks[:index]]
    assert checks[index].valid is False and reason in checks[index].reason, checks[index].reason


def test_a_skipped_create_is_reported_where_the_expansion_ends():
    m = Maze.from_question(DOC_Q)
    steps = DOC_TRACE[:3] + DOC_TRACE[4:]  # 4 0 is never created
    checks = check_trace(m, steps)
    assert all(valid(checks[:4])) and "did not create 4 0" in checks[4].reason


def test_ties_any_minimal_f_node_unless_strict():
    m = Maze.from_question(DOC_Q)
    # 3 1 and 4 2 tie (f 3, h 2); A* closes 3 1 first, closing 4 2 first is still A*
    other = DOC_TRACE[:5] + ["close 4 2 g 1 h 2", "create 4 3 g 2 h 1", "close 4 3 g 2 h 1",
                             "create 3 3 g 3 h 0", "close 3 3 g 3 h 0"]
    assert all(valid(check_trace(m, other)))
    strict = check_trace(m, other, strict=True)
    assert strict[5].valid is False and "tie-break" in strict[5].reason and all(valid(strict[6:]))


def test_the_corrupter_is_always_caught(splits):
    rng = random.Random(0)
    task = get_task("maze")
    for e in every(splits):
        i = rng.randrange(len(e.steps))
        steps = list(e.steps)
        steps[i] = task.corrupter(steps[i], rng)
        assert steps[i] != e.steps[i] and parse_event(steps[i]) is not None
        checks = check_trace(maze_of(e), steps)
        assert all(valid(checks[:i])) and checks[i].valid is False


def test_corrupt_steps_auto_uses_the_maze_corrupter(splits):
    out = ops.corrupt_steps(splits.test[:30], seed=0, rate=0.2)  # corrupter "auto": by task
    for e, o in zip(splits.test, out):
        changed = o.meta["ops"][-1]["steps"]
        assert changed and all(parse_event(o.steps[i]) for i in changed)
        assert any(c.valid is False for c in check_trace(maze_of(e), o.steps))


def test_swapped_traces_belong_to_the_donor(splits):
    exs = splits.test
    by_id = {e.id: e for e in exs}
    for new in ops.swap_traces(exs, seed=0):
        donor = by_id[new.meta["ops"][-1]["source"]]
        assert donor.id != new.id and new.steps == donor.steps and new.answer == by_id[new.id].answer
        assert not all(valid(check_trace(maze_of(new), new.steps)))  # wrong for its own maze
        assert all(valid(check_trace(maze_of(donor), new.steps)))  # right for the donor's


def test_shuffled_and_dropped_traces(splits):
    shuffled = ops.shuffle_steps(splits.test, seed=0)
    assert all(not all(valid(check_trace(maze_of(e), e.steps))) for e in shuffled)
    assert all(e.steps == [] and check_trace(maze_of(e), e.steps) == [] for e in ops.drop_traces(splits.test))


def test_paraphrase_keeps_meaning_and_words(world, splits):
    words = set(world.vocabulary())
    for e in splits.test:
        para = [maze_paraphrase(s, random.Random(0)) for s in e.steps]
        assert all(p != s for p, s in zip(para, e.steps))
        assert [parse_event(p) for p in para] == [parse_event(s) for s in e.steps]
        assert all(valid(check_trace(maze_of(e), para, e.answer)))
        assert {w for p in para for w in p.split()} <= words
        assert [maze_paraphrase(p) for p in para] == e.steps


# ---- the open world -----------------------------------------------------------------------------
def straight(start, goal) -> list[str]:
    dr, dc = goal[0] - start[0], goal[1] - start[1]
    return ["down" if dr > 0 else "up"] * abs(dr) + ["right" if dc > 0 else "left"] * abs(dc)


def test_open_world_plans_are_a_function_of_start_and_goal():
    w = MazeWorld(MazeConfig(wall_density=0.0))
    exs = w.problems(60, seed=0)
    for e in exs:
        assert e.meta["walls"] == [] and e.question.endswith("walls none")
        start, goal = tuple(e.meta["start"]), tuple(e.meta["goal"])
        assert start[0] == goal[0] or start[1] == goal[1]  # a unique shortest path: in line
        assert e.answer.split() == straight(start, goal)  # no trace needed to know the plan
        assert all(valid(check_trace(maze_of(e), e.steps, e.answer)))
    with pytest.raises(RuntimeError, match="distinct 5x5 mazes"):
        w.problems(121, seed=0)  # 120 in-line pairs at least two apart exist on a 5x5 grid


def test_open_world_without_unique_paths():
    w = MazeWorld(MazeConfig(wall_density=0.0, unique_path=False))
    exs = w.problems(300, seed=0)
    for e in exs:
        start, goal = tuple(e.meta["start"]), tuple(e.meta["goal"])
        # A*'s tie-break (f, h, row, col): upward moves first, downward moves last
        dr, dc = goal[0] - start[0], goal[1] - start[1]
        horizontal = ["right" if dc > 0 else "left"] * abs(dc)
        expect = ["up"] * -dr + horizontal if dr < 0 else horizontal + ["down"] * dr
        assert e.answer.split() == expect
        assert check_plan(e, e.answer) == (True, True)
        assert all(valid(check_trace(maze_of(e), e.steps, e.answer)))


# ---- tokens -------------------------------------------------------------------------------------
def test_tokenizer_never_needs_unk(world, splits):
    from sftlens.models.tiny import build_tokenizer

    texts = [prompt_text(e) + completion_text(e) for e in every(splits)]
    open_texts = [prompt_text(e) + completion_text(e) for e in MazeWorld(MazeConfig(wall_density=0.0)).problems(20, 0)]
    tok = build_tokenizer(world.tokenizer_corpus())  # the world's words alone
    for t in texts + open_texts:
        ids = tok(t)["input_ids"]
        assert tok.unk_token_id not in ids, t
        assert len(ids) - 1 == n_tokens(t)  # without BOS
        assert tok.decode(ids, skip_special_tokens=True) == t
    pieces = {p for t in texts + open_texts for w in t.split() for p in (list(w) if w.isdigit() else [w])}
    assert pieces <= set(world.vocabulary())  # numbers as single digits
    tok2 = build_tokenizer(world.vocabulary() + texts)
    assert all(tok2.unk_token_id not in tok2(t)["input_ids"] for t in texts)


# ---- task contract ------------------------------------------------------------------------------
def test_registry_picks_maze_only_for_maze_examples(world, splits):
    shop_world = ShopWorld(ShopConfig(seed=0))
    maze_ex = splits.test[0]
    shop_ex = Example(id="s", task="shop.price", question="q", steps=["a lamp costs 7"], answer="7")
    assert task_for([maze_ex]).name == "maze" and task_for([maze_ex], shop_world).name == "maze"
    assert task_for([maze_ex], world).name == "maze"
    assert task_for([shop_ex], shop_world).name == "shop" and task_for([shop_ex]).name == "text"
    assert task_for([shop_ex, maze_ex], shop_world).name == "shop"
    assert not MazeTask.claims(shop_ex, world) and MazeTask.claims(maze_ex)
    assert ops.auto_corrupter(shop_world)(maze_ex).__name__ == "corrupt_event"


def test_task_contract(world, splits):
    ex = splits.test[0]
    task = get_task("maze", world)
    assert task.verifier is world and task.corrupter is corrupt_event and task.paraphraser is maze_paraphrase
    assert set(task.variants(splits.test, 3, seed=1)) == {"long", "dense"}
    with pytest.raises(TaskError, match="world"):
        get_task("maze").variants([], 1, 0)
    with pytest.raises(TaskError, match="world"):
        get_task("maze", ShopWorld(ShopConfig(seed=0))).variants([], 1, 0)
    # a maze is a verifier of the plain protocol; the world needs the maze
    assert all(valid(MazeTask.verifier_for(ex).verify(ex.steps, ex.answer)))
    assert all(valid(world.verify(ex.steps, ex.answer, maze=ex)))
    assert all(valid(world.verify(ex.steps, ex.answer, maze=ex.question)))
    blind = verifier_for([ex]).verify(ex.steps + ["hello"], ex.answer)  # no world, no maze: cannot tell
    assert [c.valid for c in blind] == [None] * len(ex.steps) + [False] and blind[-1].kind == "other"


def test_world_round_trip(world):
    w2 = MazeWorld.from_dict(world.to_dict())
    assert w2.config == world.config
    assert [e.to_dict() for e in w2.problems(5, 2)] == [e.to_dict() for e in world.problems(5, 2)]
    w3 = MazeWorld.from_dict({"config": {"rows": 4, "cols": 4, "pretrain_size": [3, 3]}})
    assert w3.config.pretrain_size == (3, 3)
    with pytest.raises(ValueError, match="config"):
        MazeWorld.from_dict({"facts": {}})


@pytest.mark.parametrize("kw, field", [
    ({"rows": 1}, r"rows/cols=\(1, 5\): each side must be an integer in \[2, 10\]"),
    ({"cols": 11}, r"rows/cols"),
    ({"pretrain_size": (4, 12)}, r"pretrain_size=\(4, 12\)"),
    ({"long_size": (1, 1)}, r"long_size"),
    ({"long_min_plan": 11}, r"long_min_plan=11: must be an integer in \[1, long rows \+ cols - 2 = 10\]"),
    ({"wall_density": 0.9}, r"wall_density=0.9: must be a number in \[0, 0.6\]"),
    ({"wall_density": "0.3"}, r"wall_density='0.3'"),
    ({"dense_density": 0.31}, r"dense_density=0.31: gives a 5x5 grid as many walls as wall_density=0.3"),
    ({"long_size": 6}, r"long_size=6: must be a pair"),
    ({"dense_density": -0.1}, r"dense_density"),
    ({"min_plan": 0}, r"min_plan=0: must be an integer in \[1, rows \+ cols - 2 = 8\]"),
    ({"max_tokens": 10}, r"max_tokens=10"),
])
def test_bad_config_names_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        MazeConfig(**kw)


def test_not_a_maze():
    with pytest.raises(ValueError, match="not a maze question"):
        maze_of(Example(id="1", task="maze.plan", question="tom buys 3 cup", answer="up"))
    assert corrupt_event("no digits here", random.Random(0)) == "no digits here"
