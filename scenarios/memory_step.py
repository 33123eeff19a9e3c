"""Memory inside the runner, for any env family: each step, every listening seat's contexts,
one batched retrieval, the hints its agent gets, and the tally of what was shown and used,
for the handbook's statistics and graph.

The env family's ``Domain`` (``scenarios.domains``) describes a seat's situation
(``coplay.step.Tracker``); this module knows nothing of any one game. A family may bring a
fast path behind the same interface (``BatchMemory``), tested equal to ``GeneralBatch``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from coplay.step import Context, Domain, HintedBehavior, Hints, Tracker
from memory.behaviors import EffectStats, EffectUsage, MemoryUsage, Moments, Usage
from memory.effects import EffectRanking, RelevanceRanking
from memory.handbook import Handbook
from memory.index import Filters
from memory.refs import behavior_ref
from scenarios.schema import MemorySection

Ranking = EffectRanking | RelevanceRanking


class BatchMemory(Protocol):
    """Memory for one batch of B games, as the runner's step loop calls it."""

    listening: tuple[bool, ...]

    def hints(self, seat: int) -> Hints: ...

    def record(self, seat: int, hint_used: np.ndarray) -> None: ...

    def observe(self, step: Mapping[str, np.ndarray], active: np.ndarray) -> None: ...

    def finish(self, returns: np.ndarray, lengths: np.ndarray) -> None: ...


class FastPath(Protocol):
    """A domain's optimised ``BatchMemory`` maker (``scenarios.domains.matrix_fast``)."""

    def batch(self, run: RunMemory, seat_agents: Sequence[str], listening: Sequence[bool],
              num_games: int, horizon: int | None) -> BatchMemory: ...


@dataclass
class _Tally:
    """Per behavior: episodes it was a candidate in ("shown"), used in, and summed return per
    step when used and when not (no behavior used); and per behavior and credited entity,
    the moments (count, sum, sum of squares) of those episodes' returns per step."""

    shown: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    uses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    return_used: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    return_unused: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    by_credit: dict[tuple[int, str], np.ndarray] = field(
        default_factory=lambda: defaultdict(lambda: np.zeros(6))  # used n, sum, sq; unused
    )


CANDIDATES_PER_HINT = 2  # relevance proposes this many candidates per hint an agent gets


class RunMemory:
    """The handbook's part in one run: makes each batch's memory and sums what it tallied."""

    def __init__(self, handbook: Handbook, section: MemorySection, domain: Domain, *,
                 scenario: str, seed: int, fast: FastPath | None = None) -> None:
        self.handbook = handbook
        self.section = section
        self.domain = domain
        self.scenario = scenario
        self.filters = Filters(tags=frozenset(section.tags), kinds=frozenset(section.kinds))
        self.depth = CANDIDATES_PER_HINT * section.k
        self._rng = np.random.default_rng(seed)
        self._fast = fast
        self._tally = _Tally()

    def batch(self, seat_agents: Sequence[str], listening: Sequence[bool], num_games: int,
              horizon: int | None) -> BatchMemory:
        """Memory for a batch: hints for the seats whose agents can follow them
        (``listening``); the others would ignore them, and their statistics would only
        dilute the behaviors' own."""
        self.handbook.sync()
        if self._fast is not None:
            return self._fast.batch(self, seat_agents, listening, num_games, horizon)
        trackers = [
            self.domain.tracker(agent=agent, seat=seat, num_games=num_games, horizon=horizon)
            if listens else None
            for seat, (agent, listens) in enumerate(zip(seat_agents, listening))
        ]
        return GeneralBatch(self, trackers, num_games)

    def ranking(self) -> Ranking:
        """A batch's ranking over the handbook as of its last sync, with its own draws: ask
        once per batch (the seeds follow the run's seed in batch order)."""
        seed = int(self._rng.integers(2**63))
        if self.section.ranking == "relevance":
            return RelevanceRanking()
        return self.handbook.effect_ranking(explore=self.section.explore, seed=seed)

    def candidates_and_offers(self, contexts: Sequence[Context],
                              ranking: Ranking) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per context, the candidates relevance proposes (C, depth) with their scores, and
        per context and variant what is offered (C * variants, k)."""
        found = self.handbook.retrieve(list(contexts), k=self.depth, filters=self.filters)
        offered = ranking.rank(found.ids, contexts, self.section.k)
        return found.ids, found.scores, offered

    def hinted(self, behavior_id: int) -> HintedBehavior:
        record = self.handbook.cached(behavior_id)
        return HintedBehavior(behavior_id, record.name, record.instruction, record.kind,
                              record.payload, self.handbook.embedding(behavior_id))

    def add(self, behavior_ids: Sequence[int], credits: Sequence[str], shown: np.ndarray,
            used: np.ndarray, unused: np.ndarray) -> None:
        """Add one seat's batch: per behavior (rows, ``behavior_ids``) and credited entity
        (last axis, ``credits``), the episodes it was a candidate in, those it was used in,
        and those in which it was a candidate and no behavior was used, as counts ``[:, 0]``,
        sums ``[:, 1]`` and sums of squares ``[:, 2]`` of return per step."""
        tally = self._tally
        ids = list(behavior_ids)
        totals = zip(ids, shown[:, 0].sum(axis=1).tolist(), used[:, :2].sum(axis=2).tolist(),
                     unused[:, 1].sum(axis=1).tolist())
        for behavior_id, shown_n, (used_n, used_sum), unused_sum in totals:
            tally.shown[behavior_id] += round(shown_n)
            tally.uses[behavior_id] += round(used_n)
            tally.return_used[behavior_id] += used_sum
            tally.return_unused[behavior_id] += unused_sum
        rows, columns = np.nonzero(shown[:, 0])
        by_credit = np.hstack([used[rows, :, columns], unused[rows, :, columns]])
        for row, column, values in zip(rows.tolist(), columns.tolist(), by_credit.tolist()):
            tally.by_credit[(ids[row], credits[column])] += values

    def drain(self) -> MemoryUsage:
        """The usage tallied since the last drain, which starts a new tally: for callers that
        record as they go (training records at every checkpoint, so that effect-aware
        ranking learns during the run)."""
        usage = self.usage()
        self._tally = _Tally()
        return usage

    def usage(self) -> MemoryUsage:
        tally = self._tally
        usages = tuple(
            Usage(b, tally.shown[b], tally.uses[b], tally.return_used[b], tally.return_unused[b])
            for b in sorted(tally.shown)
        )
        effects, edges = [], []
        for (behavior_id, credit), values in sorted(tally.by_credit.items()):
            used_n, used_sum, used_sq, unused_n, unused_sum, unused_sq = values.tolist()
            stats = EffectStats(Moments(round(used_n), used_sum, used_sq),
                                Moments(round(unused_n), unused_sum, unused_sq))
            effects.append(EffectUsage(behavior_id, credit, stats))
            if stats.effect is not None and stats.effect > 0:
                edges.append((behavior_ref(behavior_id), "effective_against", credit,
                              float(stats.effect)))
        used_in = tuple(
            (behavior_ref(b), "used_in", f"scenario:{self.scenario}", float(tally.uses[b]))
            for b in sorted(tally.uses) if tally.uses[b]
        )
        return MemoryUsage(usages, tuple(edges), used_in, tuple(effects))


def offer_scores(candidates: np.ndarray, relevance: np.ndarray, offered: np.ndarray,
                 variants: int) -> np.ndarray:
    """The relevance score of each offered behavior (C * variants, k), from each context's
    candidates (C, depth) and their scores."""
    per_row = np.repeat(candidates, variants, axis=0)
    matches = offered[:, :, None] == per_row[:, None, :]
    return (matches * np.repeat(relevance, variants, axis=0)[:, None, :]).sum(axis=2).astype(
        np.float32)


class Catalogue:
    """The behaviors handed to agents, in the order first met: hints point into
    ``behaviors`` by position. ``behaviors`` is a new tuple only when a behavior is added:
    agents compare it by reference to reuse what they worked out from it."""

    def __init__(self, hinted: Callable[[int], HintedBehavior]) -> None:
        self._hinted = hinted
        self.behaviors: tuple[HintedBehavior, ...] = ()
        self._known = np.empty(0, dtype=np.int64)  # behavior ids, sorted
        self._positions = np.empty(0, dtype=np.int64)  # and their positions in behaviors

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Behavior ids (-1 padding) as positions in ``behaviors``, adding the new ones."""
        fresh = np.setdiff1d(ids[ids >= 0], self._known)
        if len(fresh):
            start = len(self.behaviors)
            self.behaviors = (*self.behaviors, *map(self._hinted, fresh.tolist()))
            known = np.concatenate([self._known, fresh])
            positions = np.concatenate([self._positions, np.arange(start, start + len(fresh))])
            order = np.argsort(known)
            self._known, self._positions = known[order], positions[order]
        if not len(self._known):
            return np.full(ids.shape, -1, dtype=np.int64)
        found = ids >= 0
        at = np.searchsorted(self._known, np.where(found, ids, self._known[0]))
        return np.where(found, self._positions[at], -1)


class GeneralBatch:
    """The step contract's general path: each step, each listening seat's tracker describes
    its games, the handbook proposes candidates for the distinct contexts in one call, the
    effect ranking picks what each variant offers, and the candidate and used behaviors are
    marked per game. Game b plays variant ``b % variants`` for its whole episode."""

    def __init__(self, run: RunMemory, trackers: list[Tracker | None], num_games: int) -> None:
        self._run = run
        self._ranking = run.ranking()
        self._variant = np.arange(num_games) % self._ranking.variants
        self._trackers = trackers
        self.listening = tuple(t is not None for t in trackers)
        self._active = np.ones(num_games, dtype=bool)
        self._catalogue = Catalogue(run.hinted)
        self._rows: list[np.ndarray | None] = [None] * len(trackers)  # (B, k) last hints
        # Per seat: the contexts last asked, their offers (rows: context * variants +
        # variant, then one of none), scores, and candidates (per context, as indexes).
        self._tables: list[tuple[Sequence[Context], np.ndarray, np.ndarray, np.ndarray] | None] = (
            [None] * len(trackers))
        # Per seat: behavior id -> games it was a candidate in, and games it was used in.
        self._shown: list[dict[int, np.ndarray]] = [{} for _ in trackers]
        self._used: list[dict[int, np.ndarray]] = [{} for _ in trackers]

    def hints(self, seat: int) -> Hints:
        tracker = self._trackers[seat]
        assert tracker is not None, "hints asked for a seat that does not listen"
        codes, contexts = tracker.contexts()
        table, scores, candidates = self._table(seat, contexts)
        variants = self._ranking.variants
        rows = np.where(self._active, codes * variants + self._variant, len(contexts) * variants)
        hints = Hints(rows, table, scores, self._catalogue.behaviors)
        self._rows[seat] = hints.rows
        shown = self._shown[seat]
        games_candidates = candidates[np.where(self._active, codes, len(contexts))]
        for index in np.unique(games_candidates[games_candidates >= 0]).tolist():
            behavior_id = self._catalogue.behaviors[index].behavior_id
            games = (games_candidates == index).any(axis=1)
            shown[behavior_id] = shown.get(behavior_id, False) | games
        return hints

    def _table(self, seat: int,
               contexts: Sequence[Context]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What each context's variants offer (as behavior indexes), their relevance scores,
        and each context's candidates, each with a last row of none for the games that have
        ended. A tracker that hands back the very same contexts gets the same tables: the
        handbook does not change within a batch."""
        last = self._tables[seat]
        if last is not None and last[0] is contexts:
            return last[1], last[2], last[3]
        k = self._run.section.k
        ids, relevance, offered = self._run.candidates_and_offers(contexts, self._ranking)
        scores = offer_scores(ids, relevance, offered, self._ranking.variants)
        table = np.vstack([self._catalogue.rows(offered), np.full((1, k), -1, dtype=np.int64)])
        scores = np.vstack([scores, np.zeros((1, k), dtype=np.float32)])
        candidates = np.vstack([self._catalogue.rows(ids), np.full((1, ids.shape[1]), -1)])
        self._tables[seat] = (contexts, table, scores, candidates)
        return table, scores, candidates

    def record(self, seat: int, hint_used: np.ndarray) -> None:
        rows = self._rows[seat]
        k = rows.shape[1]
        if np.any((hint_used < -1) | (hint_used >= k)):
            raise IndexError("an agent's hint_used must be -1 (none) or the position of one "
                             "of its hints")
        games = np.flatnonzero(hint_used >= 0)
        picked = rows[games, hint_used[games]]
        if np.any(picked < 0):
            raise IndexError("an agent's hint_used points at a position with no hint")
        used = self._used[seat]
        for index in np.unique(picked).tolist():
            behavior_id = self._catalogue.behaviors[index].behavior_id
            mask = np.zeros(len(hint_used), dtype=bool)
            mask[games[picked == index]] = True
            used[behavior_id] = used.get(behavior_id, False) | mask

    def observe(self, step: Mapping[str, np.ndarray], active: np.ndarray) -> None:
        played = self._active
        for tracker in self._trackers:
            if tracker is not None:
                tracker.observe({**step, "played": played}, active)
        self._active = np.array(active, dtype=bool)  # the env may reuse its array

    def finish(self, returns: np.ndarray, lengths: np.ndarray) -> None:
        """Add the batch to the run's tally; ``returns`` (B, seats), ``lengths`` (B,)."""
        for seat, tracker in enumerate(self._trackers):
            shown = self._shown[seat]
            if tracker is None or not shown:
                continue
            credit_of_game = tracker.credit(lengths)
            credits = sorted(set(credit_of_game))
            column = np.array([credits.index(c) for c in credit_of_game])
            per_step = returns[:, seat] / np.maximum(lengths, 1)
            behavior_ids = sorted(shown)
            used_by_seat = self._used[seat]
            any_used = np.zeros(len(lengths), dtype=bool)
            for games in used_by_seat.values():
                any_used |= games
            # shown / used / unused, then count / sum / sum of squares, per credit
            counts = np.zeros((len(behavior_ids), 3, 3, len(credits)))
            for row, behavior_id in enumerate(behavior_ids):
                used = used_by_seat.get(behavior_id)
                for which, games in enumerate((shown[behavior_id], used,
                                               shown[behavior_id] & ~any_used)):
                    if games is None:
                        continue
                    for moment in range(3):
                        np.add.at(counts[row, which, moment], column[games],
                                  per_step[games] ** moment)
            self._run.add(behavior_ids, credits, counts[:, 0], counts[:, 1], counts[:, 2])
