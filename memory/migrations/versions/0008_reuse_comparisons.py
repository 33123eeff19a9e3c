"""Reuse comparisons (``coplay reuse``), stored so that they can be listed and shown again.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reuse_comparisons",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("env_id", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("wall_seconds", sa.Float, nullable=False),
        sa.Column("scenario", sa.JSON, nullable=False),
        sa.Column("figures", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("reuse_comparisons")
