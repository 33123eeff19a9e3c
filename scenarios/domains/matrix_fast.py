"""The matrix-game domain's fast path: the same hints and tallies as the general path
(``scenarios.memory_step.GeneralBatch`` over ``matrix.MatrixTracker``), from tables.

An agent has ``matrix.CONTEXTS`` contexts, so the candidates of all of them are retrieved in
one call and kept, with the behaviors' catalogue, until the handbook changes
(``HintCatalogue``); each batch only ranks them (``SeatTable``). Every round then finds each
game's row with a few array operations, and the marks of what was shown and used are
bitsets over the episodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from coplay.step import Context, HintedBehavior, Hints
from scenarios.domains.matrix import (
    CONTEXTS,
    COPLAYER_TYPES,
    Answers,
    contexts_for,
    credit_refs,
    phase_of,
)
from scenarios.domains.matrix_kernels import context_rows, mark_cells
from scenarios.memory_step import Catalogue, Ranking, RunMemory, offer_scores


class HintCatalogue:
    """What one revision of a handbook proposes to a scenario's agents: per agent, the
    candidate behaviors of each of its contexts with their relevance scores, and one growing
    catalogue of hinted behaviors that rows point into. Kept by ``MatrixFastPath`` until the
    handbook changes, so later batches only rank (``memory.effects``), never retrieve."""

    def __init__(self, run: RunMemory, env_id: str) -> None:
        self._run = run
        self._env_id = env_id
        self._catalogue = Catalogue(run.hinted)
        # agent -> (candidate ids (CONTEXTS, depth), their relevance scores)
        self._candidates: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def behaviors(self) -> tuple[HintedBehavior, ...]:
        return self._catalogue.behaviors

    def contexts(self, agent: str) -> tuple[Context, ...]:
        return contexts_for(agent, self._run.scenario, self._env_id)

    def candidates(self, agent: str) -> tuple[np.ndarray, np.ndarray]:
        """Candidate behavior ids (CONTEXTS, depth) for every context of ``agent``, best
        first, -1 padding, and their relevance scores."""
        found = self._candidates.get(agent)
        if found is None:
            retrieved = self._run.handbook.retrieve(
                self.contexts(agent), k=self._run.depth, filters=self._run.filters)
            self.rows(retrieved.ids)  # catalogue every candidate now: offers pick among them
            found = self._candidates[agent] = (retrieved.ids, retrieved.scores)
        return found

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """The catalogue rows of behavior ids (-1 stays -1), adding new behaviors to it."""
        return self._catalogue.rows(ids)


class SeatTable:
    """One listening seat's hints for a batch: per row (context * variants + variant, then
    one row of none for ended games) the offered behavior ids, their catalogue rows and
    relevance scores; and per row its context's candidate ids."""

    def __init__(self, catalogue: HintCatalogue, agent: str, ranking: Ranking,
                 k: int) -> None:
        ids, relevance = catalogue.candidates(agent)
        offered = ranking.rank(ids, catalogue.contexts(agent), k)
        variants = ranking.variants
        self.candidates = np.repeat(ids, variants, axis=0)
        self.offered = offered
        self.rows = np.vstack([catalogue.rows(offered), np.full((1, k), -1, dtype=np.int64)])
        self.scores = np.vstack([offer_scores(ids, relevance, offered, variants),
                                 np.zeros((1, k), dtype=np.float32)])


class MatrixFastPath:
    """Makes the tabled ``BatchMemory`` of each batch, keeping the catalogue while the
    handbook's revision stays the same."""

    def __init__(self, env_id: str) -> None:
        self._env_id = env_id
        self._catalogue: tuple[tuple[int | None, int], HintCatalogue] | None = None

    def batch(self, run: RunMemory, seat_agents: Sequence[str], listening: Sequence[bool],
              num_games: int, horizon: int) -> BatchMemory:
        revision = run.handbook.revision
        if self._catalogue is None or self._catalogue[0] != revision:
            self._catalogue = (revision, HintCatalogue(run, self._env_id))
        catalogue = self._catalogue[1]
        ranking = run.ranking()
        tables = [SeatTable(catalogue, agent, ranking, run.section.k) if listens else None
                  for agent, listens in zip(seat_agents, listening)]
        return BatchMemory(run, catalogue, tables, ranking.variants, run.section.k, num_games,
                           horizon)


class BatchMemory:
    """One batch of B games: per listening seat, what each game's agent has seen of its
    co-player (``matrix.Answers``), which contexts it met and which hints it used. Game b
    plays variant ``b % variants`` of every context.

    Each round a listening seat marks one cell per game in a (cells, B) table, in a compiled
    loop (``matrix_kernels``): the cell of its context and of the hint position it used (or
    of none). A game's variant is fixed, so the behavior at that position is known at the
    batch's end, when the marks become per-behavior sets of episodes, as bitsets; only the
    contexts some game met are looked at."""

    def __init__(self, run: RunMemory, catalogue: HintCatalogue, tables: list[SeatTable | None],
                 variants: int, k: int, num_games: int, horizon: int) -> None:
        """``tables``: per seat, its ``SeatTable``, or None if it does not listen."""
        self._run = run
        self._catalogue = catalogue
        self.listening = tuple(table is not None for table in tables)
        self._seats = [seat for seat in (0, 1) if self.listening[seat]]
        self._tables = tables
        self._variants = variants
        self._variant = np.arange(num_games) % variants  # each game's, for its whole episode
        self._horizon = horizon
        self._round = 0
        self._slots = k + 1  # per context: no hint used, then each position
        # The cells past the contexts' belong to games that have ended: they never count.
        self._marks = [np.zeros(((CONTEXTS + 1) * self._slots, num_games), dtype=np.uint8)
                       if listens else None for listens in self.listening]
        self._codes = [np.zeros(num_games, dtype=np.int64) for _ in (0, 1)]  # this round's
        self._answers = [Answers(num_games) for _ in (0, 1)]
        self._active = np.ones(num_games, dtype=bool)

    def hints(self, seat: int) -> Hints:
        t = self._round
        answers = self._answers[seat]
        # A fresh array each round: agents may keep the hints they were handed.
        rows = np.empty(len(self._active), dtype=np.int64)
        context_rows(rows, self._codes[seat], answers.counts, answers.last_token, t,
                     phase_of(t, self._horizon), self._variants, self._variant, self._active,
                     CONTEXTS)
        table = self._tables[seat]
        return Hints(rows, table.rows, table.scores, self._catalogue.behaviors)

    def record(self, seat: int, hint_used: np.ndarray) -> None:
        mark_cells(self._marks[seat], self._codes[seat], hint_used, self._slots)

    def observe(self, step: Mapping[str, np.ndarray], active: np.ndarray) -> None:
        """After a round: ``step["joint_actions"]`` (B,), 2 * seat 0's action + seat 1's;
        ``active`` the games still running after it."""
        for seat in self._seats:
            self._answers[seat].add(step["joint_actions"], self._active, seat)
        self._round += 1
        self._active = active

    def finish(self, returns: np.ndarray, lengths: np.ndarray) -> None:
        """Add the batch to the run's tally; ``returns`` (B, 2), ``lengths`` (B,)."""
        games = np.arange(len(lengths))
        types = len(COPLAYER_TYPES)
        for seat in self._seats:
            found = self._episode_sets(seat)
            if found is None:
                continue
            behavior_ids, sets = found
            # Per episode: a one-hot of its co-player type, times 1, its return per step and
            # that squared. Single precision: sums of a few thousand returns per batch lose
            # nothing that matters.
            kinds = self._final_kinds(seat, lengths)
            per_step = returns[:, seat] / np.maximum(lengths, 1)
            weights = np.zeros((len(lengths), 3 * types), dtype=np.float32)
            for moment in range(3):
                weights[games, kinds + moment * types] = per_step ** moment
            totals = _weighted_counts(sets, weights)
            shown, used, unused = totals.reshape(3, len(behavior_ids), 3, types)
            self._run.add(behavior_ids.tolist(), credit_refs(), shown, used, unused)

    def _final_kinds(self, seat: int, lengths: np.ndarray) -> np.ndarray:
        """The type each game's co-player showed ``seat`` by the game's end."""
        answers = self._answers[seat]
        return answers.kind(answers.rounds)

    def _episode_sets(self, seat: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The behaviors that were candidates for ``seat`` (sorted ids) and, per behavior, the
        episodes it was a candidate in, those it was used in, and those it was a candidate in
        where no behavior was used: (3 * behaviors, words) bitsets."""
        # Bitsets over the episodes, one row of 64-bit words per cell (context, slot).
        bits = _bitsets(self._marks[seat])
        bits = bits.reshape(CONTEXTS + 1, self._slots, -1)[:CONTEXTS]
        seen = np.bitwise_or.reduce(bits, axis=1)  # (contexts, words)
        table = self._tables[seat]
        variants = self._variants
        candidates = table.candidates[::variants]  # the same in every variant of a context
        # Only the candidates of contexts some game met; a batch meets few of them.
        listed = (candidates >= 0) & seen.any(axis=1)[:, None]
        if not listed.any():
            return None
        context, column = np.nonzero(listed)
        candidate = candidates[context, column]
        # A sorted set rather than np.unique: a few hundred ids, where numpy's own call costs more.
        behavior_ids = np.array(sorted(set(candidate.tolist())), dtype=np.int64)
        shown = np.zeros((len(behavior_ids), bits.shape[2]), dtype=np.uint64)
        np.bitwise_or.at(shown, np.searchsorted(behavior_ids, candidate), seen[context])
        used = np.zeros_like(shown)
        context, position = np.nonzero(bits[:, 1:].any(axis=2))
        if len(context):
            # Per used cell and variant: the behavior at that position, and the cell's games
            # that play the variant.
            offered = table.offered.reshape(CONTEXTS, variants, -1)[context, :, position]
            games = bits[context, 1 + position][:, None, :] & self._variant_sets()[None]
            found = offered >= 0
            np.bitwise_or.at(used, np.searchsorted(behavior_ids, offered[found]), games[found])
        any_used = np.bitwise_or.reduce(used, axis=0)
        return behavior_ids, np.vstack([shown, used, shown & ~any_used])

    def _variant_sets(self) -> np.ndarray:
        """(variants, words) bitsets: the games that play each variant."""
        games = len(self._active)
        member = (np.arange(games)[None, :] % self._variants
                  == np.arange(self._variants)[:, None]).astype(np.uint8)
        return _bitsets(member)


def _bitsets(flags: np.ndarray) -> np.ndarray:
    """(rows, games) 0/1 flags as (rows, words) 64-bit bitsets over the games."""
    bits = np.packbits(flags, axis=1)
    if bits.shape[1] % 8:
        bits = np.pad(bits, ((0, 0), (0, -bits.shape[1] % 8)))
    return bits.view(np.uint64)


UNPACKED_BYTES = 1 << 17  # bound on the floats unpacked at once: a few cache-warm pages


def _weighted_counts(bitsets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``bitsets`` (R, words) over E episodes times ``weights`` (E, m): (R, m) float32.
    Unpacked a few columns at a time: the whole (R, E) matrix in floats could be megabytes
    of fresh memory, whose page faults cost more than the product."""
    as_bytes = bitsets.view(np.uint8)
    episodes = weights.shape[0]
    chunk = max(64, UNPACKED_BYTES // (4 * bitsets.shape[0]) // 64 * 64)
    totals = np.zeros((bitsets.shape[0], weights.shape[1]), dtype=np.float32)
    for start in range(0, episodes, chunk):
        stop = min(start + chunk, episodes)
        block = np.unpackbits(as_bytes[:, start // 8: -(-stop // 8)], axis=1, count=stop - start)
        totals += block.astype(np.float32) @ weights[start:stop]
    return totals
