"""Schema migrations with alembic. A new database is created at the newest schema and stamped;
an existing one at an older revision is refused with the command that upgrades it
(`coplay db upgrade`), never changed behind the user's back."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config

# alembic is imported where it is used: opening an up-to-date database only needs to read
# its stamp, and every `coplay` command opens one.

FOLDER = Path(__file__).parent


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(FOLDER))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest schema revision this coplay knows."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def known(revision: str) -> bool:
    """Whether this coplay has the migration script of ``revision`` (a database stamped
    with an unknown one was written by a newer coplay)."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(_config()).get_revision(revision) is not None
    except CommandError:
        return False


def revision_of(connection: Connection) -> str | None:
    """The schema revision stamped in the database, None if there is none."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def stamp(connection: Connection) -> None:
    """Mark a database whose tables were just created from the models as up to date."""
    from alembic import command

    command.stamp(_config(connection), "head")


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Run the migrations up to ``revision``; returns the revisions before and after."""
    from alembic import command

    with engine.begin() as connection:
        before = revision_of(connection)
        command.upgrade(_config(connection), revision)
        return before, revision_of(connection)
