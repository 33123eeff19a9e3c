"""Memory inside the runner: each round, every agent's context, its retrieved behaviors, and
the tally of what was shown and used, for the handbook's statistics and graph.

An agent's context in a matrix game is what it has seen: the phase of the game, the last
joint action, and the type its co-player has shown so far (cooperator, defector,
reciprocator, mixed; ``memory.extraction.coplayer_type``), plus the scenario, env and the
agent's own name as graph entities. There are 75 such contexts per agent, so each batch of
games retrieves them all in one call at its start, right after syncing the handbook; every
round then looks its games' contexts up in that table with a few array operations.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from agents import HintedBehavior, Hints
from memory.behaviors import RULE_KEYS, Context, MemoryUsage, Usage
from memory.extraction import COPLAYER_TYPES, coplayer_type
from memory.handbook import Handbook
from memory.index import Filters
from memory.refs import behavior_ref
from scenarios.schema import MemorySection

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
TABLED_ROUNDS = 128  # games up to this long look their context codes up in tables


def phase_of(round_index: int, horizon: int) -> int:
    if round_index < PHASE_ROUNDS:
        return 0
    return 2 if round_index >= horizon - PHASE_ROUNDS else 1


@functools.lru_cache(maxsize=4 * TABLED_ROUNDS)
def code_table(round_index: int, horizon: int) -> np.ndarray:
    """Context codes indexed by ``(cooperations * (horizon + 1) + repeats) * tokens +
    last-round token``, from what a seat has seen of its co-player so far: one lookup per
    round replaces classifying every game's co-player anew. Read-only; shared by every run."""
    cooperations = np.arange(round_index + 1)[:, None, None]
    repeats = np.arange(horizon + 1)[None, :, None]  # past ``round_index``: never looked up
    last = np.arange(len(LAST_ROUND))[None, None, :]
    kind = coplayer_type(cooperations, repeats, round_index)
    table = ((kind * len(LAST_ROUND) + last) * len(PHASES) + phase_of(round_index, horizon))
    table = table.astype(np.int16).ravel()
    table.flags.writeable = False
    return table


@functools.lru_cache(maxsize=256)
def contexts_for(agent: str, scenario: str, env_id: str) -> tuple[Context, ...]:
    """Every context an agent can be in, in code order: (co-player type * 5 + last-round
    token) * 3 + phase."""
    found = []
    for kind in COPLAYER_TYPES:
        for last in LAST_ROUND:
            for phase in PHASES:
                found.append(Context(
                    f"{phase} of the game; the co-player looks like a {kind}; last round {last}",
                    (f"scenario:{scenario}", f"env:{env_id}", f"agent:{agent}", f"coplayer:{kind}"),
                ))
    return tuple(found)


@dataclass
class _Tally:
    """Per behavior: episodes shown, used, and summed return per step, used or not; and the
    same split by the co-player type of the episode."""

    shown: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    uses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    return_used: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    return_unused: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    by_type: dict[tuple[int, str], np.ndarray] = field(
        default_factory=lambda: defaultdict(lambda: np.zeros(4))  # used n, sum; unused n, sum
    )


class RunMemory:
    """The handbook's part in one run: builds each batch's ``BatchMemory`` and sums usage."""

    def __init__(self, handbook: Handbook, section: MemorySection, *, scenario: str, env_id: str) -> None:
        self.handbook = handbook
        self.section = section
        self.scenario = scenario
        self.env_id = env_id
        self.filters = Filters(tags=frozenset(section.tags), kinds=frozenset(section.kinds))
        self._catalogue: dict[int, int] = {}
        self._behaviors: list[HintedBehavior] = []
        # One row per catalogued behavior, then the sentinel row that ``rows`` of -1 pick.
        self._executable = np.zeros(1, dtype=bool)
        self._cooperate = np.full((1, 5), np.nan)
        self._macros = np.full((1, 0), -1, dtype=np.int64)
        self._tally = _Tally()
        self._tables: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # agent -> (ids, rows)
        self._tables_revision: tuple[int | None, int] | None = None
        self._no_hints = np.full((1, section.k), -1, dtype=np.int64)
        self._no_table = (np.full((CONTEXTS, section.k), -1, dtype=np.int64),
                          np.full((CONTEXTS + 1, section.k), -1, dtype=np.int64))

    def batch(self, seat_agents: tuple[str, str], listening: tuple[bool, bool], num_games: int,
              horizon: int) -> BatchMemory:
        """Memory for a batch: hints for the seats whose agents can follow them
        (``listening``); the others would ignore them, and their statistics would only
        dilute the behaviors' own."""
        self.handbook.sync()
        if self.handbook.revision != self._tables_revision:
            self._tables.clear()
            self._tables_revision = self.handbook.revision
        tables = [self._table(agent) if listens else self._no_table
                  for agent, listens in zip(seat_agents, listening)]
        return BatchMemory(self, [ids for ids, _ in tables], [rows for _, rows in tables],
                           listening, num_games, horizon)

    def _table(self, agent: str) -> tuple[np.ndarray, np.ndarray]:
        """Behavior ids (CONTEXTS, k) for every context of ``agent``, and their catalogue
        rows with a last row of no hints for the games that have already ended. Kept until
        the handbook changes: the same arrays every batch also keep the agents' plans."""
        found = self._tables.get(agent)
        if found is None:
            ids = self.handbook.retrieve(
                contexts_for(agent, self.scenario, self.env_id), k=self.section.k,
                filters=self.filters,
            ).ids
            found = self._tables[agent] = (ids, np.vstack([self._rows(ids), self._no_hints]))
        return found

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        """The catalogue rows of behavior ids (-1 stays -1), adding new behaviors to it."""
        fresh = [b for b in np.unique(ids[ids >= 0]).tolist() if b not in self._catalogue]
        if fresh:
            self._add_to_catalogue(fresh)
        rows = np.full(ids.shape, -1, dtype=np.int64)
        found = ids >= 0
        rows[found] = [self._catalogue[i] for i in ids[found].tolist()]
        return rows

    def _add_to_catalogue(self, behavior_ids: list[int]) -> None:
        rules, macros, executable = [], [], []
        for behavior_id in behavior_ids:
            record = self.handbook.cached(behavior_id)
            self._catalogue[behavior_id] = len(self._behaviors)
            self._behaviors.append(HintedBehavior(behavior_id, record.name, record.instruction,
                                                  record.kind, record.payload))
            rules.append([record.payload["cooperate"][key] for key in RULE_KEYS]
                         if record.kind == "response_rule" else [np.nan] * len(RULE_KEYS))
            macros.append(list(record.payload["actions"]) if record.kind == "action_macro" else [])
            executable.append(record.kind in ("response_rule", "action_macro"))
        width = max(self._macros.shape[1], *map(len, macros))
        grown = np.full((len(self._behaviors) + 1, width), -1, dtype=np.int64)
        old = len(self._behaviors) - len(behavior_ids)
        grown[:old, : self._macros.shape[1]] = self._macros[:-1]
        for row, actions in enumerate(macros, start=old):
            grown[row, : len(actions)] = actions
        self._macros = grown
        self._executable = np.concatenate([self._executable[:-1], executable, [False]])
        self._cooperate = np.vstack([self._cooperate[:-1], np.array(rules, dtype=float),
                                     self._cooperate[-1:]])

    def hints(self, contexts: np.ndarray, table: np.ndarray) -> Hints:
        return Hints(contexts, table, self._behaviors, self._executable, self._cooperate,
                     self._macros)

    def add(self, behavior_ids: np.ndarray, shown: np.ndarray, used: np.ndarray) -> None:
        """Add one seat's batch: per behavior (rows, ``behavior_ids``) and co-player type
        (last axis, ``COPLAYER_TYPES``), the episodes it was shown in and those it was used
        in, as counts ``[:, 0]`` and sums of return per step ``[:, 1]``."""
        tally = self._tally
        unused = shown - used
        totals = zip(behavior_ids.tolist(), shown.sum(axis=2).tolist(), used.sum(axis=2).tolist(),
                     unused[:, 1].sum(axis=1).tolist())
        for row, (behavior_id, (shown_n, _), (used_n, used_sum), unused_sum) in enumerate(totals):
            if not shown_n:
                continue
            tally.shown[behavior_id] += round(shown_n)
            tally.uses[behavior_id] += round(used_n)
            tally.return_used[behavior_id] += used_sum
            tally.return_unused[behavior_id] += unused_sum
            for kind in np.flatnonzero(shown[row, 0]).tolist():
                tally.by_type[(behavior_id, COPLAYER_TYPES[kind])] += (
                    used[row, 0, kind], used[row, 1, kind], unused[row, 0, kind], unused[row, 1, kind],
                )

    def usage(self) -> MemoryUsage:
        tally = self._tally
        usages = tuple(
            Usage(b, tally.shown[b], tally.uses[b], tally.return_used[b], tally.return_unused[b])
            for b in sorted(tally.shown)
        )
        effective = []
        for (behavior_id, kind), (used_n, used_sum, unused_n, unused_sum) in sorted(tally.by_type.items()):
            if used_n and unused_n:
                advantage = used_sum / used_n - unused_sum / unused_n
                if advantage > 0:
                    effective.append((behavior_ref(behavior_id), "effective_against",
                                      f"coplayer:{kind}", float(advantage)))
        used_in = tuple(
            (behavior_ref(b), "used_in", f"scenario:{self.scenario}", float(tally.uses[b]))
            for b in sorted(tally.uses) if tally.uses[b]
        )
        return MemoryUsage(usages, tuple(effective), used_in)


class BatchMemory:
    """One batch of B games: per listening seat, what each game's agent has seen of its
    co-player, which contexts it met and which hints it used. Every round costs a handful of
    array operations per listening seat: this is the simulation's hot path.

    Each round a listening seat marks one cell per game in a (cells, B) table: the cell of
    its context and of the hint it used (or of none). At the batch's end those marks become
    per-behavior sets of episodes, as bitsets."""

    def __init__(self, run: RunMemory, tables: list[np.ndarray], rows: list[np.ndarray],
                 listening: tuple[bool, bool], num_games: int, horizon: int) -> None:
        self._run = run
        self.listening = listening
        self._seats = [seat for seat in (0, 1) if listening[seat]]
        self._ids = tables
        self._rows = rows
        self._horizon = horizon
        self._round = 0
        self._slots = tables[0].shape[1] + 1  # per context: no hint used, then each position
        # The cells past the contexts' belong to games that have ended: they never count.
        self._marks = [np.zeros(((CONTEXTS + 1) * self._slots, num_games), dtype=np.uint8)
                       if listens else None for listens in listening]
        self._games = num_games
        self._mark_offsets = np.arange(num_games) + num_games  # slot 0 is "no hint used"
        self._codes = [np.zeros(num_games, dtype=np.int64) for _ in (0, 1)]
        self._code_tables = ([code_table(t, horizon) for t in range(horizon)]
                             if horizon <= TABLED_ROUNDS else None)
        # What each seat has seen its co-player do, as one number per game: (cooperations
        # * (horizon + 1) + repeats of the seat's own previous action) * tokens, so that
        # adding the last-round token gives the index into ``code_table``.
        tokens = len(LAST_ROUND)
        self._stride = horizon + 1
        self._seen_play = np.zeros((2, num_games), dtype=np.int64)
        cooperated, repeated = self._stride * tokens, tokens
        # Indexed by their action * 2 + own previous action: in the first round nothing
        # can be a repeat yet.
        self._first_increments = np.array([cooperated, cooperated, 0, 0])
        self._increments = np.array([cooperated + repeated, cooperated, 0, repeated])
        self._previous = np.zeros((2, num_games), dtype=np.int64)
        self._active = np.ones(num_games, dtype=bool)
        self._all_active = True

    def _counts(self, seat: int) -> tuple[np.ndarray, np.ndarray]:
        """(cooperations, repeats) seen by ``seat``, per game."""
        return np.divmod(self._seen_play[seat] // len(LAST_ROUND), self._stride)

    def hints(self, seat: int, observations: np.ndarray) -> Hints:
        t = self._round
        if self._code_tables is not None:
            codes = self._code_tables[t].take(self._seen_play[seat] + observations)
        else:  # long games: classify directly rather than keep large tables
            kind = coplayer_type(*self._counts(seat), t)
            codes = ((kind * len(LAST_ROUND) + observations) * len(PHASES)
                     + phase_of(t, self._horizon))
        if not self._all_active:
            codes = np.where(self._active, codes, CONTEXTS)
        self._codes[seat] = codes
        return self._run.hints(codes, self._rows[seat])

    def record(self, seat: int, hint_used: np.ndarray) -> None:
        cell = self._codes[seat] * self._slots + hint_used
        self._marks[seat].ravel()[cell * self._games + self._mark_offsets] = 1

    def observe(self, actions: np.ndarray, active: np.ndarray) -> None:
        """After a round: ``actions`` (2, B), ``active`` the games still running after it."""
        increments = self._increments if self._round else self._first_increments
        for seat in self._seats:
            seen = increments.take(actions[1 - seat] * 2 + self._previous[seat])
            if self._all_active:
                self._previous[seat] = actions[seat]
            else:
                seen *= self._active
                self._previous[seat] = np.where(self._active, actions[seat], self._previous[seat])
            self._seen_play[seat] += seen
        self._round += 1
        # A fixed horizon hands the same read-only flags every round: nothing to look at.
        if active is not self._active or active.flags.writeable:
            self._all_active = bool(active.all())
        self._active = active

    def finish(self, returns: np.ndarray, lengths: np.ndarray) -> None:
        """Add the batch to the run's tally; ``returns`` (B, 2), ``lengths`` (B,)."""
        per_step = returns / np.maximum(lengths, 1)[:, None]
        for seat in self._seats:
            found = self._episode_sets(seat, len(lengths))
            if found is None:
                continue
            behavior_ids, sets = found
            # Per episode: a one-hot of its co-player type, then that times its return per
            # step. Single precision: sums of a few thousand returns per batch lose nothing
            # that matters, and a double product of this shape is several times slower.
            kinds = coplayer_type(*self._counts(seat), lengths)
            one_hot = np.eye(len(COPLAYER_TYPES), dtype=np.float32).take(kinds, axis=0)
            weights = np.hstack([one_hot, one_hot * per_step[:, seat, None].astype(np.float32)])
            totals = np.matmul(sets, weights, dtype=np.float32)
            shown, used = totals.reshape(2, len(behavior_ids), 2, len(COPLAYER_TYPES))
            self._run.add(behavior_ids, shown, used)

    def _episode_sets(self, seat: int, episodes: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The behaviors in ``seat``'s table (sorted ids) and, per behavior, the episodes it
        was shown in, then those it was used in: (2 * behaviors, episodes) of 0/1."""
        ids = self._ids[seat]
        present = ids >= 0
        if not present.any():
            return None
        listed = ids[present]
        behavior_ids = np.array(sorted(set(listed.tolist())), dtype=listed.dtype)
        # Bitsets over the episodes, one row of 64-bit words per cell (context, slot).
        bits = np.packbits(self._marks[seat], axis=1)
        if bits.shape[1] % 8:
            bits = np.pad(bits, ((0, 0), (0, -bits.shape[1] % 8)))
        bits = bits.view(np.uint64).reshape(CONTEXTS + 1, self._slots, -1)[:CONTEXTS]
        seen = np.bitwise_or.reduce(bits, axis=1)  # (contexts, words)
        used = bits[:, 1:].reshape(CONTEXTS * (self._slots - 1), -1)  # (context, position)
        # Per behavior, the OR of the rows of its cells, grouped by behavior for reduceat.
        columns = np.searchsorted(behavior_ids, listed)
        order = np.argsort(columns, kind="stable")
        starts = np.searchsorted(columns[order], np.arange(len(behavior_ids)))
        cells = np.flatnonzero(present.ravel())[order]
        sets = np.vstack([np.bitwise_or.reduceat(seen[cells // (self._slots - 1)], starts),
                          np.bitwise_or.reduceat(used[cells], starts)])
        return behavior_ids, np.unpackbits(sets.view(np.uint8), axis=1, count=episodes)
