"""The matrix-game domain: how a seat in an iterated matrix game is described to memory.

A seat's context is what it has seen: the phase of the game, the last joint action, and the
type its co-player has shown so far (``COPLAYER_TYPES``), plus the scenario, env, the agent's
own name and whether the opening is over as graph entities. There are ``CONTEXTS`` such contexts per agent.

``MatrixTracker`` is the general path of the step contract (``coplay.step``): it counts
what each game's co-player did and names each game's context. ``matrix_fast`` computes the
same with precomputed tables and compiled loops; a test holds the two equal.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np

from coplay.step import Context
from scenarios.domains.matrix_kernels import advance_answers

COPLAYER_TYPES = ("unknown", "cooperator", "defector", "reciprocator", "mixed", "unresponsive")
PHASES = ("opening", "middle", "endgame")
PHASE_ROUNDS = 5  # the opening and the endgame are this many rounds long
# The phase entity a context names: a co-player's type is only read once the opening is over
# (until then it has answered too few moves), so responses to a type apply after it.
AFTER_OPENING = "after the opening"
STAGES = {"opening": "opening", "middle": AFTER_OPENING, "endgame": AFTER_OPENING}
LAST_ROUND = (
    "nothing has been played yet",
    "we both cooperated",
    "I cooperated and the co-player defected",
    "I defected and the co-player cooperated",
    "we both defected",
)
CONTEXTS = len(COPLAYER_TYPES) * len(LAST_ROUND) * len(PHASES)


def coplayer_type(after_c: np.ndarray, cooperated_after_c: np.ndarray, after_d: np.ndarray,
                  cooperated_after_d: np.ndarray, rounds: np.ndarray | int) -> np.ndarray:
    """Index into COPLAYER_TYPES from how a co-player has answered the observer so far: the
    rounds that followed an observer's cooperation and those in which it cooperated, the
    same after an observer's defection, and the rounds seen. Counts rather than rates, so
    the runner can apply the same rule online, every round, without dividing.

    A co-player that has only been cooperated with, and cooperated back, may reciprocate or
    cooperate whatever happens: nothing seen tells them apart, so it counts as a
    reciprocator, the type it is safe to assume. It shows itself a cooperator only by
    cooperating on after the observer defected, at least twice. One that cooperates about as often after
    either move is unresponsive: what the observer does does not change what it does."""
    rounds = np.asarray(rounds)
    answered = after_c + after_d
    # Thresholds in whole numbers (0.7 as 10x >= 7n, ...): exact, as the compiled fast path
    # (``matrix_kernels``) computes them too.
    kind = np.full(np.broadcast(after_c, rounds).shape, 4)  # mixed
    # unresponsive: |P(C | own C) - P(C | own D)| <= 0.25, both seen
    gap = cooperated_after_c * after_d - cooperated_after_d * after_c
    kind = np.where((after_c > 0) & (after_d > 0) & (4 * np.abs(gap) <= after_c * after_d), 5, kind)
    warm = (after_c > 0) & (10 * cooperated_after_c >= 7 * after_c)
    # Forgiving takes two defections answered: a prober forgives its first on purpose.
    forgiving = (after_d >= 2) & (10 * cooperated_after_d >= 7 * after_d)
    # reciprocator: answers cooperation with cooperation, and defection (if tested) with
    # clearly less of it: P(C | own D) <= P(C | own C) - 0.4
    tested_ok = (after_d == 0) | (5 * cooperated_after_d * after_c
                                  <= (5 * cooperated_after_c - 2 * after_c) * after_d)
    kind = np.where(warm & tested_ok, 3, kind)
    kind = np.where(forgiving & ((after_c == 0) | warm), 1, kind)  # cooperator
    kind = np.where(10 * (cooperated_after_c + cooperated_after_d) <= answered, 2, kind)  # defector
    return np.where((rounds < 2) | (answered == 0), 0, kind)  # unknown


def phase_of(round_index: int, horizon: int) -> int:
    if round_index < PHASE_ROUNDS:
        return 0
    return 2 if round_index >= horizon - PHASE_ROUNDS else 1


def context_code(kind: np.ndarray, last_token: np.ndarray, phase: int) -> np.ndarray:
    """The index of a context in ``contexts_for``'s order."""
    return (kind * len(LAST_ROUND) + last_token) * len(PHASES) + phase


@functools.lru_cache(maxsize=256)
def contexts_for(agent: str, scenario: str, env_id: str) -> tuple[Context, ...]:
    """Every context an agent can be in, in code order (``context_code``)."""
    found = []
    for kind in COPLAYER_TYPES:
        for last in LAST_ROUND:
            for phase in PHASES:
                found.append(Context(
                    f"{phase} of the game; the co-player looks like a {kind}; last round {last}",
                    (f"scenario:{scenario}", f"env:{env_id}", f"agent:{agent}", f"coplayer:{kind}",
                     f"phase:{STAGES[phase]}"),
                    (("phase", phase), ("coplayer", kind), ("last_round", last)),
                ))
    return tuple(found)


def credit_refs() -> tuple[str, ...]:
    """The entities a matrix game's returns are credited to, in ``COPLAYER_TYPES`` order."""
    return tuple(f"coplayer:{kind}" for kind in COPLAYER_TYPES)


class MatrixDomain:
    """The matrix-game family's side of the step contract for one scenario."""

    def __init__(self, *, scenario: str, env_id: str) -> None:
        self.scenario = scenario
        self.env_id = env_id

    def tracker(self, *, agent: str, seat: int, num_games: int, horizon: int) -> MatrixTracker:
        return MatrixTracker(contexts_for(agent, self.scenario, self.env_id), seat=seat,
                             num_games=num_games, horizon=horizon)


class MatrixTracker:
    """One seat's view of B games, kept as plain counts (``Answers``): how its co-player
    answered its cooperations and its defections, and the last joint action."""

    def __init__(self, contexts: tuple[Context, ...], *, seat: int, num_games: int,
                 horizon: int) -> None:
        self._all = contexts
        self._seat = seat
        self._horizon = horizon
        self._round = 0
        self._answers = Answers(num_games)

    def contexts(self) -> tuple[np.ndarray, Sequence[Context]]:
        answers = self._answers
        codes = context_code(answers.kind(self._round), answers.last_token,
                             phase_of(self._round, self._horizon))
        met, index = np.unique(codes, return_inverse=True)
        return index.reshape(-1), [self._all[c] for c in met.tolist()]

    def observe(self, step: Mapping[str, np.ndarray], active: np.ndarray) -> None:
        """``step["joint_actions"]``: (B,) 2 * seat 0's action + seat 1's, 0 to cooperate;
        ``step["played"]``: the games that played this round."""
        self._answers.add(step["joint_actions"], step["played"], self._seat)
        self._round += 1

    def credit(self, lengths: np.ndarray) -> list[str]:
        refs = credit_refs()
        return [refs[k] for k in self._answers.kind(self._answers.rounds).tolist()]


class Answers:
    """Per game, what one seat has seen its co-player do in answer to its own moves: the
    rounds after it cooperated and how many of them the co-player cooperated in, the same
    after it defected, the rounds seen, its own last move and the last joint action's
    token (0 before the first round). Shared by the general path and the fast one."""

    def __init__(self, num_games: int) -> None:
        self.counts = np.zeros((4, num_games), dtype=np.int64)  # after C, coop. after C; D
        self.rounds = np.zeros(num_games, dtype=np.int64)
        self.own_before = np.full(num_games, -1, dtype=np.int64)  # -1: nothing played yet
        self.last_token = np.zeros(num_games, dtype=np.int64)

    def add(self, joint_actions: np.ndarray, played: np.ndarray, seat: int) -> None:
        """One round of the games that ``played`` it (joint actions: 2 * seat 0's action +
        seat 1's), in one compiled loop: the fast path calls it every round too."""
        advance_answers(self.counts, self.rounds, self.own_before, self.last_token,
                        joint_actions, np.asarray(played, dtype=bool), seat)

    def kind(self, rounds: np.ndarray | int) -> np.ndarray:
        return coplayer_type(*self.counts, rounds)
