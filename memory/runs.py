"""The run store: write a finished run in one transaction, read it back as dataclasses.

Functions take a ``Session`` the caller owns; ``RunStore`` wraps them with one short
transaction per call for scripts and notebooks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session

from coplay import __version__
from coplay.errors import StoreError
from memory.behaviors import MemoryUsage
from memory.db import check_fits, check_writable, open_engine, reporting
from memory.schema import (
    AgentResultRow,
    EpisodeRow,
    PairingBeliefRow,
    PairingMetricsRow,
    PairingResponseRow,
    PairingRow,
    RunRow,
    TrajectoryBeliefRow,
    TrajectoryRow,
)

# A round's joint outcome seen from one seat, its own action first (C: cooperate, D: defect).
OUTCOMES = ("CC", "CD", "DC", "DD")


@dataclass(frozen=True)
class PairingStats:
    """Two agents that met, with totals over their episodes (seat 0 first)."""

    agents: tuple[str, str]
    roles: tuple[str, str]
    episodes: int
    steps: int
    returns: tuple[float, float]
    cooperations: tuple[int, int]
    cooperation_by_round: list[list[float]] = field(repr=False)
    # Per round, each seat's mean belief that its co-player cooperates (None for a seat whose
    # agent has no belief); None when neither has one.
    belief_by_round: list[list[float | None]] | None = field(default=None, repr=False)
    # [seat][outcome] = [rounds after a round with that joint outcome (seen from the seat, in
    # the order of OUTCOMES), of which the seat cooperated in]; None for runs stored without.
    responses: list[list[list[int]]] | None = field(default=None, repr=False)
    # Figures an env family adds (a grid task's ``successes``); None for runs without.
    metrics: dict[str, float] | None = None

    def return_per_step(self, seat: int) -> float:
        return self.returns[seat] / self.steps if self.steps else 0.0

    def cooperation_rate(self, seat: int) -> float:
        return self.cooperations[seat] / self.steps if self.steps else 0.0

    def cooperation_after(self, seat: int, outcome: str) -> float | None:
        """How often ``seat`` cooperated in the round after one whose joint outcome, seen from
        it, was ``outcome`` ("CD": it cooperated, its co-player defected); None if unknown or
        no round followed one."""
        if self.responses is None:
            return None
        followed, cooperated = self.responses[seat][OUTCOMES.index(outcome)]
        return cooperated / followed if followed else None

    def memory_one(self, seat: int) -> list[float | None]:
        """``seat``'s play as a memory-one strategy: its cooperation in round 1, then after each
        joint outcome in the order of OUTCOMES (None where unknown or never happened)."""
        first_round = self.cooperation_by_round[0][seat] if self.cooperation_by_round else None
        return [first_round, *(self.cooperation_after(seat, o) for o in OUTCOMES)]


@dataclass(frozen=True)
class EpisodeArrays:
    """A pairing's episodes as arrays: lengths (E,), returns and cooperations (E, 2), and
    optionally the joint actions (E, T) and beliefs (E, 2, T; NaN for a seat without one),
    valid up to each episode's length."""

    lengths: np.ndarray
    returns: np.ndarray
    cooperations: np.ndarray
    joint_actions: np.ndarray | None = None
    beliefs: np.ndarray | None = None


@dataclass(frozen=True)
class PairingOutcome:
    stats: PairingStats
    episodes: EpisodeArrays


@dataclass(frozen=True)
class NewRun:
    scenario_name: str
    env_id: str
    seed: int
    scenario: dict[str, Any]
    wall_seconds: float
    pairings: list[PairingOutcome]
    # For a scenario with memory: what it retrieved and used, for the handbook (not stored
    # with the run).
    memory_usage: MemoryUsage | None = None


@dataclass(frozen=True)
class RunInfo:
    id: int
    scenario_name: str
    env_id: str
    seed: int
    created_at: datetime
    wall_seconds: float
    coplay_version: str
    episodes: int


@dataclass(frozen=True)
class EpisodeRecord:
    pairing: int
    index: int
    length: int
    agents: tuple[str, str]
    returns: tuple[float, float]
    cooperations: tuple[int, int]
    joint_actions: bytes | None
    beliefs: tuple[bytes | None, bytes | None] = (None, None)


def check_names(scenario_name: str, env_id: str, agents: Iterable[str]) -> None:
    """Reject names longer than their columns: before a run is simulated, not after."""
    check_fits("scenario name", RunRow.scenario_name, scenario_name)
    check_fits("env id", RunRow.env_id, env_id)
    for agent in agents:
        check_fits(f"agent name {agent[:40]!r}", PairingRow.agent_0, agent)


def save_run(session: Session, run: NewRun) -> int:
    """Add a finished run; it becomes visible when the caller's transaction commits."""
    check_names(run.scenario_name, run.env_id,
                [name for outcome in run.pairings for name in outcome.stats.agents])
    run_row = RunRow(
        scenario_name=run.scenario_name, env_id=run.env_id, seed=run.seed,
        scenario=run.scenario, created_at=datetime.now(UTC),
        wall_seconds=run.wall_seconds, coplay_version=__version__,
    )
    session.add(run_row)
    session.flush()
    episode_index = 0
    for position, outcome in enumerate(run.pairings):
        stats, arrays = outcome.stats, outcome.episodes
        pairing_row = PairingRow(
            run_id=run_row.id, position=position,
            agent_0=stats.agents[0], agent_1=stats.agents[1],
            role_0=stats.roles[0], role_1=stats.roles[1],
            episodes=stats.episodes, steps=stats.steps,
            return_0=stats.returns[0], return_1=stats.returns[1],
            cooperations_0=stats.cooperations[0], cooperations_1=stats.cooperations[1],
            cooperation_by_round=stats.cooperation_by_round,
        )
        session.add(pairing_row)
        session.flush()
        count = len(arrays.lengths)
        episode_ids = session.scalars(
            insert(EpisodeRow).returning(EpisodeRow.id, sort_by_parameter_order=True),
            [
                {"run_id": run_row.id, "pairing_id": pairing_row.id,
                 "index": episode_index + i, "length": int(length)}
                for i, length in enumerate(arrays.lengths.tolist())
            ],
        ).all()
        episode_index += count
        returns, cooperations = arrays.returns.tolist(), arrays.cooperations.tolist()
        session.execute(insert(AgentResultRow), [
            {"episode_id": episode_ids[i], "seat": seat, "agent": stats.agents[seat],
             "role": stats.roles[seat], "episode_return": returns[i][seat],
             "cooperations": cooperations[i][seat]}
            for i in range(count) for seat in (0, 1)
        ])
        if arrays.joint_actions is not None:
            session.execute(insert(TrajectoryRow), [
                {"episode_id": episode_ids[i],
                 "joint_actions": arrays.joint_actions[i, : arrays.lengths[i]].astype(np.uint8).tobytes()}
                for i in range(count)
            ])
        if stats.belief_by_round is not None:
            session.add(PairingBeliefRow(pairing_id=pairing_row.id, belief_by_round=stats.belief_by_round))
        if stats.responses is not None:
            session.add(PairingResponseRow(pairing_id=pairing_row.id, counts=stats.responses))
        if stats.metrics is not None:
            session.add(PairingMetricsRow(pairing_id=pairing_row.id, metrics=stats.metrics))
        if arrays.joint_actions is not None and arrays.beliefs is not None:
            quantized = np.rint(np.nan_to_num(arrays.beliefs, nan=0.0) * 255).astype(np.uint8)
            seats = [seat for seat in (0, 1) if not np.isnan(arrays.beliefs[:, seat]).all()]
            session.execute(insert(TrajectoryBeliefRow), [
                {"episode_id": episode_ids[i], "seat": seat,
                 "beliefs": quantized[i, seat, : arrays.lengths[i]].tobytes()}
                for i in range(count) for seat in seats
            ])
    return run_row.id


def list_runs(session: Session, *, limit: int = 50) -> list[RunInfo]:
    episodes = (
        select(EpisodeRow.run_id, func.count().label("n")).group_by(EpisodeRow.run_id).subquery()
    )
    rows = session.execute(
        select(RunRow, func.coalesce(episodes.c.n, 0))
        .outerjoin(episodes, episodes.c.run_id == RunRow.id)
        .order_by(RunRow.id.desc())
        .limit(limit)
    ).all()
    return [_run_info(row, n) for row, n in rows]


def get_run(session: Session, run_id: int) -> RunInfo:
    row = session.get(RunRow, run_id)
    if row is None:
        raise StoreError(
            "run id", expected="the id of a stored run", got=str(run_id),
            fix="Run `coplay runs list` to see the stored runs.",
        )
    n = session.scalar(select(func.count()).where(EpisodeRow.run_id == run_id))
    return _run_info(row, n or 0)


def get_scenario(session: Session, run_id: int) -> dict[str, Any]:
    get_run(session, run_id)
    return session.scalar(select(RunRow.scenario).where(RunRow.id == run_id))


def get_pairings(session: Session, run_id: int) -> list[PairingStats]:
    get_run(session, run_id)
    rows = session.execute(
        select(PairingRow, PairingBeliefRow.belief_by_round, PairingResponseRow.counts,
               PairingMetricsRow.metrics)
        .outerjoin(PairingBeliefRow, PairingBeliefRow.pairing_id == PairingRow.id)
        .outerjoin(PairingResponseRow, PairingResponseRow.pairing_id == PairingRow.id)
        .outerjoin(PairingMetricsRow, PairingMetricsRow.pairing_id == PairingRow.id)
        .where(PairingRow.run_id == run_id).order_by(PairingRow.position)
    ).all()
    return [
        PairingStats(
            agents=(r.agent_0, r.agent_1), roles=(r.role_0, r.role_1), episodes=r.episodes,
            steps=r.steps, returns=(r.return_0, r.return_1),
            cooperations=(r.cooperations_0, r.cooperations_1),
            cooperation_by_round=r.cooperation_by_round, belief_by_round=beliefs,
            responses=responses, metrics=metrics,
        )
        for r, beliefs, responses, metrics in rows
    ]


def get_episodes(session: Session, run_id: int) -> list[EpisodeRecord]:
    get_run(session, run_id)
    rows = session.execute(
        select(EpisodeRow, PairingRow.position, AgentResultRow, TrajectoryRow.joint_actions)
        .join(PairingRow, PairingRow.id == EpisodeRow.pairing_id)
        .join(AgentResultRow, AgentResultRow.episode_id == EpisodeRow.id)
        .outerjoin(TrajectoryRow, TrajectoryRow.episode_id == EpisodeRow.id)
        .where(EpisodeRow.run_id == run_id)
        .order_by(EpisodeRow.index, AgentResultRow.seat)
    ).all()
    beliefs: dict[tuple[int, int], bytes] = {
        (episode_id, seat): data for episode_id, seat, data in session.execute(
            select(TrajectoryBeliefRow.episode_id, TrajectoryBeliefRow.seat, TrajectoryBeliefRow.beliefs)
            .join(EpisodeRow, EpisodeRow.id == TrajectoryBeliefRow.episode_id)
            .where(EpisodeRow.run_id == run_id)
        )
    }
    records = []
    for seat_0, seat_1 in zip(rows[::2], rows[1::2]):
        episode, position, result_0, joint_actions = seat_0
        result_1 = seat_1[2]
        records.append(EpisodeRecord(
            pairing=position, index=episode.index, length=episode.length,
            agents=(result_0.agent, result_1.agent),
            returns=(result_0.episode_return, result_1.episode_return),
            cooperations=(result_0.cooperations, result_1.cooperations),
            joint_actions=joint_actions,
            beliefs=(beliefs.get((episode.id, 0)), beliefs.get((episode.id, 1))),
        ))
    return records


def _run_info(row: RunRow, episodes: int) -> RunInfo:
    return RunInfo(
        id=row.id, scenario_name=row.scenario_name, env_id=row.env_id, seed=row.seed,
        created_at=row.created_at, wall_seconds=row.wall_seconds,
        coplay_version=row.coplay_version, episodes=episodes,
    )


class RunStore:
    """The run store at a database URL, one short transaction per call.

    >>> store = RunStore("sqlite:///coplay.db")
    >>> [run.scenario_name for run in store.list()]
    """

    def __init__(self, url: str | None = None, *, engine: Engine | None = None) -> None:
        self.engine = engine or open_engine(url)

    def prepare(self, *, scenario_name: str, env_id: str, agents: Iterable[str]) -> None:
        """Fail now rather than after a long simulation: names longer than their columns, or
        a store that cannot be written (read-only, locked past its timeout)."""
        check_names(scenario_name, env_id, agents)
        check_writable(self.engine)

    def save(self, run: NewRun) -> int:
        with reporting(self.engine), Session(self.engine) as session, session.begin():
            return save_run(session, run)

    def list(self, *, limit: int = 50) -> list[RunInfo]:
        with Session(self.engine) as session:
            return list_runs(session, limit=limit)

    def run(self, run_id: int) -> RunInfo:
        with Session(self.engine) as session:
            return get_run(session, run_id)

    def scenario(self, run_id: int) -> dict[str, Any]:
        with Session(self.engine) as session:
            return get_scenario(session, run_id)

    def pairings(self, run_id: int) -> list[PairingStats]:
        with Session(self.engine) as session:
            return get_pairings(session, run_id)

    def episodes(self, run_id: int) -> list[EpisodeRecord]:
        with Session(self.engine) as session:
            return get_episodes(session, run_id)

    def close(self) -> None:
        self.engine.dispose()
