"""The behavior handbook and the knowledge graph.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handbook_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
    )
    op.create_table(
        "behaviors",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("instruction", sa.Text, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("payload", sa.JSON, nullable=True),
        sa.Column("trigger", sa.JSON, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False, index=True),
        sa.Column("embedder", sa.String(200), nullable=False),
        sa.Column("embedding", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("valid_from", sa.DateTime, nullable=False),
        sa.Column("valid_to", sa.DateTime, nullable=True),
        sa.Column("invalid_reason", sa.String(400), nullable=True),
        sa.Column("merged_into", sa.Integer,
                  sa.ForeignKey("behaviors.id", ondelete="SET NULL"), nullable=True),
        sa.Column("shown", sa.Integer, nullable=False),
        sa.Column("uses", sa.Integer, nullable=False),
        sa.Column("return_used", sa.Float, nullable=False),
        sa.Column("return_unused", sa.Float, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False, index=True),
    )
    op.create_table(
        "behavior_versions",
        sa.Column("behavior_id", sa.Integer,
                  sa.ForeignKey("behaviors.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("instruction", sa.Text, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("payload", sa.JSON, nullable=True),
        sa.Column("trigger", sa.JSON, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("note", sa.String(400), nullable=False),
        sa.Column("valid_from", sa.DateTime, nullable=False),
        sa.Column("valid_to", sa.DateTime, nullable=True),
    )
    op.create_table(
        "behavior_provenance",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("behavior_id", sa.Integer,
                  sa.ForeignKey("behaviors.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("extractor", sa.String(200), nullable=False),
        sa.Column("scenario", sa.String(200), nullable=True),
        sa.Column("agent", sa.String(200), nullable=True),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("episodes", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "entities",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False, index=True),
        sa.UniqueConstraint("type", "key", name="uq_entities_type_key"),
    )
    op.create_table(
        "relations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("source_id", sa.Integer,
                  sa.ForeignKey("entities.id", ondelete="CASCADE"), nullable=False),
        sa.Column("target_id", sa.Integer,
                  sa.ForeignKey("entities.id", ondelete="CASCADE"), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("weight", sa.Float, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False, index=True),
        sa.UniqueConstraint("source_id", "target_id", "type", name="uq_relations_edge"),
        sa.Index("ix_relations_target", "target_id"),
    )


def downgrade() -> None:
    for table in ("relations", "entities", "behavior_provenance", "behavior_versions",
                  "behaviors", "handbook_state"):
        op.drop_table(table)
