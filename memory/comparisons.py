"""Stored reuse comparisons (``coplay reuse``): what was compared, and the figures.

The figures are a JSON document written by ``scenarios.reuse``; this module only keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from coplay.errors import StoreError
from memory.db import reporting
from memory.schema import ComparisonRow


@dataclass(frozen=True)
class Comparison:
    id: int
    name: str
    env_id: str
    created_at: datetime
    wall_seconds: float
    scenario: dict[str, Any]
    figures: dict[str, Any]


def save_comparison(engine: Engine, *, name: str, env_id: str, wall_seconds: float,
                    scenario: dict[str, Any], figures: dict[str, Any]) -> int:
    with reporting(engine), Session(engine) as session, session.begin():
        row = ComparisonRow(name=name, env_id=env_id, created_at=datetime.now(UTC),
                            wall_seconds=wall_seconds, scenario=scenario, figures=figures)
        session.add(row)
        session.flush()
        return row.id


def list_comparisons(engine: Engine, *, limit: int = 50) -> list[Comparison]:
    """Newest first."""
    with reporting(engine), Session(engine) as session:
        rows = session.scalars(select(ComparisonRow).order_by(ComparisonRow.id.desc()).limit(limit))
        return [_record(row) for row in rows]


def get_comparison(engine: Engine, comparison_id: int) -> Comparison:
    with reporting(engine), Session(engine) as session:
        row = session.get(ComparisonRow, comparison_id)
        if row is None:
            raise StoreError("comparison", expected="the id of a stored reuse comparison",
                             got=str(comparison_id), fix="List them with `coplay reuse list`.")
        return _record(row)


def _record(row: ComparisonRow) -> Comparison:
    return Comparison(row.id, row.name, row.env_id, row.created_at, row.wall_seconds,
                      row.scenario, row.figures)
