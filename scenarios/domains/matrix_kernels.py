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
