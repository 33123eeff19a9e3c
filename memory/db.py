"""Opening the one SQL database that holds runs, training curves, behaviors and the graph."""

from __future__ import annotations

import os
import sqlite3
import time

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError

from coplay.errors import StoreError
from memory import migrations
from memory.schema import Base

DEFAULT_URL = "sqlite:///coplay.db"
URL_ENV_VAR = "COPLAY_DB"


def default_url() -> str:
    """``$COPLAY_DB`` if set, else ``coplay.db`` in the working directory."""
    return os.environ.get(URL_ENV_VAR, DEFAULT_URL)


def open_engine(url: str | None = None, *, check_schema: bool = True) -> Engine:
    """An engine for ``url``, its tables created if the database is new; fails with one
    clear line if it is unreachable, not a coplay database, or of an older schema
    (``check_schema=False`` skips that last check, for the upgrade itself)."""
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
        event.listen(engine, "begin", _begin_immediate)
    try:
        _prepare(engine, url, check_schema)
    except StoreError:
        engine.dispose()
        raise
    except DBAPIError as error:
        engine.dispose()
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise StoreError(
            "--db", expected=f"a reachable coplay database at {engine.url!r}", got=reason,
        ) from None
    return engine


def _prepare(engine: Engine, url: str, check_schema: bool) -> None:
    tables = set(inspect(engine).get_table_names())
    if not tables & set(Base.metadata.tables):
        if tables - {"alembic_version"}:
            raise StoreError("--db", expected="a coplay database or an empty one",
                             got=f"a database with other tables: {sorted(tables)[:5]}")
        _create(engine)
        return
    if not check_schema:
        return
    with engine.connect() as connection:
        revision = migrations.revision_of(connection)
    if revision != migrations.head():
        raise StoreError(
            "--db", expected=f"a database at schema revision {migrations.head()}",
            got=f"revision {revision or 'none (written before coplay used migrations)'}",
            fix=f"Back it up, then run: coplay db upgrade --db {url}",
        )


def _create(engine: Engine, attempts: int = 3) -> None:
    """Create every table and stamp the newest revision, in one transaction so that no other
    process sees the tables unstamped (and takes the database for an old one). Two processes
    opening a new database at once can both find it empty; the loser's errors are harmless,
    so look again."""
    for attempt in range(attempts):
        try:
            with engine.begin() as connection:
                Base.metadata.create_all(connection)
                if migrations.revision_of(connection) is None:
                    migrations.stamp(connection)
            return
        except (IntegrityError, DBAPIError) as error:
            harmless = isinstance(error, IntegrityError) or "already exists" in str(error.orig)
            if not harmless or attempt == attempts - 1:
                raise


def _configure_sqlite(dbapi_connection, _record) -> None:
    # The busy timeout makes concurrent writers wait for each other instead of failing with
    # "database is locked"; WAL lets readers run beside a writer.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    _switch_to_wal(cursor)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # Transactions are begun by ``_begin_immediate`` instead of the driver.
    dbapi_connection.isolation_level = None


def _switch_to_wal(cursor, attempts: int = 50) -> None:
    # Switching to WAL does not wait out the busy timeout: when processes open a new database
    # at once, all but one can get "database is locked" straight away. The switch is brief and
    # made once per database, so trying again shortly after is enough.
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (1 + attempt % 4))


def _begin_immediate(connection) -> None:
    # Take the write lock when a transaction begins: a transaction that first reads and then
    # writes could otherwise find another writer ahead of it and fail with "database is
    # locked" at once, without waiting out the busy timeout.
    connection.exec_driver_sql("BEGIN IMMEDIATE")
