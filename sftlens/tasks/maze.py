"""The maze: shortest-path planning on a grid, solved by A* whose every search event can be checked.

A seeded generator draws grids with walls, a start and a goal (claim C4, after Stechly et al. 2025,
"Beyond Semantics", arXiv 2505.13775). Only mazes whose shortest start-to-goal path is *unique* are
kept, so "the optimal plan" is one string and exact-match accuracy is optimal-plan accuracy. The
question lists the grid size, start, goal and walls; the steps are the trace of A* (Manhattan
heuristic) in Stechly et al.'s style, one event per line (``create`` when a node is pushed onto the
open list or its ``g`` improves, ``close`` when it is expanded); the answer is the move sequence,
words only (no digits, so answers compare as text)::

    find the shortest path .
    Q: grid 5 5 start 4 1 goal 3 3 walls 0 0 , 0 3 , 1 0 , 1 3 , 2 2 , 2 4 , 3 2 , 4 4
    create 4 1 g 0 h 3
    close 4 1 g 0 h 3
    create 3 1 g 1 h 2
    create 4 0 g 1 h 4
    create 4 2 g 1 h 2
    close 3 1 g 1 h 2
    create 2 1 g 2 h 3
    create 3 0 g 2 h 3
    close 4 2 g 1 h 2
    create 4 3 g 2 h 1
    close 4 3 g 2 h 1
    create 3 3 g 3 h 0
    close 3 3 g 3 h 0
    A: right right up

Coordinates are ``row col`` from the top-left corner (``down`` adds one to the row, ``right`` to
the column). A* breaks ties among the open nodes of minimal ``f = g + h`` by the smaller ``h``
(the deeper node), then the smaller ``(row, col)``; it expands neighbours in the order ``up down
left right``. :func:`check_trace` replays any trace against A*'s semantics for its maze (one
:class:`~sftlens.tasks.base.StepCheck` per event); :func:`check_plan` checks a plan's validity
and optimality. :class:`MazeWorld` draws problems, variants (``long``: a larger grid; ``dense``: an
unseen wall density) and :func:`make_maze_splits`; :class:`MazeTask` is the registered task
(``maze``). With ``wall_density=0`` the same code gives an *open* world whose plan is a plain
function of start and goal (no trace needed). Nothing here imports a model.

The search itself (the :class:`Maze` grid, BFS, A* and the trace checker) lives in
:mod:`sftlens.tasks.astar`; this module re-exports it. A trace can only be checked against its own maze, which the :class:`~sftlens.tasks.base.Verifier`
call ``verify(steps, answer)`` does not carry: a :class:`Maze` is itself a verifier
(:meth:`MazeTask.verifier_for` gives an example's), and :meth:`MazeWorld.verify` takes ``maze=``
(without it every event is ``valid=None``).
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import asdict, dataclass

from ..core.format import completion_text, prompt_text
from ..core.record import Example
from .astar import (EVENT_RE, EVENTS, MOVES, Cell, Maze, astar, bfs, check_plan, check_trace, event, maze_of,  # noqa: F401
                    parse_event, walk)
from .base import Splits, StepCheck, TaskError, draw_disjoint, draw_distinct
from .registry import register_task
from .text import digit_corrupter

INSTRUCTION = "find the shortest path ."
TASK = "maze.plan"
MAX_SIDE = 10  # coordinates stay single digits

_PIECE_RE = re.compile(r"\d|[^\w\s]|[^\W\d]+|\n")


@dataclass
class MazeConfig:
    """Knobs of the world. Grid sizes are ``(rows, cols)``; a density is the share of the grid's
    cells that are walls (exactly ``round(density * rows * cols)`` walls, never on start or goal).

    ``unique_path`` keeps only mazes with one shortest path (the default; with ``wall_density=0``
    that means start and goal in one row or column, few distinct problems: 120 on a 5x5 grid).
    ``unique_path=False`` keeps every solvable maze and makes the plan A*'s own (its tie-break), so
    other optimal plans exist and exact match is stricter than optimality (:func:`check_plan`).

    ``max_tokens`` caps prompt plus completion (:func:`n_tokens`, the word-level tokenizer's count)
    so that every text fits a 256-position model with BOS and EOS; mazes whose A* trace is longer
    are redrawn (``None``: no cap). The cap drops the longest traces, in every split alike: 4% of
    5x5 mazes at density 0.3, 1% at 0.45, none of 4x4 ones, 20% of the ``long`` variant's.
    """

    seed: int = 0
    rows: int = 5
    cols: int = 5
    wall_density: float = 0.3
    min_plan: int = 2                        # shortest plans have at least this many moves
    unique_path: bool = True
    pretrain_size: tuple[int, int] = (4, 4)  # the base's pretraining problems: smaller grids
    long_size: tuple[int, int] = (6, 6)      # the "long" variant: a larger grid ...
    long_min_plan: int = 4                   # ... and plans of at least this many moves
    dense_density: float = 0.45              # the "dense" variant: an unseen wall density
    max_tokens: int | None = 250             # prompt + completion (n_tokens); longer mazes are redrawn

    def __post_init__(self):
        for name in ("pretrain_size", "long_size"):
            v = getattr(self, name)
            if not (isinstance(v, (tuple, list)) and len(v) == 2):
                raise ValueError(f"{name}={v!r}: must be a pair (rows, cols), each in [2, {MAX_SIDE}]")
            setattr(self, name, tuple(v))
        for name, (r, c) in (("rows/cols", (self.rows, self.cols)), ("pretrain_size", self.pretrain_size),
                             ("long_size", self.long_size)):
            if not (isinstance(r, int) and isinstance(c, int) and 2 <= r <= MAX_SIDE and 2 <= c <= MAX_SIDE):
                raise ValueError(f"{name}={r, c}: each side must be an integer in [2, {MAX_SIDE}]")
        for name in ("wall_density", "dense_density"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 <= v <= 0.6):
                raise ValueError(f"{name}={v!r}: must be a number in [0, 0.6] (denser grids are rarely solvable)")
        if n_walls(self.rows, self.cols, self.dense_density) == n_walls(self.rows, self.cols, self.wall_density):
            raise ValueError(f"dense_density={self.dense_density}: gives a {self.rows}x{self.cols} grid as many walls "
                             f"as wall_density={self.wall_density}; the 'dense' variant needs an unseen density")
        if self.max_tokens is not None and (not isinstance(self.max_tokens, int) or self.max_tokens < 64):
            raise ValueError(f"max_tokens={self.max_tokens}: must be None or an integer >= 64")
        if not isinstance(self.min_plan, int) or not 1 <= self.min_plan <= self.rows + self.cols - 2:
            raise ValueError(f"min_plan={self.min_plan}: must be an integer in [1, rows + cols - 2 = "
                             f"{self.rows + self.cols - 2}]")
        top = sum(self.long_size) - 2
        if not isinstance(self.long_min_plan, int) or not 1 <= self.long_min_plan <= top:
            raise ValueError(f"long_min_plan={self.long_min_plan}: must be an integer in [1, long rows + cols - 2 = {top}]")


def n_tokens(text: str) -> int:
    """The number of tokens of ``text`` under :func:`sftlens.models.tiny.build_tokenizer`'s rules
    (words, single digits, punctuation marks and newlines are one token each), without BOS/EOS.

    >>> n_tokens("Q: grid 5 5\\ncreate 0 12 g 0 h 8")
    14
    """
    return len(_PIECE_RE.findall(text))


# ---- sampling --------------------------------------------------------------------------------
def n_walls(rows: int, cols: int, density: float) -> int:
    """The number of walls of a grid: ``round(density * rows * cols)``, leaving start and goal free."""
    return min(round(density * rows * cols), rows * cols - 2)


def sample_maze(rng: random.Random, rows: int, cols: int, density: float, min_plan: int = 2,
                unique: bool = True, max_tries: int = 100_000) -> Maze:
    """One solvable maze whose shortest plan has at least ``min_plan`` moves and (``unique``) is
    the only shortest path. Start and goal are two distinct cells drawn first; walls fill
    :func:`n_walls` of the others.

    >>> m = sample_maze(random.Random(0), 5, 5, 0.3)
    >>> bfs(m)[1][m.goal], bfs(m)[0][m.goal] >= 2
    (1, True)
    """
    cells = [(r, c) for r in range(rows) for c in range(cols)]
    k = n_walls(rows, cols, density)
    for _ in range(max_tries):
        start, goal = rng.sample(cells, 2)
        others = [x for x in cells if x != start and x != goal]
        maze = Maze(rows, cols, frozenset(rng.sample(others, k)), start, goal)
        dist, count = bfs(maze)
        if dist.get(goal, -1) >= min_plan and (not unique or count[goal] == 1):
            return maze
    raise RuntimeError(f"no {rows}x{cols} maze with density {density}, plans >= {min_plan} moves"
                       f"{' and a unique shortest path' if unique else ''} in {max_tries} tries")


class MazeWorld:
    """A seeded maze generator plus the trace and plan checkers.

    The world holds no facts: its seed and config fix which mazes :meth:`problems` draws.
    :meth:`verify` checks a trace against *one* maze, given as ``maze=`` (an example, its meta,
    its question or a :class:`Maze`); without one every event is ``valid=None``.
    """

    def __init__(self, config: MazeConfig | None = None):
        self.config = config or MazeConfig()

    # ---- rendering -------------------------------------------------------------------------
    def to_example(self, maze: Maze, id: str, **meta) -> Example:
        """Render a maze as an :class:`Example` with its A* trace and plan."""
        trace, plan = astar(maze)
        if not plan:
            raise ValueError(f"maze {maze.question()!r} has no path from start to goal")
        answer = " ".join(plan)
        return Example(id=id, task=TASK, instruction=INSTRUCTION, question=maze.question(), steps=trace,
                       answer=answer,
                       meta={"rows": maze.rows, "cols": maze.cols, "walls": [list(w) for w in sorted(maze.walls)],
                             "start": list(maze.start), "goal": list(maze.goal), "plan": answer,
                             "plan_len": len(plan), "n_closed": sum(s.startswith("close") for s in trace),
                             **meta})

    def n_tokens(self, ex: Example) -> int:
        """Prompt plus completion tokens of an example (:func:`n_tokens`)."""
        return n_tokens(prompt_text(ex)) + n_tokens(completion_text(ex))

    # ---- sampling --------------------------------------------------------------------------
    def problems(self, n: int, seed: int, size: tuple[int, int] | None = None, density: float | None = None,
                 prefix: str = "p", exclude: set[str] | None = None, min_plan: int | None = None,
                 **meta) -> list[Example]:
        """``n`` distinct mazes (by question) as examples; ``size`` (rows, cols), ``density`` and
        ``min_plan`` default to the config's; ``exclude`` holds questions to avoid."""
        c = self.config
        rows, cols = size or (c.rows, c.cols)
        dens = c.wall_density if density is None else density
        min_plan = min(c.min_plan if min_plan is None else min_plan, rows + cols - 2)
        rng = random.Random(seed)

        def too_few(kept: int) -> str:
            return (f"only {kept} distinct {rows}x{cols} mazes of {n} could be drawn "
                    f"(density {dens}{', unique shortest path' if c.unique_path else ''}"
                    f"{', excluding ' + str(len(exclude)) if exclude else ''}); ask for fewer or use a "
                    "larger grid (an open 5x5 grid has 120 problems with a unique shortest path, 520 without)")

        return draw_distinct(
            n, lambda i: self.to_example(sample_maze(rng, rows, cols, dens, min_plan, c.unique_path),
                                         id=f"{prefix}{i:05d}", **meta),
            set(exclude or ()), 50 * n + 1000, too_few,
            keep=lambda ex: c.max_tokens is None or self.n_tokens(ex) <= c.max_tokens)

    def variants(self, test: list[Example], n: int, seed: int, exclude: set[str] | None = None) -> dict[str, list[Example]]:
        """The out-of-distribution test sets, each of ``n`` mazes (``test`` is not used):

        - ``long``: ``long_size`` grids with plans of at least ``long_min_plan`` moves (unseen
          coordinates, longer plans and traces than most training mazes);
        - ``dense``: ``dense_density`` walls on the training grid size.
        """
        c = self.config
        seen = set(exclude or ())
        long = self.problems(n, seed + 1, size=c.long_size, min_plan=c.long_min_plan, prefix="long", exclude=seen,
                             variant="long")
        seen |= {e.question for e in long}
        dense = self.problems(n, seed + 2, density=c.dense_density, prefix="dense", exclude=seen, variant="dense")
        return {"long": long, "dense": dense}

    def fact_probes(self) -> list[Example]:
        """None: the maze world has no facts to recall."""
        return []

    def fact_corpus(self) -> list[str]:
        """None: nothing to pretrain besides the pretraining problems."""
        return []

    def vocabulary(self) -> list[str]:
        """Every word this world's texts (prompt and completion, :mod:`sftlens.core.format`) can hold:
        the digits, the question, event and move words, punctuation and the ``Q:``/``A:`` marks.

        >>> MazeWorld().vocabulary()[:12]
        [',', '.', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']
        """
        words = set(INSTRUCTION.split()) | {"grid", "start", "goal", "walls", "none", ",", "g", "h", "Q:", "A:"}
        return sorted(words | set(EVENTS) | set(MOVES) | {str(d) for d in range(10)})

    def tokenizer_corpus(self) -> list[str]:
        """Texts holding every piece of :meth:`vocabulary` both at a line's start and after a space
        (a word-level tokenizer keeps the two apart): ``build_tokenizer(world.tokenizer_corpus())``
        never gives ``<unk>`` on this world's texts."""
        words = self.vocabulary()
        return words + ["".join(" " + w for w in words)]  # each word after a space, the first one too

    # ---- verification ----------------------------------------------------------------------
    def verify(self, steps: list[str], answer: str | None = None, maze=None, strict: bool = False) -> list[StepCheck]:
        """:func:`check_trace` against ``maze`` (an example, its meta, its question or a
        :class:`Maze`). Without a maze nothing can be checked: events are ``kind="search"`` with
        ``valid=None``, other lines ``kind="other"`` (invalid)."""
        if maze is not None:
            return check_trace(maze_of(maze), steps, answer, strict=strict)
        return [StepCheck("search", None, False, "no maze given: pass maze= to check against one")
                if parse_event(s) else StepCheck("other", False, False, "not an event 'create|close r c g G h H'")
                for s in steps]

    def for_example(self, example) -> Maze:
        """The verifier of one example: its maze (``verify(steps, answer)`` checks against it);
        :func:`sftlens.evaluate.score_samples` asks a verifier for this when it has it."""
        return maze_of(example)

    def check_plan(self, example_or_meta, plan: str | None) -> tuple[bool, bool]:
        """:func:`check_plan`."""
        return check_plan(example_or_meta, plan)

    def to_dict(self) -> dict:
        """Serializable description: the world kind and its config (the mazes follow from the seeds)."""
        return {"world": "maze", "config": asdict(self.config)}

    @classmethod
    def from_dict(cls, d: dict) -> MazeWorld:
        """Rebuild from :meth:`to_dict`; ``ValueError`` naming a bad field."""
        if not isinstance(d, dict) or not isinstance(d.get("config"), dict):
            raise ValueError("field 'config': missing (expected MazeWorld.to_dict() output)")
        known = MazeConfig.__dataclass_fields__
        try:
            return cls(MazeConfig(**{k: tuple(v) if isinstance(v, list) else v
                                     for k, v in d["config"].items() if k in known}))
        except TypeError as e:
            raise ValueError(f"field 'config': {e}") from None


# ---- corruption and paraphrase -------------------------------------------------------------
def corrupt_event(step: str, rng: random.Random) -> str:
    """A wrong version of an event: ``g`` or ``h`` shifted by 1 or 2, or one coordinate shifted by
    1 (which also breaks ``h``, so the checker always catches it); never negative. Lines that are
    not events get a digit change (:func:`~sftlens.tasks.text.digit_corrupter`).

    >>> s = corrupt_event("close 2 3 g 1 h 4", random.Random(0))
    >>> s != "close 2 3 g 1 h 4" and parse_event(s) is not None
    True
    """
    ev = parse_event(step)
    if ev is None:
        return digit_corrupter(step, rng)
    kind, (r, c), g, h = ev
    field = rng.choice(["g", "h", "row", "col"])
    if field in ("row", "col"):
        v = r if field == "row" else c
        v = v + 1 if v == 0 else v + rng.choice([-1, 1])
        r, c = (v, c) if field == "row" else (r, v)
    else:
        v = g if field == "g" else h
        v += rng.choice([d for d in (-2, -1, 1, 2) if v + d >= 0])
        g, h = (v, h) if field == "g" else (g, v)
    return event(kind, (r, c), g, h)


def maze_paraphrase(step: str, rng: random.Random | None = None) -> str:
    """The same event with its ``g`` and ``h`` fields in the other order (the checker reads both);
    other lines unchanged. No new words.

    >>> maze_paraphrase("create 2 3 g 1 h 4"), maze_paraphrase("close 2 3 h 4 g 1"), maze_paraphrase("A: up")
    ('create 2 3 h 4 g 1', 'close 2 3 g 1 h 4', 'A: up')
    """
    m = EVENT_RE.match(step.strip())
    if not m:
        return step
    head = f"{m.group(1)} {m.group(2)} {m.group(3)}"
    if m.group(4) is not None:
        return f"{head} h {m.group(5)} g {m.group(4)}"
    return f"{head} g {m.group(7)} h {m.group(6)}"


@functools.lru_cache(maxsize=1)
def stock_maze_world() -> MazeWorld:
    """The default-config world, built once: enough to verify (the maze comes with each call)."""
    return MazeWorld()


@register_task("maze")
class MazeTask:
    """The maze world as a task. Claims ``maze.*`` examples with or without a world (each example
    carries its maze); the verifier is the world (:meth:`MazeWorld.verify`, which needs ``maze=``;
    :meth:`verifier_for` gives a per-example one with the plain ``verify(steps, answer)``).
    Variants need the world's config (a :class:`MazeWorld`)."""

    name = "maze"

    def __init__(self, world=None):
        self.world = world if isinstance(world, MazeWorld) else None
        self.verifier = self.world if self.world is not None else stock_maze_world()
        self.corrupter = corrupt_event
        self.paraphraser = maze_paraphrase

    @classmethod
    def claims(cls, example: Example, world=None) -> bool:
        return example.task.startswith("maze.")

    @staticmethod
    def verifier_for(example: Example) -> Maze:
        """The example's maze: a verifier whose ``verify(steps, answer)`` checks against it."""
        return maze_of(example)

    def variants(self, test: list[Example], n: int, seed: int,
                 exclude: set[str] | None = None) -> dict[str, list[Example]]:
        """:meth:`MazeWorld.variants` (``long``, ``dense``)."""
        if self.world is None:
            raise TaskError("task 'maze' builds variants from its world's config; none was given")
        return self.world.variants(test, n, seed, exclude=exclude)


def make_maze_splits(world: MazeWorld, n_pretrain: int, n_train: int, n_test: int, n_variant: int,
                     seed: int) -> Splits:
    """Disjoint (by question) pretraining problems (``pretrain_size`` grids, full traces), SFT
    train, test and variant sets; no fact probes. Same seeds offsets as the shop's ``make_splits``.

    >>> sp = make_maze_splits(MazeWorld(), 3, 4, 2, 1, seed=0)
    >>> [len(sp.pretrain_problems), len(sp.train), len(sp.test), sorted(sp.variants), sp.facts]
    [3, 4, 2, ['dense', 'long'], []]
    """
    test, variants, train, seen = draw_disjoint(world, n_train, n_test, n_variant, seed)
    pre = world.problems(n_pretrain, seed + 19, size=world.config.pretrain_size, prefix="pre", exclude=seen, split="pretrain")
    return Splits(pretrain_problems=pre, train=train, test=test, variants=variants, facts=world.fact_probes())


__all__ = ["EVENTS", "INSTRUCTION", "MOVES", "TASK", "Maze", "MazeConfig", "MazeTask", "MazeWorld", "astar", "bfs",
           "check_plan", "check_trace", "corrupt_event", "make_maze_splits", "maze_of", "maze_paraphrase", "n_tokens", "n_walls",
           "parse_event", "sample_maze", "stock_maze_world", "walk"]
