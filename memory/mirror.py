"""The handbook's behaviors as of the last sync, held in memory: their records, the retrieval
index over them and the answers it gave, kept in step with the database by revision.

``HandbookMirror.catch_up`` applies what was written after the revision it holds (in the
caller's session); a new generation (the database was pruned or replaced) makes it start
over. ``retrieve`` never touches SQL: it is the per-step hot path of simulations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from coplay.step import Context
from memory.behaviors import (
    Behavior,
    EffectStats,
    NewBehavior,
    content_hash,
    content_text,
)
from memory.effects import PosteriorCache
from memory.embedding import Embedder, WordEmbedder, words
from memory.graph import relations_since
from memory.handbook_store import StoredBehavior, changed_since, effects_since
from memory.index import FOREVER, BehaviorIndex, Filters, IndexEntry, IndexSettings
from memory.revisions import timestamp


@dataclass(frozen=True)
class Retrieval:
    """Behavior ids (B, k), best first, -1 where fewer matched, and their fused scores."""

    ids: np.ndarray
    scores: np.ndarray


class HandbookMirror:
    """The behaviors as of the last catch-up, their retrieval index and its remembered
    answers. It is also the deduplicator the store's ``add_many`` asks
    (``handbook_store.Deduplicator``): a new behavior repeats a valid one with the same
    content hash, or whose embedding has a cosine similarity of at least
    ``dedup_threshold`` with it."""

    def __init__(self, embedder: Embedder, settings: IndexSettings, *,
                 dedup_threshold: float) -> None:
        self.embedder = embedder
        self.settings = settings
        self.dedup_threshold = dedup_threshold
        # Asked once: a protocol check costs about 10 µs, a third of a query's embedding.
        self._embeds_words = isinstance(embedder, WordEmbedder)
        self._start()

    def _start(self) -> None:
        self.index = BehaviorIndex(self.embedder.dimension, self.settings)
        self.records: dict[int, Behavior] = {}
        self.entity_ids: dict[str, int] = {}  # graph entity ref -> id, for the store's writes
        self.revision = 0
        self.generation: int | None = None  # None until the first catch-up
        self._indexed_version: dict[int, int] = {}
        self._hashes: dict[str, int] = {}  # content hash -> a valid behavior with it
        self._links: dict[int, dict[tuple[str, str], float]] = {}
        # behavior id -> credited entity -> how it fared there (``memory.effects`` reads it),
        # and the posteriors worked out from it, until the next change
        self.effects: dict[int, dict[str, EffectStats]] = {}
        self.posteriors = PosteriorCache()
        self._query_vectors: dict[str, np.ndarray] = {}
        # (k, filters) -> context -> its answer (ids, scores)
        self._answers: dict[tuple[int, Filters], dict[Context, tuple[np.ndarray, np.ndarray]]] = {}
        self._answers_revision = 0

    def reset(self) -> None:
        """Forget everything: the next catch-up reloads from the first revision. For after a
        failed write, whose changes to the index never landed."""
        self.index.close()
        self._start()

    def close(self) -> None:
        self.index.close()

    # ---- keeping in step ----------------------------------------------------------------------

    def catch_up(self, session: Session, state: tuple[int, int]) -> int:
        """Apply what was written after the revision held, up to ``state`` (revision,
        generation); returns how many behaviors and relations changed."""
        revision, generation = state
        if generation != self.generation:
            self.reset()
            self.generation = generation
        if revision <= self.revision:
            return 0
        stored = changed_since(session, self.revision)
        self._apply(stored)
        effects = effects_since(session, self.revision)
        for effect in effects:
            self.effects.setdefault(effect.behavior_id, {})[effect.entity] = effect.stats
        if effects:
            self.posteriors = PosteriorCache()
        relations = relations_since(session, self.revision)
        touched: set[int] = set()
        for relation in relations:
            for mine, other in ((relation.source, relation.target),
                                (relation.target, relation.source)):
                if mine.startswith("behavior:") and not other.startswith("behavior:"):
                    behavior_id = int(mine.partition(":")[2])
                    self._links.setdefault(behavior_id, {})[(other, relation.type)] = (
                        _link_weight(relation.type, relation.weight)
                    )
                    touched.add(behavior_id)
        for behavior_id in touched & set(self.records):
            summed: dict[str, float] = {}
            for (other, _), weight in self._links[behavior_id].items():
                if weight > 0:
                    summed[other] = summed.get(other, 0.0) + weight
            self.index.set_links(behavior_id, summed)
        self.revision = revision
        return len(stored) + len(relations) + len(effects)

    def _apply(self, stored: Sequence[StoredBehavior]) -> None:
        stale = [s for s in stored
                 if self._indexed_version.get(s.behavior.id) != s.behavior.version]
        foreign = [s for s in stale if s.embedder != self.embedder.name]
        # Vectors from another embedder live in another space: embed those texts again.
        fresh = dict(zip(
            (s.behavior.id for s in foreign),
            self.embedder.embed([content_text(s.behavior.name, s.behavior.instruction)
                                 for s in foreign]),
        ))
        for s in stored:
            record = s.behavior
            previous = self.records.get(record.id)
            if previous is not None:
                stale_hash = _hash_of(previous)
                if self._hashes.get(stale_hash) == record.id:
                    del self._hashes[stale_hash]
            self.records[record.id] = record
            if record.valid:
                self._hashes[s.content_hash] = record.id
            valid_to = timestamp(record.valid_to) if record.valid_to else FOREVER
            if self._indexed_version.get(record.id) == record.version:
                self.index.set_validity(record.id, valid_to)
                continue
            vector = fresh.get(record.id)
            if vector is None:
                vector = np.frombuffer(s.embedding, dtype=np.float32)
            self.index.upsert(IndexEntry(
                record.id, vector, words(record.text()), record.kind, frozenset(record.tags),
                timestamp(record.valid_from), valid_to, tuple(sorted(record.trigger.items())),
            ))
            self._indexed_version[record.id] = record.version

    # ---- deduplicating new behaviors ----------------------------------------------------------

    def duplicate_of(self, new: NewBehavior, vector: np.ndarray) -> int | None:
        same = self._hashes.get(new.content_hash())
        if same is not None:
            return same
        ids, similarities = self.index.nearest(vector, 1)
        if len(ids) and similarities[0] >= self.dedup_threshold:
            return int(ids[0])
        return None

    def added(self, behavior_id: int, new: NewBehavior, vector: np.ndarray,
              moment: datetime) -> None:
        """A behavior being stored: later behaviors of the same write must see it to be
        merged into it. The catch-up after the commit brings its record."""
        self._hashes[new.content_hash()] = behavior_id
        self.index.upsert(IndexEntry(
            behavior_id, vector, words(new.text()), new.kind, frozenset(new.tags),
            timestamp(moment), trigger=tuple(sorted(new.trigger.items())),
        ))
        self._indexed_version[behavior_id] = 1

    # ---- reading ------------------------------------------------------------------------------

    def cached(self, behavior_id: int) -> Behavior:
        return self.records[behavior_id]

    def retrieve(self, contexts: Sequence[Context], k: int, filters: Filters) -> Retrieval:
        """For each context, the ``k`` best behaviors. Identical contexts are looked up once,
        and answers are remembered until the revision changes."""
        self._expire_answers()
        remembered = self._answers.setdefault((k, filters), {})
        if len(remembered) > 100_000:
            remembered.clear()
        positions: dict[Context, int] = {}
        inverse = np.fromiter((positions.setdefault(c, len(positions)) for c in contexts),
                              dtype=np.int64, count=len(contexts))
        unique = list(positions)
        answers = list(map(remembered.get, unique))
        missing = [i for i, answer in enumerate(answers) if answer is None]
        if missing:
            asked = unique if len(missing) == len(unique) else [unique[i] for i in missing]
            terms = [words(c.text) for c in asked]
            vectors = self._embed_queries([c.text for c in asked], terms)
            ids, scores = self.index.search(vectors, terms, [c.entities for c in asked], k, filters)
            remembered.update(zip(asked, zip(ids, scores)))
            if asked is unique:  # nothing was remembered: no need to restack
                return Retrieval(ids[inverse], scores[inverse])
            for i, answer in zip(missing, zip(ids, scores)):
                answers[i] = answer
        if not answers:
            return Retrieval(np.zeros((0, k), dtype=np.int64), np.zeros((0, k), dtype=np.float32))
        ids = np.stack([answer[0] for answer in answers])
        scores = np.stack([answer[1] for answer in answers])
        return Retrieval(ids[inverse], scores[inverse])

    def _expire_answers(self) -> None:
        if self._answers_revision != self.revision:
            self._answers.clear()
            self._answers_revision = self.revision

    def clear_caches(self) -> None:
        """Forget remembered query embeddings and answers."""
        self._query_vectors.clear()
        self._answers.clear()

    def _embed_queries(self, texts: Sequence[str], terms: Sequence[list[str]]) -> np.ndarray:
        """Embeddings of query texts (``terms``: their words), remembered: simulations ask
        the same ones again."""
        missing = {t: i for i, t in enumerate(texts) if t not in self._query_vectors}
        if missing:
            if len(self._query_vectors) > 100_000:
                self._query_vectors.clear()
            if self._embeds_words:  # it reads the words the lexical ranking split: no second split
                fresh = self.embedder.embed_words([terms[i] for i in missing.values()])
            else:
                fresh = self.embedder.embed(list(missing))
            self._query_vectors.update(zip(missing, fresh))
            if len(missing) == len(texts):  # all new and distinct: already in order
                return fresh
        if not texts:
            return np.zeros((0, self.embedder.dimension), dtype=np.float32)
        return np.stack([self._query_vectors[t] for t in texts])


class CommitWatcher:
    """SQLite tells a connection whether others committed since it last asked (``PRAGMA
    data_version``): one held apart from the pool makes an idle sync cost microseconds, not
    a query. Other databases, and in-memory SQLite, have no such count."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Any = None
        self._watchable = engine.dialect.name == "sqlite" and engine.url.database not in (
            None, "", ":memory:") and "mode=memory" not in str(engine.url)

    def marker(self) -> int | None:
        """The count of commits by other connections, as seen by the watcher; None where
        there is no such count."""
        if not self._watchable:
            return None
        if self._connection is None:
            self._connection = self._engine.raw_connection()
        cursor = self._connection.cursor()
        try:
            cursor.execute("PRAGMA data_version")
            return int(cursor.fetchone()[0])
        finally:
            cursor.close()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _hash_of(record: Behavior) -> str:
    return content_hash(record.name, record.instruction, record.kind, record.payload)


def _link_weight(relation: str, weight: float) -> float:
    """How much an edge ties a behavior to an entity for retrieval: usage counts grow
    slowly, every other relation counts with its weight."""
    return float(np.log1p(weight)) if relation == "used_in" and weight > 0 else weight
