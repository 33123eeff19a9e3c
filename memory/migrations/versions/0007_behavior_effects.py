"""Behaviors' effects per credited entity (co-player type, task), which steer retrieval.

Handbooks written before this revision have none: their behaviors start without evidence.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "behavior_effects",
        sa.Column("behavior_id", sa.Integer,
                  sa.ForeignKey("behaviors.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("entity", sa.String(450), primary_key=True),
        sa.Column("used", sa.Integer, nullable=False),
        sa.Column("used_sum", sa.Float, nullable=False),
        sa.Column("used_sq", sa.Float, nullable=False),
        sa.Column("unused", sa.Integer, nullable=False),
        sa.Column("unused_sum", sa.Float, nullable=False),
        sa.Column("unused_sq", sa.Float, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("behavior_effects")
