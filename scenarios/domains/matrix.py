"""The matrix-game domain: how a seat in an iterated matrix game is described to memory.

A seat's context is what it has seen: the phase of the game, the last joint action, and the
type its co-player has shown so far (``COPLAYER_TYPES``), plus the scenario, env and the
agent's own name as graph entities. There are ``CONTEXTS`` such contexts per agent.

``MatrixTracker`` is the general path of the step contract (``coplay.step``): it counts
what each game's co-player did and names each game's context. ``matrix_fast`` computes the
same with precomputed tables and compiled loops; a test holds the two equal.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np

from coplay.step import Context

COPLAYER_TYPES = ("unknown", "cooperator", "defector", "reciprocator", "mixed")
PHASES = ("opening", "middle", "endgame")
PHASE_ROUNDS = 5  # the opening and the endgame are this many rounds long
LAST_ROUND = (
    "nothing has been played yet",
    "we both cooperated",
    "I cooperated and the co-player defected",
    "I defected and the co-player cooperated",
    "we both defected",
)
CONTEXTS = len(COPLAYER_TYPES) * len(LAST_ROUND) * len(PHASES)


def coplayer_type(cooperations: np.ndarray, repeats: np.ndarray, rounds: np.ndarray | int) -> np.ndarray:
    """Index into COPLAYER_TYPES from counts of a co-player's observed play: rounds in which
    it cooperated, rounds in which it repeated the observer's previous action, and rounds
    seen. Counts rather than rates, so the runner can apply the same rule online, every
    round, without dividing."""
    rounds = np.asarray(rounds)
    # A co-player that has only cooperated with a cooperating observer has repeated its every
    # move: it may be a reciprocator or an unconditional cooperator, and nothing seen tells
    # them apart. It counts as a reciprocator, the type it is safe to assume; it shows itself
    # a cooperator only by cooperating on after the observer defected.
    kind = np.where(cooperations >= 0.9 * rounds, 1, 4)  # cooperator, else mixed
    kind = np.where(repeats >= 0.8 * (rounds - 1), 3, kind)  # reciprocator
    kind = np.where(cooperations <= 0.1 * rounds, 2, kind)  # defector
    return np.where(rounds < 2, 0, kind)  # unknown


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
                    (f"scenario:{scenario}", f"env:{env_id}", f"agent:{agent}", f"coplayer:{kind}"),
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
    """One seat's view of B games, kept as plain counts: the rounds its co-player cooperated
    in, the rounds it repeated this seat's previous action, and the last joint action."""

    def __init__(self, contexts: tuple[Context, ...], *, seat: int, num_games: int,
                 horizon: int) -> None:
        self._all = contexts
        self._seat = seat
        self._horizon = horizon
        self._round = 0
        self._cooperations = np.zeros(num_games, dtype=np.int64)
        self._repeats = np.zeros(num_games, dtype=np.int64)
        self._own_before = np.full(num_games, -1, dtype=np.int64)  # -1: nothing played yet
        self._last_token = np.zeros(num_games, dtype=np.int64)
        self._rounds_seen = np.zeros(num_games, dtype=np.int64)

    def contexts(self) -> tuple[np.ndarray, Sequence[Context]]:
        kind = coplayer_type(self._cooperations, self._repeats, self._round)
        codes = context_code(kind, self._last_token, phase_of(self._round, self._horizon))
        met, index = np.unique(codes, return_inverse=True)
        return index.reshape(-1), [self._all[c] for c in met.tolist()]

    def observe(self, step: Mapping[str, np.ndarray], active: np.ndarray) -> None:
        """``step["joint_actions"]``: (B,) 2 * seat 0's action + seat 1's, 0 to cooperate;
        ``step["played"]``: the games that played this round."""
        joint, played = step["joint_actions"].astype(np.int64), step["played"]
        first, second = joint // 2, joint % 2
        own, theirs = (first, second) if self._seat == 0 else (second, first)
        self._cooperations += played & (theirs == 0)
        self._repeats += played & (theirs == self._own_before)
        self._own_before = np.where(played, own, self._own_before)
        self._last_token = np.where(played, 1 + 2 * own + theirs, self._last_token)
        self._rounds_seen += played
        self._round += 1

    def credit(self, lengths: np.ndarray) -> list[str]:
        kinds = coplayer_type(self._cooperations, self._repeats, self._rounds_seen)
        refs = credit_refs()
        return [refs[k] for k in kinds.tolist()]
