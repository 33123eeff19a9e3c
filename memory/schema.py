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
