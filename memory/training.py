"""Training runs and their learning curves: written while training, read back as dataclasses.

Points are appended in short transactions as training goes, so a long run's curves can be
read (and plotted) before it ends. A resumed run first drops the points recorded after its
checkpoint, so the stored curve is exactly that of the uninterrupted run. A run's status says
whether it is still running, finished, stopped at a time limit, or was interrupted (also
when its process died without a word: a run stored as running reads back as interrupted once
the process that set it running is gone).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.orm import Session

from coplay import __version__
from coplay.errors import StoreError
from memory.db import check_fits, open_engine, reporting
from memory.schema import LearningPointRow, TrainingRunRow


@dataclass(frozen=True)
class TrainingRunInfo:
    id: int
    scenario_name: str
    seed: int
    checkpoint: str
    created_at: datetime
    coplay_version: str
    status: str | None = None  # one of STATUSES; None for runs stored before statuses
    last_update: int | None = None  # the last update with stored points


RUNNING, FINISHED, STOPPED, INTERRUPTED = "running", "finished", "stopped", "interrupted"
STATUSES = (RUNNING, FINISHED, STOPPED, INTERRUPTED)


@dataclass(frozen=True)
class LearningPoint:
    update: int
    learner: str
    metrics: dict[str, float]


def start_training_run(
    session: Session, *, scenario_name: str, seed: int, scenario: dict[str, Any], checkpoint: str,
    learners: Sequence[str] = (),
) -> int:
    """A new running training run; ``learners`` are checked to fit before training starts."""
    check_fits("scenario name", TrainingRunRow.scenario_name, scenario_name)
    check_fits("checkpoint path", TrainingRunRow.checkpoint, checkpoint)
    for learner in learners:
        check_fits(f"learner name {learner[:40]!r}", LearningPointRow.learner, learner)
    row = TrainingRunRow(
        scenario_name=scenario_name, seed=seed, scenario=scenario, checkpoint=checkpoint,
        created_at=datetime.now(UTC), coplay_version=__version__, status=RUNNING,
        owner=this_process(),
    )
    session.add(row)
    session.flush()
    return row.id


def add_learning_points(session: Session, training_run_id: int, points: Sequence[LearningPoint]) -> None:
    if points:
        session.execute(insert(LearningPointRow), [
            {"training_run_id": training_run_id, "update": p.update, "learner": p.learner,
             "metrics": p.metrics}
            for p in points
        ])


def set_status(session: Session, training_run_id: int, status: str) -> None:
    """Set a run's status; setting it running records this process as its owner."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
    get_training_run(session, training_run_id)
    values = {"status": status, **({"owner": this_process()} if status == RUNNING else {})}
    session.execute(update(TrainingRunRow).where(TrainingRunRow.id == training_run_id)
                    .values(**values))


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def effective_status(status: str | None, owner: str | None) -> str | None:
    """The stored status, except that a run stored as running whose process on this machine
    is gone was interrupted (killed with no chance to say so). A run owned by another
    machine's process is taken at its word."""
    if status != RUNNING or owner is None:
        return status
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return status
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return INTERRUPTED
    except PermissionError:  # alive, under another user
        pass
    return status


def drop_points_after(session: Session, training_run_id: int, update: int) -> None:
    session.execute(delete(LearningPointRow).where(
        LearningPointRow.training_run_id == training_run_id, LearningPointRow.update > update
    ))


def get_training_run(session: Session, training_run_id: int) -> TrainingRunInfo:
    row = session.get(TrainingRunRow, training_run_id)
    if row is None:
        raise StoreError(
            "training run id", expected="the id of a stored training run",
            got=str(training_run_id), fix="Run `coplay training list` to see them.",
        )
    last_update = session.scalar(select(func.max(LearningPointRow.update))
                                 .where(LearningPointRow.training_run_id == training_run_id))
    return _info(row, last_update)


def list_training_runs(session: Session, *, limit: int = 50) -> list[TrainingRunInfo]:
    last = (
        select(LearningPointRow.training_run_id, func.max(LearningPointRow.update).label("last"))
        .group_by(LearningPointRow.training_run_id).subquery()
    )
    rows = session.execute(
        select(TrainingRunRow, last.c.last)
        .outerjoin(last, last.c.training_run_id == TrainingRunRow.id)
        .order_by(TrainingRunRow.id.desc()).limit(limit)
    ).all()
    return [_info(row, last_update) for row, last_update in rows]


def get_learning_curve(session: Session, training_run_id: int) -> list[LearningPoint]:
    get_training_run(session, training_run_id)
    rows = session.scalars(
        select(LearningPointRow)
        .where(LearningPointRow.training_run_id == training_run_id)
        .order_by(LearningPointRow.update, LearningPointRow.id)
    )
    return [LearningPoint(r.update, r.learner, dict(r.metrics)) for r in rows]


def _info(row: TrainingRunRow, last_update: int | None) -> TrainingRunInfo:
    return TrainingRunInfo(
        id=row.id, scenario_name=row.scenario_name, seed=row.seed, checkpoint=row.checkpoint,
        created_at=row.created_at, coplay_version=row.coplay_version,
        status=effective_status(row.status, row.owner), last_update=last_update,
    )


class TrainingStore:
    """Training runs at a database URL, one short transaction per call."""

    def __init__(self, url: str | None = None, *, engine: Engine | None = None) -> None:
        self.engine = engine or open_engine(url)

    def start(self, *, scenario_name: str, seed: int, scenario: dict[str, Any], checkpoint: str,
              learners: Sequence[str] = ()) -> int:
        with reporting(self.engine), Session(self.engine) as session, session.begin():
            return start_training_run(
                session, scenario_name=scenario_name, seed=seed, scenario=scenario,
                checkpoint=checkpoint, learners=learners,
            )

    def add_points(self, training_run_id: int, points: Sequence[LearningPoint]) -> None:
        with reporting(self.engine), Session(self.engine) as session, session.begin():
            add_learning_points(session, training_run_id, points)

    def set_status(self, training_run_id: int, status: str) -> None:
        with reporting(self.engine), Session(self.engine) as session, session.begin():
            set_status(session, training_run_id, status)

    def drop_points_after(self, training_run_id: int, update: int) -> None:
        with reporting(self.engine), Session(self.engine) as session, session.begin():
            drop_points_after(session, training_run_id, update)

    def run(self, training_run_id: int) -> TrainingRunInfo:
        with Session(self.engine) as session:
            return get_training_run(session, training_run_id)

    def list(self, *, limit: int = 50) -> list[TrainingRunInfo]:
        with Session(self.engine) as session:
            return list_training_runs(session, limit=limit)

    def curve(self, training_run_id: int) -> list[LearningPoint]:
        with Session(self.engine) as session:
            return get_learning_curve(session, training_run_id)
