"""The step contract: what every environment family, agent and memory agree on.

Every simulation step, for any env, runs the same way:

1. each listening seat's *tracker* (made by the env family's ``Domain``) describes the
   situation of each of its B games as a ``Context``: a short text, graph entities (refs
   such as ``coplayer:reciprocator`` or ``subgoal:key``) and structured keys;
2. memory retrieves the best behaviors for all of them in one batched call;
3. the agent acts on its observations and the ``Hints`` (and says which hint it used);
4. the env steps, and the tracker observes what happened;
5. at the end of the batch the tracker names, per game, the entity an episode's outcome is
   credited to (the co-player type it showed, the task it was), for the effect statistics.

This module imports nothing of coplay's packages: envs, agents, memory and scenarios all
import it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class Context:
    """What an agent is facing, for retrieval: words, the entities it involves, and
    structured keys (e.g. ``phase``, ``coplayer``, ``subgoal``) for whoever reads it."""

    text: str
    entities: tuple[str, ...] = ()
    keys: tuple[tuple[str, str], ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class HintedBehavior:
    """A behavior from memory as an agent sees it; ``embedding`` is memory's unit vector of
    what it says, for agents that take behaviors as input."""

    behavior_id: int
    name: str
    instruction: str
    kind: str
    payload: Mapping[str, Any] | None
    embedding: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Hint:
    """One retrieved behavior for one game, with its retrieval score."""

    behavior: HintedBehavior
    score: float


@dataclass(frozen=True)
class Hints:
    """The behaviors retrieved for each of B games this step, best first.

    Games in the same situation get the same hints, so they come as a table: game b is in
    context ``contexts[b]``; row c of ``table`` (C, k) lists that context's hints as indexes
    into ``behaviors`` (-1 where fewer were found), with their ``scores`` (C, k).
    """

    contexts: np.ndarray
    table: np.ndarray
    scores: np.ndarray
    behaviors: Sequence[HintedBehavior]

    @property
    def rows(self) -> np.ndarray:
        """(B, k): each game's hints, as indexes into ``behaviors``."""
        return self.table[self.contexts]

    def take(self, games: np.ndarray) -> Hints:
        """The hints of a subset of the games (for a population's members)."""
        return Hints(self.contexts[games], self.table, self.scores, self.behaviors)

    def of_game(self, game: int) -> list[Hint]:
        """One game's hints as records, best first (for agents that read them one by one)."""
        context = int(self.contexts[game])
        return [Hint(self.behaviors[int(i)], float(s))
                for i, s in zip(self.table[context], self.scores[context]) if i >= 0]


class Tracker(Protocol):
    """What one seat has seen in each of B games, as memory needs it (made by a Domain)."""

    def contexts(self) -> tuple[np.ndarray, Sequence[Context]]:
        """(B,) each game's index into the returned distinct contexts. A tracker that
        returns the very same sequence again lets memory reuse the retrieval it made."""
        ...

    def observe(self, step: Mapping[str, np.ndarray], active: np.ndarray) -> None:
        """After a step: the env family's record of it (e.g. ``joint_actions``), and the
        games (B,) still running after it."""
        ...

    def credit(self, lengths: np.ndarray) -> list[str]:
        """Per game, once it has ended: the entity its return is credited to in the
        behaviors' effect statistics (e.g. ``coplayer:reciprocator``)."""
        ...


class Domain(Protocol):
    """One env family's semantics for memory: how to describe a seat's situation."""

    def tracker(self, *, agent: str, seat: int, num_games: int,
                horizon: int | None) -> Tracker:
        """A fresh tracker for one seat of a batch of games; ``agent`` names whoever sits
        there (a population's seat is named by its role); ``horizon``: the episodes'
        length, when it is fixed or bounded."""
        ...
