"""The behavior handbook and knowledge graph, on SQLite and on a real PostgreSQL server:
versions, dedup and merge, validity, statistics, retrieval consistency with the database,
concurrent writers, export/import, bad input, and schema migrations."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import sqlite3
from dataclasses import replace

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.orm import Session

from coplay.errors import ConfigError, StoreError
from coplay.step import Context
from memory import handbook_store, migrations, open_engine
from memory.behaviors import (
    EffectStats,
    EffectUsage,
    Moments,
    NewBehavior,
    Provenance,
    Usage,
)
from memory.handbook import Handbook, HandbookSettings
from memory.index import Filters
from memory.revisions import next_revision

FORGIVE = NewBehavior(
    name="Forgive a single defection",
    instruction="When the co-player defects once after long cooperation, cooperate again.",
    tags=("ipd", "forgiving"), trigger={"coplayer": "reciprocator"},
    provenance=Provenance(extractor="test", scenario="s1", agent="a1", run_id=1, episodes=(1, 2)),
)
PUNISH = NewBehavior(
    name="Punish defectors",
    instruction="Against a co-player that keeps defecting, defect every round.",
    kind="response_rule",
    payload={"cooperate": {"start": 1.0, "CC": 1.0, "CD": 0.0, "DC": 1.0, "DD": 0.0}},
    tags=("ipd", "retaliation"), trigger={"coplayer": "defector"},
)
MACRO = NewBehavior(
    name="Open with two cooperations",
    instruction="Start the game with two cooperative moves before reacting.",
    kind="action_macro", payload={"actions": [0, 0]}, tags=("opening",),
)


@pytest.fixture
def handbook(backend_url):
    with Handbook.open(backend_url) as opened:
        yield opened


def test_add_get_list_and_versions(handbook) -> None:
    forgive = handbook.add(FORGIVE).behavior
    punish = handbook.add(PUNISH).behavior
    assert (forgive.id, punish.id) == (1, 2)
    assert handbook.get(2).payload == PUNISH.payload
    assert [b.name for b in handbook.list()] == [FORGIVE.name, PUNISH.name]
    assert [b.id for b in handbook.list(tags=["retaliation"])] == [2]
    assert [b.id for b in handbook.list(kinds=["text"])] == [1]
    edited = handbook.edit(1, instruction="Forgive one defection, never two.", note="tighter")
    assert edited.version == 2
    versions = handbook.versions(1)
    assert [(v.version, v.note) for v in versions] == [(1, "created"), (2, "tighter")]
    assert versions[0].instruction == FORGIVE.instruction and versions[0].valid_to is not None
    assert versions[1].valid_to is None
    assert handbook.get(1).instruction == "Forgive one defection, never two."


def test_duplicates_merge_and_keep_both_provenances(handbook) -> None:
    first = handbook.add(FORGIVE)
    same = handbook.add(NewBehavior(
        name=FORGIVE.name, instruction=FORGIVE.instruction, tags=("other",),
        provenance=Provenance(extractor="second", run_id=7),
    ))
    # One word more: a different content hash, an embedding within the merge threshold.
    near = handbook.add(NewBehavior(
        name="Forgive a single defection",
        instruction="When the co-player defects once after a long cooperation, cooperate again.",
        provenance=Provenance(extractor="third"),
    ))
    assert not first.merged and same.merged and near.merged
    assert same.behavior.id == near.behavior.id == first.behavior.id
    assert [p.extractor for p in handbook.provenance(1)] == ["test", "second", "third"]
    assert len(handbook) == 1


def test_similarity_threshold_is_a_setting(backend_url) -> None:
    exact_only = Handbook.open(backend_url, settings=HandbookSettings(dedup_threshold=1.0))
    exact_only.add(FORGIVE)
    assert not exact_only.add(NewBehavior(
        name=FORGIVE.name, instruction=FORGIVE.instruction.replace("after", "after a"))).merged
    # Case, spacing and punctuation do not change the content hash.
    assert exact_only.add(NewBehavior(name="forgive a SINGLE  defection",
                                      instruction=FORGIVE.instruction)).merged
    with pytest.raises(ConfigError, match="dedup_threshold"):
        HandbookSettings(dedup_threshold=0.0)


def test_invalidated_behaviors_stay_readable_but_are_not_retrieved(handbook) -> None:
    handbook.add_many([FORGIVE, PUNISH])
    context = Context("the co-player keeps defecting", ("coplayer:defector",))
    assert 2 in handbook.retrieve([context], k=2).ids[0]
    handbook.invalidate(2, "superseded")
    assert 2 not in handbook.retrieve([context], k=2).ids[0]
    found = handbook.retrieve([context], k=2, filters=Filters(include_invalid=True)).ids[0]
    assert 2 in found
    stored = handbook.get(2)
    assert not stored.valid and stored.invalid_reason == "superseded"
    assert len(handbook) == 1 and len(handbook.list(include_invalid=True)) == 2
    with pytest.raises(StoreError, match="already invalid"):
        handbook.invalidate(2, "again")


def test_store_functions_write_in_the_callers_transaction(handbook) -> None:
    """Store functions take the caller's session: their writes land, or not, with the
    caller's transaction, and they hand back frozen records, never rows."""
    handbook.add_many([FORGIVE, PUNISH])

    def edit_and_merge(session: Session) -> None:
        revision = next_revision(session)
        edited = handbook_store.edit(session, 1, revision, embedder=handbook.embedder,
                                     name="Forgive twice", entity_ids={})
        assert (edited.name, edited.version) == ("Forgive twice", 2)
        with pytest.raises(dataclasses.FrozenInstanceError):
            edited.name = "changed"  # type: ignore[misc]
        assert handbook_store.merge(session, 2, 1, revision, entity_ids={}).merged_into == 1

    with Session(handbook.engine) as session, pytest.raises(RuntimeError), session.begin():
        edit_and_merge(session)
        raise RuntimeError("the caller gives up")
    assert handbook.sync() == 0
    assert handbook.get(1).name == FORGIVE.name and handbook.get(2).valid
    with Session(handbook.engine) as session, session.begin():
        edit_and_merge(session)
    assert handbook.sync() > 0
    assert handbook.cached(1).name == "Forgive twice" and not handbook.cached(2).valid
    with Session(handbook.engine) as session:
        assert [b.id for b in handbook_store.list_behaviors(session)] == [1]
        assert [p.extractor for p in handbook_store.provenance(session, 1)] == ["test", "manual"]


def test_merge_moves_provenance_and_records_the_edge(handbook) -> None:
    handbook.add_many([FORGIVE, PUNISH])
    handbook.merge(1, 2)
    assert handbook.get(1).merged_into == 2 and not handbook.get(1).valid
    assert [p.extractor for p in handbook.provenance(2)] == ["manual", "test"]
    edges = {(r.source, r.type, r.target) for r in handbook.graph.relations()}
    assert ("behavior:1", "merged_into", "behavior:2") in edges


def test_usage_statistics_and_graph_edges_accumulate(handbook) -> None:
    handbook.add(FORGIVE)
    for _ in range(2):
        handbook.record_usage(
            [Usage(1, shown=10, uses=4, return_used=3.0, return_unused=1.2)],
            edges=[("behavior:1", "effective_against", "coplayer:reciprocator", 0.5)],
            accumulate_edges=[("behavior:1", "used_in", "scenario:demo", 4.0)],
        )
    stats = handbook.get(1).stats
    assert (stats.shown, stats.uses) == (20, 8)
    assert stats.mean_return_used == pytest.approx(0.75)
    assert stats.mean_return_unused == pytest.approx(0.2)
    assert stats.effect == pytest.approx(0.55)
    weights = {(r.type, r.target): r.weight for r in handbook.graph.relations()}
    assert weights[("used_in", "scenario:demo")] == 8.0
    assert weights[("effective_against", "coplayer:reciprocator")] == 0.5
    with pytest.raises(StoreError, match="behaviors in the handbook"):
        handbook.record_usage([Usage(99, 1, 1, 0.0, 0.0)])


def test_retrieval_combines_words_meaning_and_graph(handbook) -> None:
    handbook.add_many([FORGIVE, PUNISH, MACRO])
    lexical = handbook.search("opening moves", k=1)
    assert lexical[0].behavior.id == 3
    linked = handbook.search("what now", k=1, entities=["coplayer:defector"])
    assert linked[0].behavior.id == 2
    assert [h.behavior.id for h in handbook.search("defects", k=3, filters=Filters(
        kinds=frozenset({"response_rule"})))] == [2]
    assert [h.behavior.id for h in handbook.search("defects", k=3, filters=Filters(
        tags=frozenset({"ipd", "forgiving"})))] == [1]


def test_a_batch_retrieval_equals_one_retrieval_per_context(handbook) -> None:
    handbook.add_many([FORGIVE, PUNISH, MACRO])
    contexts = [
        Context("the co-player defected once", ("coplayer:reciprocator",)),
        Context("start of the game", ()),
        Context("they never cooperate", ("coplayer:defector",)),
        Context("the co-player defected once", ("coplayer:reciprocator",)),
    ]
    batch = handbook.retrieve(contexts, k=2)
    for row, context in enumerate(contexts):
        single = handbook.retrieve([context], k=2)
        assert (batch.ids[row] == single.ids[0]).all()
        assert batch.scores[row] == pytest.approx(single.scores[0])
    assert (batch.ids[0] == batch.ids[3]).all()


def test_writes_are_visible_to_the_next_retrieval_here_and_after_sync_elsewhere(backend_url) -> None:
    writer, reader = Handbook.open(backend_url), Handbook.open(backend_url)
    context = [Context("keeps defecting", ("coplayer:defector",))]
    # Both remember this answer; a write must replace it, here at once and there after sync.
    assert (reader.retrieve(context, k=1).ids == -1).all()
    assert (writer.retrieve(context, k=1).ids == -1).all()
    writer.add(PUNISH)
    assert writer.retrieve(context, k=1).ids[0, 0] == 1
    # The reader's index holds what it last synced: retrieval never waits on SQL.
    assert reader.retrieve(context, k=1).ids[0, 0] == -1
    assert reader.sync() > 0
    assert reader.sync() == 0
    assert reader.retrieve(context, k=1).ids[0, 0] == 1
    writer.invalidate(1, "gone")
    assert writer.retrieve(context, k=1).ids[0, 0] == -1
    assert reader.sync() > 0
    assert reader.retrieve(context, k=1).ids[0, 0] == -1
    writer.close()
    reader.close()


def _add_from_process(url: str, worker: int, count: int) -> None:
    # Only exact duplicates merge: these texts differ by a number, and all must be kept.
    handbook = Handbook.open(url, settings=HandbookSettings(dedup_threshold=1.0))
    for i in range(count):
        handbook.add(NewBehavior(
            name=f"behavior {worker}-{i}",
            instruction=f"Worker {worker} writes behavior number {i} about {worker * 1000 + i}.",
            provenance=Provenance(extractor=f"worker-{worker}"),
        ))
        handbook.record_usage([Usage(1, shown=1, uses=1, return_used=1.0, return_unused=0.0)])
    handbook.close()


def test_concurrent_writers_lose_nothing(backend_url) -> None:
    with Handbook.open(backend_url) as handbook:
        handbook.add(FORGIVE)
    workers, count = 4, 25
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_add_from_process, args=(backend_url, w, count))
                 for w in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=180)
    assert [p.exitcode for p in processes] == [0] * workers
    with Handbook.open(backend_url) as handbook:
        assert len(handbook) == 1 + workers * count
        assert handbook.get(1).stats.uses == workers * count
        extractors = {p.extractor for b in handbook.list() for p in handbook.provenance(b.id)}
        assert extractors == {"test"} | {f"worker-{w}" for w in range(workers)}


def test_export_then_import_into_an_empty_database_round_trips_exactly(handbook, tmp_path) -> None:
    handbook.add_many([FORGIVE, PUNISH, MACRO])
    handbook.edit(1, name="Forgive one defection")
    handbook.merge(3, 2)
    effect = EffectStats(Moments(2, 1.5, 1.25), Moments(3, 0.5, 0.25))
    handbook.record_usage([Usage(2, 5, 2, 1.5, 0.5)],
                          accumulate_edges=[("behavior:2", "used_in", "scenario:x", 2.0)],
                          effects=[EffectUsage(2, "coplayer:mixed", effect)])
    handbook.graph.relate("concept:reciprocity", "generalizes", "behavior:1", 0.7)
    first = tmp_path / "first.json"
    handbook.export(first)
    with Handbook.open(f"sqlite:///{tmp_path / 'copy.db'}") as copy:
        assert copy.import_file(first) == {1: 1, 2: 2, 3: 3}
        second = tmp_path / "second.json"
        copy.export(second)
        assert json.loads(first.read_text()) == json.loads(second.read_text())
        assert copy.search("forgive", k=1)[0].behavior.id == 1
        assert copy.effects(2) == {"coplayer:mixed": effect}


def test_importing_over_taken_ids_gives_fresh_ids_and_follows_references(handbook, tmp_path) -> None:
    handbook.add_many([FORGIVE, PUNISH])
    handbook.merge(1, 2)
    exported = tmp_path / "handbook.json"
    handbook.export(exported)
    with Handbook.open(f"sqlite:///{tmp_path / 'other.db'}") as other:
        other.add_many([MACRO, NewBehavior(name="Mirror", instruction="Copy the last move.")])
        mapping = other.import_file(exported)
        assert mapping == {1: 3, 2: 4}
        assert other.get(3).merged_into == 4
        edges = {(r.source, r.type, r.target) for r in other.graph.relations()}
        assert ("behavior:3", "merged_into", "behavior:4") in edges


def test_importing_a_handbook_into_itself_merges_every_behavior(handbook, tmp_path) -> None:
    handbook.add_many([FORGIVE, PUNISH])
    handbook.merge(1, 2)
    exported = tmp_path / "handbook.json"
    handbook.export(exported)
    before = handbook.summary()
    assert handbook.import_file(exported) == {1: 1, 2: 2}
    # Only the change counter moves: every row is as it was.
    assert replace(handbook.summary(), revision=before.revision) == before


@pytest.mark.parametrize("content, message", [
    ("{not json", "invalid JSON"),
    ('{"format": "something-else", "behaviors": [], "entities": [], "relations": []}',
     "format: expected"),
    ('{"format": "coplay-handbook-v1", "behaviors": [{"id": 1}], "entities": [], "relations": []}',
     "behaviors.0.version"),
])
def test_malformed_import_files_fail_clearly_and_change_nothing(handbook, tmp_path, content, message) -> None:
    handbook.add(FORGIVE)
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(StoreError, match=message):
        handbook.import_file(bad)
    assert len(handbook) == 1 and handbook.summary().behaviors == 1


def test_bad_payloads_and_unknown_ids_are_refused(handbook) -> None:
    with pytest.raises(ConfigError, match=r"payload.cooperate.CD: expected a probability"):
        NewBehavior(name="x", instruction="y", kind="response_rule",
                    payload={"cooperate": {"start": 1, "CC": 1, "CD": 2, "DC": 1, "DD": 0}})
    with pytest.raises(ConfigError, match="kind: expected one of"):
        NewBehavior(name="x", instruction="y", kind="spell")
    with pytest.raises(ConfigError, match="trigger: expected TYPE:KEY"):
        NewBehavior(name="x", instruction="y", trigger={"planet": "mars"})
    with pytest.raises(StoreError, match="behavior: expected the id of a stored behavior, got 42"):
        handbook.get(42)
    with pytest.raises(StoreError, match="got 42"):
        handbook.edit(42, name="z")


def test_prune_deletes_only_invalidated_behaviors_with_their_traces(handbook) -> None:
    handbook.add_many([FORGIVE, PUNISH])
    handbook.merge(1, 2)
    assert handbook.prune(dry_run=True) == [1]
    assert handbook.summary().behaviors == 2
    assert handbook.prune() == [1]
    summary = handbook.summary()
    assert (summary.behaviors, summary.versions) == (1, 1)
    assert all("behavior:1" not in (r.source, r.target) for r in handbook.graph.relations())
    with pytest.raises(StoreError):
        handbook.get(1)
    assert handbook.search("defecting", k=2)[0].behavior.id == 2


def test_graph_analysis_neighbourhood_path_and_pagerank(handbook, tmp_path) -> None:
    handbook.add_many([FORGIVE, PUNISH, MACRO])
    graph = handbook.graph
    graph.relate("concept:reciprocity", "generalizes", "behavior:1")
    graph.relate("concept:reciprocity", "generalizes", "behavior:2")
    near = graph.neighbourhood("behavior:1", depth=1)
    assert set(near.nodes) == {"behavior:1", "coplayer:reciprocator", "concept:reciprocity"}
    assert graph.path("coplayer:reciprocator", "coplayer:defector") == [
        "coplayer:reciprocator", "behavior:1", "concept:reciprocity", "behavior:2", "coplayer:defector"]
    ranked = graph.personalized_pagerank({"coplayer:defector": 1.0}, entity_type="behavior")
    assert ranked[0][0] == "behavior:2" and ranked[-1][0] == "behavior:3"
    graph.export_graphml(tmp_path / "g.graphml")
    assert "behavior:2" in (tmp_path / "g.graphml").read_text()
    with pytest.raises(StoreError, match="entity"):
        graph.neighbourhood("concept:nothing")


def test_a_file_that_is_not_a_coplay_database_is_refused(tmp_path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(StoreError, match="a coplay database or an empty one"):
        Handbook.open(f"sqlite:///{other}")


def _schema(url: str) -> dict[str, set[str]]:
    engine = create_engine(url)
    found = {t: {c["name"] for c in inspect(engine).get_columns(t)}
             for t in inspect(engine).get_table_names()}
    engine.dispose()
    return found


def test_an_older_schema_is_refused_until_upgraded(backend_url, tmp_path) -> None:
    engine = create_engine(backend_url)
    migrations.upgrade(engine, "0001")  # a database as coplay left it before the handbook
    engine.dispose()
    expected = rf"schema revision {migrations.head()}, got revision 0001\. .*coplay db upgrade"
    with pytest.raises(StoreError, match=expected):
        open_engine(backend_url)
    before, after = migrations.upgrade(open_engine(backend_url, check_schema=False))
    assert (before, after) == ("0001", migrations.head())
    with Handbook.open(backend_url) as handbook:
        handbook.add(FORGIVE)
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    open_engine(fresh).dispose()
    assert _schema(backend_url) == _schema(fresh)


def test_a_database_written_before_migrations_can_be_upgraded(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    migrations.upgrade(engine, "0001")
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE alembic_version")
    engine.dispose()
    with pytest.raises(StoreError, match="none \\(written before coplay used migrations\\)"):
        open_engine(url)
    assert migrations.upgrade(open_engine(url, check_schema=False)) == (None, migrations.head())
    open_engine(url).dispose()
