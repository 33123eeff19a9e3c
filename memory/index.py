"""The in-memory retrieval index over behaviors: lexical, vector and graph rankings fused.

The handbook keeps one ``BehaviorIndex`` consistent with its database and asks it, never SQL,
at every step of a simulation. One ``search`` call serves a whole batch of contexts: each
ranking (``memory.rankers``: lexical, vector, graph) keeps its best ``depth`` candidates, and
reciprocal-rank fusion combines them. Filters (tags, kinds, validity) apply inside every
ranking, before candidates are cut.

A behavior applies only where its trigger holds: when a context names an entity of a type
the trigger names too (a ``coplayer``, a ``subgoal``), the keys must agree, so a response meant
for a defector is never handed to an agent that has not yet seen one. A context that names no
entity of that type (a free-text search) is not held to it.

Behaviors live in *slots*: an update writes a fresh slot and retires the old one, so the IVF
cells never hold stale vectors; retired slots are dropped when the IVF is rebuilt.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from memory.rankers.fusion import fuse
from memory.rankers.graph import GraphRanker
from memory.rankers.ivf import Ivf
from memory.rankers.lexical import LexicalRanker
from memory.rankers.vector import Ranking, VectorRanker
from memory.vector_helper import VectorHelper

FOREVER = math.inf


@dataclass(frozen=True, kw_only=True)
class Filters:
    """Which behaviors a retrieval may return.

    ``tags``: every one must be present. ``kinds``: any of them (empty: every kind).
    ``valid_at``: POSIX seconds; the behavior must have been valid then (default: valid now).
    ``include_invalid``: ignore validity altogether.
    """

    tags: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    valid_at: float | None = None
    include_invalid: bool = False


NO_FILTERS = Filters()


@dataclass(frozen=True)
class IndexEntry:
    """What the index needs of one behavior's current version."""

    behavior_id: int
    vector: np.ndarray  # (d,) float32, unit length
    terms: Sequence[str]  # lexical words, repeated as often as they occur
    kind: str
    tags: frozenset[str]
    valid_from: float
    valid_to: float = FOREVER
    trigger: tuple[tuple[str, str], ...] = ()  # (entity type, key) pairs


@dataclass(frozen=True, kw_only=True)
class IndexSettings:
    depth: int = 20  # candidates each ranking hands to the fusion
    exact_limit: int = 4096  # vector search stays exact up to this many behaviors
    probes: int = 10  # IVF cells visited per query
    query_terms: int = 6
    posting_limit: int = 64
    channel_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)  # lexical, vector, graph
    # Rank large batches' vectors in a second process (``memory/vector_helper.py``): uses a
    # second core; off by default, as it starts a process.
    vector_helper: bool = False

    def __post_init__(self) -> None:
        for name in ("depth", "exact_limit", "probes", "query_terms", "posting_limit"):
            if getattr(self, name) < 1:
                raise ValueError(f"IndexSettings.{name} must be at least 1")


@dataclass
class _Slots:
    """Per-slot columns; a slot whose id is -1 is retired."""

    ids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    vectors: np.ndarray = field(default_factory=lambda: np.empty((0, 0), dtype=np.float32))
    kinds: list[str] = field(default_factory=list)
    tags: list[frozenset[str]] = field(default_factory=list)
    valid_from: np.ndarray = field(default_factory=lambda: np.empty(0))
    valid_to: np.ndarray = field(default_factory=lambda: np.empty(0))
    terms: list[dict[int, int]] = field(default_factory=list)  # term id -> count
    lengths: np.ndarray = field(default_factory=lambda: np.empty(0))
    count: int = 0


class BehaviorIndex:
    """The behaviors' entries in slots, the filters over them, and the three rankings."""

    def __init__(self, dimension: int, settings: IndexSettings = IndexSettings()) -> None:
        self.dimension = dimension
        self.settings = settings
        self._slots = _Slots(vectors=np.empty((0, dimension), dtype=np.float32))
        self._slot_of: dict[int, int] = {}
        self._masks: dict[Filters, np.ndarray] = {}
        self._lexical = LexicalRanker(settings.query_terms, settings.posting_limit)
        self._vector = VectorRanker(settings.exact_limit, settings.probes, settings.vector_helper)
        self._graph = GraphRanker(settings.posting_limit)
        self._triggers: dict[int, tuple[tuple[str, str], ...]] = {}
        self._trigger_types: dict[str, int] = {}  # entity type -> behaviors triggered by one

    # ---- writes -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._slot_of)

    def upsert(self, entry: IndexEntry) -> None:
        if entry.vector.shape != (self.dimension,):
            raise ValueError(f"vector of shape {entry.vector.shape}, index has {self.dimension}")
        self._retire(entry.behavior_id)
        slots = self._slots
        if slots.count == len(slots.ids):
            self._grow(max(64, 2 * slots.count))
        slot = slots.count
        slots.count += 1
        slots.ids[slot] = entry.behavior_id
        slots.vectors[slot] = entry.vector
        slots.kinds.append(entry.kind)
        slots.tags.append(entry.tags)
        slots.valid_from[slot] = entry.valid_from
        slots.valid_to[slot] = entry.valid_to
        slots.terms.append(self._lexical.count(entry.terms))
        slots.lengths[slot] = len(entry.terms)
        self._slot_of[entry.behavior_id] = slot
        if entry.trigger:
            self._triggers[entry.behavior_id] = entry.trigger
            for kind, _ in entry.trigger:
                self._trigger_types[kind] = self._trigger_types.get(kind, 0) + 1
        self._changed()

    def set_validity(self, behavior_id: int, valid_to: float) -> None:
        self._slots.valid_to[self._slot_of[behavior_id]] = valid_to
        self._masks.clear()

    def set_links(self, behavior_id: int, links: Mapping[str, float]) -> None:
        """The behavior's graph neighbours (entity keys such as ``coplayer:tit_for_tat``)."""
        self._graph.set_links(behavior_id, links)

    def discard(self, behavior_id: int) -> None:
        self._retire(behavior_id)
        self._graph.discard(behavior_id)
        self._changed()

    def _retire(self, behavior_id: int) -> None:
        slot = self._slot_of.pop(behavior_id, None)
        if slot is None:
            return
        for kind, _ in self._triggers.pop(behavior_id, ()):
            self._trigger_types[kind] -= 1
            if not self._trigger_types[kind]:
                del self._trigger_types[kind]
        slots = self._slots
        slots.ids[slot] = -1
        self._lexical.forget(slots.terms[slot], slots.lengths[slot])
        slots.terms[slot] = {}

    def _grow(self, capacity: int) -> None:
        slots = self._slots
        extra = capacity - len(slots.ids)
        slots.ids = np.concatenate([slots.ids, np.full(extra, -1, dtype=np.int64)])
        slots.vectors = np.concatenate(
            [slots.vectors, np.zeros((extra, self.dimension), dtype=np.float32)]
        )
        slots.valid_from = np.concatenate([slots.valid_from, np.zeros(extra)])
        slots.valid_to = np.concatenate([slots.valid_to, np.zeros(extra)])
        slots.lengths = np.concatenate([slots.lengths, np.zeros(extra)])

    def _changed(self) -> None:
        """After a write: filters and the lexical and graph rankings are rebuilt on the next
        search."""
        self._masks.clear()
        self._lexical.changed()
        self._graph.changed()

    def _compact(self) -> None:
        """Drop retired slots before an IVF rebuild, so slot numbers stay dense."""
        slots = self._slots
        live = np.flatnonzero(slots.ids[: slots.count] >= 0)
        if len(live) == slots.count:
            return
        compacted = _Slots(
            ids=slots.ids[live].copy(), vectors=slots.vectors[live].copy(),
            kinds=[slots.kinds[s] for s in live], tags=[slots.tags[s] for s in live],
            valid_from=slots.valid_from[live].copy(), valid_to=slots.valid_to[live].copy(),
            terms=[slots.terms[s] for s in live], lengths=slots.lengths[live].copy(),
            count=len(live),
        )
        self._slots = compacted
        self._slot_of = {int(b): s for s, b in enumerate(compacted.ids)}
        self._masks.clear()
        self._lexical.moved()
        self._graph.changed()

    # ---- reads --------------------------------------------------------------------------

    def search(
        self,
        vectors: np.ndarray,
        terms: Sequence[Sequence[str]],
        entities: Sequence[Sequence[str]],
        k: int,
        filters: Filters = NO_FILTERS,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best behaviors for each of B contexts: ids (B, k), -1 where fewer match,
        and fused scores (B, k), 0 where fewer match."""
        batch = len(terms)
        if not self._slot_of or batch == 0:
            return np.full((batch, k), -1, dtype=np.int64), np.zeros((batch, k), dtype=np.float32)
        self._ensure_built()
        bias = self._mask(filters)
        depth = max(self.settings.depth, k)
        slots = self._slots
        vector_top = self._vector.start_top(
            slots.vectors[: slots.count], np.ascontiguousarray(vectors, dtype=np.float32), depth,
            bias)
        lexical = self._lexical.top(terms, depth, bias)
        graph = self._graph.top(entities, depth, bias)
        gates = self._gates(entities)
        rankings = [lexical, vector_top(), graph]
        if not any(gates):
            return fuse(rankings, self.settings.channel_weights, k, slots.ids)
        # Every candidate, fused, then the ones whose trigger the context contradicts dropped.
        ids, scores = fuse(rankings, self.settings.channel_weights, 3 * depth, slots.ids)
        return _gated(ids, scores, gates, self._triggers, k)

    def _gates(self, entities: Sequence[Sequence[str]]) -> list[dict[str, set[str]]]:
        """Per context: the keys it names for each entity type that some trigger names."""
        if not self._trigger_types:
            return [{} for _ in entities]
        gates = []
        for refs in entities:
            gate: dict[str, set[str]] = {}
            for ref in refs:
                kind, _, key = ref.partition(":")
                if kind in self._trigger_types:
                    gate.setdefault(kind, set()).add(key)
            gates.append(gate)
        return gates

    def applies(self, behavior_id: int, entities: Sequence[str]) -> bool:
        """Whether the behavior's trigger holds in a context naming ``entities``."""
        return _holds(self._triggers.get(behavior_id, ()), self._gates([entities])[0])

    def nearest(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` currently valid behaviors most similar to ``vector``: ids and cosines."""
        if not self._slot_of:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        self._ensure_built(postings=False)
        slots, scores = self._vector.top(
            self._vectors(), np.asarray(vector, dtype=np.float32)[None], k, self._mask(NO_FILTERS)
        )
        keep = slots[0] >= 0
        return self._slots.ids[slots[0][keep]], scores[0][keep]

    def vector(self, behavior_id: int) -> np.ndarray:
        """The behavior's indexed embedding (a copy)."""
        return self._slots.vectors[self._slot_of[behavior_id]].copy()

    def close(self) -> None:
        """Stop the vector helper, if one was started."""
        self._vector.close()

    def _ensure_built(self, *, postings: bool = True) -> None:
        """Rebuild what writes have made stale: the lexical and graph postings (unless only
        vectors are needed), and the IVF cells once too many behaviors sit outside them."""
        if self._vector.needs_training(len(self._slot_of), self._slots.count, searching=postings):
            self._compact()
            self._vector.train(self._vectors())
        slots = self._slots
        if postings and not self._lexical.built:
            self._lexical.build(slots.ids[: slots.count], slots.terms, slots.lengths)
        if postings and not self._graph.built:
            self._graph.build(self._slot_of, slots.count)

    def _mask(self, filters: Filters) -> np.ndarray:
        """Per slot: 0 where the filters allow it, -inf elsewhere (retired slots included)."""
        cached = self._masks.get(filters)
        if cached is not None:
            return cached
        slots = self._slots
        n = slots.count
        allowed = slots.ids[:n] >= 0
        if not filters.include_invalid:
            moment = filters.valid_at
            if moment is None:
                allowed &= slots.valid_to[:n] == FOREVER
            else:
                allowed &= (slots.valid_from[:n] <= moment) & (moment < slots.valid_to[:n])
        if filters.kinds:
            allowed &= np.fromiter((kind in filters.kinds for kind in slots.kinds), bool, n)
        if filters.tags:
            allowed &= np.fromiter((filters.tags <= tags for tags in slots.tags), bool, n)
        mask = np.where(allowed, 0.0, -np.inf).astype(np.float32)
        self._masks[filters] = mask
        return mask

    def _vectors(self) -> np.ndarray:
        return self._slots.vectors[: self._slots.count]

    # ---- one ranking at a time (after ``_ensure_built``): for the tests that compare them,
    # and the benchmark of the IVF's recall

    def _lexical_top(self, queries: Sequence[Sequence[str]], depth: int,
                     bias: np.ndarray) -> Ranking:
        return self._lexical.top(queries, depth, bias)

    def _vector_top(self, queries: np.ndarray, depth: int, bias: np.ndarray) -> Ranking:
        return self._vector.top(self._vectors(), queries, depth, bias)

    def _graph_top(self, queries: Sequence[Sequence[str]], depth: int,
                   bias: np.ndarray) -> Ranking:
        return self._graph.top(queries, depth, bias)

    @property
    def _ivf(self) -> Ivf | None:
        return self._vector.ivf

    @property
    def _ivf_version(self) -> int:
        return self._vector.version

    @property
    def _helper(self) -> VectorHelper | None:
        return self._vector.helper


def _holds(trigger: tuple[tuple[str, str], ...], gate: dict[str, set[str]]) -> bool:
    return all(key in gate[kind] for kind, key in trigger if kind in gate)


def _gated(ids: np.ndarray, scores: np.ndarray, gates: list[dict[str, set[str]]],
           triggers: Mapping[int, tuple[tuple[str, str], ...]],
           k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` of each row's candidates whose trigger holds in its context."""
    kept_ids = np.full((len(ids), k), -1, dtype=np.int64)
    kept_scores = np.zeros((len(ids), k), dtype=np.float32)
    for row, gate in enumerate(gates):
        column = 0
        for behavior_id, score in zip(ids[row].tolist(), scores[row].tolist()):
            if column == k or behavior_id < 0:
                break
            if gate and not _holds(triggers.get(behavior_id, ()), gate):
                continue
            kept_ids[row, column] = behavior_id
            kept_scores[row, column] = score
            column += 1
    return kept_ids, kept_scores
