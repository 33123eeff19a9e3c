"""Carrying out an ``approach`` behavior from the agent's own egocentric view.

An approach names an object type, the action to take on it and actions to avoid. Each step
the agent plans, in its 7x7 view, the shortest sequence of turns and steps forward through
cells it can see to be free that leaves it facing the nearest such object, and takes the
first move (or the action, once it faces one). The plan is made afresh from every view, so
nothing about the layout is remembered or assumed: that is what lets a skill distilled on some
layouts act on any other. When no such object is in view the skill has no move of its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from minigrid.core.constants import OBJECT_TO_IDX, STATE_TO_IDX

VIEW = 7
START = (VIEW // 2, VIEW - 1)  # the agent's cell in its view, facing towards y = 0
# Headings in the view, clockwise from ahead: a right turn adds one.
HEADINGS = ((0, -1), (1, 0), (0, 1), (-1, 0))
DOOR, OPEN = OBJECT_TO_IDX["door"], STATE_TO_IDX["open"]
# Cells an agent walks through; an open door too (checked by its state).
FREE = frozenset(OBJECT_TO_IDX[name] for name in ("empty", "floor", "goal"))
MOVES = ("left", "right", "forward")


@dataclass(frozen=True)
class Approach:
    """An approach behavior compiled for one env: its object's code and its actions' ids."""

    target: int
    act: int
    moves: tuple[int, int, int]  # the env's ids of left, right and forward
    avoid: frozenset[int]

    @classmethod
    def compile(cls, payload: Mapping[str, Any], action_names: Sequence[str]) -> Approach | None:
        """The behavior for an env with these actions; None when it names an object the
        view cannot show or an action the env does not have."""
        names = [payload["action"], *MOVES]
        if payload["object"] not in OBJECT_TO_IDX or any(n not in action_names for n in names):
            return None
        ids = [action_names.index(n) for n in names]
        return cls(OBJECT_TO_IDX[payload["object"]], ids[0], (ids[1], ids[2], ids[3]),
                   frozenset(action_names.index(n) for n in payload["avoid"]
                             if n in action_names))

    def step(self, view: np.ndarray) -> int | None:
        """The env action that brings the agent nearer to facing the nearest target in
        ``view`` (7, 7, 3), or acts on it; None when none is in view or none can be reached."""
        move = first_move(view[..., 0], view[..., 2], self.target)
        if move is None:
            return None
        return self.act if move == "act" else self.moves[MOVES.index(move)]


def first_move(objects: np.ndarray, states: np.ndarray, target: int) -> str | None:
    """Breadth-first over (cell, heading) in the view: 'left', 'right' or 'forward' towards
    the nearest state that faces a target, 'act' when already facing one, None if none."""
    targets = objects == target
    if target == DOOR:  # an open door is a way through, not something to act on
        targets &= states != OPEN
    if not targets.any():
        return None
    free = np.isin(objects, list(FREE)) | ((objects == DOOR) & (states == OPEN))
    start = (*START, 0)
    first: dict[tuple[int, int, int], str | None] = {start: None}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        x, y, heading = state
        dx, dy = HEADINGS[heading]
        ahead = (x + dx, y + dy)
        inside = 0 <= ahead[0] < VIEW and 0 <= ahead[1] < VIEW
        if inside and targets[ahead]:
            return first[state] or "act"
        successors = [("left", (x, y, (heading - 1) % 4)), ("right", (x, y, (heading + 1) % 4))]
        if inside and free[ahead]:
            successors.append(("forward", (*ahead, heading)))
        for move, successor in successors:
            if successor not in first:
                first[successor] = first[state] or move
                queue.append(successor)
    return None
