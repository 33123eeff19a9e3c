"""The in-memory retrieval index over behaviors: lexical, vector and graph rankings fused.

The handbook keeps one ``BehaviorIndex`` consistent with its database and asks it, never SQL,
at every step of a simulation. One ``search`` call serves a whole batch of contexts:

- **vector**: cosine similarity to the context's embedding. Exact for the most recently
  added behaviors; an inverted-file (IVF) index of k-means cells for the rest once there are
  more than ``exact_limit`` of them, probing the ``probes`` cells nearest each query. No
  cell holds more than the mean of the first k-means (crowded cells are halved), because a
  batch pads every probed cell to the largest.
- **lexical**: BM25 over each behavior's name, instruction and tags. Each query keeps its
  ``query_terms`` rarest words and each word its ``posting_limit`` highest-impact postings
  (static pruning), which is exact for short, specific contexts.
- **graph**: behaviors linked to the context's entities (its scenario, env, inferred
  co-player type...), ranked by the summed weight of those links.

Each ranking keeps its best ``depth`` candidates; reciprocal-rank fusion (RRF) combines them.
Filters (tags, kinds, validity) apply inside every ranking, before candidates are cut.

Behaviors live in *slots*: an update writes a fresh slot and retires the old one, so the IVF
cells never hold stale vectors; retired slots are dropped when the IVF is rebuilt.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from memory.vector_helper import HELPER_SHARE, MIN_BATCH, VectorHelper

RRF_K = 60.0
BM25_K1 = 1.2
BM25_B = 0.75
FOREVER = math.inf
_SLOT_CEILING = np.int64(2**31 - 1)  # slots stay below it: they are packed into 32 bits


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
class _Postings:
    """A compressed-row table: for key ``i``, ``slots[ptr[i]:ptr[i+1]]`` and their weights,
    best first, over ``width`` slots."""

    ptr: np.ndarray
    slots: np.ndarray
    weights: np.ndarray
    width: int
    _matrix: object = None  # the same table as a scipy CSR matrix, built for batches

    def matrix(self):
        if self._matrix is None:
            from scipy import sparse  # only here: batches need it, single queries do not

            self._matrix = sparse.csr_matrix((self.weights, self.slots, self.ptr),
                                             shape=(len(self.ptr) - 1, self.width))
        return self._matrix


@dataclass
class _Ivf:
    centroids: np.ndarray  # (cells, d)
    starts: np.ndarray  # (cells + 1,) into the cell-sorted arrays
    slots: np.ndarray  # (covered,) slot of each cell-sorted row
    vectors: np.ndarray  # (covered, d) cell-sorted
    covered: int  # slots [0, covered) are in the IVF; later ones are scanned exactly


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
    def __init__(self, dimension: int, settings: IndexSettings = IndexSettings()) -> None:
        self.dimension = dimension
        self.settings = settings
        self._slots = _Slots(vectors=np.empty((0, dimension), dtype=np.float32))
        self._slot_of: dict[int, int] = {}
        self._links: dict[int, dict[str, float]] = {}  # behavior id -> entity -> weight
        self._vocabulary: dict[str, int] = {}
        self._document_frequency = np.zeros(256, dtype=np.int64)  # per term id
        self._entities: dict[str, int] = {}
        self._ivf: _Ivf | None = None
        self._ivf_version = 0  # counts retrainings, so the helper knows when to take new cells
        self._helper: VectorHelper | None = None
        self._lexical: _Postings | None = None
        self._graph: _Postings | None = None
        self._masks: dict[Filters, np.ndarray] = {}
        self._idf_cache: np.ndarray | None = None
        self._rarity_cache: tuple[np.ndarray, np.ndarray] | None = None
        self._length_total = 0.0

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
        counts: dict[int, int] = {}
        for word in entry.terms:
            term = self._vocabulary.setdefault(word, len(self._vocabulary))
            counts[term] = counts.get(term, 0) + 1
        while len(self._vocabulary) > len(self._document_frequency):
            self._document_frequency = np.concatenate(
                [self._document_frequency, np.zeros_like(self._document_frequency)]
            )
        self._document_frequency[list(counts)] += 1
        slots.ids[slot] = entry.behavior_id
        slots.vectors[slot] = entry.vector
        slots.kinds.append(entry.kind)
        slots.tags.append(entry.tags)
        slots.valid_from[slot] = entry.valid_from
        slots.valid_to[slot] = entry.valid_to
        slots.terms.append(counts)
        slots.lengths[slot] = len(entry.terms)
        self._length_total += len(entry.terms)
        self._slot_of[entry.behavior_id] = slot
        self._changed()

    def set_validity(self, behavior_id: int, valid_to: float) -> None:
        self._slots.valid_to[self._slot_of[behavior_id]] = valid_to
        self._masks.clear()

    def set_links(self, behavior_id: int, links: Mapping[str, float]) -> None:
        """The behavior's graph neighbours (entity keys such as ``coplayer:tit_for_tat``)."""
        for entity in links:
            self._entities.setdefault(entity, len(self._entities))
        self._links[behavior_id] = dict(links)
        self._graph = None

    def discard(self, behavior_id: int) -> None:
        self._retire(behavior_id)
        self._links.pop(behavior_id, None)
        self._changed()

    def _retire(self, behavior_id: int) -> None:
        slot = self._slot_of.pop(behavior_id, None)
        if slot is None:
            return
        slots = self._slots
        slots.ids[slot] = -1
        self._document_frequency[list(slots.terms[slot])] -= 1
        self._length_total -= slots.lengths[slot]
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
        """After a write: filters, postings and IDF are rebuilt on the next search."""
        self._masks.clear()
        self._graph = None
        self._lexical = None
        self._idf_cache = None
        self._rarity_cache = None

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
        vector_top = self._start_vector_top(np.ascontiguousarray(vectors, dtype=np.float32),
                                            depth, bias)
        lexical, graph = self._lexical_top(terms, depth, bias), self._graph_top(entities, depth, bias)
        rankings = [lexical, vector_top(), graph]
        shares, share_lists = _rank_shares(self.settings.channel_weights, depth)
        if batch == 1:
            return self._fuse_one([slots[0].tolist() for slots, _ in rankings], share_lists, k)
        candidates = np.concatenate([slots for slots, _ in rankings], axis=1)
        contributions = np.concatenate([
            np.where(slots >= 0, share, 0.0).astype(np.float32)
            for (slots, _), share in zip(rankings, shares)
        ], axis=1)
        slots, fused = _sum_by_slot(candidates, contributions, k)
        found = slots >= 0
        ids = np.where(found, self._slots.ids[np.maximum(slots, 0)], -1)
        return ids, np.where(found, fused, 0.0).astype(np.float32)

    def _fuse_one(self, rankings: list[list[int]], shares: list[list[float]], k: int):
        """The fusion for one query, in plain Python: a few dozen candidates, so dictionary
        arithmetic beats array calls. Same shares, same ties (lower slot first)."""
        totals: dict[int, float] = {}
        for slots, share in zip(rankings, shares):
            for rank, slot in enumerate(slots):
                if slot >= 0:
                    totals[slot] = totals.get(slot, 0.0) + share[rank]
        best = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:k]
        ids = np.full((1, k), -1, dtype=np.int64)
        scores = np.zeros((1, k), dtype=np.float32)
        for position, (slot, total) in enumerate(best):
            ids[0, position] = self._slots.ids[slot]
            scores[0, position] = total
        return ids, scores

    def nearest(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` currently valid behaviors most similar to ``vector``: ids and cosines."""
        if not self._slot_of:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        self._ensure_built(postings=False)
        slots, scores = self._vector_top(
            np.asarray(vector, dtype=np.float32)[None], k, self._mask(NO_FILTERS)
        )
        keep = slots[0] >= 0
        return self._slots.ids[slots[0][keep]], scores[0][keep]

    def _ensure_built(self, *, postings: bool = True) -> None:
        """Rebuild what writes have made stale: the lexical and graph postings (unless only
        vectors are needed), and the IVF cells once too many behaviors sit outside them.
        Behaviors added since the IVF was trained are scanned exactly; a search tolerates
        few of them, a dedup check during bulk writes many, so that writing 100k behaviors
        retrains the cells a few times rather than every thousand."""
        n = len(self._slot_of)
        if n > self.settings.exact_limit:
            covered = self._ivf.covered if self._ivf else 0
            fresh = self._slots.count - covered
            retired = self._slots.count - n
            tolerated = max(512, covered // 16) if postings else max(self.settings.exact_limit, covered // 4)
            if self._ivf is None or fresh > tolerated or retired > covered // 4:
                self._compact()
                self._ivf = _train_ivf(self._slots.vectors[: self._slots.count])
                self._ivf_version += 1
        if postings and self._lexical is None:
            self._lexical = self._build_lexical()
        if postings and self._graph is None:
            self._graph = self._build_graph()

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

    # ---- vector ranking -----------------------------------------------------------------

    def close(self) -> None:
        """Stop the vector helper, if one was started."""
        if self._helper is not None:
            self._helper.close()
            self._helper = None

    def _start_vector_top(self, queries: np.ndarray, depth: int, bias: np.ndarray):
        """The vector ranking as a call that returns it: with the helper on, a large batch's
        IVF part is ranked in the helper meanwhile."""
        ivf = self._ivf
        if not (self.settings.vector_helper and ivf is not None and len(queries) >= MIN_BATCH):
            return functools.partial(self._vector_top, queries, depth, bias)
        if self._helper is None or not self._helper.alive:
            if self._helper is not None:
                self._helper.close()
            self._helper = VectorHelper()
        # The helper ranks most of the batch; this process, once its lexical and graph
        # rankings are done, the rest, so that both finish at about the same time.
        split = int(len(queries) * HELPER_SHARE)
        helper = self._helper
        ticket = helper.submit(ivf, self._ivf_version, queries[:split], depth, bias,
                               self.settings.probes)

        def finish() -> tuple[np.ndarray, np.ndarray]:
            here = _ivf_top(ivf, queries[split:], depth, bias, self.settings.probes)
            there = helper.result(ticket)
            ivf_part = (np.concatenate([there[0], here[0]]), np.concatenate([there[1], here[1]]))
            return self._vector_top(queries, depth, bias, ivf_part=ivf_part)

        return finish

    def _vector_top(self, queries: np.ndarray, depth: int, bias: np.ndarray, *,
                    ivf_part: tuple[np.ndarray, np.ndarray] | None = None):
        """Best ``depth`` slots per query: the IVF's cells (``ivf_part`` if already ranked)
        and, exactly, the behaviors added since they were trained."""
        n = self._slots.count
        ivf = self._ivf
        covered = ivf.covered if ivf else 0
        parts = []
        if ivf is not None:
            parts.append(ivf_part if ivf_part is not None
                         else _ivf_top(ivf, queries, depth, bias, self.settings.probes))
        if n > covered:
            scores = queries @ self._slots.vectors[covered:n].T + bias[covered:n]
            columns, values = _top(scores, depth)
            parts.append((np.where(columns >= 0, columns + covered, -1), values))
        if len(parts) == 1:
            return parts[0]
        slots = np.concatenate([p[0] for p in parts], axis=1)
        columns, values = _top(np.concatenate([p[1] for p in parts], axis=1), depth)
        return np.where(columns >= 0, _pick(slots, np.maximum(columns, 0)), -1), values

    # ---- lexical ranking ----------------------------------------------------------------

    def _build_lexical(self) -> _Postings:
        slots = self._slots
        live = np.flatnonzero(slots.ids[: slots.count] >= 0)
        average_length = max(self._length_total / max(len(live), 1), 1.0)
        term_ids, slot_ids, counts = [], [], []
        for slot in live:
            for term, count in slots.terms[slot].items():
                term_ids.append(term)
                slot_ids.append(slot)
                counts.append(count)
        terms = np.asarray(term_ids, dtype=np.int64)
        owner = np.asarray(slot_ids, dtype=np.int64)
        tf = np.asarray(counts, dtype=np.float64)
        norm = BM25_K1 * (1 - BM25_B + BM25_B * slots.lengths[owner] / average_length)
        impact = tf * (BM25_K1 + 1) / (tf + norm)
        return _postings(terms, owner, impact, len(self._vocabulary), slots.count,
                         self.settings.posting_limit)

    def _idf(self) -> np.ndarray:
        if self._idf_cache is None:
            df = self._document_frequency[: len(self._vocabulary)]
            n = len(self._slot_of)
            self._idf_cache = np.log1p((n - df + 0.5) / (df + 0.5))
        return self._idf_cache

    def _rarity(self) -> tuple[np.ndarray, np.ndarray]:
        """Each term's position among all terms from rarest (highest IDF) to commonest, and
        the terms in that order."""
        if self._rarity_cache is None:
            by_rarity = np.argsort(-self._idf(), kind="stable")
            rarity = np.empty_like(by_rarity)
            rarity[by_rarity] = np.arange(len(by_rarity))
            self._rarity_cache = rarity, by_rarity
        return self._rarity_cache

    def _lexical_top(self, queries: Sequence[Sequence[str]], depth: int, bias: np.ndarray):
        idf = self._idf()
        if len(queries) == 1:  # one query: choose its words without array bookkeeping
            known = sorted({self._vocabulary[w] for w in queries[0] if w in self._vocabulary})
            rarest = sorted(known, key=lambda term: -idf[term])[: self.settings.query_terms]
            keys = np.asarray(rarest, dtype=np.int64)
            return _postings_top(self._lexical, np.zeros(len(keys), dtype=np.int64), keys, idf,
                                 1, depth, bias)
        owner, terms = _flatten(queries, self._vocabulary)
        # Each query keeps its rarest words: they carry the ranking, and common ones would
        # only lengthen the scan. One sort of (query, rarity) keys both drops repeated words
        # and puts each query's rarest first.
        size = max(len(self._vocabulary), 1)
        rarity, by_rarity = self._rarity()
        unique = _distinct(owner * size + rarity[terms])
        owner, terms = unique // size, by_rarity[unique % size]
        rank = np.arange(len(owner)) - np.searchsorted(owner, owner)
        keep = rank < self.settings.query_terms
        return _postings_top(self._lexical, owner[keep], terms[keep], idf, len(queries), depth, bias)

    # ---- graph ranking ------------------------------------------------------------------

    def _build_graph(self) -> _Postings:
        entity_ids, slot_ids, weights = [], [], []
        for behavior_id, links in self._links.items():
            slot = self._slot_of.get(behavior_id)
            if slot is None:
                continue
            for entity, weight in links.items():
                entity_ids.append(self._entities[entity])
                slot_ids.append(slot)
                weights.append(weight)
        return _postings(
            np.asarray(entity_ids, dtype=np.int64), np.asarray(slot_ids, dtype=np.int64),
            np.asarray(weights, dtype=np.float64), len(self._entities), self._slots.count,
            self.settings.posting_limit,
        )

    def _graph_top(self, queries: Sequence[Sequence[str]], depth: int, bias: np.ndarray):
        # A batch names few distinct entity sets (a scenario, a few co-player types), so
        # each is ranked once.
        distinct: dict[tuple[str, ...], int] = {}
        inverse = np.fromiter((distinct.setdefault(tuple(q), len(distinct)) for q in queries),
                              dtype=np.int64, count=len(queries))
        owner, keys = _flatten(list(distinct), self._entities)
        slots, totals = _postings_top(
            self._graph, owner, keys, np.ones(len(self._entities)), len(distinct), depth, bias
        )
        return slots[inverse], totals[inverse]

    # ---- maintenance --------------------------------------------------------------------

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
        self._lexical = None
        self._graph = None


@functools.lru_cache(maxsize=16)
def _rank_shares(channel_weights: tuple[float, float, float], depth: int):
    """Each ranking's reciprocal-rank share by rank: (3, depth) float32, and the same as
    lists (for the one-query fusion)."""
    ranks = np.arange(depth, dtype=np.float32)
    weights = np.asarray(channel_weights, dtype=np.float32)[:, None]
    shares = (weights / (np.float32(RRF_K + 1.0) + ranks)).astype(np.float32)
    shares.flags.writeable = False  # shared by every search with these settings
    return shares, shares.tolist()


def _postings(keys, slots, weights, size: int, width: int, limit: int) -> _Postings:
    """Group (key, slot, weight) triples by key, best weight first, at most ``limit`` each;
    ``size`` keys, ``width`` slots."""
    order = np.lexsort((-weights, keys))
    keys, slots, weights = keys[order], slots[order], weights[order]
    starts = np.searchsorted(keys, np.arange(size + 1))
    rank = np.arange(len(keys)) - starts[keys] if len(keys) else np.empty(0, dtype=np.int64)
    keep = rank < limit
    keys, slots, weights = keys[keep], slots[keep], weights[keep]
    return _Postings(np.searchsorted(keys, np.arange(size + 1)), slots, weights.astype(np.float32),
                     width)


def _flatten(queries: Sequence[Sequence[str]], ids: Mapping[str, int]):
    """(query, id) pairs for the names each query uses that ``ids`` knows, as two arrays."""
    names = list(itertools.chain.from_iterable(queries))
    flat = np.fromiter(map(ids.get, names, itertools.repeat(-1)), dtype=np.int64, count=len(names))
    owner = np.repeat(np.arange(len(queries)),
                      np.fromiter(map(len, queries), dtype=np.int64, count=len(queries)))
    known = flat >= 0
    return owner[known], flat[known]


def _postings_top(postings: _Postings, owner: np.ndarray, flat: np.ndarray,
                  key_weight: np.ndarray, batch: int, depth: int, bias: np.ndarray):
    """Per query, the allowed slots with the largest summed weight over the postings of its
    keys (``flat[i]`` belongs to query ``owner[i]``)."""
    if batch == 1:  # one query: gather its few posting lists directly
        if not len(flat):
            return _nothing(1, depth)
        starts, ends = postings.ptr[flat], postings.ptr[flat + 1]
        slots = np.concatenate([postings.slots[a:b] for a, b in zip(starts, ends)])
        weights = np.concatenate([postings.weights[a:b] * np.float32(key_weight[key])
                                  for a, b, key in zip(starts, ends, flat)])
        allowed = bias[slots] == 0
        return _sum_by_slot(slots[allowed][None], weights[allowed][None], depth)
    if not len(flat):
        return _nothing(batch, depth)
    from scipy import sparse

    # Many queries: one sparse product adds up, per query, the weights of equal slots over
    # its keys' postings: (query x key) @ (key x slot). ``owner`` is sorted, so the query
    # rows are built as they are (a repeated key is added twice, as in a sum).
    query_keys = sparse.csr_matrix(
        (key_weight[flat].astype(np.float32), flat, np.searchsorted(owner, np.arange(batch + 1))),
        shape=(batch, len(postings.ptr) - 1))
    return _sparse_rows_top(query_keys @ postings.matrix(), depth, bias)


def _sparse_rows_top(scores, depth: int, bias: np.ndarray):
    """Row-wise ``depth`` best allowed slots of a CSR matrix of positive (query, slot)
    totals, ties to the lower slot: slots (B, depth), -1 where a row has fewer, and their
    totals."""
    batch = scores.shape[0]
    lengths = np.diff(scores.indptr)
    slots = scores.indices.astype(np.int64)
    row = np.repeat(np.arange(batch), lengths)
    column = np.arange(len(slots)) - np.repeat(scores.indptr[:-1], lengths)
    totals = scores.data
    if bias.any():  # some slots are filtered out (or retired): drop their entries
        allowed = bias[slots] == 0
        row, column, totals, slots = row[allowed], column[allowed], totals[allowed], slots[allowed]
    padded = np.zeros((batch, int(lengths.max()) if batch else 0), dtype=np.int64)
    padded[row, column] = _pack(totals, slots)
    return _best_packed(padded, depth)


def _sum_by_slot(slots: np.ndarray, weights: np.ndarray, k: int):
    """Row-wise: add up the (positive) weights of equal slots, -1 being padding, and keep the
    ``k`` largest totals, best first (ties: lower slot first): slots (B, k), -1 where a row
    has fewer, and the totals."""
    batch, width = slots.shape
    if batch == 1:  # one query: fewer, cheaper calls
        row = slots[0]
        present = row >= 0
        unique, inverse = np.unique(row[present], return_inverse=True)
        totals = np.bincount(inverse, weights=weights[0][present].astype(np.float64),
                             minlength=len(unique)).astype(np.float32)
        columns, values = _top(totals[None], k)
        return np.where(columns >= 0, unique[np.maximum(columns, 0)] if len(unique) else -1, -1), values
    # Sort each row by slot, carrying the weight in the low 32 bits of one integer: numpy's
    # vectorised integer sort is several times faster than an argsort and a gather.
    packed = (slots.astype(np.int64) << 32) | weights.astype(np.float32).view(np.uint32)
    packed.sort(axis=1)
    ordered = packed >> 32
    carried = (packed & 0xFFFFFFFF).astype(np.uint32).view(np.float32)
    # A slot occurs at most once per ranking, so a run of equal slots is short: add each
    # run's later weights onto its first, one shift at a time (reduceat is slow on many
    # tiny runs). Left to right, as a plain sum would.
    totals = carried.astype(np.float64)
    real = ordered >= 0  # padding (-1) holds no slot and sorts first
    for shift in range(1, width):
        same = (ordered[:, shift:] == ordered[:, :-shift]) & real[:, :-shift]
        if not same.any():
            break
        totals[:, :-shift] += np.where(same, carried[:, shift:], 0.0)
    first = np.ones((batch, width), dtype=bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    first &= real
    padded = np.zeros((batch, width), dtype=np.int64)
    padded[first] = _pack(totals[first], ordered[first])
    return _best_packed(padded, k)


def _pack(totals: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """One sortable integer per positive total: a positive float's bits order like the float,
    so the total goes above and the slot below, reversed so that the lower slot wins a tie.
    Zero is never a packed value: it pads."""
    packed = totals.astype(np.float32, copy=False).view(np.int32).astype(np.int64)
    packed <<= 32
    packed |= _SLOT_CEILING - slots
    return packed


def _best_packed(packed: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise ``k`` largest packed values (zero: padding), best first: their slots (B, k),
    -1 where a row has fewer, and their totals (-inf there)."""
    width = packed.shape[1]
    if width > k:
        packed = np.partition(packed, width - k, axis=1)[:, width - k:]
    elif width < k:
        packed = np.pad(packed, ((0, 0), (0, k - width)))
    packed = -np.sort(-packed, axis=1)
    found = packed > 0
    slots = np.where(found, _SLOT_CEILING - (packed & 0xFFFFFFFF), -1)
    totals = (packed >> 32).astype(np.int32).view(np.float32)
    return slots, np.where(found, totals, np.float32(-np.inf))


def _top(scores: np.ndarray, k: int, *, exact_ties: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise ``k`` largest finite scores, best first: columns (B, k), -1 past the last
    finite one, and values (-inf there). Ties go to the lower column; ``exact_ties=False``
    skips that for similarities, whose ties are coincidences."""
    batch, width = scores.shape
    if width == 0:
        return np.full((batch, k), -1, dtype=np.int64), np.full((batch, k), -np.inf, np.float32)
    take = min(k, width)
    if batch == 1 and width <= 512:  # one short row: a stable sort keeps ties in order
        row = scores[0]
        columns = np.argsort(-row, kind="stable")[:take]
        return _finish_top(columns[None], row[columns][None], take, k)
    if not exact_ties and take < width:
        return _finish_top(*_top_by_threshold(scores, take), take, k)
    # A tiny penalty per column makes every method break ties the same way.
    key = scores.astype(np.float64) - np.arange(width) * 1e-12 if exact_ties else scores
    if take < width:
        columns = np.argpartition(-key, take - 1, axis=1)[:, :take]
        columns = _pick(columns, np.argsort(-_pick(key, columns), axis=1))
    else:
        columns = np.argsort(-key, axis=1)
    return _finish_top(columns, _pick(scores, columns), take, k)


def _top_by_threshold(scores: np.ndarray, take: int) -> tuple[np.ndarray, np.ndarray]:
    """``_top`` of a wide table, ties in no set order: each row's ``take``-th largest value
    (a partition of values, without indices, is several times cheaper than an argpartition)
    picks out a few candidates per row, and only those are sorted."""
    batch, width = scores.shape
    threshold = np.partition(scores, width - take, axis=1)[:, width - take]
    flat = np.flatnonzero(scores >= threshold[:, None])
    values = scores.ravel()[flat]
    if len(flat) == batch * take and threshold.min() > -np.inf:
        # The common case, no ties at any threshold: ``take`` candidates per row, in row
        # order, so a row-wise sort of a (batch, take) table finishes the job.
        values = values.reshape(batch, take)
        order = np.argsort(-values, axis=1)
        return _pick(flat.reshape(batch, take) % width, order), _pick(values, order)
    finite = values > -np.inf
    flat, values = flat[finite], values[finite]
    rows = flat // width
    # Best first within each row: one sort of (row, descending value) keys. A float's bits,
    # with the sign bit set for non-negatives and every bit flipped for negatives, order
    # like the float.
    bits = values.view(np.uint32)
    ascending = np.where(bits >> 31, ~bits, bits | np.uint32(0x80000000))
    order = np.argsort((rows << 32) | (np.uint32(0xFFFFFFFF) - ascending))
    flat, values, rows = flat[order], values[order], rows[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
    kept = rank < take
    columns = np.full((batch, take), -1, dtype=np.int64)
    best = np.full((batch, take), -np.inf, dtype=np.float32)
    columns[rows[kept], rank[kept]] = flat[kept] % width
    best[rows[kept], rank[kept]] = values[kept]
    return columns, best


def _finish_top(columns: np.ndarray, values: np.ndarray, take: int, k: int):
    columns = np.where(np.isfinite(values), columns, -1)
    if take < k:
        columns = np.pad(columns, ((0, 0), (0, k - take)), constant_values=-1)
        values = np.pad(values, ((0, 0), (0, k - take)), constant_values=-np.inf)
    return columns, values


def _distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values, as ``np.unique`` gives them: on the arrays of a batch
    (thousands of integers) this sort is over ten times faster than it, with numpy 2.4."""
    ordered = np.sort(values)
    first = np.ones(len(ordered), dtype=bool)
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return ordered[first]


def _pick(table: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``table[b, columns[b, j]]`` for every row b: take_along_axis without its checks."""
    return table[np.arange(len(table))[:, None], columns]


def _nothing(batch: int, depth: int):
    return np.full((batch, depth), -1, dtype=np.int64), np.full((batch, depth), -np.inf, np.float32)


def _train_ivf(vectors: np.ndarray, iterations: int = 8, chunk: int = 16384) -> _Ivf:
    """Spherical k-means into about sqrt(n) cells, seeded for reproducibility, then every
    cell larger than the mean halved until none is: a batched search pads every probed cell
    to the largest one, and a crowded region of the space is better served by finer cells
    than by pushing its members out into their neighbours'."""
    import torch

    data = torch.from_numpy(vectors)
    n = len(data)
    cells = min(n, max(8, int(math.sqrt(n))))  # never more cells than vectors
    generator = torch.Generator().manual_seed(0)
    centroids = data[torch.randperm(n, generator=generator)[:cells]].clone()

    def assign() -> torch.Tensor:
        return torch.cat([(data[i:i + chunk] @ centroids.T).argmax(1) for i in range(0, n, chunk)])

    for _ in range(iterations):
        cell = assign()
        sums = torch.zeros_like(centroids).index_add_(0, cell, data)
        empty = torch.bincount(cell, minlength=cells) == 0
        sums[empty] = data[torch.randint(n, (int(empty.sum()),), generator=generator)]
        centroids = sums / sums.norm(dim=1, keepdim=True).clamp(min=1e-12)
    centroids, cell = _split_large_cells(vectors, centroids.numpy(), assign().numpy(),
                                         capacity=math.ceil(n / cells))
    order = np.argsort(cell, kind="stable")
    starts = np.searchsorted(cell[order], np.arange(len(centroids) + 1))
    return _Ivf(centroids, starts, order, vectors[order], covered=n)


def _split_large_cells(vectors: np.ndarray, centroids: np.ndarray, cell: np.ndarray,
                       capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """Halve each cell of more than ``capacity`` members at the median of their principal
    direction, each half getting its own centroid, until no cell is over: centroids and
    each vector's cell."""
    centroids = list(centroids)
    cell = cell.copy()
    members = np.argsort(cell, kind="stable")
    starts = np.searchsorted(cell[members], np.arange(len(centroids) + 1))
    pending = [members[a:b] for a, b in itertools.pairwise(starts) if b - a > capacity]
    while pending:
        group = pending.pop()
        centred = vectors[group] - vectors[group].mean(axis=0)
        direction = centred[np.argmax(np.einsum("ij,ij->i", centred, centred))]
        for _ in range(10):  # power iteration: the direction of greatest spread
            direction = _unit(centred.T @ (centred @ direction))
        order = np.argsort(centred @ direction, kind="stable")
        low, high = group[order[: len(group) // 2]], group[order[len(group) // 2:]]
        home = cell[group[0]]
        centroids[home] = _unit(vectors[low].sum(axis=0))
        cell[high] = len(centroids)
        centroids.append(_unit(vectors[high].sum(axis=0)))
        pending.extend(half for half in (low, high) if len(half) > capacity)
    return np.asarray(centroids, dtype=np.float32), cell


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def _ivf_top(ivf: _Ivf, queries: np.ndarray, depth: int, bias: np.ndarray, probes: int):
    """The best ``depth`` slots per query among the members of its ``probes`` nearest cells."""
    cells = len(ivf.centroids)
    probes = min(probes, cells)
    # The order of a query's probes does not matter, nor do ties between centroids.
    probe, _ = _top(queries @ ivf.centroids.T, probes, exact_ties=False)
    starts = ivf.starts
    if len(queries) == 1:  # score each probed cell's contiguous block in place
        blocks = [(starts[c], starts[c + 1]) for c in probe[0]]
        slots = np.concatenate([ivf.slots[a:b] for a, b in blocks])
        scores = np.concatenate([ivf.vectors[a:b] @ queries[0] for a, b in blocks]) + bias[slots]
        columns, values = _top(scores[None], depth)
        return np.where(columns >= 0, slots[np.maximum(columns, 0)], -1), values
    # Many queries: visit each probed cell once with all the queries that probe it, writing
    # scores into one padded table (query, probe, member) that a single top-k then reads.
    # Cells are balanced, so the padding is small.
    flat = probe.ravel()
    pair_order = np.argsort(flat, kind="stable")
    bounds = np.searchsorted(flat[pair_order], np.arange(cells + 1))
    widest = int(np.diff(starts).max())
    table = np.full((len(flat), widest), -np.inf, dtype=np.float32)
    pair_queries = queries[pair_order // probes]  # the query of each pair, in cell order
    member_bias = bias[ivf.slots]
    for cell in np.flatnonzero(np.diff(bounds)):
        lo, hi = starts[cell], starts[cell + 1]
        first, last = bounds[cell], bounds[cell + 1]
        table[pair_order[first:last], : hi - lo] = (
            pair_queries[first:last] @ ivf.vectors[lo:hi].T + member_bias[lo:hi]
        )
    columns, values = _top(table.reshape(len(queries), probes * widest), depth, exact_ties=False)
    # Column c of a query's row is member c % widest of the cell it probed (c // widest)-th.
    safe = np.maximum(columns, 0)
    cell_of = _pick(probe, safe // widest)
    rows = np.minimum(starts[cell_of] + safe % widest, len(ivf.slots) - 1)
    return np.where(columns >= 0, ivf.slots[rows], -1), values
