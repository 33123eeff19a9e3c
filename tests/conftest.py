from __future__ import annotations

import os
from pathlib import Path

import pytest

import scenarios

TINY_SCENARIO = """\
kind: simulation
name: tiny
env: {id: coplay/ipd-v0, horizon: 10}
agents:
  tft: {kind: tit_for_tat}
  alld: {kind: always_defect}
  tabular: {kind: memory_one, table: uniform}
matchups: {mode: round_robin, players: [tft, alld, tabular]}
run: {episodes: 7, seed: 3, batch_size: 4}
"""


@pytest.fixture
def tiny_scenario() -> scenarios.Scenario:
    return scenarios.parse(TINY_SCENARIO, source="tiny.yaml")


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


POSTGRES_ENV_VAR = "COPLAY_TEST_POSTGRES_URL"


@pytest.fixture
def postgres_url() -> str:
    """A fresh, empty PostgreSQL database on the test server (scripts/test.sh starts one and
    sets $COPLAY_TEST_POSTGRES_URL); dropped afterwards. Skipped when no server is given."""
    import uuid

    from sqlalchemy import create_engine, text

    server = os.environ.get(POSTGRES_ENV_VAR)
    if not server:
        pytest.skip(f"no PostgreSQL server: set ${POSTGRES_ENV_VAR} (scripts/test.sh does)")
    name = f"coplay_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, _ = server.rpartition("/")
    yield f"{base}/{name}"
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_url(request, tmp_path: Path) -> str:
    """The same memory tests on the embedded default and on a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'memory.db'}"
    return request.getfixturevalue("postgres_url")
