"""The run store and training tables, as coplay created them before it used migrations.

A database from then has no revision stamp; upgrading it starts here, and only creates those
of its tables that it lacks (databases from before beliefs were recorded lack two).

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "runs" not in existing:
        op.create_table(
            "runs",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("scenario_name", sa.String(200), nullable=False),
            sa.Column("env_id", sa.String(200), nullable=False),
            sa.Column("seed", sa.Integer, nullable=False),
            sa.Column("scenario", sa.JSON, nullable=False),
            sa.Column("created_at", sa.DateTime, nullable=False),
            sa.Column("wall_seconds", sa.Float, nullable=False),
            sa.Column("coplay_version", sa.String(40), nullable=False),
        )
    if "pairings" not in existing:
        op.create_table(
            "pairings",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"),
                      nullable=False, index=True),
            sa.Column("position", sa.Integer, nullable=False),
            sa.Column("agent_0", sa.String(200), nullable=False),
            sa.Column("agent_1", sa.String(200), nullable=False),
            sa.Column("role_0", sa.String(40), nullable=False),
            sa.Column("role_1", sa.String(40), nullable=False),
            sa.Column("episodes", sa.Integer, nullable=False),
            sa.Column("steps", sa.Integer, nullable=False),
            sa.Column("return_0", sa.Float, nullable=False),
            sa.Column("return_1", sa.Float, nullable=False),
            sa.Column("cooperations_0", sa.Integer, nullable=False),
            sa.Column("cooperations_1", sa.Integer, nullable=False),
            sa.Column("cooperation_by_round", sa.JSON, nullable=False),
        )
    if "episodes" not in existing:
        op.create_table(
            "episodes",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"),
                      nullable=False),
            sa.Column("pairing_id", sa.Integer,
                      sa.ForeignKey("pairings.id", ondelete="CASCADE"), nullable=False),
            sa.Column("index", sa.Integer, nullable=False),
            sa.Column("length", sa.Integer, nullable=False),
            sa.Index("ix_episodes_run_index", "run_id", "index"),
        )
    if "agent_results" not in existing:
        op.create_table(
            "agent_results",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("episode_id", sa.Integer,
                      sa.ForeignKey("episodes.id", ondelete="CASCADE"), nullable=False, index=True),
            sa.Column("seat", sa.Integer, nullable=False),
            sa.Column("agent", sa.String(200), nullable=False),
            sa.Column("role", sa.String(40), nullable=False),
            sa.Column("episode_return", sa.Float, nullable=False),
            sa.Column("cooperations", sa.Integer, nullable=False),
        )
    if "trajectories" not in existing:
        op.create_table(
            "trajectories",
            sa.Column("episode_id", sa.Integer,
                      sa.ForeignKey("episodes.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("joint_actions", sa.LargeBinary, nullable=False),
        )
    if "pairing_beliefs" not in existing:
        op.create_table(
            "pairing_beliefs",
            sa.Column("pairing_id", sa.Integer,
                      sa.ForeignKey("pairings.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("belief_by_round", sa.JSON, nullable=False),
        )
    if "trajectory_beliefs" not in existing:
        op.create_table(
            "trajectory_beliefs",
            sa.Column("episode_id", sa.Integer,
                      sa.ForeignKey("episodes.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("seat", sa.Integer, primary_key=True),
            sa.Column("beliefs", sa.LargeBinary, nullable=False),
        )
    if "training_runs" not in existing:
        op.create_table(
            "training_runs",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("scenario_name", sa.String(200), nullable=False),
            sa.Column("seed", sa.Integer, nullable=False),
            sa.Column("scenario", sa.JSON, nullable=False),
            sa.Column("checkpoint", sa.String(1000), nullable=False),
            sa.Column("created_at", sa.DateTime, nullable=False),
            sa.Column("coplay_version", sa.String(40), nullable=False),
        )
    if "learning_points" not in existing:
        op.create_table(
            "learning_points",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("training_run_id", sa.Integer,
                      sa.ForeignKey("training_runs.id", ondelete="CASCADE"), nullable=False),
            sa.Column("update", sa.Integer, nullable=False),
            sa.Column("learner", sa.String(200), nullable=False),
            sa.Column("metrics", sa.JSON, nullable=False),
            sa.Index("ix_learning_points_run_update", "training_run_id", "update"),
        )


def downgrade() -> None:
    raise RuntimeError("0001 is the first revision; there is nothing to downgrade to")
