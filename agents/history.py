"""For plug-ins that decide on the whole history of a matrix game, not only the last round.

An agent's observation each round is the last joint action's token (``envs.token_of``), so
the history can be rebuilt from the observations alone. ``HistoryAgent`` does that for a
function of the history:

    def forgive_after_three(history: agents.History, rng) -> np.ndarray:
        recent = history.theirs[:, -3:]            # (B, up to 3): 0 cooperate, 1 defect
        return (recent == 1).all(axis=1).astype(np.int64)

    def make(context):                             # a plug-in factory
        return agents.HistoryAgent(forgive_after_three, horizon=context.horizon)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from coplay.step import Hints


@dataclass(frozen=True)
class History:
    """Each game's rounds so far, seen from the agent: ``own`` and ``theirs`` (B, rounds),
    0 to cooperate and 1 to defect; ``rounds`` is the number of rounds played."""

    own: np.ndarray
    theirs: np.ndarray

    @property
    def rounds(self) -> int:
        return self.own.shape[1]


Decide = Callable[[History, np.random.Generator], np.ndarray]


class HistoryAgent:
    """A batched agent that calls ``decide(history, rng)`` every round. ``horizon`` (the
    game's, from ``AgentContext.horizon``) sizes the history once; without it, it grows."""

    def __init__(self, decide: Decide, *, horizon: int | None = None) -> None:
        self._decide = decide
        self._capacity = horizon or 64
        self._rng = np.random.default_rng()
        self._own = np.zeros((0, 0), dtype=np.int8)
        self._theirs = np.zeros((0, 0), dtype=np.int8)
        self._rounds = 0
        self._acted = False

    def reset(self, num_games: int, rng: np.random.Generator) -> None:
        self._rng = rng
        self._own = np.zeros((num_games, self._capacity), dtype=np.int8)
        self._theirs = np.zeros((num_games, self._capacity), dtype=np.int8)
        self._rounds = 0
        self._acted = False

    def act(self, observations: np.ndarray, hints: Hints | None = None) -> np.ndarray:
        if self._acted:  # the observation is the round just played (before: the start token)
            if self._rounds == self._own.shape[1]:
                self._own = np.pad(self._own, ((0, 0), (0, self._own.shape[1] or 1)))
                self._theirs = np.pad(self._theirs, ((0, 0), (0, self._theirs.shape[1] or 1)))
            own, theirs = np.divmod(observations - 1, 2)
            self._own[:, self._rounds] = own
            self._theirs[:, self._rounds] = theirs
            self._rounds += 1
        self._acted = True
        history = History(self._own[:, : self._rounds], self._theirs[:, : self._rounds])
        return np.asarray(self._decide(history, self._rng))
