from __future__ import annotations

from pathlib import Path

import pytest

import scenarios

TINY_SCENARIO = """\
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
