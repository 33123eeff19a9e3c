"""Training runs and their learning curves: written while training, read back as dataclasses.

Points are appended in short transactions as training goes, so a long run's curves can be
read (and plotted) before it ends. A resumed run first drops the points recorded after its
checkpoint, so the stored curve is exactly that of the uninterrupted run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.orm import Session

from coplay import __version__
from coplay.errors import StoreError
from memory.db import open_engine
from memory.schema import LearningPointRow, TrainingRunRow


@dataclass(frozen=True)
class TrainingRunInfo:
    id: int
    scenario_name: str
    seed: int
    checkpoint: str
    created_at: datetime
    coplay_version: str


@dataclass(frozen=True)
class LearningPoint:
    update: int
    learner: str
    metrics: dict[str, float]


def start_training_run(
    session: Session, *, scenario_name: str, seed: int, scenario: dict[str, Any], checkpoint: str
) -> int:
    row = TrainingRunRow(
        scenario_name=scenario_name, seed=seed, scenario=scenario, checkpoint=checkpoint,
        created_at=datetime.now(UTC), coplay_version=__version__,
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


def drop_points_after(session: Session, training_run_id: int, update: int) -> None:
    session.execute(delete(LearningPointRow).where(
        LearningPointRow.training_run_id == training_run_id, LearningPointRow.update > update
    ))


def get_training_run(session: Session, training_run_id: int) -> TrainingRunInfo:
    row = session.get(TrainingRunRow, training_run_id)
    if row is None:
        raise StoreError(
            "training run id", expected="the id of a stored training run",
            got=str(training_run_id), fix="Run `coplay train list` to see them.",
        )
    return _info(row)


def list_training_runs(session: Session, *, limit: int = 50) -> list[TrainingRunInfo]:
    rows = session.scalars(select(TrainingRunRow).order_by(TrainingRunRow.id.desc()).limit(limit))
    return [_info(row) for row in rows]


def get_learning_curve(session: Session, training_run_id: int) -> list[LearningPoint]:
    get_training_run(session, training_run_id)
    rows = session.scalars(
        select(LearningPointRow)
        .where(LearningPointRow.training_run_id == training_run_id)
        .order_by(LearningPointRow.update, LearningPointRow.id)
    )
    return [LearningPoint(r.update, r.learner, dict(r.metrics)) for r in rows]


def _info(row: TrainingRunRow) -> TrainingRunInfo:
    return TrainingRunInfo(
        id=row.id, scenario_name=row.scenario_name, seed=row.seed, checkpoint=row.checkpoint,
        created_at=row.created_at, coplay_version=row.coplay_version,
    )


class TrainingStore:
    """Training runs at a database URL, one short transaction per call."""

    def __init__(self, url: str | None = None, *, engine: Engine | None = None) -> None:
        self.engine = engine or open_engine(url)

    def start(self, *, scenario_name: str, seed: int, scenario: dict[str, Any], checkpoint: str) -> int:
        with Session(self.engine) as session, session.begin():
            return start_training_run(
                session, scenario_name=scenario_name, seed=seed, scenario=scenario,
                checkpoint=checkpoint,
            )

    def add_points(self, training_run_id: int, points: Sequence[LearningPoint]) -> None:
        with Session(self.engine) as session, session.begin():
            add_learning_points(session, training_run_id, points)

    def drop_points_after(self, training_run_id: int, update: int) -> None:
        with Session(self.engine) as session, session.begin():
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
