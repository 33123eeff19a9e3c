"""Alembic's entry point: coplay always hands it an open connection (see __init__.py)."""

from alembic import context

from memory.schema import Base

connection = context.config.attributes["connection"]
# Batch mode lets ALTER TABLE work on SQLite, which rewrites the table instead.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
