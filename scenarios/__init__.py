"""Scenarios: YAML files of one of several kinds, loaded into typed models; the runner that
plays simulations."""

from scenarios.loading import BUNDLED_DIR, KINDS, Override, bundled, load, parse, resolve
from scenarios.runner import jobs, play_batch, run, total_episodes
from scenarios.schema import Scenario, SimulationScenario

__all__ = [
    "BUNDLED_DIR", "KINDS", "Override", "Scenario", "SimulationScenario", "bundled", "jobs", "load",
    "parse", "play_batch", "resolve", "run", "total_episodes",
]
