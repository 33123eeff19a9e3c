"""Figures an env family adds to a pairing (a grid task's successes), by name.

Runs stored before this revision have none; they read back without them.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pairing_metrics",
        sa.Column("pairing_id", sa.Integer,
                  sa.ForeignKey("pairings.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("metrics", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pairing_metrics")
