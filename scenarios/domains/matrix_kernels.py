"""The memory step's per-round marking loop, compiled (numba): a round of 4,096 games costs it
a few microseconds, where the same work as numpy calls took four or five calls and their
temporaries. ``tests/test_memory_runner.py`` checks what they produce against plain
readings of the games."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def mark_cells(marks: np.ndarray, codes: np.ndarray, hint_used: np.ndarray, slots: int) -> None:
    """Mark each game's cell in ``marks`` (cells, B): the row of its context code and of the
    hint it used, ``codes * slots + hint_used + 1`` (hint -1, none used, is the first row).
    Compiled code does not check bounds, so the agent's ``hint_used`` is checked here."""
    for game in range(codes.shape[0]):  # all checked before any is written
        if hint_used[game] < -1 or hint_used[game] >= slots - 1:
            raise IndexError("an agent's hint_used must be -1 (none) or the position of one of its hints")
    for game in range(codes.shape[0]):
        marks[codes[game] * slots + hint_used[game] + 1, game] = 1


@numba.njit(cache=True)
def _coplayer_type(after_c: int, cooperated_after_c: int, after_d: int, cooperated_after_d: int,
                   rounds: int) -> int:
    """``matrix.coplayer_type`` for one game (the same precedence: unknown, defector,
    cooperator, reciprocator, unresponsive, mixed)."""
    answered = after_c + after_d
    if rounds < 2 or answered == 0:
        return 0
    if 10 * (cooperated_after_c + cooperated_after_d) <= answered:
        return 2
    warm = after_c > 0 and 10 * cooperated_after_c >= 7 * after_c
    if after_d >= 2 and 10 * cooperated_after_d >= 7 * after_d and (after_c == 0 or warm):
        return 1
    tested_ok = after_d == 0 or (5 * cooperated_after_d * after_c
                                 <= (5 * cooperated_after_c - 2 * after_c) * after_d)
    if warm and tested_ok:
        return 3
    gap = cooperated_after_c * after_d - cooperated_after_d * after_c
    if after_c > 0 and after_d > 0 and 4 * abs(gap) <= after_c * after_d:
        return 5
    return 4


@numba.njit(cache=True)
def context_rows(rows: np.ndarray, codes: np.ndarray, counts: np.ndarray, last_token: np.ndarray,
                 round_index: int, phase: int, variants: int, variant: np.ndarray,
                 active: np.ndarray, contexts: int) -> None:
    """Each game's context code, in place (``matrix.context_code`` of the type its co-player
    has shown, the last round's token and the phase; ``contexts`` for a game that has
    ended), and its hint row: the code times ``variants`` plus the game's ``variant``."""
    for game in range(rows.shape[0]):
        if not active[game]:
            codes[game] = contexts
            rows[game] = contexts * variants
            continue
        kind = _coplayer_type(counts[0, game], counts[1, game], counts[2, game], counts[3, game],
                              round_index)
        code = (kind * 5 + last_token[game]) * 3 + phase
        codes[game] = code
        rows[game] = code * variants + variant[game]


@numba.njit(cache=True)
def advance_answers(counts: np.ndarray, rounds: np.ndarray, own_before: np.ndarray,
                    last_token: np.ndarray, joint_actions: np.ndarray, played: np.ndarray,
                    seat: int) -> None:
    """``matrix.Answers.add`` in place: one round of every game that played it."""
    for game in range(joint_actions.shape[0]):
        if not played[game]:
            continue
        joint = joint_actions[game]
        own, theirs = (joint // 2, joint % 2) if seat == 0 else (joint % 2, joint // 2)
        before = own_before[game]
        if before == 0:
            counts[0, game] += 1
            counts[1, game] += theirs == 0
        elif before == 1:
            counts[2, game] += 1
            counts[3, game] += theirs == 0
        rounds[game] += 1
        own_before[game] = own
        last_token[game] = 1 + 2 * own + theirs
