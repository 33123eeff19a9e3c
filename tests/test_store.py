"""The run store: what is written reads back equal, a run lands whole or not at all, and the
same scenario and seed store identical results."""

from __future__ import annotations

import dataclasses
import multiprocessing

import numpy as np
import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

import scenarios
from cli import report
from coplay.errors import StoreError
from memory import RunStore
from memory.db import open_engine
from memory.schema import (
    AgentResultRow,
    EpisodeRow,
    PairingResponseRow,
    PairingRow,
    RunRow,
    TrajectoryRow,
)


def _row_counts(store: RunStore) -> dict[str, int]:
    with Session(store.engine) as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in (RunRow, PairingRow, EpisodeRow, AgentResultRow, TrajectoryRow)
        }


def test_a_run_stored_without_responses_reads_back_without_them(tiny_scenario, db_url) -> None:
    store = RunStore(db_url)
    run_id = store.save(scenarios.run(tiny_scenario))
    assert report.response_table(store.pairings(run_id)) is not None
    with Session(store.engine) as session, session.begin():
        session.execute(delete(PairingResponseRow))  # as a run stored before revision 0003
    pairings = store.pairings(run_id)
    assert [p.responses for p in pairings] == [None] * 3
    assert pairings[0].cooperation_after(0, "CC") is None
    assert report.response_table(pairings) is None


def test_saved_run_reads_back_equal(tiny_scenario, db_url) -> None:
    recorded = tiny_scenario.model_copy(update={
        "run": tiny_scenario.run.model_copy(update={"record_trajectories": True})})
    result = scenarios.run(recorded)
    store = RunStore(db_url)
    run_id = store.save(result)

    assert store.pairings(run_id) == [o.stats for o in result.pairings]
    assert scenarios.Scenario.model_validate(store.scenario(run_id)) == recorded
    info = store.run(run_id)
    assert (info.scenario_name, info.seed, info.episodes) == ("tiny", 3, 21)
    assert [r.id for r in store.list()] == [run_id]

    episodes = store.episodes(run_id)
    assert [e.index for e in episodes] == list(range(21))
    for e, (pairing, i) in zip(episodes, [(p, i) for p, o in enumerate(result.pairings)
                                          for i in range(o.stats.episodes)]):
        arrays = result.pairings[pairing].episodes
        assert e.pairing == pairing
        assert e.agents == result.pairings[pairing].stats.agents
        assert e.length == arrays.lengths[i]
        assert e.returns == tuple(arrays.returns[i])
        assert e.cooperations == tuple(arrays.cooperations[i])
        joint = np.frombuffer(e.joint_actions, dtype=np.uint8)
        assert np.array_equal(joint, arrays.joint_actions[i, : e.length])


def test_trajectories_are_stored_only_when_asked(tiny_scenario, db_url) -> None:
    store = RunStore(db_url)
    run_id = store.save(scenarios.run(tiny_scenario))
    assert all(e.joint_actions is None for e in store.episodes(run_id))
    assert _row_counts(store)["trajectories"] == 0


def test_a_run_that_fails_while_being_written_leaves_nothing(tiny_scenario, db_url) -> None:
    result = scenarios.run(tiny_scenario)
    # The last pairing's results cannot be written (one return per episode is missing), so
    # the failure comes after the run, its first pairings and their episodes were inserted.
    broken = result.pairings[-1]
    broken = dataclasses.replace(broken, episodes=dataclasses.replace(
        broken.episodes, returns=broken.episodes.returns[:-1]))
    store = RunStore(db_url)
    with pytest.raises(IndexError):
        store.save(dataclasses.replace(result, pairings=[*result.pairings[:-1], broken]))
    assert _row_counts(store) == dict.fromkeys(_row_counts(store), 0)
    assert store.list() == []
    # The store still works afterwards.
    assert store.run(store.save(result)).episodes == 21


def test_same_scenario_and_seed_store_identical_results(tiny_scenario, db_url) -> None:
    store = RunStore(db_url)
    first = store.save(scenarios.run(tiny_scenario))
    second = store.save(scenarios.run(tiny_scenario))
    assert first != second
    assert store.pairings(first) == store.pairings(second)
    assert store.episodes(first) == store.episodes(second)


def test_unknown_run_id_is_a_clear_error(db_url) -> None:
    with pytest.raises(StoreError, match=r"^run id: expected the id of a stored run, got 42\."):
        RunStore(db_url).pairings(42)


@pytest.mark.parametrize(("url", "got"), [
    ("sqlite:////nonexistent-dir/x.db", "got unable to open database file."),
    ("not a url", "expected an SQLAlchemy URL such as sqlite:///coplay.db, got 'not a url'."),
    ("postgresql+psycopg://coplay@127.0.0.1:1/coplay", "Connection refused"),
])
def test_unreachable_databases_fail_with_one_line(url: str, got: str) -> None:
    with pytest.raises(StoreError) as caught:
        RunStore(url)
    message = str(caught.value)
    assert message.startswith("--db: expected ")
    assert got in message
    assert "\n" not in message


def test_a_file_that_is_not_a_database_is_refused(tmp_path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are not tables\n" * 100)
    with pytest.raises(StoreError, match="got file is not a database"):
        RunStore(f"sqlite:///{path}")
    assert path.read_text() == "these are not tables\n" * 100


def _open_each_when_all_are_ready(urls: list[str], barrier) -> None:
    for url in urls:
        barrier.wait(timeout=60)
        open_engine(url).dispose()


def test_processes_opening_a_new_sqlite_database_at_once_all_succeed(tmp_path) -> None:
    # Parallel training runs (paper_reproduction --parallel) start against one new store. Two
    # races once failed here: switching to WAL ("database is locked"), and a process finding
    # the tables before their revision was stamped (taken for an old store). Each failed
    # several of these twelve starts of four processes.
    urls = [f"sqlite:///{tmp_path / f'shared{i}.db'}" for i in range(12)]
    workers = 4
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    processes = [context.Process(target=_open_each_when_all_are_ready, args=(urls, barrier))
                 for _ in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * workers
    for url in urls:
        assert RunStore(url).list() == []
