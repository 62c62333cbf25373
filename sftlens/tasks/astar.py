"""Grid mazes and A* search: the problem (:class:`Maze`), shortest paths, A* traces in Stechly et al.'s
style and the checker that replays a trace against A*'s semantics — the search half of the maze world
(:mod:`sftlens.tasks.maze`, which draws problems, variants and splits and registers the task).

A* uses the Manhattan heuristic and breaks ties among the open nodes of minimal ``f = g + h`` by the
smaller ``h`` (the deeper node), then the smaller ``(row, col)``; it expands neighbours in the order
``up down left right``. Events are ``create r c g G h H`` (a node pushed onto the open list, or its
``g`` improved) and ``close r c g G h H`` (a node expanded). Nothing here imports a model.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

from ..core.record import Example
from .base import StepCheck

Cell = tuple[int, int]

#: Move words and their (row, col) offsets, in the order A* expands neighbours.
MOVES: dict[str, Cell] = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
EVENTS = ("create", "close")

EVENT_RE = re.compile(r"^(create|close) (\d+) (\d+) (?:g (\d+) h (\d+)|h (\d+) g (\d+))$")
_QUESTION_RE = re.compile(r"^grid (\d+) (\d+) start (\d+) (\d+) goal (\d+) (\d+) walls (none|\d+ \d+(?: , \d+ \d+)*)$")


@dataclass(frozen=True)
class Maze:
    """One problem: a ``rows`` x ``cols`` grid, its wall cells, a start and a goal.

    A maze is itself a step verifier (:meth:`verify`), so one example's checks need nothing else.

    >>> m = Maze(3, 3, frozenset({(1, 1)}), (0, 0), (2, 0))
    >>> m.question()
    'grid 3 3 start 0 0 goal 2 0 walls 1 1'
    >>> Maze.from_question(m.question()) == m
    True
    """

    rows: int
    cols: int
    walls: frozenset
    start: Cell
    goal: Cell

    def in_bounds(self, cell: Cell) -> bool:
        return 0 <= cell[0] < self.rows and 0 <= cell[1] < self.cols

    def free(self, cell: Cell) -> bool:
        """In bounds and not a wall."""
        return self.in_bounds(cell) and cell not in self.walls

    def h(self, cell: Cell) -> int:
        """The Manhattan distance to the goal (A*'s heuristic)."""
        return abs(cell[0] - self.goal[0]) + abs(cell[1] - self.goal[1])

    def neighbours(self, cell: Cell) -> list[tuple[str, Cell]]:
        """Free neighbours as ``(move, cell)``, in the order ``up down left right``."""
        out = []
        for move, (dr, dc) in MOVES.items():
            n = (cell[0] + dr, cell[1] + dc)
            if self.free(n):
                out.append((move, n))
        return out

    def question(self) -> str:
        """The maze as word tokens: ``grid R C start r c goal r c walls r c , r c`` (``walls none``)."""
        walls = " , ".join(f"{r} {c}" for r, c in sorted(self.walls)) or "none"
        return (f"grid {self.rows} {self.cols} start {self.start[0]} {self.start[1]} "
                f"goal {self.goal[0]} {self.goal[1]} walls {walls}")

    @classmethod
    def from_question(cls, text: str) -> Maze:
        """Parse :meth:`question`'s text; ``ValueError`` when it is not a maze."""
        m = _QUESTION_RE.match(text.strip())
        if not m:
            raise ValueError(f"not a maze question: {text[:60]!r} (expected 'grid R C start r c goal r c walls ...')")
        n = [int(m.group(i)) for i in range(1, 7)]
        walls = frozenset() if m.group(7) == "none" else frozenset(
            tuple(int(x) for x in pair.split()) for pair in m.group(7).split(" , "))
        return cls(n[0], n[1], walls, (n[2], n[3]), (n[4], n[5]))

    @classmethod
    def from_meta(cls, meta: dict) -> Maze:
        """Rebuild from an example's ``meta`` (``rows``, ``cols``, ``walls``, ``start``, ``goal``)."""
        return cls(int(meta["rows"]), int(meta["cols"]), frozenset(tuple(w) for w in meta["walls"]),
                   tuple(meta["start"]), tuple(meta["goal"]))

    def verify(self, steps: list[str], answer: str | None = None) -> list[StepCheck]:
        """:func:`check_trace` on this maze (the :class:`~sftlens.tasks.base.Verifier` protocol)."""
        return check_trace(self, steps, answer)


def maze_of(x) -> Maze:
    """The maze of an :class:`Example` (its ``meta``, else its question), a meta dict, a question
    string or a :class:`Maze`; ``ValueError`` when there is none."""
    if isinstance(x, Maze):
        return x
    if isinstance(x, Example):
        if all(k in x.meta for k in ("rows", "cols", "walls", "start", "goal")):
            return Maze.from_meta(x.meta)
        return Maze.from_question(x.question)
    if isinstance(x, dict):
        return Maze.from_meta(x)
    if isinstance(x, str):
        return Maze.from_question(x)
    raise ValueError(f"no maze in a {type(x).__name__} (give an Example, its meta, its question or a Maze)")


# ---- shortest paths and A* -------------------------------------------------------------------
def bfs(maze: Maze) -> tuple[dict[Cell, int], dict[Cell, int]]:
    """Distances from the start and the number of shortest paths to each reachable cell.

    >>> dist, count = bfs(Maze(3, 3, frozenset(), (0, 0), (2, 2)))
    >>> dist[(2, 2)], count[(2, 2)]
    (4, 6)
    """
    dist = {maze.start: 0}
    count = {maze.start: 1}
    queue = deque([maze.start])
    while queue:
        x = queue.popleft()
        for _, y in maze.neighbours(x):
            if y not in dist:
                dist[y] = dist[x] + 1
                count[y] = count[x]
                queue.append(y)
            elif dist[y] == dist[x] + 1:
                count[y] += count[x]
    return dist, count


def event(kind: str, cell: Cell, g: int, h: int) -> str:
    return f"{kind} {cell[0]} {cell[1]} g {g} h {h}"


def astar(maze: Maze) -> tuple[list[str], list[str]]:
    """A*'s trace (one event per line) and its plan (moves), ``([], [])`` when the goal is unreachable.

    Deterministic: the open node expanded next is the one with the smallest ``(f, h, row, col)``;
    neighbours are created in the order ``up down left right``. A node is created when it is first
    reached or reached with a smaller ``g`` (an update); closed nodes are never reopened (the
    Manhattan heuristic is consistent on a unit-cost grid).

    >>> trace, plan = astar(Maze(2, 3, frozenset({(0, 1)}), (0, 0), (0, 2)))
    >>> trace[:3], plan
    (['create 0 0 g 0 h 2', 'close 0 0 g 0 h 2', 'create 1 0 g 1 h 3'], ['down', 'right', 'right', 'up'])
    """
    open_g: dict[Cell, int] = {maze.start: 0}
    closed: dict[Cell, int] = {}
    parent: dict[Cell, tuple[Cell, str]] = {}
    trace = [event("create", maze.start, 0, maze.h(maze.start))]
    while open_g:
        x = min(open_g, key=lambda n: (open_g[n] + maze.h(n), maze.h(n), n))
        g = open_g.pop(x)
        closed[x] = g
        trace.append(event("close", x, g, maze.h(x)))
        if x == maze.goal:
            plan: list[str] = []
            while x != maze.start:
                x, move = parent[x]
                plan.append(move)
            return trace, plan[::-1]
        for move, y in maze.neighbours(x):
            if y in closed or (y in open_g and open_g[y] <= g + 1):
                continue
            open_g[y] = g + 1
            parent[y] = (x, move)
            trace.append(event("create", y, g + 1, maze.h(y)))
    return [], []


def walk(maze: Maze, plan) -> tuple[list[Cell], str]:
    """The cells a plan visits from the start (start included) and why it stopped early (``""``
    when every move was legal). ``plan`` is a string of move words or a list of them."""
    moves = plan.split() if isinstance(plan, str) else list(plan)
    cell = maze.start
    cells = [cell]
    for i, move in enumerate(moves):
        if move not in MOVES:
            return cells, f"move {i + 1} '{move}' is not one of {', '.join(MOVES)}"
        nxt = (cell[0] + MOVES[move][0], cell[1] + MOVES[move][1])
        if not maze.in_bounds(nxt):
            return cells, f"move {i + 1} '{move}' leaves the grid at {cell[0]} {cell[1]}"
        if nxt in maze.walls:
            return cells, f"move {i + 1} '{move}' runs into the wall {nxt[0]} {nxt[1]}"
        cell = nxt
        cells.append(cell)
    return cells, ""


def check_plan(example_or_meta, plan: str | None) -> tuple[bool, bool]:
    """``(valid, optimal)``: the moves stay in bounds, avoid walls and end on the goal; and the plan
    is as short as the shortest path (BFS).

    >>> m = Maze(3, 3, frozenset({(1, 1)}), (0, 0), (2, 0))
    >>> check_plan(m, "down down"), check_plan(m, "right down down left left down up"), check_plan(m, "down right")
    ((True, True), (False, False), (False, False))
    >>> check_plan(m, "right right down down left left")
    (True, False)
    """
    maze = maze_of(example_or_meta)
    if plan is None:
        return False, False
    cells, why = walk(maze, plan)
    valid = not why and cells[-1] == maze.goal
    if not valid:
        return False, False
    return True, len(cells) - 1 == bfs(maze)[0][maze.goal]


# ---- the trace checker ---------------------------------------------------------------------
def parse_event(step: str) -> tuple[str, Cell, int, int] | None:
    """``(kind, cell, g, h)`` of an event line (``g``/``h`` in either order), else ``None``.

    >>> parse_event("create 2 3 g 1 h 4"), parse_event("close 2 3 h 4 g 1"), parse_event("go left")
    (('create', (2, 3), 1, 4), ('close', (2, 3), 1, 4), None)
    """
    m = EVENT_RE.match(step.strip())
    if not m:
        return None
    g, h = (m.group(4), m.group(5)) if m.group(4) is not None else (m.group(7), m.group(6))
    return m.group(1), (int(m.group(2)), int(m.group(3))), int(g), int(h)


def check_trace(maze: Maze, steps: list[str], answer: str | None = None,
                strict: bool = False) -> list[StepCheck]:
    """Replay ``steps`` against A*'s semantics on ``maze``: one ``StepCheck(kind="search")`` per event.

    The checker keeps the true A* state given the nodes the trace closed so far (closed nodes,
    the open list with each node's best ``g``, the creates the last expansion owes). An event is
    valid when:

    - ``create r c g G h H``: the cell is in bounds and not a wall; it is a neighbour of the node
      closed last (the first event must create the start with ``g 0``); it is not closed; it is
      new to the open list or its ``g`` improves, and was not created already in this expansion;
      ``G`` is that node's ``g + 1`` and ``H`` its Manhattan distance to the goal. Neighbours may be
      created in any order.
    - ``close r c g G h H``: the cell is in bounds and not a wall; it was created by the trace and
      is open (not closed); ``G`` is its best ``g`` and ``H`` its distance to the goal; its ``f``
      is minimal over the open list, *any* minimal-``f`` node is accepted (``strict=True``
      requires A*'s tie-break, the smallest ``(f, h, row, col)``); the previous expansion created
      every neighbour it owed (an omission is reported here, where the expansion ends); the goal
      was not closed before (nothing follows the goal's close).

    A close of an open node moves it to the closed set even when its stated values are wrong, so
    one bad event does not invalidate the rest; a close of anything else changes nothing.

    ``feeds`` is true for the close events of the cells on the answer's path (the walk of the
    ``answer`` plan from the start; the reference shortest path when ``answer`` is missing or
    not a legal walk): the expansions the plan is read from. Lines that are not events are
    ``kind="other"``, invalid.

    >>> m = Maze(2, 3, frozenset({(0, 1)}), (0, 0), (0, 2))
    >>> trace, plan = astar(m)
    >>> all(c.valid for c in check_trace(m, trace, " ".join(plan)))
    True
    >>> [(c.valid, c.reason) for c in check_trace(m, ["create 0 0 g 0 h 2", "close 0 0 g 0 h 2", "create 0 1 g 1 h 1"])][2]
    (False, 'cell 0 1 is a wall')
    """
    path = _answer_path(maze, answer)
    out: list[StepCheck] = []
    closed: dict[Cell, int] = {}
    open_g: dict[Cell, int] = {}        # the true open list: node -> best g
    owed: dict[Cell, int] = {maze.start: 0}  # creates the last expansion owes (the start before any close)
    created: set[Cell] = set()          # nodes the trace created (and are still open)
    last: Cell | None = None
    done = False
    for step in steps:
        ev = parse_event(step)
        if ev is None:
            out.append(StepCheck("other", False, False, "not an event 'create|close r c g G h H'"))
            continue
        kind, cell, g, h = ev
        reasons: list[str] = []
        r, c = cell
        if not maze.in_bounds(cell):
            reasons.append(f"cell {r} {c} is outside the {maze.rows}x{maze.cols} grid")
        elif cell in maze.walls:
            reasons.append(f"cell {r} {c} is a wall")
        elif done:
            reasons.append("the goal was already closed")
        elif kind == "create":
            reasons += _check_create(maze, cell, g, h, closed, open_g, owed, last)
            if cell in owed:
                if last is None:
                    open_g[cell] = 0
                del owed[cell]
                created.add(cell)
        else:
            reasons += _check_close(maze, cell, g, h, closed, open_g, owed, created, last, strict)
            if cell in open_g:  # a real A* move: apply it whatever the stated values
                gx = open_g.pop(cell)
                created.discard(cell)
                closed[cell] = gx
                last = cell
                owed = {}
                if cell == maze.goal:
                    done = True
                else:
                    for _, y in maze.neighbours(cell):
                        if y not in closed and (y not in open_g or open_g[y] > gx + 1):
                            open_g[y] = gx + 1
                            owed[y] = gx + 1
        feeds = kind == "close" and cell in path
        out.append(StepCheck("search", not reasons, feeds, "; ".join(reasons)))
    return out


def _check_create(maze, cell, g, h, closed, open_g, owed, last) -> list[str]:
    r, c = cell
    if last is None:
        if cell != maze.start:
            return [f"nothing was closed yet: the first event creates the start {maze.start[0]} {maze.start[1]}"]
        if cell not in owed:
            return ["the start was already created"]
    elif abs(r - last[0]) + abs(c - last[1]) != 1:
        return [f"cell {r} {c} is not a neighbour of the last closed node {last[0]} {last[1]}"]
    elif cell in closed:
        return [f"cell {r} {c} is already closed"]
    elif cell not in owed:
        if cell in open_g and open_g[cell] <= closed[last] + 1:
            return [f"cell {r} {c} is already open with g {open_g[cell]} (no improvement) or was created already"]
        return [f"cell {r} {c} was not reached by the last expansion"]  # pragma: no cover - defensive
    out = []
    if g != owed[cell]:
        out.append(f"g of {r} {c} is {owed[cell]}, not {g}")
    if h != maze.h(cell):
        out.append(f"h of {r} {c} is {maze.h(cell)}, not {h}")
    return out


def _check_close(maze, cell, g, h, closed, open_g, owed, created, last, strict) -> list[str]:
    r, c = cell
    if cell in closed:
        return [f"cell {r} {c} is already closed"]
    if cell not in open_g or cell not in created:
        return [f"cell {r} {c} was never created (not on the open list)"]
    out = []
    if owed:
        missing = ", ".join(f"{y[0]} {y[1]}" for y in sorted(owed))
        where = f"of {last[0]} {last[1]}" if last is not None else "of the start"
        out.append(f"the expansion {where} did not create {missing}")
    if g != open_g[cell]:
        out.append(f"g of {r} {c} is {open_g[cell]}, not {g}")
    if h != maze.h(cell):
        out.append(f"h of {r} {c} is {maze.h(cell)}, not {h}")
    f = open_g[cell] + maze.h(cell)
    best = min(open_g, key=lambda n: (open_g[n] + maze.h(n), maze.h(n), n))
    fb = open_g[best] + maze.h(best)
    if f > fb:
        out.append(f"f of {r} {c} is {f} but the open node {best[0]} {best[1]} has f {fb}")
    elif strict and best != cell:
        out.append(f"the tie-break (f, h, row, col) closes {best[0]} {best[1]} first")
    return out


def _answer_path(maze: Maze, answer: str | None) -> set[Cell]:
    if answer is not None:
        cells, why = walk(maze, answer)
        if not why and cells[-1] == maze.goal:
            return set(cells)
    _, plan = astar(maze)
    return set(walk(maze, plan)[0])


__all__ = ["Cell", "EVENTS", "EVENT_RE", "event", "MOVES", "Maze", "astar", "bfs", "check_plan", "check_trace", "maze_of", "parse_event", "walk"]
