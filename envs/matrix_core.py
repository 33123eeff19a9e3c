"""Two-player iterated matrix games, B games advanced by one array operation per round.

This module is the single statement of the game's rules: what each joint action pays and shows
(``joint_outcomes``), and how long each game lasts (``draw_lengths``). Training and fast
simulation step ``MatrixGameBatch`` directly; the PettingZoo facade (``envs.matrix_env``) plays
one game in plain Python from the same two functions.

Layouts are player-major: ``actions``, ``observations`` and ``rewards`` have shape (2, B),
row 0 for ``player_0``. Action 0 is cooperate, 1 is defect. An observation is one of five
first-person tokens: 0 at the start, else ``1 + 2 * own_previous + other_previous``, i.e.
1=CC, 2=CD, 3=DC, 4=DD with the observer's own action first. No token says who the
co-player is.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coplay.errors import ConfigError

COOPERATE = 0
DEFECT = 1
START = 0
NUM_TOKENS = 5
NUM_ACTIONS = 2
TOKEN_NAMES = ("start", "CC", "CD", "DC", "DD")


def token_of(own: np.ndarray, other: np.ndarray) -> np.ndarray:
    """The observation token for a player whose last action was ``own`` against ``other``."""
    return 1 + 2 * own + other


@dataclass(frozen=True)
class Payoffs:
    """Payoffs of a two-player, two-action game: ``table[a0, a1] = (r0, r1)``."""

    table: np.ndarray

    def __post_init__(self) -> None:
        table = np.asarray(self.table, dtype=np.float64)
        if table.shape != (2, 2, 2):
            raise ConfigError(
                "payoffs", expected="a 2x2x2 table, table[a0][a1] = [r0, r1]",
                got=f"shape {table.shape}",
                fix="Give R/S/T/P for a symmetric game or the full table.",
            )
        if not np.all(np.isfinite(table)):
            raise ConfigError(
                "payoffs", expected="finite numbers", got=f"{table.tolist()}",
            )
        table.setflags(write=False)
        object.__setattr__(self, "table", table)

    @classmethod
    def symmetric(cls, *, R: float, S: float, T: float, P: float) -> Payoffs:
        """Reward, Sucker, Temptation, Punishment, as for the prisoner's dilemma."""
        return cls(np.array([[[R, R], [S, T]], [[T, S], [P, P]]], dtype=np.float64))

    @classmethod
    def parse(cls, spec: Any, *, where: str = "payoffs") -> Payoffs:
        """Payoffs from a scenario value: ``{R, S, T, P}``, a 2x2 row-player table
        (symmetric game), or a full 2x2x2 table."""
        if isinstance(spec, Payoffs):
            return spec
        if isinstance(spec, dict):
            if set(spec) != {"R", "S", "T", "P"}:
                raise ConfigError(
                    where, expected="the keys R, S, T, P",
                    got=f"keys {sorted(map(str, spec))}",
                    fix="Write e.g. {R: 3, S: 0, T: 5, P: 1}.",
                )
            values = {k: _finite_number(v, f"{where}.{k}") for k, v in spec.items()}
            return cls.symmetric(**values)
        try:
            table = np.asarray(spec, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(
                where, expected="R/S/T/P or a nested list of numbers", got=repr(spec)
            ) from None
        if table.shape not in ((2, 2), (2, 2, 2)):
            raise ConfigError(
                where,
                expected="a 2x2 row-player table or a 2x2x2 table [a0][a1] = [r0, r1]",
                got=f"a table of shape {table.shape}",
                fix="Give 2 actions per player: cooperate first, then defect.",
            )
        if not np.all(np.isfinite(table)):
            raise ConfigError(where, expected="finite numbers", got=f"{table.tolist()}")
        if table.shape == (2, 2):
            table = np.stack([table, table.T], axis=-1)
        return cls(table)

    def as_rstp(self) -> dict[str, float] | None:
        """R/S/T/P if the game is symmetric, else None."""
        t = self.table
        if not np.array_equal(t[..., 0], t[..., 1].T):
            return None
        return {"R": t[0, 0, 0], "S": t[0, 1, 0], "T": t[1, 0, 0], "P": t[1, 1, 0]}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Payoffs) and np.array_equal(self.table, other.table)

    def __hash__(self) -> int:
        return hash(self.table.tobytes())


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _finite_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ConfigError(where, expected="a finite number", got=repr(value))
    return float(value)


@dataclass(frozen=True, kw_only=True)
class MatrixGameConfig:
    """Everything that defines one iterated matrix game. Rejects bad settings when built."""

    payoffs: Payoffs
    horizon: int = 100
    # When set, after each round the game goes on with this probability (capped at
    # ``horizon``), so agents cannot count down to a known last round.
    continuation_probability: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "payoffs", Payoffs.parse(self.payoffs))
        horizon = self.horizon
        if isinstance(horizon, bool) or not isinstance(horizon, numbers.Integral) or horizon < 1:
            raise ConfigError(
                "env.horizon", expected="a whole number of rounds >= 1", got=repr(horizon)
            )
        object.__setattr__(self, "horizon", int(horizon))
        p = self.continuation_probability
        if p is not None and not (
            isinstance(p, numbers.Real) and not isinstance(p, bool) and 0.0 < p < 1.0
        ):
            raise ConfigError(
                "env.continuation_probability",
                expected="a probability strictly between 0 and 1, or null for a fixed horizon",
                got=repr(p),
            )


def joint_outcomes(payoffs: Payoffs) -> tuple[np.ndarray, np.ndarray]:
    """What each joint action ``j = 2 * a0 + a1`` pays and shows: rewards (2, 4) float64 and
    first-person tokens (2, 4) int64, row 0 for ``player_0``."""
    table = payoffs.table
    rewards = np.stack([table[:, :, 0].ravel(), table[:, :, 1].ravel()])
    joint = np.arange(4)
    a0, a1 = joint // 2, joint % 2
    return rewards, np.stack([token_of(a0, a1), token_of(a1, a0)])


def draw_lengths(
    config: MatrixGameConfig, rng: np.random.Generator, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each of ``size`` games' length in rounds, and whether it ends by chance (terminated)
    rather than by reaching the horizon (truncated). A fixed horizon draws nothing from ``rng``."""
    horizon = config.horizon
    p = config.continuation_probability
    if p is None:
        return np.full(size, horizon, dtype=np.int64), np.zeros(size, dtype=bool)
    drawn = rng.geometric(1.0 - p, size=size)
    return np.minimum(drawn, horizon), drawn <= horizon


@dataclass
class RoundResult:
    """What one round returns, player-major: arrays of shape (2, B) or (B,)."""

    observations: np.ndarray  # (2, B) int64 tokens
    rewards: np.ndarray  # (2, B) float64; zero for games that had already ended
    terminated: np.ndarray  # (B,) bool: the game ended by chance this round
    truncated: np.ndarray  # (B,) bool: the game reached the horizon this round
    active: np.ndarray  # (B,) bool: the game was still running this round


@dataclass
class MatrixGameBatch:
    """B independent games of one ``MatrixGameConfig``, stepped in lockstep.

    With a fixed horizon every game ends together. With a continuation probability each game
    draws its length at ``reset``; the batch runs until the longest ends, and games that have
    ended return zero reward and ``active=False`` until then.
    """

    config: MatrixGameConfig
    batch_size: int
    round: int = field(init=False, default=0)
    # Rounds until every game of the current batch has ended (the longest game's length).
    max_rounds: int = field(init=False, default=0)
    lengths: np.ndarray = field(init=False, repr=False)
    ended_by_chance: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError("batch_size", expected="at least 1 game", got=str(self.batch_size))
        self._reward_table, self._token_table = joint_outcomes(self.config.payoffs)
        self.lengths = np.full(self.batch_size, self.config.horizon, dtype=np.int64)
        self.ended_by_chance = np.zeros(self.batch_size, dtype=bool)
        # With a fixed horizon the per-game flags are the same every round: share read-only
        # arrays instead of computing them, which matters for small batches.
        self._all_false = _read_only(np.zeros(self.batch_size, dtype=bool))
        self._all_true = _read_only(np.ones(self.batch_size, dtype=bool))

    def reset(self, rng: np.random.Generator) -> np.ndarray:
        """Start B new games; returns the start observations, shape (2, B)."""
        self.round = 0
        self.lengths, self.ended_by_chance = draw_lengths(self.config, rng, self.batch_size)
        self.max_rounds = int(self.lengths.max())
        return np.zeros((2, self.batch_size), dtype=np.int64)

    def step(self, actions: np.ndarray) -> RoundResult:
        """Play one round. ``actions``: (2, B) of 0 (cooperate) / 1 (defect)."""
        if self.round >= self.max_rounds:
            raise ConfigError(
                "MatrixGameBatch.step",
                expected="a batch with games still running",
                got=f"round {self.round} of {self.max_rounds}",
                fix="Call reset() to start new games.",
            )
        joint = actions[0] * 2 + actions[1]
        rewards = self._reward_table[:, joint]
        observations = self._token_table[:, joint]
        self.round += 1
        if self.config.continuation_probability is None:
            last = self.round == self.config.horizon
            return RoundResult(
                observations=observations,
                rewards=rewards,
                terminated=self._all_false,
                truncated=self._all_true if last else self._all_false,
                active=self._all_true,
            )
        active = self.lengths >= self.round
        rewards = rewards * active
        ends_now = self.lengths == self.round
        return RoundResult(
            observations=observations,
            rewards=rewards,
            terminated=ends_now & self.ended_by_chance,
            truncated=ends_now & ~self.ended_by_chance,
            active=active,
        )
