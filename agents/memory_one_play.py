"""Exact play of memory-one strategies, without sampling: what two of them earn against each
other, and the best reply to one.

A trained learner's play, summarised as a memory-one strategy (the ``responses`` that
``coplay eval`` measures), can be put through these to ask whether each learner's play is a
best reply to the other's: the question behind one learner exploiting a forgiving other.

Tables are memory-one tables as in ``agents.coplayers``: the probability of cooperating at the
start, then after CC, CD, DC, DD, each seen by the strategy's own player (own move first).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agents.coplayers import probability_table
from coplay.errors import ConfigError
from envs import Payoffs


def _coplayer_after_our_outcomes(coplayer: np.ndarray) -> np.ndarray:
    """The co-player's chance of cooperating after each of our outcomes CC, CD, DC, DD: it sees
    each with the moves swapped (our CD is its DC)."""
    return coplayer[1:][[0, 2, 1, 3]]


def _after_each_outcome(own: np.ndarray, coplayer: np.ndarray) -> np.ndarray:
    """(4, 4) transition matrix over joint outcomes, own move first, of the player of ``own``."""
    p_own, p_theirs = own[1:], _coplayer_after_our_outcomes(coplayer)
    transitions = np.empty((4, 4))
    for outcome in range(4):
        mine = np.array([p_own[outcome], 1.0 - p_own[outcome]])
        theirs = np.array([p_theirs[outcome], 1.0 - p_theirs[outcome]])
        transitions[outcome] = np.outer(mine, theirs).ravel()
    return transitions


def rewards_per_step(first: Sequence[float], second: Sequence[float], payoffs: Payoffs,
                     *, rounds: int) -> tuple[float, float]:
    """Each strategy's expected reward per step over a game of ``rounds`` rounds, ``first``
    in seat 0."""
    if rounds < 1:
        raise ConfigError("rounds", expected="a positive number of rounds", got=repr(rounds))
    first = probability_table(first, "first")
    second = probability_table(second, "second")
    rewards = payoffs.table.reshape(4, 2)  # outcome CC, CD, DC, DD (seat 0's move first)
    outcome = np.outer([first[0], 1 - first[0]], [second[0], 1 - second[0]]).ravel()
    transitions = _after_each_outcome(first, second)
    total = np.zeros(2)
    for _ in range(rounds):
        total += outcome @ rewards
        outcome = outcome @ transitions
    return float(total[0] / rounds), float(total[1] / rounds)


def best_reply_margins(coplayer: Sequence[float], payoffs: Payoffs, *, gamma: float,
                       tolerance: float = 1e-10) -> np.ndarray:
    """For the best reply (in seat 0) to a memory-one co-player, in a game discounted by
    ``gamma`` that never ends: how much more cooperating earns than defecting after each joint
    outcome CC, CD, DC, DD of the round before (own move first). Positive: the best reply
    cooperates there. Found by value iteration over the four outcomes."""
    if not 0.0 <= gamma < 1.0:
        raise ConfigError("gamma", expected="a discount in [0, 1)", got=repr(gamma))
    coplayer = probability_table(coplayer, "coplayer")
    p_theirs = _coplayer_after_our_outcomes(coplayer)
    own_reward = payoffs.table[..., 0]  # [own move, their move]
    cooperates, defects = p_theirs, 1.0 - p_theirs
    values = np.zeros(4)
    while True:
        # q[outcome, move]: reward now, then the value of the outcome this round makes.
        q = np.empty((4, 2))
        for move in (0, 1):
            q[:, move] = (cooperates * (own_reward[move, 0] + gamma * values[2 * move])
                          + defects * (own_reward[move, 1] + gamma * values[2 * move + 1]))
        updated = q.max(axis=1)
        if np.max(np.abs(updated - values)) < tolerance:
            return q[:, 0] - q[:, 1]
        values = updated


__all__ = ["best_reply_margins", "rewards_per_step"]
