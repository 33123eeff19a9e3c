"""Exploration scenarios: one agent, one contextual grid task, one bonus, one PPO recipe.

    kind: exploration
    name: deadends_unlimited_product
    env: {id: coplay/grid-deadends-v0, contexts: null, branches: 6}   # null: a new layout each episode
    bonus: {episodic_term: counts, global_term: counts, combine: product}
    train: {frames: 300000, envs: 16}

Files say ``kind: exploration``; ``scenarios.load`` reads them (``bonus: {}`` trains without a
bonus). The bundled ones, one per task x context count x bonus, live in
``scenarios/data/explore/``; ``coplay train NAME`` finds them by name, and
``studies/exploration_study.py`` runs them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from agents.exploration import BonusConfig
from agents.train.ppo_grid import GridPPOConfig, GridTrainer
from scenarios.schema import Strict

# The bundled grid: ``explore/<task>_<contexts>_<method>.yaml`` for each of these.
TASKS = ("deadends", "multiroom", "keydoor")
CONTEXTS = ("1", "unlimited")
METHODS = ("none", "global", "episodic", "product", "sum", "e3b_x_rnd")


def bundled_name(task: str, contexts: str, method: str) -> str:
    return f"{task}_{contexts}_{method}"


class GridEnvSection(Strict):
    """A grid task id, its context count, and the task's own layout settings written flat."""

    model_config = ConfigDict(extra="allow", frozen=True)
    id: str
    contexts: int | None = Field(default=1, ge=1)
    context_seed: int = Field(default=0, ge=0)

    def settings(self) -> dict[str, Any]:
        return {"contexts": self.contexts, "context_seed": self.context_seed,
                **(self.model_extra or {})}


class ExplorationScenario(Strict):
    kind: Literal["exploration"] = "exploration"
    name: str = Field(min_length=1)
    description: str = ""
    env: GridEnvSection
    bonus: BonusConfig = BonusConfig()
    train: GridPPOConfig = GridPPOConfig()

    @model_validator(mode="after")
    def _env_builds(self) -> ExplorationScenario:
        import gymnasium as gym

        import envs.grid

        envs.grid.task(self.env.id)  # names the registered tasks if the id is not one
        gym.make(self.env.id, disable_env_checker=True, **self.env.settings()).close()
        return self

    def make_trainer(self) -> GridTrainer:
        return GridTrainer(self.env.id, self.env.settings(), self.train, self.bonus)

    @property
    def contexts_label(self) -> str:
        return "unlimited" if self.env.contexts is None else str(self.env.contexts)
