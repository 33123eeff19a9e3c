"""Scenarios: YAML files validated into typed models, the runner that plays them, the CLI."""

from scenarios.runner import jobs, play_batch, run, total_episodes
from scenarios.schema import BUNDLED_DIR, Scenario, bundled, load, parse, resolve

__all__ = [
    "BUNDLED_DIR", "Scenario", "bundled", "jobs", "load", "parse", "play_batch", "resolve",
    "run", "total_episodes",
]
