"""``kind: handbook_follower``: an agent that plays the behaviors memory hands it.

Each round, in each game, it follows the best-ranked hint it can execute (a response rule or
an action macro) and reports that in ``hint_used``; where no hint is executable it plays its
fallback strategy. It is how a scenario tests what a handbook has learned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agents.base import AgentContext
from coplay.errors import ConfigError
from coplay.step import HintedBehavior, Hints
from envs import TOKEN_NAMES as RULE_KEYS

FALLBACKS = {
    "tit_for_tat": (1.0, 1.0, 0.0, 1.0, 0.0),
    "cooperate": (1.0,) * 5,
    "defect": (0.0,) * 5,
    "random": (0.5,) * 5,
}


class HandbookFollower:
    """One uniform draw per game and round decides its action, whatever it plays: a
    response rule, its fallback (a memory-one table), or, for an action macro, nothing."""

    def __init__(self, fallback: str = "tit_for_tat") -> None:
        if fallback not in FALLBACKS:
            raise ConfigError("fallback", expected=f"one of {sorted(FALLBACKS)}", got=repr(fallback))
        self._fallback = np.array(FALLBACKS[fallback])  # P(cooperate) per observation token
        # A 0/1 fallback needs no comparison with the draws: its action is a lookup.
        certain = bool(np.all((self._fallback == 0) | (self._fallback == 1)))
        self._fallback_actions = (self._fallback == 0).astype(np.int64) if certain else None
        self._rng = np.random.default_rng()
        self._round = 0
        self.hint_used = np.zeros(0, dtype=np.int64)
        self._plan_now: _Plan | None = None

    def reset(self, num_games: int, rng: np.random.Generator) -> None:
        self._rng = rng
        self._round = 0
        self.hint_used = np.full(num_games, -1, dtype=np.int64)

    def act(self, observations: np.ndarray, hints: Hints | None = None) -> np.ndarray:
        draws = self._rng.random(observations.shape[0])
        self._round += 1
        if hints is None or not hints.behaviors:
            self.hint_used = np.full(observations.shape[0], -1, dtype=np.int64)
            if self._fallback_actions is not None:
                return self._fallback_actions.take(observations)
            return (draws >= self._fallback.take(observations)).astype(np.int64)
        plan = self._plan(hints)
        self.hint_used = plan.pick.take(hints.contexts)
        p_cooperate = plan.cooperate.take(hints.contexts * plan.tokens + observations)
        actions = (draws >= p_cooperate).astype(np.int64)
        if plan.macros is not None:
            macro = plan.macros[hints.contexts]
            length = np.maximum((macro >= 0).sum(axis=1), 1)
            macro_action = macro[np.arange(len(macro)), (self._round - 1) % length]
            actions = np.where(np.isnan(p_cooperate), macro_action, actions)
        return actions

    def _plan(self, hints: Hints) -> _Plan:
        """What to do in each context, worked out once per table rather than for every
        game every round."""
        plan = self._plan_now
        # Compared by reference (not id), so that a new table can never pass for the old one.
        if plan is None or plan.table is not hints.table or plan.behaviors is not hints.behaviors:
            plan = self._plan_now = _Plan.of(hints, self._fallback)
        return plan


def executable_arrays(behaviors: Sequence[HintedBehavior]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The behaviors in the bulk form this agent executes, each with a last sentinel row that
    hints of -1 pick: whether each can be played (never the sentinel), a response rule's
    chance of cooperating per observation token (NaN for other kinds), and an action
    macro's actions (-1 padding)."""
    rows = len(behaviors) + 1
    executable = np.zeros(rows, dtype=bool)
    cooperate = np.full((rows, len(RULE_KEYS)), np.nan)
    width = max([len(b.payload["actions"]) for b in behaviors if b.kind == "action_macro"],
                default=0)
    macros = np.full((rows, width), -1, dtype=np.int64)
    for row, behavior in enumerate(behaviors):
        if behavior.kind == "response_rule":
            cooperate[row] = [behavior.payload["cooperate"][key] for key in RULE_KEYS]
        elif behavior.kind == "action_macro":
            actions = behavior.payload["actions"]
            macros[row, : len(actions)] = actions
        executable[row] = behavior.kind in ("response_rule", "action_macro")
    return executable, cooperate, macros


@dataclass(frozen=True)
class _Plan:
    """Per context: ``pick``, the position of its best executable hint (-1: none);
    ``cooperate`` (contexts * tokens,), by context and observation token, the chance of
    cooperating under the picked response rule or, with no pick, the fallback; NaN where
    an action macro is picked; ``macros`` the picked macro's actions per context, if any
    context picks one. ``table`` and ``behaviors`` are the hints it was made from."""

    table: np.ndarray
    behaviors: Sequence[HintedBehavior]
    pick: np.ndarray
    cooperate: np.ndarray
    tokens: int
    macros: np.ndarray | None

    @classmethod
    def of(cls, hints: Hints, fallback: np.ndarray) -> _Plan:
        can_play, rules, all_macros = executable_arrays(hints.behaviors)
        executable = can_play[hints.table]
        pick = np.where(executable.any(axis=1), executable.argmax(axis=1), -1)
        row = hints.table[np.arange(len(pick)), np.maximum(pick, 0)]
        row = np.where(pick >= 0, row, -1)  # the sentinel row
        cooperate = np.where((pick >= 0)[:, None], rules[row], fallback[None, :])
        has_macro = (pick >= 0) & np.isnan(cooperate).any(axis=1)
        macros = all_macros[row] if has_macro.any() else None
        return cls(hints.table, hints.behaviors, pick, cooperate.ravel(), rules.shape[1], macros)


def build_handbook_follower(context: AgentContext, *, fallback: str = "tit_for_tat") -> HandbookFollower:
    return HandbookFollower(fallback)
