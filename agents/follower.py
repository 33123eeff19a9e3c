"""``kind: handbook_follower``: an agent that plays the behaviors memory hands it.

Each round, in each game, it follows the best-ranked hint it can execute (a response rule or
an action macro) and reports that in ``hint_used``; where no hint is executable it plays its
fallback strategy. It is how a scenario tests what a handbook has learned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.base import AgentContext, Hints, register_kind
from agents.coplayers import MemoryOneAgent
from coplay.errors import ConfigError

FALLBACKS = {
    "tit_for_tat": (1.0, 1.0, 0.0, 1.0, 0.0),
    "cooperate": (1.0,) * 5,
    "defect": (0.0,) * 5,
    "random": (0.5,) * 5,
}


class HandbookFollower:
    def __init__(self, fallback: str = "tit_for_tat") -> None:
        if fallback not in FALLBACKS:
            raise ConfigError("fallback", expected=f"one of {sorted(FALLBACKS)}", got=repr(fallback))
        self._fallback = MemoryOneAgent(np.array(FALLBACKS[fallback]))
        self._rng = np.random.default_rng()
        self._round = 0
        self.hint_used = np.zeros(0, dtype=np.int64)
        self._table: np.ndarray | None = None
        self._executable: np.ndarray | None = None
        self._plan_now: _Plan | None = None

    def reset(self, num_games: int, rng: np.random.Generator) -> None:
        fallback_rng, self._rng = rng.spawn(2)
        self._fallback.reset(num_games, fallback_rng)
        self._round = 0
        self.hint_used = np.full(num_games, -1, dtype=np.int64)

    def act(self, observations: np.ndarray, hints: Hints | None = None) -> np.ndarray:
        actions = self._fallback.act(observations)
        # One uniform draw per game every round, used or not, keeps the stream aligned.
        draws = self._rng.random(observations.shape[0])
        self._round += 1
        if hints is None or not hints.behaviors:
            self.hint_used = np.full(observations.shape[0], -1, dtype=np.int64)
            return actions
        plan = self._plan(hints)
        self.hint_used = plan.pick.take(hints.contexts)
        p_cooperate = plan.cooperate.take(hints.contexts * plan.tokens + observations)
        followed = np.where(p_cooperate >= 0, draws >= p_cooperate, actions)
        if plan.macros is not None:
            macro = plan.macros[hints.contexts]
            length = np.maximum((macro >= 0).sum(axis=1), 1)
            macro_action = macro[np.arange(len(macro)), (self._round - 1) % length]
            followed = np.where(np.isnan(p_cooperate), macro_action, followed)
        return followed

    def _plan(self, hints: Hints) -> _Plan:
        """What to do in each context, worked out once per table rather than for every
        game every round."""
        # Kept by reference (not id), so that a new table can never pass for the old one.
        if self._table is not hints.table or self._executable is not hints.executable:
            self._plan_now = _Plan.of(hints)
            self._table, self._executable = hints.table, hints.executable
        return self._plan_now


@dataclass(frozen=True)
class _Plan:
    """Per context: ``pick``, the position of its best executable hint (-1: none);
    ``cooperate`` (contexts * tokens,), by context and observation token, the picked
    response rule's chance of cooperating, NaN for a macro, -1 for no hint (the fallback
    plays); ``macros`` the picked macro's actions per context, if any context picks one."""

    pick: np.ndarray
    cooperate: np.ndarray
    tokens: int
    macros: np.ndarray | None

    @classmethod
    def of(cls, hints: Hints) -> _Plan:
        executable = hints.executable[hints.table]
        pick = np.where(executable.any(axis=1), executable.argmax(axis=1), -1)
        row = hints.table[np.arange(len(pick)), np.maximum(pick, 0)]
        row = np.where(pick >= 0, row, -1)  # the sentinel row
        cooperate = np.where((pick >= 0)[:, None], hints.cooperate[row], -1.0)
        has_macro = (pick >= 0) & np.isnan(cooperate).any(axis=1)
        macros = hints.macros[row] if has_macro.any() else None
        return cls(pick, cooperate.ravel(), hints.cooperate.shape[1], macros)


@register_kind(
    "handbook_follower",
    "Plays the best-ranked executable behavior (response rule or action macro) that memory "
    "retrieves for it; fallback: tit_for_tat (default), cooperate, defect or random.",
)
def build_handbook_follower(context: AgentContext, *, fallback: str = "tit_for_tat") -> HandbookFollower:
    return HandbookFollower(fallback)
