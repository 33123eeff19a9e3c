"""Each pairing's responses: how each seat played after each joint outcome of the round before.

Runs stored before this revision have none; they read back without them.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pairing_responses",
        sa.Column("pairing_id", sa.Integer,
                  sa.ForeignKey("pairings.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("counts", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pairing_responses")
