"""Strategies from the iterated prisoner's dilemma literature (Axelrod's tournaments and
after), most of them deciding on more than the last round. No bundled population or
training scenario uses them: they are the co-players a reuse study holds out
(``scenarios/data/reuse/``), so that what memory learned is tried on strategies it never met.

Each is a function of the history (``agents.HistoryAgent``), except gradual, which keeps its
punishment state. Action 0 is to cooperate, 1 to defect.
"""

from __future__ import annotations

import numpy as np

from agents.base import AgentContext
from agents.history import History, HistoryAgent
from coplay.step import Hints

JOSS_DEFECTION = 0.1  # Joss defects this often where tit-for-tat would cooperate


def two_tits_for_tat(history: History, rng: np.random.Generator) -> np.ndarray:
    """Defects while the co-player defected in either of the last two rounds."""
    return (history.theirs[:, -2:] == 1).any(axis=1).astype(np.int64)


def hard_tit_for_tat(history: History, rng: np.random.Generator) -> np.ndarray:
    """Defects while the co-player defected in any of the last three rounds."""
    return (history.theirs[:, -3:] == 1).any(axis=1).astype(np.int64)


def suspicious_tit_for_tat(history: History, rng: np.random.Generator) -> np.ndarray:
    """Defects first, then copies the co-player's last move."""
    if history.rounds == 0:
        return np.ones(history.own.shape[0], dtype=np.int64)
    return history.theirs[:, -1].astype(np.int64)


def hard_majority(history: History, rng: np.random.Generator) -> np.ndarray:
    """Defects unless the co-player has cooperated more often than it defected (so it
    defects first)."""
    defections = history.theirs.sum(axis=1)
    return (defections >= history.rounds - defections).astype(np.int64)


def soft_majority(history: History, rng: np.random.Generator) -> np.ndarray:
    """Cooperates while the co-player has cooperated at least as often as it defected."""
    defections = history.theirs.sum(axis=1)
    return (defections > history.rounds - defections).astype(np.int64)


def prober(history: History, rng: np.random.Generator) -> np.ndarray:
    """Defects, then cooperates twice; if the co-player cooperated in the second and third
    rounds it never retaliates, so it is exploited for good; otherwise tit-for-tat."""
    games = history.own.shape[0]
    if history.rounds < 3:
        return np.full(games, 1 if history.rounds == 0 else 0, dtype=np.int64)
    exploitable = (history.theirs[:, 1] == 0) & (history.theirs[:, 2] == 0)
    return np.where(exploitable, 1, history.theirs[:, -1]).astype(np.int64)


def joss(history: History, rng: np.random.Generator) -> np.ndarray:
    """Tit-for-tat that sneaks in a defection one time in ten where it would cooperate."""
    games = history.own.shape[0]
    copied = history.theirs[:, -1] if history.rounds else np.zeros(games, dtype=np.int8)
    return ((copied == 1) | (rng.random(games) < JOSS_DEFECTION)).astype(np.int64)


def alternator(history: History, rng: np.random.Generator) -> np.ndarray:
    """Cooperates, defects, cooperates, ... whatever the co-player does."""
    return np.full(history.own.shape[0], history.rounds % 2, dtype=np.int64)


def cycler_ccd(history: History, rng: np.random.Generator) -> np.ndarray:
    """Cooperates twice, defects once, and again, whatever the co-player does."""
    return np.full(history.own.shape[0], int(history.rounds % 3 == 2), dtype=np.int64)


class Gradual:
    """Beaufils, Delahaye and Mathieu's gradual: after the co-player's n-th defection it
    defects n times, then cooperates twice to calm things down; otherwise it cooperates."""

    def __init__(self) -> None:
        self._defections = np.zeros(0, dtype=np.int64)
        self._punish = np.zeros(0, dtype=np.int64)
        self._calm = np.zeros(0, dtype=np.int64)

    def reset(self, num_games: int, rng: np.random.Generator) -> None:
        self._defections = np.zeros(num_games, dtype=np.int64)
        self._punish = np.zeros(num_games, dtype=np.int64)
        self._calm = np.zeros(num_games, dtype=np.int64)

    def act(self, observations: np.ndarray, hints: Hints | None = None) -> np.ndarray:
        # The token is 1 + 2 * own + theirs for the round just played, 0 before the first.
        theirs_defected = (observations > 0) & ((observations - 1) % 2 == 1)
        self._defections += theirs_defected
        punishing, calming = self._punish > 0, (self._punish == 0) & (self._calm > 0)
        fresh = ~punishing & ~calming & theirs_defected
        # A fresh defection starts n punishments, this round's included.
        self._punish = np.where(fresh, self._defections, self._punish)
        defect = self._punish > 0
        self._punish = np.where(defect, self._punish - 1, self._punish)
        self._calm = np.where(defect & (self._punish == 0), 2,
                              np.where(calming, self._calm - 1, self._calm))
        return defect.astype(np.int64)


def _history_builder(decide):
    def build(context: AgentContext) -> HistoryAgent:
        return HistoryAgent(decide, horizon=context.horizon)
    return build


build_two_tits_for_tat = _history_builder(two_tits_for_tat)
build_hard_tit_for_tat = _history_builder(hard_tit_for_tat)
build_suspicious_tit_for_tat = _history_builder(suspicious_tit_for_tat)
build_hard_majority = _history_builder(hard_majority)
build_soft_majority = _history_builder(soft_majority)
build_prober = _history_builder(prober)
build_joss = _history_builder(joss)
build_alternator = _history_builder(alternator)
build_cycler_ccd = _history_builder(cycler_ccd)


def build_gradual(context: AgentContext) -> Gradual:
    return Gradual()
