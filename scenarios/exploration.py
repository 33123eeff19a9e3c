"""Exploration scenarios: one agent, one contextual grid task, one bonus, one PPO recipe.

    name: deadends_unlimited_product
    env: {id: coplay/grid-deadends-v0, contexts: null, branches: 6}   # null: a new layout each episode
    bonus: {episodic_term: counts, global_term: counts, combine: product}
    train: {frames: 300000, envs: 16}

``bonus`` marks the file as an exploration scenario (``bonus: {}`` trains without one).
The bundled ones, one per task x context count x bonus, live in ``scenarios/data/explore/``;
``coplay train NAME`` finds them by name, and ``benchmarks/exploration_study.py`` runs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from agents.exploration import BonusConfig
from agents.train.ppo_grid import GridPPOConfig, GridTrainer
from coplay.errors import CoplayError, ScenarioError
from scenarios import schema
from scenarios.schema import Strict, read_text, read_yaml, validation_error

EXPLORE_DIR = Path(__file__).parent / "data" / "explore"
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


def load(path: str | Path) -> ExplorationScenario:
    path = resolve(path)
    return parse(read_text(path), source=str(path))


def parse(text: str, *, source: str = "<exploration scenario>") -> ExplorationScenario:
    data = read_yaml(text, source=source, fields="name, env, bonus, train")
    try:
        return ExplorationScenario.model_validate(data)
    except ValidationError as error:
        raise validation_error(source, error) from None
    except CoplayError as error:  # the settings' own checks, run as pydantic builds them
        raise ScenarioError(f"{source}: {error.where}", expected=error.expected, got=error.got,
                            fix=error.fix) from None


def resolve(path: str | Path) -> Path:
    return schema.resolve(path, EXPLORE_DIR)


def bundled() -> list[Path]:
    return sorted(EXPLORE_DIR.glob("*.yaml"))


def is_exploration_file(file: str | Path) -> bool:
    """Exploration scenarios have a top-level ``bonus``; bundled ones are found by name too."""
    if not Path(file).exists() and resolve(file).exists():
        return True
    try:
        return "\nbonus:" in "\n" + Path(file).read_text()
    except (OSError, UnicodeDecodeError):  # the loader reports it in one line
        return False
