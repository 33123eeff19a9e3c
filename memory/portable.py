"""Export and import of a whole handbook with its graph, as one JSON document.

Exporting a database and importing the file into an empty one reproduces it exactly:
behaviors with their ids, versions, provenance, statistics (effects per credited entity
included), validity and embeddings, and
every entity and relation with its times. Imported into a handbook that already uses some
of the ids, behaviors get fresh ids and every reference to them follows. Behaviors the
handbook already holds are merged, not added again, so importing a file twice changes
nothing the second time.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from coplay.errors import StoreError
from memory.behaviors import check_payload
from memory.refs import check_relation, parse_ref
from memory.schema import (
    BehaviorEffectRow,
    BehaviorRow,
    BehaviorVersionRow,
    EntityRow,
    ProvenanceRow,
    RelationRow,
)

FORMAT = "coplay-handbook-v1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VersionRecord(_Strict):
    version: int
    name: str
    instruction: str
    kind: str
    payload: dict[str, Any] | None
    trigger: dict[str, str]
    tags: list[str]
    note: str
    valid_from: datetime
    valid_to: datetime | None


class ProvenanceRecord(_Strict):
    extractor: str
    scenario: str | None
    agent: str | None
    run_id: int | None
    episodes: list[int]
    created_at: datetime


class EffectRecord(_Strict):
    entity: str
    used: int
    used_sum: float
    used_sq: float
    unused: int
    unused_sum: float
    unused_sq: float


class BehaviorRecord(_Strict):
    id: int
    version: int
    name: str
    instruction: str
    kind: str
    payload: dict[str, Any] | None
    trigger: dict[str, str]
    tags: list[str]
    content_hash: str
    embedder: str
    embedding: str  # base64 of float32 values
    created_at: datetime
    valid_from: datetime
    valid_to: datetime | None
    invalid_reason: str | None
    merged_into: int | None
    shown: int
    uses: int
    return_used: float
    return_unused: float
    versions: list[VersionRecord]
    provenance: list[ProvenanceRecord]
    effects: list[EffectRecord] = []  # exports written before effects were kept have none


class EntityRecord(_Strict):
    type: str
    key: str
    attributes: dict[str, Any]
    created_at: datetime


class RelationRecord(_Strict):
    source: str
    type: str
    target: str
    weight: float
    created_at: datetime
    updated_at: datetime


class HandbookDocument(_Strict):
    format: Literal["coplay-handbook-v1"]
    behaviors: list[BehaviorRecord]
    entities: list[EntityRecord]
    relations: list[RelationRecord]


_BEHAVIOR_COLUMNS = [
    "id", "version", "name", "instruction", "kind", "payload", "trigger", "tags", "content_hash",
    "embedder", "created_at", "valid_from", "valid_to", "invalid_reason", "merged_into", "shown",
    "uses", "return_used", "return_unused",
]


_EFFECT_COLUMNS = ["entity", "used", "used_sum", "used_sq", "unused", "unused_sum", "unused_sq"]


def export_document(session: Session) -> dict[str, Any]:
    """The whole handbook and graph as a JSON-ready dict, in id order."""
    versions: dict[int, list[dict]] = {}
    for row in session.scalars(select(BehaviorVersionRow).order_by(
            BehaviorVersionRow.behavior_id, BehaviorVersionRow.version)):
        versions.setdefault(row.behavior_id, []).append({
            "version": row.version, "name": row.name, "instruction": row.instruction,
            "kind": row.kind, "payload": row.payload, "trigger": row.trigger, "tags": row.tags,
            "note": row.note, "valid_from": _time(row.valid_from), "valid_to": _time(row.valid_to),
        })
    provenance: dict[int, list[dict]] = {}
    for row in session.scalars(select(ProvenanceRow).order_by(ProvenanceRow.id)):
        provenance.setdefault(row.behavior_id, []).append({
            "extractor": row.extractor, "scenario": row.scenario, "agent": row.agent,
            "run_id": row.run_id, "episodes": row.episodes, "created_at": _time(row.created_at),
        })
    effects: dict[int, list[dict]] = {}
    for row in session.scalars(select(BehaviorEffectRow).order_by(
            BehaviorEffectRow.behavior_id, BehaviorEffectRow.entity)):
        effects.setdefault(row.behavior_id, []).append({
            column: getattr(row, column) for column in _EFFECT_COLUMNS})
    behaviors = []
    for row in session.scalars(select(BehaviorRow).order_by(BehaviorRow.id)):
        record = {column: getattr(row, column) for column in _BEHAVIOR_COLUMNS}
        for column in ("created_at", "valid_from", "valid_to"):
            record[column] = _time(record[column])
        record["embedding"] = base64.b64encode(row.embedding).decode()
        record["versions"] = versions.get(row.id, [])
        record["provenance"] = provenance.get(row.id, [])
        record["effects"] = effects.get(row.id, [])
        behaviors.append(record)
    refs = {}
    entities = []
    for row in session.scalars(select(EntityRow).order_by(EntityRow.type, EntityRow.key)):
        refs[row.id] = f"{row.type}:{row.key}"
        entities.append({"type": row.type, "key": row.key, "attributes": row.attributes,
                         "created_at": _time(row.created_at)})
    relations = [
        {"source": refs[row.source_id], "type": row.type, "target": refs[row.target_id],
         "weight": row.weight, "created_at": _time(row.created_at),
         "updated_at": _time(row.updated_at)}
        for row in session.scalars(select(RelationRow).order_by(RelationRow.id))
    ]
    relations.sort(key=lambda r: (r["source"], r["type"], r["target"]))
    return {"format": FORMAT, "behaviors": behaviors, "entities": entities, "relations": relations}


def read_document(path: str | Path) -> HandbookDocument:
    """A handbook export file, checked whole before anything is written."""
    where = str(path)
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise StoreError(where, expected="an existing file", got="no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise StoreError(where, expected="a coplay handbook export (JSON)",
                         got=f"invalid JSON: {error}") from None
    try:
        document = HandbookDocument.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "document"
        raise StoreError(f"{where}: {field}", expected=f"a {FORMAT} document field",
                         got=first["msg"]) from None
    for behavior in document.behaviors:
        check_payload(behavior.kind, behavior.payload, where=f"{where}: behavior {behavior.id}")
        try:
            base64.b64decode(behavior.embedding, validate=True)
        except ValueError:
            raise StoreError(f"{where}: behavior {behavior.id}.embedding",
                             expected="base64 float32 values", got="something else") from None
    for entity in document.entities:
        parse_ref(f"{entity.type}:{entity.key}", where=f"{where}: entity")
    return document


def import_document(session: Session, document: HandbookDocument, revision: int) -> dict[int, int]:
    """Write the document into the handbook; returns old behavior id -> id in the handbook.

    A behavior of the document that the handbook already holds is merged into it instead of
    added: the same behavior (equal content and creation time, as after importing the same
    file before) or, if valid, a valid behavior with the same content (the handbook keeps one
    of each). A merged behavior keeps its stored versions and statistics (counting the same
    episodes twice would skew them) and gains only the provenance it lacked."""
    matched = _stored_matches(session, document.behaviors)
    fresh = [b for b in document.behaviors if b.id not in matched]
    taken = set(session.scalars(select(BehaviorRow.id).where(
        BehaviorRow.id.in_([b.id for b in fresh]))))
    start = (session.scalar(select(func.max(BehaviorRow.id))) or 0) + 1
    new_id = {b.id: (b.id if not taken else start + i) for i, b in enumerate(fresh)}
    new_id.update(matched)

    def remap(ref: str) -> str:
        kind, key = parse_ref(ref)
        return f"behavior:{new_id.get(int(key), key)}" if kind == "behavior" and key.isdigit() else ref

    if fresh:
        # merged_into may point at a behavior later in the file: set it once all exist.
        session.execute(insert(BehaviorRow), [{
            **b.model_dump(exclude={"versions", "provenance", "embedding", "effects"}),
            "id": new_id[b.id], "embedding": base64.b64decode(b.embedding),
            "merged_into": None, "revision": revision,
        } for b in fresh])
        for b in fresh:
            if b.merged_into is not None:
                session.execute(update(BehaviorRow).where(BehaviorRow.id == new_id[b.id])
                                .values(merged_into=new_id.get(b.merged_into, b.merged_into)))
        versions = [{**v.model_dump(), "behavior_id": new_id[b.id]} for b in fresh for v in b.versions]
        if versions:
            session.execute(insert(BehaviorVersionRow), versions)
        effects = [{**e.model_dump(), "behavior_id": new_id[b.id], "revision": revision}
                   for b in fresh for e in b.effects]
        if effects:
            session.execute(insert(BehaviorEffectRow), effects)
    known = {
        (row.behavior_id, *_provenance_key(row))
        for row in session.scalars(select(ProvenanceRow).where(
            ProvenanceRow.behavior_id.in_(sorted(set(matched.values())))))
    }
    provenance = []
    for b in document.behaviors:
        for p in b.provenance:
            key = (new_id[b.id], *_provenance_key(p))
            if key not in known:
                known.add(key)
                provenance.append({**p.model_dump(), "behavior_id": new_id[b.id]})
    if provenance:
        session.execute(insert(ProvenanceRow), provenance)
    ids = {f"{row.type}:{row.key}": row.id for row in session.scalars(select(EntityRow))}
    for entity in document.entities:
        ref = remap(f"{entity.type}:{entity.key}")
        if ref not in ids:
            kind, key = parse_ref(ref)
            row = EntityRow(type=kind, key=key, attributes=entity.attributes,
                            created_at=entity.created_at, revision=revision)
            session.add(row)
            session.flush()
            ids[ref] = row.id
    existing = {(r.source_id, r.target_id, r.type): r for r in session.scalars(select(RelationRow))}
    for relation in document.relations:
        check_relation(relation.type)
        source, target = remap(relation.source), remap(relation.target)
        for ref in (source, target):
            if ref not in ids:
                raise StoreError("import", expected="relations between listed entities",
                                 got=f"an edge to {ref}, which is not among the entities")
        key = (ids[source], ids[target], relation.type)
        edge = existing.get(key)
        if edge is None:
            existing[key] = RelationRow(
                source_id=ids[source], target_id=ids[target], type=relation.type,
                weight=relation.weight, created_at=relation.created_at,
                updated_at=relation.updated_at, revision=revision,
            )
            session.add(existing[key])
        else:
            edge.weight, edge.updated_at, edge.revision = relation.weight, relation.updated_at, revision
    session.flush()
    return new_id


def _stored_matches(session: Session, behaviors: list[BehaviorRecord]) -> dict[int, int]:
    """Document behavior id -> id of the stored behavior it is (see ``import_document``)."""
    hashes = sorted({b.content_hash for b in behaviors})
    same: dict[tuple[str, datetime], int] = {}
    valid: dict[str, int] = {}
    for start in range(0, len(hashes), 500):
        rows = session.execute(
            select(BehaviorRow.id, BehaviorRow.content_hash, BehaviorRow.created_at,
                   BehaviorRow.valid_to)
            .where(BehaviorRow.content_hash.in_(hashes[start:start + 500]))
            .order_by(BehaviorRow.id)
        )
        for behavior_id, content_hash, created_at, valid_to in rows:
            same.setdefault((content_hash, created_at), behavior_id)
            if valid_to is None:
                valid.setdefault(content_hash, behavior_id)
    matched = {}
    for b in behaviors:
        stored = same.get((b.content_hash, b.created_at))
        if stored is None and b.valid_to is None:
            stored = valid.get(b.content_hash)
        if stored is not None:
            matched[b.id] = stored
    return matched


def _provenance_key(p: ProvenanceRow | ProvenanceRecord) -> tuple:
    return (p.extractor, p.scenario, p.agent, p.run_id, tuple(p.episodes), p.created_at)


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
