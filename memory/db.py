"""Opening the one SQL database that holds runs, training curves, behaviors and the graph."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError
from sqlalchemy.orm import InstrumentedAttribute

from coplay.errors import StoreError
from memory import migrations
from memory.schema import Base

DEFAULT_URL = "sqlite:///coplay.db"
URL_ENV_VAR = "COPLAY_DB"
# Seconds an SQLite connection waits for another process's write lock before giving up;
# a URL may set its own, e.g. sqlite:///coplay.db?timeout=5.
DEFAULT_SQLITE_TIMEOUT = 30.0


def default_url() -> str:
    """``$COPLAY_DB`` if set, else ``coplay.db`` in the working directory."""
    return os.environ.get(URL_ENV_VAR, DEFAULT_URL)


def open_engine(url: str | None = None, *, check_schema: bool = True) -> Engine:
    """An engine for ``url``, its tables created if the database is new; fails with one
    clear line if it is unreachable, locked, not a coplay database, or of another schema
    revision (``check_schema=False`` skips that last check, for `coplay db` itself)."""
    url = url or default_url()
    try:
        engine = create_engine(url, connect_args=_connect_args(url))
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
        with reporting(engine):
            _prepare(engine, url, check_schema)
    except StoreError:
        engine.dispose()
        raise
    return engine


def _connect_args(url: str) -> dict[str, float]:
    if not url.startswith("sqlite"):
        return {}
    from sqlalchemy.engine import make_url

    timeout = make_url(url).query.get("timeout")
    if timeout is None:
        return {"timeout": DEFAULT_SQLITE_TIMEOUT}
    try:
        if float(timeout) >= 0:
            return {}  # the driver reads it from the URL
    except (TypeError, ValueError):
        pass
    raise StoreError("--db", expected="?timeout= a number of seconds, 0 or more",
                     got=repr(timeout))


@contextmanager
def reporting(engine: Engine) -> Iterator[None]:
    """Turn a database failure (locked, read-only, corrupted, unreachable, a value too long)
    into one StoreError line. Integrity errors are coplay's bugs, not the user's: they pass."""
    try:
        yield
    except IntegrityError:
        raise
    except DBAPIError as error:
        raise describe(engine, error) from None


def describe_failure(error: DBAPIError) -> StoreError | None:
    """The one-line StoreError for a database failure whose engine is unknown, or None for an
    integrity error (a bug in coplay, not a fault of the user's database)."""
    if isinstance(error, IntegrityError):
        return None
    return _describe(error, "")


def describe(engine: Engine, error: DBAPIError) -> StoreError:
    """The one-line StoreError for a database failure."""
    return _describe(error, f" at {engine.url.render_as_string(hide_password=True)}",
                     engine.url.query.get("timeout", DEFAULT_SQLITE_TIMEOUT))


def _describe(error: DBAPIError, at: str, timeout: object = DEFAULT_SQLITE_TIMEOUT) -> StoreError:
    reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
    lowered = reason.lower()
    if "readonly" in lowered or "read-only" in lowered or "permission denied" in lowered:
        return StoreError("--db", expected=f"a database coplay can write to{at}", got=reason,
                          fix="Make the file and its folder writable, or pass another --db.")
    if "locked" in lowered:
        return StoreError("--db", expected=f"the database{at} free within {timeout} s",
                          got=f"{reason} (another process is writing to it)",
                          fix="Wait for it to finish, or wait longer with ?timeout=SECONDS "
                              "in the URL.")
    if "not a database" in lowered or "malformed" in lowered:
        return StoreError("--db", expected=f"an SQLite database file{at}", got=reason,
                          fix="Pass --db with another file, or move this one aside.")
    if "too long" in lowered:
        return StoreError("--db", expected=f"values that fit their columns{at}", got=reason)
    return StoreError("--db", expected=f"a reachable coplay database{at}", got=reason)


def check_writable(engine: Engine) -> None:
    """Fail now, not after a long simulation, if the run could not be stored: take the
    write lock (waiting out the timeout), rewrite the schema stamp unchanged, roll back."""
    with reporting(engine), engine.connect() as connection, connection.begin() as transaction:
        connection.execute(text("UPDATE alembic_version SET version_num = version_num"))
        transaction.rollback()


def check_fits(where: str, column: InstrumentedAttribute, value: str) -> None:
    """Reject a string longer than its column before anything is written (SQLite would take
    it, PostgreSQL would refuse it at the end of a run)."""
    limit = getattr(column.type, "length", None)
    if limit is not None and len(value) > limit:
        raise StoreError(where, expected=f"at most {limit} characters",
                         got=f"{len(value)} characters ({value[:40]!r}...)",
                         fix="Shorten it.")


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
    if revision == migrations.head():
        return
    if revision is not None and not migrations.known(revision):
        raise newer_schema(url, revision)
    raise StoreError(
        "--db", expected=f"a database at schema revision {migrations.head()}",
        got=f"revision {revision or 'none (written before coplay used migrations)'}",
        fix=f"Back it up, then run: coplay db upgrade --db {url}",
    )


def newer_schema(url: str, revision: str) -> StoreError:
    """A database written by a newer coplay, whose schema this one does not know."""
    return StoreError(
        "--db", expected=f"a database at schema revision {migrations.head()} or older",
        got=f"revision {revision}, written by a newer coplay",
        fix="Upgrade coplay (pip install -U coplay) to use this database.",
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
    # The driver's timeout (``connect_args``) makes concurrent writers wait for each other
    # instead of failing with "database is locked"; WAL lets readers run beside a writer.
    cursor = dbapi_connection.cursor()
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
