"""The grid-task domain: how an agent on a contextual grid task is described to memory.

A seat's context is the task and its current sub-goal, read from the env's real state (is
the key carried, which doors are open): "find the key", "open the door", "reach the goal".
Behaviors triggered by a sub-goal (``subgoal: keydoor/open the door``) are retrieved there,
whatever the layout, which is what lets an action macro learned on some layouts be tried on
new ones. An episode's return is credited to its task.

A recorded grid step is one byte, as a matrix round's joint action is: the player's action
and the task's answer to it, the sub-goal after the step and what the agent faced when it
acted (the cell ahead in its own view). The extractor (``grid_extraction.py``) reads sub-goal
changes and what caused them from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from coplay.step import Context

# minigrid's object codes (``minigrid.core.constants.OBJECT_TO_IDX``, tested equal), by index:
# the domain reads observations without loading minigrid.
OBJECTS = ("unseen", "empty", "wall", "floor", "door", "key", "ball", "box", "goal", "lava",
           "agent")
# What a recorded step can say the agent faced (3 bits; 0: not recorded).
FACED = ("not recorded", "empty", "wall", "door", "key", "goal", "ball or box", "other")
_FACED_OF_OBJECT = np.array([FACED.index(name) if name in FACED else
                             FACED.index("ball or box") if name in ("ball", "box") else
                             FACED.index("other") for name in OBJECTS], dtype=np.uint8)
ACTION_BITS, SUBGOAL_BITS = 3, 2
# The cell ahead of the agent in its egocentric view (the agent sits at the bottom centre).
AHEAD = (3, 5)

# Per task: its short name and its sub-goals, in the order an episode reaches them.
SUBGOALS = {
    "coplay/grid-keydoor-v0": ("keydoor", ("find the key", "open the door", "reach the goal")),
    "coplay/grid-multiroom-v0": ("multiroom", ("open the next door", "reach the goal")),
    "coplay/grid-deadends-v0": ("deadends", ("find the goal",)),
}


class SubgoalReader:
    """Reads the sub-goal an env (``envs.grid.ContextualGridEnv``) is at from minigrid's state.
    Made after each reset: doors never move within an episode, so they are found once."""

    def __init__(self, env) -> None:
        self._env_id = env.task.env_id
        self._inner = env.inner
        self._doors = [cell for cell in env.inner.grid.grid
                       if cell is not None and cell.type == "door"]

    def __call__(self) -> int:
        all_open = all(door.is_open for door in self._doors)
        if self._env_id == "coplay/grid-keydoor-v0":
            if all_open:
                return 2
            carrying = self._inner.carrying
            return 1 if carrying is not None and carrying.type == "key" else 0
        if self._env_id == "coplay/grid-multiroom-v0":
            return 1 if all_open else 0
        return 0


def subgoal_contexts(agent: str, scenario: str, env_id: str) -> tuple[Context, ...]:
    task, subgoals = SUBGOALS[env_id]
    return tuple(
        Context(
            f"{task} task: {subgoal}",
            (f"scenario:{scenario}", f"env:{env_id}", f"agent:{agent}", f"task:{task}",
             f"subgoal:{task}/{subgoal}"),
            (("task", task), ("subgoal", subgoal)),
        )
        for subgoal in subgoals
    )


class GridDomain:
    """The grid family's side of the step contract for one scenario."""

    def __init__(self, *, scenario: str, env_id: str) -> None:
        self.scenario = scenario
        self.env_id = env_id

    def tracker(self, *, agent: str, seat: int, num_games: int,
                horizon: int | None) -> GridTracker:
        return GridTracker(subgoal_contexts(agent, self.scenario, self.env_id), self.env_id,
                           num_games)


class GridTracker:
    """Each game's current sub-goal; every task starts at its first."""

    def __init__(self, contexts: tuple[Context, ...], env_id: str, num_games: int) -> None:
        self._contexts = contexts
        self._credit = f"task:{SUBGOALS[env_id][0]}"
        self._subgoals = np.zeros(num_games, dtype=np.int64)

    def contexts(self) -> tuple[np.ndarray, Sequence[Context]]:
        return self._subgoals, self._contexts

    def observe(self, step: Mapping[str, np.ndarray], active: np.ndarray) -> None:
        """``step["subgoal"]``: (B,) each game's sub-goal after the step."""
        self._subgoals = np.where(step["played"], step["subgoal"], self._subgoals)

    def credit(self, lengths: np.ndarray) -> list[str]:
        return [self._credit] * len(lengths)


def faced(observations: np.ndarray) -> np.ndarray:
    """(B,) what each game's agent faces, as indexes into ``FACED``, from (B, 7, 7, 3) views."""
    codes = observations[:, AHEAD[0], AHEAD[1], 0]
    return _FACED_OF_OBJECT[np.minimum(codes, len(OBJECTS) - 1)]


def encode_steps(actions: np.ndarray, subgoals: np.ndarray, faced_before: np.ndarray) -> np.ndarray:
    """One byte per step: the action, the sub-goal after it and what the agent faced."""
    return (actions | (subgoals << ACTION_BITS)
            | (faced_before << (ACTION_BITS + SUBGOAL_BITS))).astype(np.uint8)


def decode_steps(steps: bytes | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A recorded episode's actions, sub-goals after each step and what the agent faced."""
    codes = np.frombuffer(steps, dtype=np.uint8) if isinstance(steps, bytes) else steps
    return (codes & ((1 << ACTION_BITS) - 1),
            (codes >> ACTION_BITS) & ((1 << SUBGOAL_BITS) - 1),
            codes >> (ACTION_BITS + SUBGOAL_BITS))
