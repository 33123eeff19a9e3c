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
TABLED_ROUNDS = 128  # rounds whose context codes come from a lookup table


def phase_of(round_index: int, horizon: int) -> int:
    if round_index < PHASE_ROUNDS:
        return 0
    return 2 if round_index >= horizon - PHASE_ROUNDS else 1


@functools.lru_cache(maxsize=4 * TABLED_ROUNDS)
def code_base(round_index: int, horizon: int) -> np.ndarray:
    """Context codes without the last-round token, indexed [cooperations, repeats] of the
    co-player so far: one lookup per round replaces classifying every game's co-player
    anew. Read-only; shared by every run."""
    counts = np.arange(round_index + 1)
    kind = coplayer_type(counts[:, None], counts[None, :], round_index)
    table = kind * len(LAST_ROUND) * len(PHASES) + phase_of(round_index, horizon)
    table.flags.writeable = False
    return table


def contexts_for(agent: str, scenario: str, env_id: str) -> list[Context]:
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
    return found


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
        self._tables: dict[str, tuple[int, np.ndarray]] = {}  # agent -> (revision, ids)
        self._catalogue: dict[int, int] = {}
        self._behaviors: list[HintedBehavior] = []
        # One row per catalogued behavior, then the sentinel row that ``rows`` of -1 pick.
        self._executable = np.zeros(1, dtype=bool)
        self._cooperate = np.full((1, 5), np.nan)
        self._macros = np.full((1, 0), -1, dtype=np.int64)
        self._tally = _Tally()

    def batch(self, seat_agents: tuple[str, str], listening: tuple[bool, bool], num_games: int,
              horizon: int) -> BatchMemory:
        """Memory for a batch: hints for the seats whose agents can follow them
        (``listening``); the others would ignore them, and their statistics would only
        dilute the behaviors' own."""
        self.handbook.sync()
        tables = [
            self._table(agent) if listens else np.full((CONTEXTS, self.section.k), -1)
            for agent, listens in zip(seat_agents, listening)
        ]
        # A last row of no hints for the games that have already ended.
        hints_of = [np.vstack([self._rows(ids), np.full((1, self.section.k), -1)]) for ids in tables]
        return BatchMemory(self, tables, hints_of, listening, num_games, horizon)

    def _table(self, agent: str) -> np.ndarray:
        """Behavior ids (CONTEXTS, k) for every context of ``agent``, retrieved again only
        when the handbook has changed."""
        cached = self._tables.get(agent)
        if cached is not None and cached[0] == self.handbook.revision:
            return cached[1]
        found = self.handbook.retrieve(
            contexts_for(agent, self.scenario, self.env_id), k=self.section.k, filters=self.filters,
        )
        self._tables[agent] = (self.handbook.revision, found.ids)
        return found.ids

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        """The catalogue rows of behavior ids (-1 stays -1), adding new behaviors to it."""
        for behavior_id in np.unique(ids[ids >= 0]).tolist():
            if behavior_id not in self._catalogue:
                self._add_to_catalogue(behavior_id)
        rows = np.full(ids.shape, -1, dtype=np.int64)
        found = ids >= 0
        rows[found] = [self._catalogue[i] for i in ids[found].tolist()]
        return rows

    def _add_to_catalogue(self, behavior_id: int) -> None:
        record = self.handbook.cached(behavior_id)
        self._catalogue[behavior_id] = len(self._behaviors)
        self._behaviors.append(HintedBehavior(behavior_id, record.name, record.instruction,
                                              record.kind, record.payload))
        rule = np.full(5, np.nan)
        if record.kind == "response_rule":
            rule = np.array([record.payload["cooperate"][key] for key in RULE_KEYS])
        actions = list(record.payload["actions"]) if record.kind == "action_macro" else []
        width = max(self._macros.shape[1], len(actions))
        macros = np.full((len(self._behaviors) + 1, width), -1, dtype=np.int64)
        macros[:-2, : self._macros.shape[1]] = self._macros[:-1]
        macros[-2, : len(actions)] = actions
        self._macros = macros
        self._cooperate = np.vstack([self._cooperate[:-1], rule, self._cooperate[-1:]])
        self._executable = np.concatenate(
            [self._executable[:-1], [record.kind in ("response_rule", "action_macro"), False]]
        )

    def hints(self, contexts: np.ndarray, table: np.ndarray) -> Hints:
        return Hints(contexts, table, self._behaviors, self._executable, self._cooperate,
                     self._macros)

    def add(self, seat_ids: np.ndarray, shown: np.ndarray, used: np.ndarray,
            per_step: np.ndarray, kinds: np.ndarray) -> None:
        """Add one seat's episodes: ``shown`` and ``used`` (E, K) over the behavior ids
        ``seat_ids`` (K,), returns per step (E,), and the co-player type of each episode."""
        tally = self._tally
        unused = shown & ~used
        for column, behavior_id in enumerate(seat_ids.tolist()):
            shown_n = int(shown[:, column].sum())
            if not shown_n:
                continue
            used_here, unused_here = used[:, column], unused[:, column]
            tally.shown[behavior_id] += shown_n
            tally.uses[behavior_id] += int(used_here.sum())
            tally.return_used[behavior_id] += float(per_step[used_here].sum())
            tally.return_unused[behavior_id] += float(per_step[unused_here].sum())
            for kind in np.unique(kinds[shown[:, column]]).tolist():
                of_kind = kinds == kind
                tally.by_type[(behavior_id, COPLAYER_TYPES[kind])] += (
                    (used_here & of_kind).sum(), per_step[used_here & of_kind].sum(),
                    (unused_here & of_kind).sum(), per_step[unused_here & of_kind].sum(),
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
    co-player, which contexts it met and which hints it used. Every round costs a few array
    operations per listening seat: this is the simulation's hot path."""

    def __init__(self, run: RunMemory, tables: list[np.ndarray], rows: list[np.ndarray],
                 listening: tuple[bool, bool], num_games: int, horizon: int) -> None:
        self._run = run
        self.listening = listening
        self._seats = [seat for seat in (0, 1) if listening[seat]]
        self._ids = tables
        self._rows = rows
        self._horizon = horizon
        self._round = 0
        self._k = tables[0].shape[1]
        # One column past the contexts (and past the hint positions) collects what should
        # not count: games that have ended, rounds without a followed hint.
        self._seen = [np.zeros((num_games, CONTEXTS + 1), dtype=bool) for _ in (0, 1)]
        self._used = [np.zeros((num_games, CONTEXTS * self._k + 1), dtype=bool) for _ in (0, 1)]
        self._seen_offsets = np.arange(num_games) * (CONTEXTS + 1)
        self._used_offsets = np.arange(num_games) * (CONTEXTS * self._k + 1)
        self._codes = [np.zeros(num_games, dtype=np.int64) for _ in (0, 1)]
        # What each seat has seen its co-player do: cooperations, repeats of the seat's own
        # previous action; and the seat's own last action.
        self._cooperations = np.zeros((2, num_games), dtype=np.int64)
        self._repeats = np.zeros((2, num_games), dtype=np.int64)
        self._previous = np.zeros((2, num_games), dtype=np.int64)
        self._active = np.ones(num_games, dtype=bool)
        self._all_active = True

    def hints(self, seat: int, observations: np.ndarray) -> Hints:
        t = self._round
        if t <= TABLED_ROUNDS:
            codes = code_base(t, self._horizon)[self._cooperations[seat], self._repeats[seat]]
        else:  # long games: classify directly rather than keep ever larger tables
            kind = coplayer_type(self._cooperations[seat], self._repeats[seat], t)
            codes = kind * len(LAST_ROUND) * len(PHASES) + phase_of(t, self._horizon)
        codes += observations * len(PHASES)
        if not self._all_active:
            codes = np.where(self._active, codes, CONTEXTS)
        self._codes[seat] = codes
        self._seen[seat].ravel()[self._seen_offsets + codes] = True
        return self._run.hints(codes, self._rows[seat])

    def record(self, seat: int, hint_used: np.ndarray) -> None:
        position = self._codes[seat] * self._k + hint_used
        position = np.where((hint_used >= 0) & (self._codes[seat] < CONTEXTS), position,
                            CONTEXTS * self._k)
        self._used[seat].ravel()[self._used_offsets + position] = True

    def observe(self, actions: np.ndarray, active: np.ndarray) -> None:
        """After a round: ``actions`` (2, B), ``active`` the games still running after it."""
        for seat in self._seats:
            theirs = actions[1 - seat]
            cooperated = theirs == 0
            repeated = theirs == self._previous[seat]
            if not self._all_active:
                cooperated &= self._active
                repeated &= self._active
            self._cooperations[seat] += cooperated
            if self._round:
                self._repeats[seat] += repeated
            self._previous[seat] = actions[seat] if self._all_active else np.where(
                self._active, actions[seat], self._previous[seat])
        self._round += 1
        self._active = active
        self._all_active = bool(active.all())

    def finish(self, returns: np.ndarray, lengths: np.ndarray) -> None:
        """Add the batch to the run's tally; ``returns`` (B, 2), ``lengths`` (B,)."""
        per_step = returns / np.maximum(lengths, 1)[:, None]
        for seat in (0, 1):
            ids = self._ids[seat]
            behavior_ids = np.unique(ids[ids >= 0])
            if not behavior_ids.size or not self.listening[seat]:
                continue
            k = ids.shape[1]
            # (context, hint position) -> behavior column, so that the episodes' sets of
            # contexts become sets of behaviors by one matrix product.
            member = np.zeros((CONTEXTS * k + 1, len(behavior_ids)), dtype=np.float32)
            present = np.flatnonzero((ids >= 0).ravel())
            member[present, np.searchsorted(behavior_ids, ids.ravel()[present])] = 1.0
            by_context = np.vstack([member[:-1].reshape(CONTEXTS, k, -1).max(axis=1),
                                    np.zeros((1, len(behavior_ids)), dtype=np.float32)])
            shown = (self._seen[seat].astype(np.float32) @ by_context) > 0
            used = (self._used[seat].astype(np.float32) @ member) > 0
            kinds = coplayer_type(self._cooperations[seat], self._repeats[seat], lengths)
            self._run.add(behavior_ids, shown, used, per_step[:, seat], kinds)
