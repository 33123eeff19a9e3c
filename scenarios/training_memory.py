"""Memory while training: the runner's ``BatchMemory`` over the learners' games of a batch.

Training plays every learner in both seats of one batch of games (``agents.train.experience
.seating``), some games against scripted co-players. Memory follows only the learners: each
seat gets its own ``BatchMemory`` over the games a learner sits in there, so a co-player's
games neither get hints nor dilute the behaviors' statistics. Each round the two seats'
hints are regrouped per learner (``LearnerMemory``, the protocol ``agents.train`` reads), and
the learners' ``hint_used`` are scattered back to the seats. The usage adds up in the
``RunMemory`` across batches and is written to the handbook at every checkpoint, so that
effect-aware ranking learns from it during the run.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from coplay.step import Hints
from memory.behaviors import MemoryUsage
from scenarios.memory_step import BatchMemory, RunMemory


class TrainingMemory:
    """``agents.train.experience.LearnerMemory`` over a run's memory. ``agent`` names the
    learners' seat in memory's contexts (the learner's name, when there is one)."""

    def __init__(self, run: RunMemory, *, agent: str) -> None:
        self.run = run
        self.agent = agent

    def batch(self, owner: np.ndarray, horizon: int) -> TrainingBatch:
        return TrainingBatch(self.run, self.agent, owner, horizon)

    def drain(self) -> MemoryUsage:
        """The usage since the last drain (``RunMemory.drain``)."""
        return self.run.drain()


class TrainingBatch:
    """One batch of training games: per seat, the games a learner sits in and their memory;
    per learner, where each of its games is in its seat's list."""

    def __init__(self, run: RunMemory, agent: str, owner: np.ndarray, horizon: int) -> None:
        self._games = [np.flatnonzero(owner[seat] >= 0) for seat in (0, 1)]
        self._memories: list[BatchMemory | None] = [
            run.batch((agent, agent), (seat == 0, seat == 1), len(games), horizon)
            if len(games) else None
            for seat, games in enumerate(self._games)
        ]
        self._horizon = horizon
        # Per learner and seat: which of its games sit there (as positions in its slot) and
        # where they are in that seat's list of learner games.
        self._sizes: list[int] = []
        self._where: list[list[tuple[np.ndarray, np.ndarray]]] = []
        for i in range(int(owner.max()) + 1):
            seats, games = np.nonzero(owner == i)
            self._sizes.append(len(games))
            self._where.append([
                (np.flatnonzero(seats == seat),
                 np.searchsorted(self._games[seat], games[seats == seat]))
                for seat in (0, 1)
            ])
        self._joined: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def hints(self) -> Sequence[Hints]:
        found = [None if memory is None else memory.hints(seat)
                 for seat, memory in enumerate(self._memories)]
        present = [h for h in found if h is not None]
        # The seats share one catalogue of behaviors; the later call's tuple holds them all.
        behaviors = present[-1].behaviors
        table, scores, shift = self._table(found)
        result = []
        for size, where in zip(self._sizes, self._where):
            contexts = np.empty(size, dtype=np.int64)
            for (mine, positions), hints, offset in zip(where, found, shift):
                if len(mine):
                    contexts[mine] = hints.contexts[positions] + offset
            result.append(Hints(contexts, table, scores, behaviors))
        return result

    def _table(self, found: list[Hints | None]) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """One table for both seats: the seats' own when they share it (the matrix fast path,
        whose table is per agent), else both stacked, kept while neither changes so that
        learners work out their inputs once per table."""
        present = [h for h in found if h is not None]
        if len(present) == 1 or present[0].table is present[1].table:
            return present[0].table, present[0].scores, [0, 0]
        first, second = found
        joined = self._joined
        if joined is None or joined[0] is not first.table or joined[1] is not second.table:
            joined = self._joined = (first.table, second.table,
                                     np.vstack([first.table, second.table]),
                                     np.vstack([first.scores, second.scores]),
                                     np.array([0, len(first.table)]))
        return joined[2], joined[3], joined[4].tolist()

    def record(self, hint_used: Sequence[np.ndarray]) -> None:
        # Every learner game of a seat is some learner's: each entry is written.
        per_seat = [np.empty(len(games), dtype=np.int64) for games in self._games]
        for used, where in zip(hint_used, self._where):
            for seat, (mine, positions) in enumerate(where):
                per_seat[seat][positions] = used[mine]
        for seat, memory in enumerate(self._memories):
            if memory is not None:
                memory.record(seat, per_seat[seat])

    def observe(self, joint_actions: np.ndarray, active: np.ndarray) -> None:
        for memory, games in zip(self._memories, self._games):
            if memory is not None:
                memory.observe({"joint_actions": joint_actions[games]}, active[games])

    def finish(self, returns: np.ndarray) -> None:
        for memory, games in zip(self._memories, self._games):
            if memory is not None:
                memory.finish(returns[:, games].T, np.full(len(games), self._horizon))
