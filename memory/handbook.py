"""The behavior handbook: behaviors in SQL, retrieved from an in-memory index kept in step.

Writes go to the database in short transactions, each holding the handbook's write lock
(``memory.revisions``), and reach this process's index at once. ``sync()`` picks up what
other processes wrote; ``search()`` syncs first, while ``retrieve()``, the per-step hot path
of simulations, never touches SQL (the runner syncs between batches of episodes).

    handbook = Handbook.open("sqlite:///coplay.db")
    handbook.add(NewBehavior(name="Forgive once", instruction="After a single defection, ..."))
    for hit in handbook.search("co-player defected once", k=3):
        print(hit.score, hit.behavior.name)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Self, TypeVar

import numpy as np
from sqlalchemy import Engine, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from coplay.errors import ConfigError, StoreError
from memory.behaviors import (
    AddResult,
    Behavior,
    BehaviorStats,
    BehaviorVersion,
    Context,
    NewBehavior,
    Provenance,
    Usage,
    content_hash,
    content_text,
)
from memory.db import open_engine
from memory.embedding import Embedder, HashingEmbedder, WordEmbedder, words
from memory.graph import KnowledgeGraph, ensure_entities, relate, relations_since
from memory.index import FOREVER, NO_FILTERS, BehaviorIndex, Filters, IndexEntry, IndexSettings
from memory.portable import export_document, import_document, read_document
from memory.refs import behavior_ref
from memory.revisions import current, next_revision, now, timestamp
from memory.schema import (
    BehaviorRow,
    BehaviorVersionRow,
    EntityRow,
    ProvenanceRow,
    RelationRow,
)

PAGE = 1000
Derived = TypeVar("Derived")


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


@dataclass(frozen=True)
class Retrieval:
    """Behavior ids (B, k), best first, -1 where fewer matched, and their fused scores."""

    ids: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class HandbookSummary:
    behaviors: int
    valid: int
    versions: int
    by_kind: Mapping[str, int]
    provenance_records: int
    entities: int
    relations: int
    shown: int
    uses: int
    revision: int


class Handbook:
    def __init__(self, engine: Engine, *, embedder: Embedder | None = None,
                 settings: HandbookSettings | None = None) -> None:
        self._engine = engine
        self.embedder = embedder or HashingEmbedder()
        # Asked once: a protocol check costs about 10 µs, a third of a query's embedding.
        self._embeds_words = isinstance(self.embedder, WordEmbedder)
        self.settings = settings or HandbookSettings()
        self.graph = KnowledgeGraph(engine)
        # SQLite tells a connection whether others committed since it last asked
        # (``PRAGMA data_version``): one held apart from the pool makes an idle sync cost
        # microseconds, not a query. Other databases, and in-memory SQLite, ask the table.
        self._watcher: Any = None
        self._watchable = engine.dialect.name == "sqlite" and engine.url.database not in (
            None, "", ":memory:") and "mode=memory" not in str(engine.url)
        self._forget()  # loaded by the first sync, write or retrieval

    @classmethod
    def open(cls, url: str | None = None, *, embedder: Embedder | None = None,
             settings: HandbookSettings | None = None) -> Handbook:
        """The handbook of the database at ``url`` (default: ``$COPLAY_DB`` or coplay.db)."""
        return cls(open_engine(url), embedder=embedder, settings=settings)

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._index.close()
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- keeping the in-memory index in step -------------------------------------------------

    def _forget(self) -> None:
        self._index = BehaviorIndex(self.embedder.dimension, self.settings.index)
        self._records: dict[int, Behavior] = {}
        self._indexed_version: dict[int, int] = {}
        self._hashes: dict[str, int] = {}  # content hash -> a valid behavior with it
        self._links: dict[int, dict[tuple[str, str], float]] = {}
        self._entity_ids: dict[str, int] = {}
        self._revision = 0
        self._generation: int | None = None
        self._query_vectors: dict[str, np.ndarray] = {}
        # (k, filters) -> context -> its answer (ids, scores)
        self._answers: dict[tuple[int, Filters], dict[Context, tuple[np.ndarray, np.ndarray]]] = {}
        self._derived: dict[Hashable, Any] = {}  # see ``remembered``
        self._answers_revision = 0
        self._synced_at: int | None = None  # the watcher's data_version at the last sync

    @property
    def revision(self) -> tuple[int | None, int]:
        """Changes whenever what ``retrieve`` can return may have changed: the database's
        generation (a replaced database starts its revisions again) and its revision."""
        return self._generation, self._revision

    def sync(self) -> int:
        """Apply what was written since the last sync, by this process or another; returns
        how many behaviors and relations changed."""
        marker = self._data_version()
        if marker is not None and marker == self._synced_at and self._generation is not None:
            return 0
        with Session(self._engine) as session:
            changed = self._catch_up(session, current(session))
        self._synced_at = marker
        return changed

    def _data_version(self) -> int | None:
        """SQLite's count of commits by other connections, as seen by the watcher; None
        where there is no such count."""
        if not self._watchable:
            return None
        if self._watcher is None:
            self._watcher = self._engine.raw_connection()
        cursor = self._watcher.cursor()
        try:
            cursor.execute("PRAGMA data_version")
            return int(cursor.fetchone()[0])
        finally:
            cursor.close()

    def _catch_up(self, session: Session, state: tuple[int, int]) -> int:
        revision, generation = state
        if generation != self._generation:
            self._index.close()
            self._forget()
            self._generation = generation
        if revision <= self._revision:
            return 0
        rows = session.scalars(
            select(BehaviorRow).where(BehaviorRow.revision > self._revision)
            .order_by(BehaviorRow.id)
        ).all()
        self._apply_rows(rows)
        relations = relations_since(session, self._revision)
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
        for behavior_id in touched & set(self._records):
            summed: dict[str, float] = {}
            for (other, _), weight in self._links[behavior_id].items():
                if weight > 0:
                    summed[other] = summed.get(other, 0.0) + weight
            self._index.set_links(behavior_id, summed)
        self._revision = revision
        return len(rows) + len(relations)

    def _apply_rows(self, rows: Sequence[BehaviorRow]) -> None:
        stale = [row for row in rows if self._indexed_version.get(row.id) != row.version]
        foreign = [row for row in stale if row.embedder != self.embedder.name]
        # Vectors from another embedder live in another space: embed those texts again.
        fresh = dict(zip(
            (row.id for row in foreign),
            self.embedder.embed([content_text(r.name, r.instruction) for r in foreign]),
        ))
        for row in rows:
            record = _record(row)
            previous = self._records.get(row.id)
            if previous is not None:
                stale_hash = _hash_of(previous)
                if self._hashes.get(stale_hash) == row.id:
                    del self._hashes[stale_hash]
            self._records[row.id] = record
            if record.valid:
                self._hashes[row.content_hash] = row.id
            valid_to = timestamp(record.valid_to) if record.valid_to else FOREVER
            if self._indexed_version.get(row.id) == row.version:
                self._index.set_validity(row.id, valid_to)
                continue
            vector = fresh.get(row.id)
            if vector is None:
                vector = np.frombuffer(row.embedding, dtype=np.float32)
            self._index.upsert(IndexEntry(
                row.id, vector, words(record.text()), record.kind, frozenset(record.tags),
                timestamp(record.valid_from), valid_to,
            ))
            self._indexed_version[row.id] = row.version

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
                self._catch_up(session, (revision - 1, generation - int(deleting)))
                yield session, revision
        except BaseException:
            self._index.close()
            self._forget()
            raise
        self.sync()

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
        outcome: list[tuple[int, bool]] = []
        with self._writing() as (session, revision):
            moment = now()
            next_id = (session.scalar(select(func.max(BehaviorRow.id))) or 0) + 1
            behaviors, versions, provenance, edges, merged = [], [], [], [], set()
            for new, vector in zip(news, vectors):
                duplicate = self._duplicate_of(new, vector)
                if duplicate is not None:
                    merged.add(duplicate)
                    provenance.append(_provenance_row(duplicate, new.provenance, moment))
                    outcome.append((duplicate, True))
                    continue
                behavior_id, next_id = next_id, next_id + 1
                outcome.append((behavior_id, False))
                content = _content(new)
                behaviors.append({
                    "id": behavior_id, "version": 1, **content,
                    "content_hash": new.content_hash(), "embedder": self.embedder.name,
                    "embedding": vector.astype(np.float32).tobytes(), "created_at": moment,
                    "valid_from": moment, "valid_to": None, "invalid_reason": None,
                    "merged_into": None, "shown": 0, "uses": 0, "return_used": 0.0,
                    "return_unused": 0.0, "revision": revision,
                })
                versions.append({"behavior_id": behavior_id, "version": 1, **content,
                                 "note": "created", "valid_from": moment, "valid_to": None})
                provenance.append(_provenance_row(behavior_id, new.provenance, moment))
                edges += [(behavior_ref(behavior_id), "applies_to", f"{kind}:{key}", 1.0)
                          for kind, key in new.trigger.items()]
                # Later behaviors of this batch must see this one to be merged into it.
                self._hashes[new.content_hash()] = behavior_id
                self._index.upsert(IndexEntry(
                    behavior_id, vector, words(new.text()), new.kind, frozenset(new.tags),
                    timestamp(moment),
                ))
                self._indexed_version[behavior_id] = 1
            if behaviors:
                session.execute(insert(BehaviorRow), behaviors)
                session.execute(insert(BehaviorVersionRow), versions)
                _advance_sequence(session, BehaviorRow)
                ensure_entities(session, [behavior_ref(b["id"]) for b in behaviors],
                                revision, self._entity_ids)
            session.execute(insert(ProvenanceRow), provenance)
            if merged:
                session.execute(update(BehaviorRow).where(BehaviorRow.id.in_(merged))
                                .values(revision=revision))
            relate(session, edges, revision, known=self._entity_ids)
        return [AddResult(self._records[behavior_id], was_merged)
                for behavior_id, was_merged in outcome]

    def _duplicate_of(self, new: NewBehavior, vector: np.ndarray) -> int | None:
        same = self._hashes.get(new.content_hash())
        if same is not None:
            return same
        ids, similarities = self._index.nearest(vector, 1)
        if len(ids) and similarities[0] >= self.settings.dedup_threshold:
            return int(ids[0])
        return None

    def edit(self, behavior_id: int, *, name: str | None = None, instruction: str | None = None,
             kind: str | None = None, payload: Mapping[str, Any] | None = None,
             trigger: Mapping[str, str] | None = None, tags: Sequence[str] | None = None,
             note: str = "edited") -> Behavior:
        """Write a new version; the old one stays readable through ``versions``."""
        with self._writing() as (session, revision):
            row = self._row(session, behavior_id)
            if row.valid_to is not None:
                raise StoreError("behavior", expected="a valid behavior to edit",
                                 got=f"behavior {behavior_id}, invalidated: {row.invalid_reason}")
            new = NewBehavior(
                name=row.name if name is None else name,
                instruction=row.instruction if instruction is None else instruction,
                kind=row.kind if kind is None else kind,
                payload=row.payload if payload is None and kind is None else payload,
                trigger=row.trigger if trigger is None else dict(trigger),
                tags=tuple(row.tags if tags is None else tags),
            )
            moment = now()
            session.execute(update(BehaviorVersionRow).where(
                BehaviorVersionRow.behavior_id == behavior_id,
                BehaviorVersionRow.version == row.version,
            ).values(valid_to=moment))
            content = _content(new)
            row.version += 1
            for key, value in content.items():
                setattr(row, key, value)
            row.content_hash = new.content_hash()
            row.embedder = self.embedder.name
            row.embedding = self.embedder.embed([new.content()])[0].tobytes()
            row.revision = revision
            session.add(BehaviorVersionRow(behavior_id=behavior_id, version=row.version,
                                           **content, note=note, valid_from=moment,
                                           valid_to=None))
            # A trigger entry that was dropped keeps its edge, at weight 0, as history.
            dropped = set(self._records[behavior_id].trigger.items()) - set(new.trigger.items())
            relate(session, [
                (behavior_ref(behavior_id), "applies_to", f"{kind}:{key}", weight)
                for pairs, weight in ((new.trigger.items(), 1.0), (dropped, 0.0))
                for kind, key in pairs
            ], revision, known=self._entity_ids)
        return self._records[behavior_id]

    def invalidate(self, behavior_id: int, reason: str) -> Behavior:
        """End a behavior's validity: it is kept, but no longer retrieved."""
        return self._invalidate(behavior_id, reason, merged_into=None)

    def merge(self, source_id: int, into_id: int) -> Behavior:
        """Fold ``source_id`` into ``into_id``: its provenance is copied over, it is
        invalidated, and the graph records ``merged_into``."""
        if source_id == into_id:
            raise ConfigError("merge", expected="two different behaviors", got=f"{source_id} twice")
        return self._invalidate(source_id, f"merged into {into_id}", merged_into=into_id)

    def _invalidate(self, behavior_id: int, reason: str, *, merged_into: int | None) -> Behavior:
        with self._writing() as (session, revision):
            row = self._row(session, behavior_id)
            if row.valid_to is not None:
                raise StoreError("behavior", expected="a valid behavior",
                                 got=f"behavior {behavior_id}, already invalid: {row.invalid_reason}")
            moment = now()
            row.valid_to, row.invalid_reason, row.revision = moment, reason, revision
            session.execute(update(BehaviorVersionRow).where(
                BehaviorVersionRow.behavior_id == behavior_id,
                BehaviorVersionRow.version == row.version,
            ).values(valid_to=moment))
            if merged_into is not None:
                target = self._row(session, merged_into)
                if target.valid_to is not None:
                    raise StoreError("merge", expected="a valid behavior to merge into",
                                     got=f"behavior {merged_into}, invalid: {target.invalid_reason}")
                row.merged_into = merged_into
                target.revision = revision
                for source in session.scalars(select(ProvenanceRow).where(
                        ProvenanceRow.behavior_id == behavior_id)).all():
                    session.add(ProvenanceRow(
                        behavior_id=merged_into, extractor=source.extractor,
                        scenario=source.scenario, agent=source.agent, run_id=source.run_id,
                        episodes=list(source.episodes), created_at=moment,
                    ))
                relate(session, [(behavior_ref(behavior_id), "merged_into",
                                  behavior_ref(merged_into), 1.0)], revision,
                       known=self._entity_ids)
        return self._records[behavior_id]

    def record_usage(self, usages: Sequence[Usage], *,
                     edges: Sequence[tuple[str, str, str, float]] = (),
                     accumulate_edges: Sequence[tuple[str, str, str, float]] = ()) -> None:
        """Add episodes' usage to behaviors' statistics, and write graph edges (``edges``
        replace weights, ``accumulate_edges`` add to them), in one transaction."""
        usages = [u for u in usages if u.shown or u.uses]
        if not usages and not edges and not accumulate_edges:
            return
        unknown = sorted({u.behavior_id for u in usages} - set(self._records))
        if unknown:
            self.sync()
            unknown = sorted({u.behavior_id for u in usages} - set(self._records))
            if unknown:
                raise StoreError("usage", expected="behaviors in the handbook", got=f"ids {unknown}")
        table = BehaviorRow.__table__
        with self._writing() as (session, revision):
            if usages:
                session.execute(
                    update(table).where(table.c.id == bindparam("behavior")).values(
                        shown=table.c.shown + bindparam("add_shown"),
                        uses=table.c.uses + bindparam("add_uses"),
                        return_used=table.c.return_used + bindparam("add_used"),
                        return_unused=table.c.return_unused + bindparam("add_unused"),
                        revision=revision,
                    ),
                    [{"behavior": u.behavior_id, "add_shown": u.shown, "add_uses": u.uses,
                      "add_used": u.return_used, "add_unused": u.return_unused}
                     for u in usages],
                )
            relate(session, list(edges), revision, known=self._entity_ids)
            relate(session, list(accumulate_edges), revision, accumulate=True,
                   known=self._entity_ids)

    def prune(self, *, invalidated_before: datetime | None = None, dry_run: bool = False) -> list[int]:
        """Delete invalidated behaviors (those invalidated before ``invalidated_before``, if
        given) with their versions, provenance and graph node; returns their ids."""
        condition = BehaviorRow.valid_to.is_not(None)
        if invalidated_before is not None:
            condition &= BehaviorRow.valid_to < invalidated_before
        query = select(BehaviorRow.id).where(condition).order_by(BehaviorRow.id)
        if dry_run:
            with Session(self._engine) as session:
                return list(session.scalars(query))
        with self._writing(deleting=True) as (session, _):
            doomed = list(session.scalars(query))
            keys = [str(i) for i in doomed]
            entity_ids = select(EntityRow.id).where(EntityRow.type == "behavior",
                                                    EntityRow.key.in_(keys))
            session.execute(delete(RelationRow).where(
                RelationRow.source_id.in_(entity_ids) | RelationRow.target_id.in_(entity_ids)))
            session.execute(delete(EntityRow).where(EntityRow.type == "behavior",
                                                    EntityRow.key.in_(keys)))
            session.execute(update(BehaviorRow).where(BehaviorRow.merged_into.in_(doomed))
                            .values(merged_into=None))
            for table in (ProvenanceRow, BehaviorVersionRow):
                session.execute(delete(table).where(table.behavior_id.in_(doomed)))
            session.execute(delete(BehaviorRow).where(BehaviorRow.id.in_(doomed)))
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
            _advance_sequence(session, BehaviorRow)
        return mapping

    # ---- reading ----------------------------------------------------------------------------

    def get(self, behavior_id: int) -> Behavior:
        """The behavior as stored now (read from the database)."""
        with Session(self._engine) as session:
            return _record(self._row(session, behavior_id))

    def cached(self, behavior_id: int) -> Behavior:
        """The behavior as of the last sync, without SQL: for per-step use."""
        return self._records[behavior_id]

    def versions(self, behavior_id: int) -> list[BehaviorVersion]:
        with Session(self._engine) as session:
            self._row(session, behavior_id)
            rows = session.scalars(select(BehaviorVersionRow).where(
                BehaviorVersionRow.behavior_id == behavior_id).order_by(BehaviorVersionRow.version))
            return [BehaviorVersion(r.version, r.name, r.instruction, r.kind, r.payload,
                                    dict(r.trigger), tuple(r.tags), r.note, r.valid_from, r.valid_to)
                    for r in rows]

    def provenance(self, behavior_id: int) -> list[Provenance]:
        with Session(self._engine) as session:
            self._row(session, behavior_id)
            rows = session.scalars(select(ProvenanceRow).where(
                ProvenanceRow.behavior_id == behavior_id).order_by(ProvenanceRow.id))
            return [Provenance(extractor=r.extractor, scenario=r.scenario, agent=r.agent,
                               run_id=r.run_id, episodes=tuple(r.episodes), created_at=r.created_at)
                    for r in rows]

    def list(self, *, tags: Sequence[str] = (), kinds: Sequence[str] = (),
             include_invalid: bool = False, limit: int | None = None) -> list[Behavior]:
        """Behaviors by id, read from the database."""
        return list(self._iterate(tags=tags, kinds=kinds, include_invalid=include_invalid,
                                  limit=limit))

    def __iter__(self) -> Iterator[Behavior]:
        """Every valid behavior, by id, a page of rows at a time."""
        return self._iterate()

    def __len__(self) -> int:
        with Session(self._engine) as session:
            return session.scalar(select(func.count()).select_from(BehaviorRow)
                                  .where(BehaviorRow.valid_to.is_(None))) or 0

    def _iterate(self, *, tags: Sequence[str] = (), kinds: Sequence[str] = (),
                 include_invalid: bool = False, limit: int | None = None) -> Iterator[Behavior]:
        last, given = 0, 0
        wanted = set(tags)
        while limit is None or given < limit:
            query = select(BehaviorRow).where(BehaviorRow.id > last).order_by(BehaviorRow.id)
            if not include_invalid:
                query = query.where(BehaviorRow.valid_to.is_(None))
            if kinds:
                query = query.where(BehaviorRow.kind.in_(list(kinds)))
            with Session(self._engine) as session:
                rows = session.scalars(query.limit(PAGE)).all()
                records = [_record(row) for row in rows]
            if not records:
                return
            last = records[-1].id
            for record in records:
                if wanted <= set(record.tags) and (limit is None or given < limit):
                    given += 1
                    yield record

    def search(self, query: str, *, k: int = 5, entities: Sequence[str] = (),
               filters: Filters = NO_FILTERS) -> list[Hit]:
        """The ``k`` behaviors best matching ``query`` (and linked to ``entities``), after
        picking up other processes' writes."""
        self.sync()
        found = self.retrieve([Context(query, tuple(entities))], k=k, filters=filters)
        return [Hit(self._records[int(i)], float(s))
                for i, s in zip(found.ids[0], found.scores[0]) if i >= 0]

    def retrieve(self, contexts: Sequence[Context], *, k: int = 5,
                 filters: Filters = NO_FILTERS) -> Retrieval:
        """For each context, the ``k`` best behaviors: one batched call for every agent of
        every game at a step. Identical contexts are looked up once, and answers are
        remembered until the handbook changes: simulations ask the same ones every batch.
        No SQL."""
        if k < 1:
            raise ConfigError("k", expected="at least 1", got=str(k))
        if self._generation is None:  # never synced: load once
            self.sync()
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
            ids, scores = self._index.search(vectors, terms, [c.entities for c in asked], k, filters)
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

    def remembered(self, key: Hashable, build: Callable[[], Derived]) -> Derived:
        """``build()``, kept under ``key`` until the handbook's contents change: for what a
        caller derives from retrievals, such as the runner's hint tables, that every run
        would otherwise rebuild. Like ``retrieve``, it does not sync: callers that must see
        other processes' writes sync first."""
        if self._generation is None:
            self.sync()
        self._expire_answers()
        if key not in self._derived:
            if len(self._derived) > 1_000:
                self._derived.clear()
            self._derived[key] = build()
        return self._derived[key]

    def _expire_answers(self) -> None:
        if self._answers_revision != self._revision:
            self._answers.clear()
            self._derived.clear()
            self._answers_revision = self._revision

    def clear_caches(self) -> None:
        """Forget remembered query embeddings, answers and what was derived from them; they
        are rebuilt on demand (for benchmarks that time the work itself, and to free
        memory)."""
        self._query_vectors.clear()
        self._answers.clear()
        self._derived.clear()

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

    def summary(self) -> HandbookSummary:
        with Session(self._engine) as session:
            def count(model: type) -> int:
                return session.scalar(select(func.count()).select_from(model)) or 0

            by_kind = dict(session.execute(
                select(BehaviorRow.kind, func.count()).group_by(BehaviorRow.kind)).all())
            totals = session.execute(select(
                func.coalesce(func.sum(BehaviorRow.shown), 0),
                func.coalesce(func.sum(BehaviorRow.uses), 0))).one()
            return HandbookSummary(
                behaviors=count(BehaviorRow),
                valid=session.scalar(select(func.count()).select_from(BehaviorRow)
                                     .where(BehaviorRow.valid_to.is_(None))) or 0,
                versions=count(BehaviorVersionRow), by_kind=by_kind,
                provenance_records=count(ProvenanceRow), entities=count(EntityRow),
                relations=count(RelationRow), shown=int(totals[0]), uses=int(totals[1]),
                revision=current(session)[0],
            )

    @staticmethod
    def _row(session: Session, behavior_id: int) -> BehaviorRow:
        row = session.get(BehaviorRow, behavior_id)
        if row is None:
            raise StoreError("behavior", expected="the id of a stored behavior",
                             got=str(behavior_id), fix="Run `coplay memory list` to see them.")
        return row


def _content(new: NewBehavior) -> dict[str, Any]:
    return {"name": new.name, "instruction": new.instruction, "kind": new.kind,
            "payload": dict(new.payload) if new.payload is not None else None,
            "trigger": dict(new.trigger), "tags": list(new.tags)}


def _provenance_row(behavior_id: int, provenance: Provenance, moment: datetime) -> dict[str, Any]:
    return {"behavior_id": behavior_id, "extractor": provenance.extractor,
            "scenario": provenance.scenario, "agent": provenance.agent,
            "run_id": provenance.run_id, "episodes": list(provenance.episodes),
            "created_at": moment}


def _record(row: BehaviorRow) -> Behavior:
    return Behavior(
        id=row.id, version=row.version, name=row.name, instruction=row.instruction,
        kind=row.kind, payload=row.payload, trigger=dict(row.trigger), tags=tuple(row.tags),
        created_at=row.created_at, valid_from=row.valid_from, valid_to=row.valid_to,
        invalid_reason=row.invalid_reason, merged_into=row.merged_into,
        stats=BehaviorStats(row.shown, row.uses, row.return_used, row.return_unused),
    )


def _hash_of(record: Behavior) -> str:
    return content_hash(record.name, record.instruction, record.kind, record.payload)


def _link_weight(relation: str, weight: float) -> float:
    """How much an edge ties a behavior to an entity for retrieval: usage counts grow
    slowly, every other relation counts with its weight."""
    return float(np.log1p(weight)) if relation == "used_in" and weight > 0 else weight


def _advance_sequence(session: Session, model: type[BehaviorRow]) -> None:
    """Rows inserted with explicit ids leave PostgreSQL's id sequence behind: catch it up."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.setval(
            func.pg_get_serial_sequence(model.__tablename__, "id"),
            select(func.max(model.id)).scalar_subquery(),
        )))
