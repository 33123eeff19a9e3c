"""The knowledge graph: typed entities and typed, weighted, time-stamped relations in the same
database as the handbook, with a ``networkx`` view for analysis and export.

An entity is named ``type:key``, e.g. ``coplayer:reciprocator``, ``env:coplay/ipd-v0`` or
``behavior:12``. Session-level functions take a ``Session`` the caller owns; the
``KnowledgeGraph`` class wraps them in short transactions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session, aliased

from coplay.errors import StoreError

if TYPE_CHECKING:
    import networkx as nx
from memory.refs import check_relation, parse_ref
from memory.revisions import next_revision, now
from memory.schema import EntityRow, RelationRow


@dataclass(frozen=True)
class Entity:
    id: int
    type: str
    key: str
    attributes: Mapping[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.type}:{self.key}"


@dataclass(frozen=True)
class Relation:
    source: str  # entity ref
    type: str
    target: str
    weight: float
    created_at: datetime
    updated_at: datetime


# ---- session level ----------------------------------------------------------------------------


def ensure_entities(
    session: Session, refs: Iterable[str], revision: int, known: dict[str, int] | None = None,
) -> dict[str, int]:
    """Entity ids for ``refs``, creating missing entities; ``known`` caches ref -> id."""
    known = {} if known is None else known
    wanted: dict[str, list[str]] = {}
    for ref in dict.fromkeys(refs):
        if ref not in known:
            kind, key = parse_ref(ref)
            wanted.setdefault(kind, []).append(key)
    moment = now()
    for kind, keys in wanted.items():
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            for row in session.execute(select(EntityRow.id, EntityRow.key).where(
                    EntityRow.type == kind, EntityRow.key.in_(chunk))):
                known[f"{kind}:{row.key}"] = row.id
        missing = [key for key in keys if f"{kind}:{key}" not in known]
        if missing:
            created = session.execute(insert(EntityRow).returning(EntityRow.id, EntityRow.key), [
                {"type": kind, "key": key, "attributes": {}, "created_at": moment,
                 "revision": revision} for key in missing
            ])
            for row in created:
                known[f"{kind}:{row.key}"] = row.id
    return known


def relate(
    session: Session, edges: Sequence[tuple[str, str, str, float]], revision: int, *,
    accumulate: bool = False, known: dict[str, int] | None = None,
) -> None:
    """Write (source, relation, target, weight) edges; an existing edge gets the new weight,
    or the sum of both with ``accumulate``."""
    if not edges:
        return
    for _, relation, _, _ in edges:
        check_relation(relation)
    ids = ensure_entities(session, [e[0] for e in edges] + [e[2] for e in edges], revision, known)
    moment = now()
    pairs = {(ids[s], ids[t], r): w for s, r, t, w in edges}
    existing: dict[tuple[int, int, str], RelationRow] = {}
    sources = sorted({p[0] for p in pairs})
    targets = {p[1] for p in pairs}
    for start in range(0, len(sources), 5000):
        for row in session.scalars(select(RelationRow).where(
                RelationRow.source_id.in_(sources[start:start + 5000]),
                RelationRow.target_id.in_(targets))):
            existing[(row.source_id, row.target_id, row.type)] = row
    fresh = []
    for (source, target, relation), weight in pairs.items():
        row = existing.get((source, target, relation))
        if row is None:
            fresh.append({"source_id": source, "target_id": target, "type": relation,
                          "weight": weight, "created_at": moment, "updated_at": moment,
                          "revision": revision})
        else:
            row.weight = row.weight + weight if accumulate else weight
            row.updated_at = moment
            row.revision = revision
    if fresh:
        session.execute(insert(RelationRow), fresh)
    session.flush()


def relations_since(session: Session, revision: int) -> list[Relation]:
    """Every relation written after ``revision`` (all of them for 0)."""
    source, target = aliased(EntityRow), aliased(EntityRow)
    rows = session.execute(
        select(RelationRow, source.type, source.key, target.type, target.key)
        .join(source, RelationRow.source_id == source.id)
        .join(target, RelationRow.target_id == target.id)
        .where(RelationRow.revision > revision)
    )
    return [
        Relation(f"{st}:{sk}", row.type, f"{tt}:{tk}", row.weight, row.created_at, row.updated_at)
        for row, st, sk, tt, tk in rows
    ]


def entities(session: Session) -> list[Entity]:
    return [
        Entity(row.id, row.type, row.key, dict(row.attributes))
        for row in session.scalars(select(EntityRow).order_by(EntityRow.id))
    ]


# ---- the graph as users see it ----------------------------------------------------------------


class KnowledgeGraph:
    """Entities and relations of one database, written in short transactions and analysed
    as a ``networkx.MultiDiGraph``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def relate(self, source: str, relation: str, target: str, weight: float = 1.0, *,
               accumulate: bool = False) -> None:
        with Session(self._engine) as session, session.begin():
            relate(session, [(source, relation, target, weight)], next_revision(session),
                   accumulate=accumulate)

    def entity(self, ref: str) -> Entity:
        kind, key = parse_ref(ref)
        with Session(self._engine) as session:
            row = session.scalars(
                select(EntityRow).where(EntityRow.type == kind, EntityRow.key == key)
            ).one_or_none()
        if row is None:
            raise StoreError("entity", expected="an entity in the graph", got=repr(ref),
                             fix="Run `coplay memory graph` to list them.")
        return Entity(row.id, row.type, row.key, dict(row.attributes))

    def entities(self) -> list[Entity]:
        with Session(self._engine) as session:
            return entities(session)

    def relations(self) -> list[Relation]:
        with Session(self._engine) as session:
            return relations_since(session, 0)

    def to_networkx(self) -> nx.MultiDiGraph:
        """Nodes are entity refs with ``type`` and ``key`` attributes; edges carry ``type``,
        ``weight`` and ISO times (GraphML takes no datetimes)."""
        import networkx as nx  # for analysis only: the handbook itself never needs it

        graph = nx.MultiDiGraph()
        with Session(self._engine) as session:
            for entity in entities(session):
                graph.add_node(entity.ref, type=entity.type, key=entity.key)
            for r in relations_since(session, 0):
                graph.add_edge(r.source, r.target, key=r.type, type=r.type, weight=r.weight,
                               created_at=r.created_at.isoformat(),
                               updated_at=r.updated_at.isoformat())
        return graph

    def neighbourhood(self, ref: str, depth: int = 1) -> nx.MultiDiGraph:
        """The subgraph within ``depth`` hops of ``ref``, edges followed either way."""
        import networkx as nx

        graph = self.to_networkx()
        if ref not in graph:
            raise StoreError("entity", expected="an entity in the graph", got=repr(ref),
                             fix="Run `coplay memory graph` to list them.")
        near = nx.single_source_shortest_path_length(graph.to_undirected(as_view=True), ref,
                                                     cutoff=depth)
        return graph.subgraph(near).copy()

    def path(self, source: str, target: str) -> list[str]:
        """A shortest chain of entities linking the two, edges followed either way."""
        import networkx as nx

        graph = self.to_networkx().to_undirected(as_view=True)
        try:
            return nx.shortest_path(graph, source, target)
        except (nx.NetworkXNoPath, nx.NodeNotFound) as error:
            raise StoreError("path", expected=f"a path from {source} to {target}",
                             got=str(error)) from None

    def personalized_pagerank(self, seeds: Mapping[str, float], *, top: int = 10,
                              entity_type: str | None = None) -> list[tuple[str, float]]:
        """Entities ranked by personalized PageRank from ``seeds`` (weights need not sum to
        one), optionally only those of one type."""
        import networkx as nx

        graph = self.to_networkx()
        missing = [ref for ref in seeds if ref not in graph]
        if missing:
            raise StoreError("seeds", expected="entities in the graph", got=repr(missing))
        simple = nx.Graph()
        simple.add_nodes_from(graph.nodes(data=True))
        for a, b, data in graph.edges(data=True):
            weight = abs(data["weight"]) + (simple[a][b]["weight"] if simple.has_edge(a, b) else 0)
            simple.add_edge(a, b, weight=weight)
        ranks = nx.pagerank(simple, personalization=dict(seeds), weight="weight")
        ranked = sorted(
            ((ref, score) for ref, score in ranks.items()
             if entity_type is None or graph.nodes[ref]["type"] == entity_type),
            key=lambda item: -item[1],
        )
        return ranked[:top]

    def export_graphml(self, path: str | Path) -> None:
        import networkx as nx

        nx.write_graphml(self.to_networkx(), str(path))

    def export_json(self) -> dict[str, Any]:
        return graph_records(self.to_networkx())


def graph_records(graph: nx.MultiDiGraph) -> dict[str, Any]:
    """A networkx view (the whole graph or a neighbourhood) as JSON-ready nodes and edges."""
    return {
        "nodes": [{"id": n, **data} for n, data in graph.nodes(data=True)],
        "edges": [{"source": a, "target": b, **data} for a, b, data in graph.edges(data=True)],
    }
