"""The handbook's store functions: each takes the caller's ``Session`` and returns plain,
frozen records (``memory.behaviors``), never rows.

Writes take the revision their rows carry (``memory.revisions.next_revision``, which the
caller asks for first in the same transaction) and ``entity_ids``, the caller's cache of
graph entity ids. ``Handbook`` opens the transactions and keeps its index in step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np
from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from coplay.errors import ConfigError, StoreError
from memory.behaviors import (
    Behavior,
    BehaviorStats,
    BehaviorVersion,
    EffectStats,
    EffectUsage,
    Moments,
    NewBehavior,
    Provenance,
    Usage,
)
from memory.embedding import Embedder
from memory.graph import ensure_entities, relate
from memory.refs import behavior_ref
from memory.revisions import current, now
from memory.schema import (
    BehaviorEffectRow,
    BehaviorRow,
    BehaviorVersionRow,
    EntityRow,
    ProvenanceRow,
    RelationRow,
)

Edge = tuple[str, str, str, float]  # source ref, relation, target ref, weight
PAGE = 1000  # behaviors read at a time


@dataclass(frozen=True)
class Added:
    """What ``add_many`` did with one new behavior: stored it under ``behavior_id``, or
    merged it into that valid behavior."""

    behavior_id: int
    merged: bool


@dataclass(frozen=True)
class StoredBehavior:
    """A behavior with what the retrieval index needs beyond the record."""

    behavior: Behavior
    content_hash: str
    embedder: str
    embedding: bytes  # float32 vector


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


class Deduplicator(Protocol):
    """Finds the valid behavior a new one repeats, and learns of each behavior ``add_many``
    stores, so that later ones in the same call can be merged into it."""

    def duplicate_of(self, new: NewBehavior, vector: np.ndarray) -> int | None: ...

    def added(self, behavior_id: int, new: NewBehavior, vector: np.ndarray,
              moment: datetime) -> None: ...


# ---- writing ------------------------------------------------------------------------------


def add(session: Session, new: NewBehavior, vector: np.ndarray, revision: int, *,
        embedder: str, dedup: Deduplicator, entity_ids: dict[str, int] | None = None) -> Added:
    """``add_many`` for one behavior."""
    return add_many(session, [new], vector[None], revision, embedder=embedder, dedup=dedup,
                    entity_ids=entity_ids)[0]


def add_many(session: Session, news: Sequence[NewBehavior], vectors: np.ndarray, revision: int,
             *, embedder: str, dedup: Deduplicator,
             entity_ids: dict[str, int] | None = None) -> list[Added]:
    """Store new behaviors (``vectors``: their embeddings by ``embedder``). One that
    ``dedup`` finds a duplicate of a valid behavior adds its provenance there instead."""
    if not news:
        return []
    moment = now()
    next_id = (session.scalar(select(func.max(BehaviorRow.id))) or 0) + 1
    behaviors, versions, provenance, edges, merged = [], [], [], [], set()
    outcome: list[Added] = []
    for new, vector in zip(news, vectors):
        duplicate = dedup.duplicate_of(new, vector)
        if duplicate is not None:
            merged.add(duplicate)
            provenance.append(_provenance_row(duplicate, new.provenance, moment))
            outcome.append(Added(duplicate, True))
            continue
        behavior_id, next_id = next_id, next_id + 1
        outcome.append(Added(behavior_id, False))
        content = _content(new)
        behaviors.append({
            "id": behavior_id, "version": 1, **content,
            "content_hash": new.content_hash(), "embedder": embedder,
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
        dedup.added(behavior_id, new, vector, moment)
    if behaviors:
        session.execute(insert(BehaviorRow), behaviors)
        session.execute(insert(BehaviorVersionRow), versions)
        advance_sequence(session)
        ensure_entities(session, [behavior_ref(b["id"]) for b in behaviors], revision, entity_ids)
    session.execute(insert(ProvenanceRow), provenance)
    if merged:
        session.execute(update(BehaviorRow).where(BehaviorRow.id.in_(merged))
                        .values(revision=revision))
    relate(session, edges, revision, known=entity_ids)
    return outcome


def edit(session: Session, behavior_id: int, revision: int, *, embedder: Embedder,
         name: str | None = None, instruction: str | None = None, kind: str | None = None,
         payload: Mapping[str, Any] | None = None, trigger: Mapping[str, str] | None = None,
         tags: Sequence[str] | None = None, note: str = "edited",
         entity_ids: dict[str, int] | None = None) -> Behavior:
    """Write a new version of a valid behavior (what is not given stays); the old one stays
    readable through ``versions``."""
    row = _row(session, behavior_id)
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
    # A trigger entry that was dropped keeps its edge, at weight 0, as history.
    dropped = set(row.trigger.items()) - set(new.trigger.items())
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
    row.embedder = embedder.name
    row.embedding = embedder.embed([new.content()])[0].tobytes()
    row.revision = revision
    session.add(BehaviorVersionRow(behavior_id=behavior_id, version=row.version, **content,
                                   note=note, valid_from=moment, valid_to=None))
    relate(session, [
        (behavior_ref(behavior_id), "applies_to", f"{kind}:{key}", weight)
        for pairs, weight in ((new.trigger.items(), 1.0), (dropped, 0.0))
        for kind, key in pairs
    ], revision, known=entity_ids)
    return _record(row)


def invalidate(session: Session, behavior_id: int, reason: str, revision: int, *,
               entity_ids: dict[str, int] | None = None) -> Behavior:
    """End a behavior's validity: it is kept, but no longer retrieved."""
    return _invalidate(session, behavior_id, reason, revision, merged_into=None,
                       entity_ids=entity_ids)


def merge(session: Session, source_id: int, into_id: int, revision: int, *,
          entity_ids: dict[str, int] | None = None) -> Behavior:
    """Fold ``source_id`` into ``into_id``: its provenance is copied over, it is
    invalidated, and the graph records ``merged_into``. Returns the folded behavior."""
    if source_id == into_id:
        raise ConfigError("merge", expected="two different behaviors", got=f"{source_id} twice")
    return _invalidate(session, source_id, f"merged into {into_id}", revision,
                       merged_into=into_id, entity_ids=entity_ids)


def _invalidate(session: Session, behavior_id: int, reason: str, revision: int, *,
                merged_into: int | None, entity_ids: dict[str, int] | None) -> Behavior:
    row = _row(session, behavior_id)
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
        target = _row(session, merged_into)
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
                          behavior_ref(merged_into), 1.0)], revision, known=entity_ids)
    return _record(row)


def record_usage(session: Session, usages: Sequence[Usage], revision: int, *,
                 edges: Sequence[Edge] = (), accumulate_edges: Sequence[Edge] = (),
                 effects: Sequence[EffectUsage] = (),
                 entity_ids: dict[str, int] | None = None) -> None:
    """Add episodes' usage to behaviors' statistics and their effects per entity, and write
    graph edges (``edges`` replace weights, ``accumulate_edges`` add to them)."""
    table = BehaviorRow.__table__
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
    if effects:
        _add_effects(session, effects, revision)
    relate(session, list(edges), revision, known=entity_ids)
    relate(session, list(accumulate_edges), revision, accumulate=True, known=entity_ids)


def _add_effects(session: Session, effects: Sequence[EffectUsage], revision: int) -> None:
    """Add to the moments of each (behavior, entity), creating the rows that are new. The
    caller holds the handbook's write lock, so reading first cannot race another writer."""
    keys = {(e.behavior_id, e.entity) for e in effects}
    existing = {
        (row.behavior_id, row.entity): row
        for row in session.scalars(select(BehaviorEffectRow).where(
            BehaviorEffectRow.behavior_id.in_({b for b, _ in keys})))
    }
    for effect in effects:
        used, unused = effect.stats.used, effect.stats.unused
        row = existing.get((effect.behavior_id, effect.entity))
        if row is None:
            row = existing[(effect.behavior_id, effect.entity)] = BehaviorEffectRow(
                behavior_id=effect.behavior_id, entity=effect.entity, used=0, used_sum=0.0,
                used_sq=0.0, unused=0, unused_sum=0.0, unused_sq=0.0, revision=revision)
            session.add(row)
        row.used += used.n
        row.used_sum += used.total
        row.used_sq += used.total_sq
        row.unused += unused.n
        row.unused_sum += unused.total
        row.unused_sq += unused.total_sq
        row.revision = revision


def effects_since(session: Session, revision: int) -> list[EffectUsage]:
    """Every (behavior, entity) effect written after ``revision``, whole (not increments)."""
    rows = session.scalars(select(BehaviorEffectRow).where(BehaviorEffectRow.revision > revision))
    return [_effect(row) for row in rows]


def effects_of(session: Session, behavior_id: int) -> list[EffectUsage]:
    """One behavior's effects, by entity."""
    rows = session.scalars(select(BehaviorEffectRow).where(
        BehaviorEffectRow.behavior_id == behavior_id).order_by(BehaviorEffectRow.entity))
    return [_effect(row) for row in rows]


def _effect(row: BehaviorEffectRow) -> EffectUsage:
    return EffectUsage(row.behavior_id, row.entity, EffectStats(
        Moments(row.used, row.used_sum, row.used_sq),
        Moments(row.unused, row.unused_sum, row.unused_sq)))


def invalidated(session: Session, *, before: datetime | None = None) -> list[int]:
    """Ids of invalidated behaviors (those invalidated before ``before``, if given)."""
    return list(session.scalars(_invalidated(before)))


def prune(session: Session, *, invalidated_before: datetime | None = None) -> list[int]:
    """Delete invalidated behaviors (those invalidated before ``invalidated_before``, if
    given) with their versions, provenance and graph node; returns their ids. The caller's
    revision must tell readers to reload (``next_revision(deleting=True)``)."""
    doomed = list(session.scalars(_invalidated(invalidated_before)))
    keys = [str(i) for i in doomed]
    entity_ids = select(EntityRow.id).where(EntityRow.type == "behavior", EntityRow.key.in_(keys))
    session.execute(delete(RelationRow).where(
        RelationRow.source_id.in_(entity_ids) | RelationRow.target_id.in_(entity_ids)))
    session.execute(delete(EntityRow).where(EntityRow.type == "behavior",
                                            EntityRow.key.in_(keys)))
    session.execute(update(BehaviorRow).where(BehaviorRow.merged_into.in_(doomed))
                    .values(merged_into=None))
    for table in (ProvenanceRow, BehaviorVersionRow, BehaviorEffectRow):
        session.execute(delete(table).where(table.behavior_id.in_(doomed)))
    session.execute(delete(BehaviorRow).where(BehaviorRow.id.in_(doomed)))
    return doomed


def _invalidated(before: datetime | None):
    condition = BehaviorRow.valid_to.is_not(None)
    if before is not None:
        condition &= BehaviorRow.valid_to < before
    return select(BehaviorRow.id).where(condition).order_by(BehaviorRow.id)


def advance_sequence(session: Session) -> None:
    """Behaviors inserted with explicit ids leave PostgreSQL's id sequence behind: catch it
    up."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.setval(
            func.pg_get_serial_sequence(BehaviorRow.__tablename__, "id"),
            select(func.max(BehaviorRow.id)).scalar_subquery(),
        )))


# ---- reading ------------------------------------------------------------------------------


def get(session: Session, behavior_id: int) -> Behavior:
    return _record(_row(session, behavior_id))


def versions(session: Session, behavior_id: int) -> list[BehaviorVersion]:
    _row(session, behavior_id)
    rows = session.scalars(select(BehaviorVersionRow).where(
        BehaviorVersionRow.behavior_id == behavior_id).order_by(BehaviorVersionRow.version))
    return [BehaviorVersion(r.version, r.name, r.instruction, r.kind, r.payload,
                            dict(r.trigger), tuple(r.tags), r.note, r.valid_from, r.valid_to)
            for r in rows]


def provenance(session: Session, behavior_id: int) -> list[Provenance]:
    _row(session, behavior_id)
    rows = session.scalars(select(ProvenanceRow).where(
        ProvenanceRow.behavior_id == behavior_id).order_by(ProvenanceRow.id))
    return [Provenance(extractor=r.extractor, scenario=r.scenario, agent=r.agent,
                       run_id=r.run_id, episodes=tuple(r.episodes), created_at=r.created_at)
            for r in rows]


def page(session: Session, *, after: int = 0, kinds: Sequence[str] = (),
         include_invalid: bool = False, size: int = PAGE) -> list[Behavior]:
    """Up to ``size`` behaviors with ids above ``after``, by id."""
    query = select(BehaviorRow).where(BehaviorRow.id > after).order_by(BehaviorRow.id)
    if not include_invalid:
        query = query.where(BehaviorRow.valid_to.is_(None))
    if kinds:
        query = query.where(BehaviorRow.kind.in_(list(kinds)))
    return [_record(row) for row in session.scalars(query.limit(size))]


def list_behaviors(session: Session, *, tags: Sequence[str] = (), kinds: Sequence[str] = (),
                   include_invalid: bool = False, limit: int | None = None) -> list[Behavior]:
    """Behaviors by id: valid ones (unless ``include_invalid``) of any of ``kinds`` (all
    if empty) that carry every one of ``tags``, at most ``limit``."""
    wanted = set(tags)
    found: list[Behavior] = []
    last = 0
    while limit is None or len(found) < limit:
        records = page(session, after=last, kinds=kinds, include_invalid=include_invalid)
        if not records:
            break
        last = records[-1].id
        found += [record for record in records if wanted <= set(record.tags)]
    return found[:limit]


def count_valid(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(BehaviorRow)
                          .where(BehaviorRow.valid_to.is_(None))) or 0


def changed_since(session: Session, revision: int) -> list[StoredBehavior]:
    """Every behavior written after ``revision`` (all of them for 0), by id."""
    rows = session.scalars(
        select(BehaviorRow).where(BehaviorRow.revision > revision).order_by(BehaviorRow.id)
    )
    return [StoredBehavior(_record(row), row.content_hash, row.embedder, row.embedding)
            for row in rows]


def summary(session: Session) -> HandbookSummary:
    def count(model: type) -> int:
        return session.scalar(select(func.count()).select_from(model)) or 0

    by_kind = dict(session.execute(
        select(BehaviorRow.kind, func.count()).group_by(BehaviorRow.kind)).all())
    totals = session.execute(select(
        func.coalesce(func.sum(BehaviorRow.shown), 0),
        func.coalesce(func.sum(BehaviorRow.uses), 0))).one()
    return HandbookSummary(
        behaviors=count(BehaviorRow), valid=count_valid(session),
        versions=count(BehaviorVersionRow), by_kind=by_kind,
        provenance_records=count(ProvenanceRow), entities=count(EntityRow),
        relations=count(RelationRow), shown=int(totals[0]), uses=int(totals[1]),
        revision=current(session)[0],
    )


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
