"""The handbook's write lock and change counter, one row shared by every process.

A handbook write transaction starts with ``next_revision``: the row update takes a lock that
the database holds until commit, so writers from any number of processes take turns instead
of conflicting, on SQLite (where the connection begins with ``BEGIN IMMEDIATE``) and
PostgreSQL (a row lock) alike. Readers compare revisions to learn whether anything changed.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from memory.schema import HandbookStateRow

STATE_ID = 1


def now() -> datetime:
    """UTC without a time zone: what both SQLite and PostgreSQL give back."""
    return datetime.now(UTC).replace(tzinfo=None)


def timestamp(moment: datetime) -> float:
    return moment.replace(tzinfo=UTC).timestamp()


def next_revision(session: Session, *, deleting: bool = False) -> int:
    """Lock the handbook for this transaction and return the revision its writes carry.
    ``deleting`` also advances the generation, telling readers to reload everything."""
    values = {"revision": HandbookStateRow.revision + 1}
    if deleting:
        values["generation"] = HandbookStateRow.generation + 1
    revision = session.execute(
        update(HandbookStateRow).where(HandbookStateRow.id == STATE_ID).values(**values)
        .returning(HandbookStateRow.revision)
    ).scalar_one_or_none()
    if revision is not None:
        return revision
    try:
        with session.begin_nested():
            session.add(HandbookStateRow(id=STATE_ID, revision=1, generation=int(deleting)))
        return 1
    except IntegrityError:  # another process created the row first
        return next_revision(session, deleting=deleting)


def current(session: Session) -> tuple[int, int]:
    """(revision, generation) as committed; (0, 0) before the first write."""
    row = session.execute(
        select(HandbookStateRow.revision, HandbookStateRow.generation)
        .where(HandbookStateRow.id == STATE_ID)
    ).one_or_none()
    return (row[0], row[1]) if row else (0, 0)
