"""SQLAlchemy 2.0 typed models of the run store. Rows never leave ``memory``: readers get
the dataclasses of ``memory.runs``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
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


class PairingResponseRow(Base):
    """How each seat answered the round before: for each joint outcome of a round, seen from
    that seat (own action first: CC, CD, DC, DD), how often it was followed by another round
    and how often the seat cooperated in it. Counts, so they add up across pairings; the
    seat's cooperation rates after each outcome are its memory-one (reactive) strategy."""

    __tablename__ = "pairing_responses"

    pairing_id: Mapped[int] = mapped_column(
        ForeignKey("pairings.id", ondelete="CASCADE"), primary_key=True
    )
    # [seat][outcome] = [rounds that followed it, of which the seat cooperated in]
    counts: Mapped[list[list[list[int]]]] = mapped_column(JSON)


class PairingMetricsRow(Base):
    """Figures an env family adds to a pairing, by name (a grid task's ``successes``)."""

    __tablename__ = "pairing_metrics"

    pairing_id: Mapped[int] = mapped_column(
        ForeignKey("pairings.id", ondelete="CASCADE"), primary_key=True
    )
    metrics: Mapped[dict[str, float]] = mapped_column(JSON)


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
    # running, finished, stopped (at a time limit: --resume continues it) or interrupted
    # (killed or failed: --resume continues from its last checkpoint); null for runs stored
    # before statuses were kept.
    status: Mapped[str | None] = mapped_column(String(20))
    # "host:pid" of the process that set it running, so that a run whose process died without
    # a word (SIGKILL, a crashed machine) reads back as interrupted.
    owner: Mapped[str | None] = mapped_column(String(300))


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


# ---- the behavior handbook and the knowledge graph ----------------------------------------


class HandbookStateRow(Base):
    """One row. Every write to the handbook or graph first bumps ``revision`` in its own
    transaction: that serialises writers on SQLite and PostgreSQL alike, and tells readers in
    other processes what changed since they last looked (rows carry the revision that last
    wrote them). ``generation`` changes when rows are deleted, which revisions cannot show."""

    __tablename__ = "handbook_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    revision: Mapped[int]
    generation: Mapped[int]


class BehaviorRow(Base):
    """A behavior as it is now: its current version's content, statistics and validity.

    ``valid_to`` is set when the behavior is invalidated or merged into another; it is then
    kept (readable, exportable) but no longer retrieved.
    """

    __tablename__ = "behaviors"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int]
    name: Mapped[str] = mapped_column(String(200))
    instruction: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    trigger: Mapped[dict[str, str]] = mapped_column(JSON)
    tags: Mapped[list[str]] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    embedder: Mapped[str] = mapped_column(String(200))
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    valid_from: Mapped[datetime]
    valid_to: Mapped[datetime | None]
    invalid_reason: Mapped[str | None] = mapped_column(String(400))
    merged_into: Mapped[int | None] = mapped_column(ForeignKey("behaviors.id", ondelete="SET NULL"))
    # Episodes in which the behavior was shown to an agent, used by it, and the summed
    # return per step of those episodes, split by whether it was used.
    shown: Mapped[int] = mapped_column(default=0)
    uses: Mapped[int] = mapped_column(default=0)
    return_used: Mapped[float] = mapped_column(default=0.0)
    return_unused: Mapped[float] = mapped_column(default=0.0)
    revision: Mapped[int] = mapped_column(index=True)


class BehaviorVersionRow(Base):
    """Every version a behavior has had, the current one included; old ones stay readable."""

    __tablename__ = "behavior_versions"

    behavior_id: Mapped[int] = mapped_column(
        ForeignKey("behaviors.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    instruction: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    trigger: Mapped[dict[str, str]] = mapped_column(JSON)
    tags: Mapped[list[str]] = mapped_column(JSON)
    note: Mapped[str] = mapped_column(String(400))
    valid_from: Mapped[datetime]
    valid_to: Mapped[datetime | None]


class ProvenanceRow(Base):
    """Where (part of) a behavior came from; a merged duplicate adds its own row."""

    __tablename__ = "behavior_provenance"

    id: Mapped[int] = mapped_column(primary_key=True)
    behavior_id: Mapped[int] = mapped_column(
        ForeignKey("behaviors.id", ondelete="CASCADE"), index=True
    )
    extractor: Mapped[str] = mapped_column(String(200))
    scenario: Mapped[str | None] = mapped_column(String(200))
    agent: Mapped[str | None] = mapped_column(String(200))
    run_id: Mapped[int | None]
    episodes: Mapped[list[int]] = mapped_column(JSON)
    created_at: Mapped[datetime]


class EntityRow(Base):
    """A node of the knowledge graph: a behavior, scenario, env, co-player type, agent,
    episode or concept, named by its type and a key unique within the type."""

    __tablename__ = "entities"
    __table_args__ = (UniqueConstraint("type", "key", name="uq_entities_type_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(400))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    revision: Mapped[int] = mapped_column(index=True)


class RelationRow(Base):
    """A typed, weighted, time-stamped edge between two entities; at most one per type and
    ordered pair (writing it again updates weight and time)."""

    __tablename__ = "relations"
    __table_args__ = (
        UniqueConstraint("source_id", "target_id", "type", name="uq_relations_edge"),
        Index("ix_relations_target", "target_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("entities.id", ondelete="CASCADE"))
    target_id: Mapped[int] = mapped_column(ForeignKey("entities.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(40))
    weight: Mapped[float]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    revision: Mapped[int] = mapped_column(index=True)


class BehaviorEffectRow(Base):
    """How a behavior fared per entity its episodes were credited to (a co-player type, a
    task): the episodes in which it was a candidate for an agent and used, and those in which
    it was a candidate and not used, each with the sum and the sum of squares of their
    return per step. Retrieval reads the effect and its uncertainty from these moments."""

    __tablename__ = "behavior_effects"

    behavior_id: Mapped[int] = mapped_column(
        ForeignKey("behaviors.id", ondelete="CASCADE"), primary_key=True
    )
    entity: Mapped[str] = mapped_column(String(450), primary_key=True)
    used: Mapped[int]
    used_sum: Mapped[float]
    used_sq: Mapped[float]
    unused: Mapped[int]
    unused_sum: Mapped[float]
    unused_sq: Mapped[float]
    revision: Mapped[int] = mapped_column(index=True)


class ComparisonRow(Base):
    """A reuse comparison (``coplay reuse``): the study it ran, and its figures, kept so
    that it can be listed and shown again without running it."""

    __tablename__ = "reuse_comparisons"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    env_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    wall_seconds: Mapped[float]
    scenario: Mapped[dict[str, Any]] = mapped_column(JSON)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)
