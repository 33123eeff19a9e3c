"""Scripted co-players for iterated matrix games: memory-one tables and the classic strategies.

A memory-one strategy is five probabilities of cooperating: at the start, and after each of
the observer's tokens CC, CD, DC, DD (own action first). Most classics are such tables; the
ones that remember longer (grim trigger, tit for two tats) keep one bit of state per game.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agents.base import AgentContext
from coplay.errors import ConfigError
from coplay.step import Hints
from envs import COOPERATE, DEFECT, START, Payoffs

# Token index of each memory-one table entry: start, CC, CD, DC, DD.
TABLE_ENTRIES = ("start", "CC", "CD", "DC", "DD")


def coplayer_defected(observations: np.ndarray) -> np.ndarray:
    """True where the observer's last token says the co-player defected (CD or DD)."""
    return (observations != START) & ((observations - 1) % 2 == DEFECT)


class MemoryOneAgent:
    """Cooperates with probability ``table[token]``. With ``sample_uniform`` every game draws
    its own five probabilities from U(0, 1) at reset (a fresh tabular co-player per episode)."""

    def __init__(self, table: np.ndarray | None, *, sample_uniform: bool = False) -> None:
        if (table is None) == (not sample_uniform):
            raise ConfigError(
                "MemoryOneAgent", expected="either a table or sample_uniform=True",
                got=f"table={table!r}, sample_uniform={sample_uniform}",
            )
        self.table = None if table is None else probability_table(table, "MemoryOneAgent")
        self.sample_uniform = sample_uniform
        self.game_tables: np.ndarray = np.empty((0, 5))
        self._rng = np.random.default_rng()
        self._flat_offsets = np.empty(0, dtype=np.int64)
        deterministic = self.table is not None and bool(np.all((self.table == 0) | (self.table == 1)))
        # A 0/1 table needs no random draws: its action is a lookup.
        self._action_lookup = (self.table == 0).astype(np.int64) if deterministic else None

    def reset(self, num_games: int, rng: np.random.Generator) -> None:
        self._rng = rng
        if self.sample_uniform:
            self.game_tables = rng.random((num_games, 5))
            self._flat_offsets = np.arange(num_games, dtype=np.int64) * 5
        else:
            self.game_tables = np.broadcast_to(self.table, (num_games, 5))

    def act(self, observations: np.ndarray, hints: Hints | None = None) -> np.ndarray:
        if self._action_lookup is not None:
            return self._action_lookup[observations]
        if self.sample_uniform:
            p_cooperate = self.game_tables.ravel()[self._flat_offsets + observations]
        else:
            p_cooperate = self.table[observations]
        return (self._rng.random(observations.shape[0]) >= p_cooperate).astype(np.int64)


class GrimTrigger:
    """Cooperates until the co-player first defects, then defects for the rest of the game."""

    def __init__(self) -> None:
        self.triggered = np.zeros(0, dtype=bool)

    def reset(self, num_games: int, rng: np.random.Generator) -> None:
        self.triggered = np.zeros(num_games, dtype=bool)

    def act(self, observations: np.ndarray, hints: Hints | None = None) -> np.ndarray:
        self.triggered |= coplayer_defected(observations)
        return self.triggered.astype(np.int64)


class TitForTwoTats:
    """Defects only after the co-player defected in each of the last two rounds (memory two)."""

    def __init__(self) -> None:
        self.previous_defected = np.zeros(0, dtype=bool)

    def reset(self, num_games: int, rng: np.random.Generator) -> None:
        self.previous_defected = np.zeros(num_games, dtype=bool)

    def act(self, observations: np.ndarray, hints: Hints | None = None) -> np.ndarray:
        defected = coplayer_defected(observations)
        action = (defected & self.previous_defected).astype(np.int64)
        self.previous_defected = defected
        return action


def probability_table(values: object, where: str) -> np.ndarray:
    """``values`` as a checked memory-one table; a ConfigError naming ``where`` if it is not one."""
    try:
        table = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        table = np.empty(0)
    if table.shape != (5,):
        raise ConfigError(
            where,
            expected=f"5 probabilities of cooperating, for {list(TABLE_ENTRIES)}",
            got=repr(values),
        )
    if not np.all((table >= 0.0) & (table <= 1.0)):
        raise ConfigError(
            where, expected="probabilities in [0, 1]", got=repr(values),
            fix="Each entry is the probability of cooperating (0 = always defect).",
        )
    return table


def _symmetric_payoffs(payoffs: Payoffs, kind: str) -> dict[str, float]:
    rstp = payoffs.as_rstp()
    if rstp is None:
        raise ConfigError(
            "payoffs", expected=f"a symmetric game for {kind} (R/S/T/P payoffs)", got="an asymmetric table",
            fix="Give the strategy's parameters explicitly, or use kind: memory_one.",
        )
    return rstp


def extortionate_zd_table(
    payoffs: Payoffs, *, chi: float, phi_fraction: float, start_cooperation: float
) -> np.ndarray:
    """Press & Dyson's extortionate zero-determinant strategy, which enforces
    ``own_score - P = chi * (coplayer_score - P)``.

    From p - (1, 1, 0, 0) = phi * [(S_X - P) - chi * (S_Y - P)] with S_X = (R, S, T, P) and
    S_Y = (R, T, S, P); ``phi`` is ``phi_fraction`` of the largest value that keeps every
    entry a probability (for 3/0/5/1 and chi = 3 this gives their (11/13, 1/2, 7/26, 0)).
    """
    g = _symmetric_payoffs(payoffs, "extortionate_zd")
    R, S, T, P = g["R"], g["S"], g["T"], g["P"]
    if not (T > R > P > S) or chi < 1.0 or not (0.0 < phi_fraction <= 1.0):
        raise ConfigError(
            "params",
            expected=("for extortionate_zd a prisoner's dilemma (T > R > P > S), chi >= 1, "
                      "0 < phi_fraction <= 1"),
            got=f"R={R} S={S} T={T} P={P}, chi={chi}, phi_fraction={phi_fraction}",
        )
    # Each bound keeps one entry inside [0, 1]; chi == 1 leaves the first unbounded.
    bounds = [1.0 / (chi * (T - P) - (S - P)), 1.0 / ((T - P) - chi * (S - P))]
    if chi > 1.0:
        bounds.append(1.0 / ((chi - 1.0) * (R - P)))
    phi = phi_fraction * min(bounds)
    after = [
        1.0 - phi * (chi - 1.0) * (R - P),
        1.0 + phi * ((S - P) - chi * (T - P)),
        phi * ((T - P) - chi * (S - P)),
        0.0,
    ]
    return probability_table([start_cooperation, *after], "start_cooperation")


def _fixed(table: Sequence[float]) -> MemoryOneAgent:
    return MemoryOneAgent(np.asarray(table, dtype=np.float64))


def build_memory_one(context: AgentContext, *, table: list[float] | str) -> MemoryOneAgent:
    if table == "uniform":
        return MemoryOneAgent(None, sample_uniform=True)
    return MemoryOneAgent(probability_table(table, "table"))


def build_always_cooperate(context: AgentContext) -> MemoryOneAgent:
    return _fixed([1, 1, 1, 1, 1])


def build_always_defect(context: AgentContext) -> MemoryOneAgent:
    return _fixed([0, 0, 0, 0, 0])


def build_random(context: AgentContext, *, p_cooperate: float = 0.5) -> MemoryOneAgent:
    return MemoryOneAgent(probability_table([p_cooperate] * 5, "p_cooperate"))


def build_tit_for_tat(context: AgentContext) -> MemoryOneAgent:
    return _fixed([1, 1, 0, 1, 0])


def build_generous_tit_for_tat(
    context: AgentContext, *, generosity: float | None = None
) -> MemoryOneAgent:
    if generosity is None:
        g = _symmetric_payoffs(context.matrix_payoffs("generous_tit_for_tat"), "generous_tit_for_tat")
        R, S, T, P = g["R"], g["S"], g["T"], g["P"]
        generosity = float(np.clip(min(1 - (T - R) / (R - S), (R - P) / (T - P)), 0.0, 1.0))
    table = probability_table([1, 1, generosity, 1, generosity], "generosity")
    return MemoryOneAgent(table)


def build_win_stay_lose_shift(context: AgentContext) -> MemoryOneAgent:
    return _fixed([1, 1, 0, 0, 1])


def build_grim_trigger(context: AgentContext) -> GrimTrigger:
    return GrimTrigger()


def build_tit_for_two_tats(context: AgentContext) -> TitForTwoTats:
    return TitForTwoTats()


def build_extortionate_zd(
    context: AgentContext, *, chi: float = 3.0, phi_fraction: float = 0.5,
    start_cooperation: float = 1.0,
) -> MemoryOneAgent:
    return MemoryOneAgent(extortionate_zd_table(
        context.matrix_payoffs("extortionate_zd"), chi=chi, phi_fraction=phi_fraction,
        start_cooperation=start_cooperation,
    ))


__all__ = [
    "COOPERATE",
    "DEFECT",
    "TABLE_ENTRIES",
    "GrimTrigger",
    "MemoryOneAgent",
    "TitForTwoTats",
    "coplayer_defected",
    "extortionate_zd_table",
    "probability_table",
]
