"""Opening the one SQL database that holds runs (and, later, behaviors and the graph)."""

from __future__ import annotations

import os

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from coplay.errors import StoreError
from memory.schema import Base

DEFAULT_URL = "sqlite:///coplay.db"
URL_ENV_VAR = "COPLAY_DB"


def default_url() -> str:
    """``$COPLAY_DB`` if set, else ``coplay.db`` in the working directory."""
    return os.environ.get(URL_ENV_VAR, DEFAULT_URL)


def open_engine(url: str | None = None) -> Engine:
    """An engine for ``url`` with coplay's tables created; fails with one clear line."""
    url = url or default_url()
    try:
        engine = create_engine(url)
    except (ArgumentError, ValueError) as error:
        raise StoreError(
            "--db", expected="an SQLAlchemy URL such as sqlite:///coplay.db", got=repr(url),
        ) from error
    except (NoSuchModuleError, ModuleNotFoundError) as error:
        raise StoreError(
            "--db", expected="a database driver that is installed", got=str(error),
            fix="For PostgreSQL: pip install 'coplay[postgres]'.",
        ) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _configure_sqlite)
    try:
        _create_tables(engine)
        inspect(engine).get_table_names()
    except DBAPIError as error:
        engine.dispose()
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise StoreError(
            "--db", expected=f"a reachable coplay database at {engine.url!r}", got=reason,
        ) from None
    return engine


def _create_tables(engine: Engine, attempts: int = 3) -> None:
    """Create missing tables. Two processes opening a new database at once can both see a
    table missing and both create it; the loser's error is harmless, so look again."""
    for attempt in range(attempts):
        try:
            Base.metadata.create_all(engine)
            return
        except DBAPIError as error:
            if "already exists" not in str(error.orig) or attempt == attempts - 1:
                raise


def _configure_sqlite(dbapi_connection, _record) -> None:
    # WAL lets readers run beside a writer; the busy timeout makes concurrent writers wait
    # for each other instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
