"""SQLAlchemy 2.0 typed models of the run store. Rows never leave ``memory``: readers get
the dataclasses of ``memory.runs``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class RunRow(Base):
    """One `coplay run`: the scenario as validated, its seed, and when and how long."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    scenario_name: Mapped[str] = mapped_column(String(200))
    env_id: Mapped[str] = mapped_column(String(200))
    seed: Mapped[int]
    scenario: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    wall_seconds: Mapped[float]
    coplay_version: Mapped[str] = mapped_column(String(40))


class PairingRow(Base):
    """Two agents that met in a run, with totals over their episodes. Totals (not means) are
    stored so that results add up across pairings, e.g. per role."""

    __tablename__ = "pairings"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    agent_0: Mapped[str] = mapped_column(String(200))
    agent_1: Mapped[str] = mapped_column(String(200))
    role_0: Mapped[str] = mapped_column(String(40))
    role_1: Mapped[str] = mapped_column(String(40))
    episodes: Mapped[int]
    steps: Mapped[int]
    return_0: Mapped[float]
    return_1: Mapped[float]
    cooperations_0: Mapped[int]
    cooperations_1: Mapped[int]
    # Per round t: [cooperation rate of seat 0, of seat 1] among games still running at t.
    cooperation_by_round: Mapped[list[list[float]]] = mapped_column(JSON)


class EpisodeRow(Base):
    __tablename__ = "episodes"
    __table_args__ = (Index("ix_episodes_run_index", "run_id", "index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    pairing_id: Mapped[int] = mapped_column(ForeignKey("pairings.id", ondelete="CASCADE"))
    index: Mapped[int]
    length: Mapped[int]


class AgentResultRow(Base):
    """What one seat of one episode earned and how often it cooperated."""

    __tablename__ = "agent_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    episode_id: Mapped[int] = mapped_column(
        ForeignKey("episodes.id", ondelete="CASCADE"), index=True
    )
    seat: Mapped[int]
    agent: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(40))
    episode_return: Mapped[float]
    cooperations: Mapped[int]


class TrajectoryRow(Base):
    """An episode's joint actions, one byte a round: 2 * action_0 + action_1."""

    __tablename__ = "trajectories"

    episode_id: Mapped[int] = mapped_column(
        ForeignKey("episodes.id", ondelete="CASCADE"), primary_key=True
    )
    joint_actions: Mapped[bytes] = mapped_column(LargeBinary)


class PairingBeliefRow(Base):
    """Per round, each seat's mean predicted probability that its co-player cooperates, for
    seats whose agent exposes such a belief (sequence policies); null for the others.
    A table of its own so databases written before beliefs existed still open."""

    __tablename__ = "pairing_beliefs"

    pairing_id: Mapped[int] = mapped_column(
        ForeignKey("pairings.id", ondelete="CASCADE"), primary_key=True
    )
    belief_by_round: Mapped[list[list[float | None]]] = mapped_column(JSON)


class TrajectoryBeliefRow(Base):
    """One seat's belief at every round of an episode, one byte a round: round(255 * p)."""

    __tablename__ = "trajectory_beliefs"

    episode_id: Mapped[int] = mapped_column(
        ForeignKey("episodes.id", ondelete="CASCADE"), primary_key=True
    )
    seat: Mapped[int] = mapped_column(primary_key=True)
    beliefs: Mapped[bytes] = mapped_column(LargeBinary)


class TrainingRunRow(Base):
    """One `coplay train`: the training scenario as validated and where its checkpoint is."""

    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    scenario_name: Mapped[str] = mapped_column(String(200))
    seed: Mapped[int]
    scenario: Mapped[dict[str, Any]] = mapped_column(JSON)
    checkpoint: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime]
    coplay_version: Mapped[str] = mapped_column(String(40))


class LearningPointRow(Base):
    """One learner's metrics after one update: its learning curve, a point at a time."""

    __tablename__ = "learning_points"
    __table_args__ = (Index("ix_learning_points_run_update", "training_run_id", "update"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    training_run_id: Mapped[int] = mapped_column(
        ForeignKey("training_runs.id", ondelete="CASCADE")
    )
    update: Mapped[int]
    learner: Mapped[str] = mapped_column(String(200))
    metrics: Mapped[dict[str, float]] = mapped_column(JSON)
