"""The behavior handbook: behaviors in SQL, retrieved from an in-memory index kept in step.

Writes go to the database in short transactions, each holding the handbook's write lock
(``memory.revisions``), and reach this process's index at once. ``sync()`` picks up what
other processes wrote; ``search()`` syncs first, while ``retrieve()``, the per-step hot path
of simulations, never touches SQL (the runner syncs between batches of episodes).

    handbook = Handbook.open("sqlite:///coplay.db")
    handbook.add(NewBehavior(name="Forgive once", instruction="After a single defection, ..."))
    for hit in handbook.search("co-player defected once", k=3):
        print(hit.score, hit.behavior.name)

``Handbook`` is a facade: the SQL is in ``memory.handbook_store`` (functions of a session),
the in-memory side in ``memory.mirror``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from coplay.errors import ConfigError, StoreError
from coplay.step import Context
from memory import handbook_store as store
from memory.behaviors import (
    AddResult,
    Behavior,
    BehaviorVersion,
    EffectStats,
    EffectUsage,
    MemoryUsage,
    NewBehavior,
    Provenance,
    Usage,
)
from memory.db import open_engine
from memory.effects import EffectRanking
from memory.embedding import Embedder, HashingEmbedder
from memory.graph import KnowledgeGraph
from memory.handbook_store import Edge, HandbookSummary
from memory.index import NO_FILTERS, BehaviorIndex, Filters, IndexSettings
from memory.mirror import CommitWatcher, HandbookMirror, Retrieval
from memory.portable import export_document, import_document, read_document
from memory.revisions import current, next_revision

__all__ = ["Handbook", "HandbookSettings", "HandbookSummary", "Hit", "Retrieval"]


@dataclass(frozen=True, kw_only=True)
class HandbookSettings:
    """``dedup_threshold``: a new behavior whose embedding has at least this cosine
    similarity with a valid one is merged into it (1.0 merges exact duplicates only)."""

    dedup_threshold: float = 0.95
    index: IndexSettings = field(default_factory=IndexSettings)

    def __post_init__(self) -> None:
        if not 0.0 < self.dedup_threshold <= 1.0:
            raise ConfigError("dedup_threshold", expected="a number in (0, 1]",
                              got=repr(self.dedup_threshold))


@dataclass(frozen=True)
class Hit:
    behavior: Behavior
    score: float


class Handbook:
    def __init__(self, engine: Engine, *, embedder: Embedder | None = None,
                 settings: HandbookSettings | None = None) -> None:
        self._engine = engine
        self.embedder = embedder or HashingEmbedder()
        self.settings = settings or HandbookSettings()
        self.graph = KnowledgeGraph(engine)
        # Loaded by the first sync, write or retrieval.
        self._mirror = HandbookMirror(self.embedder, self.settings.index,
                                      dedup_threshold=self.settings.dedup_threshold)
        self._watcher = CommitWatcher(engine)
        self._synced_at: int | None = None  # the watcher's marker at the last sync

    @classmethod
    def open(cls, url: str | None = None, *, embedder: Embedder | None = None,
             settings: HandbookSettings | None = None) -> Handbook:
        """The handbook of the database at ``url`` (default: ``$COPLAY_DB`` or coplay.db)."""
        return cls(open_engine(url), embedder=embedder, settings=settings)

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._mirror.close()
        self._watcher.close()
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- keeping the in-memory index in step -------------------------------------------------

    @property
    def revision(self) -> tuple[int | None, int]:
        """Changes whenever what ``retrieve`` can return may have changed: the database's
        generation (a replaced database starts its revisions again) and its revision."""
        return self._mirror.generation, self._mirror.revision

    def sync(self) -> int:
        """Apply what was written since the last sync, by this process or another; returns
        how many behaviors and relations changed."""
        marker = self._watcher.marker()
        if marker is not None and marker == self._synced_at and self._mirror.generation is not None:
            return 0
        with Session(self._engine) as session:
            changed = self._mirror.catch_up(session, current(session))
        self._synced_at = marker
        return changed

    @contextmanager
    def _writing(self, *, deleting: bool = False) -> Iterator[tuple[Session, int]]:
        """One handbook write transaction: take the write lock (every process's writers take
        turns), catch up with what others committed before it, and yield the session and
        the revision its writes carry. After the commit this process's own writes are pulled
        into the index; after a failure the index may hold writes that never landed, so it
        starts over. ``deleting`` tells other processes to reload everything."""
        try:
            with Session(self._engine) as session, session.begin():
                revision = next_revision(session, deleting=deleting)
                generation = current(session)[1]
                self._mirror.catch_up(session, (revision - 1, generation - int(deleting)))
                yield session, revision
        except BaseException:
            self._mirror.reset()
            raise
        self.sync()

    @property
    def _index(self) -> BehaviorIndex:
        """The retrieval index (``memory.index.BehaviorIndex``), for tests and benchmarks
        that look inside it."""
        return self._mirror.index

    # ---- writing ----------------------------------------------------------------------------

    def add(self, new: NewBehavior) -> AddResult:
        return self.add_many([new])[0]

    def add_many(self, news: Sequence[NewBehavior]) -> list[AddResult]:
        """Add behaviors in one transaction. One that repeats a valid behavior (same content
        hash, or embedding similarity at least ``dedup_threshold``) is merged into it: it
        adds its provenance there and no new behavior."""
        if not news:
            return []
        vectors = self.embedder.embed([new.content() for new in news])
        with self._writing() as (session, revision):
            added = store.add_many(session, news, vectors, revision, embedder=self.embedder.name,
                                   dedup=self._mirror, entity_ids=self._mirror.entity_ids)
        return [AddResult(self._mirror.cached(a.behavior_id), a.merged) for a in added]

    def edit(self, behavior_id: int, *, name: str | None = None, instruction: str | None = None,
             kind: str | None = None, payload: Mapping[str, Any] | None = None,
             trigger: Mapping[str, str] | None = None, tags: Sequence[str] | None = None,
             note: str = "edited") -> Behavior:
        """Write a new version; the old one stays readable through ``versions``."""
        with self._writing() as (session, revision):
            store.edit(session, behavior_id, revision, embedder=self.embedder, name=name,
                       instruction=instruction, kind=kind, payload=payload, trigger=trigger,
                       tags=tags, note=note, entity_ids=self._mirror.entity_ids)
        return self._mirror.cached(behavior_id)

    def invalidate(self, behavior_id: int, reason: str) -> Behavior:
        """End a behavior's validity: it is kept, but no longer retrieved."""
        with self._writing() as (session, revision):
            store.invalidate(session, behavior_id, reason, revision,
                             entity_ids=self._mirror.entity_ids)
        return self._mirror.cached(behavior_id)

    def merge(self, source_id: int, into_id: int) -> Behavior:
        """Fold ``source_id`` into ``into_id``: its provenance is copied over, it is
        invalidated, and the graph records ``merged_into``."""
        with self._writing() as (session, revision):
            store.merge(session, source_id, into_id, revision, entity_ids=self._mirror.entity_ids)
        return self._mirror.cached(source_id)

    def record(self, usage: MemoryUsage) -> None:
        """Add what a run did with memory (``scenarios.run(...).memory_usage``)."""
        self.record_usage(usage.usages, edges=usage.edges,
                          accumulate_edges=usage.accumulate_edges, effects=usage.effects)

    def record_usage(self, usages: Sequence[Usage], *, edges: Sequence[Edge] = (),
                     accumulate_edges: Sequence[Edge] = (),
                     effects: Sequence[EffectUsage] = ()) -> None:
        """Add episodes' usage to behaviors' statistics and their effects per entity, and
        write graph edges (``edges`` replace weights, ``accumulate_edges`` add to them), in
        one transaction."""
        usages = [u for u in usages if u.shown or u.uses]
        if not usages and not edges and not accumulate_edges and not effects:
            return
        mentioned = {u.behavior_id for u in usages} | {e.behavior_id for e in effects}
        unknown = sorted(mentioned - set(self._mirror.records))
        if unknown:
            self.sync()
            unknown = sorted(mentioned - set(self._mirror.records))
            if unknown:
                raise StoreError("usage", expected="behaviors in the handbook",
                                 got=f"ids {unknown}")
        with self._writing() as (session, revision):
            store.record_usage(session, usages, revision, edges=edges,
                               accumulate_edges=accumulate_edges, effects=effects,
                               entity_ids=self._mirror.entity_ids)

    def prune(self, *, invalidated_before: datetime | None = None,
              dry_run: bool = False) -> list[int]:
        """Delete invalidated behaviors (those invalidated before ``invalidated_before``, if
        given) with their versions, provenance and graph node; returns their ids."""
        if dry_run:
            with Session(self._engine) as session:
                return store.invalidated(session, before=invalidated_before)
        with self._writing(deleting=True) as (session, _):
            doomed = store.prune(session, invalidated_before=invalidated_before)
        return doomed

    def export(self, path: str | Path) -> int:
        """Write the whole handbook and graph to a JSON file; returns how many behaviors."""
        with Session(self._engine) as session:
            document = export_document(session)
        Path(path).write_text(json.dumps(document, indent=1))
        return len(document["behaviors"])

    def import_file(self, path: str | Path) -> dict[int, int]:
        """Add an exported handbook, checked whole first; returns old id -> new id."""
        document = read_document(path)
        with self._writing() as (session, revision):
            mapping = import_document(session, document, revision)
            store.advance_sequence(session)
        return mapping

    # ---- reading ----------------------------------------------------------------------------

    def get(self, behavior_id: int) -> Behavior:
        """The behavior as stored now (read from the database)."""
        with Session(self._engine) as session:
            return store.get(session, behavior_id)

    def cached(self, behavior_id: int) -> Behavior:
        """The behavior as of the last sync, without SQL: for per-step use."""
        return self._mirror.cached(behavior_id)

    def embedding(self, behavior_id: int) -> np.ndarray:
        """The behavior's embedding as of the last sync, without SQL."""
        return self._mirror.index.vector(behavior_id)

    def effects(self, behavior_id: int) -> dict[str, EffectStats]:
        """The behavior's effect statistics per credited entity, read from the database."""
        with Session(self._engine) as session:
            return {e.entity: e.stats for e in store.effects_of(session, behavior_id)}

    def versions(self, behavior_id: int) -> list[BehaviorVersion]:
        with Session(self._engine) as session:
            return store.versions(session, behavior_id)

    def provenance(self, behavior_id: int) -> list[Provenance]:
        with Session(self._engine) as session:
            return store.provenance(session, behavior_id)

    def list(self, *, tags: Sequence[str] = (), kinds: Sequence[str] = (),
             include_invalid: bool = False, limit: int | None = None) -> list[Behavior]:
        """Behaviors by id, read from the database."""
        with Session(self._engine) as session:
            return store.list_behaviors(session, tags=tags, kinds=kinds,
                                        include_invalid=include_invalid, limit=limit)

    def __iter__(self) -> Iterator[Behavior]:
        """Every valid behavior, by id, a page of rows at a time."""
        last = 0
        while True:
            with Session(self._engine) as session:
                records = store.page(session, after=last)
            if not records:
                return
            last = records[-1].id
            yield from records

    def __len__(self) -> int:
        with Session(self._engine) as session:
            return store.count_valid(session)

    def search(self, query: str, *, k: int = 5, entities: Sequence[str] = (),
               filters: Filters = NO_FILTERS) -> list[Hit]:
        """The ``k`` behaviors best matching ``query`` (and linked to ``entities``), after
        picking up other processes' writes."""
        self.sync()
        found = self.retrieve([Context(query, tuple(entities))], k=k, filters=filters)
        return [Hit(self._mirror.cached(int(i)), float(s))
                for i, s in zip(found.ids[0], found.scores[0]) if i >= 0]

    def retrieve(self, contexts: Sequence[Context], *, k: int = 5,
                 filters: Filters = NO_FILTERS) -> Retrieval:
        """For each context, the ``k`` best behaviors: one batched call for every agent of
        every game at a step. Identical contexts are looked up once, and answers are
        remembered until the handbook changes: simulations ask the same ones every batch.
        No SQL."""
        if k < 1:
            raise ConfigError("k", expected="at least 1", got=str(k))
        if self._mirror.generation is None:  # never synced: load once
            self.sync()
        return self._mirror.retrieve(contexts, k, filters)

    def effect_ranking(self, *, explore: bool, seed: int) -> EffectRanking:
        """Ranks retrieved candidates by their measured effects as of the last sync (no SQL),
        exploring with Thompson sampling (draws from ``seed``) if ``explore``
        (``memory.effects``)."""
        return EffectRanking(self._mirror.effects, explore=explore, seed=seed,
                             cache=self._mirror.posteriors)

    def applies(self, behavior_id: int, entities: Sequence[str]) -> bool:
        """Whether the behavior's trigger holds in a context naming ``entities``."""
        return self._mirror.index.applies(behavior_id, entities)

    def clear_caches(self) -> None:
        """Forget remembered query embeddings and answers; they are rebuilt on demand (for
        benchmarks that time the work itself, and to free memory)."""
        self._mirror.clear_caches()

    def summary(self) -> HandbookSummary:
        with Session(self._engine) as session:
            return store.summary(session)
