"""A population of co-players that takes one seat: each game draws its member at reset."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agents.base import Agent
from coplay.errors import ConfigError
from coplay.step import Hints


@dataclass(frozen=True)
class Member:
    name: str
    agent: Agent
    weight: float


class Population:
    """Plays as one batched agent; ``assignment[g]`` is the index of game g's member.

    Members are drawn per game with probability proportional to their weights, so a batch of
    B episodes is B independent draws. Each member then plays only its own games.
    """

    def __init__(self, members: Sequence[Member]) -> None:
        if not members:
            raise ConfigError("population", expected="at least one member", got="none")
        given = [m.weight for m in members]
        numeric = all(isinstance(w, numbers.Real) and not isinstance(w, bool) for w in given)
        weights = np.array(given, dtype=np.float64) if numeric else np.array([np.nan])
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
            raise ConfigError(
                "population.weight", expected="non-negative numbers with a positive sum",
                got=str(given),
            )
        self.members = list(members)
        self.probabilities = weights / weights.sum()
        self.assignment = np.zeros(0, dtype=np.int64)
        self.hint_used = np.zeros(0, dtype=np.int64)
        self._games_of: list[np.ndarray] = []

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]

    def reset(self, num_games: int, rng: np.random.Generator) -> None:
        self.assignment = rng.choice(len(self.members), size=num_games, p=self.probabilities)
        self._games_of = [np.flatnonzero(self.assignment == i) for i in range(len(self.members))]
        # Each member draws from its own stream so adding a member leaves the others' draws alone.
        member_rngs = rng.spawn(len(self.members))
        for member, games, member_rng in zip(self.members, self._games_of, member_rngs):
            member.agent.reset(len(games), member_rng)

    def act(self, observations: np.ndarray, hints: Hints | None = None) -> np.ndarray:
        actions = np.empty(observations.shape[0], dtype=np.int64)
        self.hint_used = np.full(observations.shape[0], -1, dtype=np.int64)
        for member, games in zip(self.members, self._games_of):
            if games.size:
                member_hints = None if hints is None else hints.take(games)
                actions[games] = member.agent.act(observations[games], member_hints)
                used = getattr(member.agent, "hint_used", None)
                if used is not None:
                    self.hint_used[games] = used
        return actions

    def observe(self, rewards: np.ndarray, active: np.ndarray) -> None:
        for member, games in zip(self.members, self._games_of):
            observe = getattr(member.agent, "observe", None)
            if observe is not None and games.size:
                observe(rewards[games], active[games])
