"""Which process set a training run running ("host:pid"), so a run whose process was killed
without a word reads back as interrupted.

Training runs stored before this revision have none; they read back at their stored status.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.add_column(sa.Column("owner", sa.String(300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.drop_column("owner")
