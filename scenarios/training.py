"""Training scenarios: which learners train, against which pool, with which recipe.

A training scenario is data like a simulation scenario (same ``env`` and ``agents`` sections):

    kind: training
    learners: {alice: {}, bob: {}}          # learning agents; `init` starts one from a checkpoint
    pool: {learners: 0.5, tabular: 0.5}     # each learner's episodes: vs other learners, vs agents
    train: {algorithm: a2c, updates: 600, policy: {hidden_size: 64}, ...}
    evaluate: {against: [tit_for_tat, always_defect], episodes: 256}
    memory: {k: 3}                          # optional: hints at every step (conditioned learners)

Files say ``kind: training``; ``scenarios.load`` reads them. The bundled ones live in
``scenarios/data/train/``; ``coplay train NAME`` finds them by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

import agents
import envs
from agents.train.config import TrainConfig
from agents.train.experience import LEARNERS
from coplay.errors import ConfigError, ScenarioError
from scenarios.schema import (
    AgentSection,
    CrossPlay,
    EnvSection,
    MemorySection,
    RunSection,
    Scenario,
    Strict,
    build_agent,
    check_agents,
)

if TYPE_CHECKING:
    from agents.train.trainer import Trainer, TrainingSetup
    from memory.handbook import Handbook
    from scenarios.training_memory import TrainingMemory


class InitSection(Strict):
    path: str
    learner: str | None = None


class LearnerSection(Strict):
    init: InitSection | None = None


class EvaluateSection(Strict):
    against: list[str] = Field(default_factory=list)
    episodes: int = Field(default=256, ge=1)


class TrainingScenario(Strict):
    kind: Literal["training"] = "training"
    name: str = Field(min_length=1)
    description: str = ""
    env: EnvSection
    agents: dict[str, AgentSection] = Field(default_factory=dict)
    learners: dict[str, LearnerSection] = Field(min_length=1)
    pool: dict[str, float] = Field(min_length=1)
    # The training settings are the dataclass the trainer uses, which pydantic validates, so
    # defaults and rules live in one place.
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateSection = EvaluateSection()
    # The handbook in the loop: every learner gets its behaviors at every step of every game
    # (the learners must take them: train.policy.behavior_size or follow_memory), and their
    # usage and effects are recorded at every checkpoint.
    memory: MemorySection | None = None

    @model_validator(mode="after")
    def _names_are_defined(self) -> TrainingScenario:
        for name in self.learners:
            if name in self.agents or name == LEARNERS:
                raise ValueError(
                    f"learners.{name}: expected a name not used under agents nor {LEARNERS!r}, "
                    f"got {name!r}"
                )
        for name, weight in self.pool.items():
            if name != LEARNERS and name not in self.agents:
                raise ValueError(
                    f"pool.{name}: expected {LEARNERS!r} or an agent defined under agents "
                    f"({sorted(self.agents)}), got {name!r}"
                )
            if weight < 0:
                raise ValueError(f"pool.{name}: expected a weight >= 0, got {weight}")
        if sum(self.pool.values()) <= 0:
            raise ValueError(f"pool: expected weights with a positive sum, got {dict(self.pool)}")
        for name in self.evaluate.against:
            if name not in self.agents:
                raise ValueError(
                    f"evaluate.against: expected an agent defined under agents "
                    f"({sorted(self.agents)}), got {name!r}"
                )
        if self.memory is not None:
            if not self.train.policy.conditioned:
                raise ValueError("memory: expected learners that take behaviors "
                                 "(train.policy.behavior_size > 0 or follow_memory: true), got "
                                 "neither")
            if self.memory.extract:
                raise ValueError("memory.extract: expected false in training (extract from a "
                                 "recorded evaluation run: `coplay memory extract RUN`), got true")
        return self

    @property
    def memory_agent(self) -> str:
        """How memory's contexts name the learners' seat: the learner, or ``learners``."""
        return next(iter(self.learners)) if len(self.learners) == 1 else LEARNERS

    def setup(self) -> TrainingSetup:
        from agents.checkpoint import CheckpointRef
        from agents.train.trainer import LearnerSpec, TrainingSetup

        config = self.train
        return TrainingSetup(
            game=envs.make_config(self.env.id, **self.env.settings()),
            learners=tuple(
                LearnerSpec(
                    name=name, policy=config.policy,
                    init=None if s.init is None else CheckpointRef(s.init.path, s.init.learner),
                )
                for name, s in self.learners.items()
            ),
            pool=dict(self.pool),
            config=config,
        )

    def make_trainer(self, memory: TrainingMemory | None = None) -> Trainer:
        from agents.train.recipes import make_trainer

        return make_trainer(self.setup(), self.coplayers(), memory=memory)

    def training_memory(self, handbook: Handbook) -> TrainingMemory:
        """The memory this scenario's learners train with (it must have a memory section)."""
        from scenarios.domains import run_memory
        from scenarios.training_memory import TrainingMemory

        assert self.memory is not None, "training_memory asked of a scenario without memory"
        size, dimension = self.train.policy.behavior_size, handbook.embedder.dimension
        if size and size != dimension:
            raise ConfigError(
                "train.policy.behavior_size", expected=f"the embedder's dimension ({dimension})",
                got=str(size), fix=f"Set train.policy.behavior_size to {dimension}.",
            )
        run = run_memory(handbook, self.memory, scenario=self.name, env_id=self.env.id,
                         seed=self.train.seed)
        return TrainingMemory(run, agent=self.memory_agent)

    def coplayers(self) -> dict[str, agents.Agent]:
        """The pool's agents, built (one batched agent per name plays all its games)."""
        return {
            name: build_agent(self.env, self.agents[name], name)
            for name in self.pool if name != LEARNERS
        }

    def evaluation(self, checkpoint: Path) -> Scenario:
        """A cross-play scenario: every trained learner, frozen, against ``evaluate.against``."""
        learner_agents = {
            name: AgentSection(kind="checkpoint", path=str(checkpoint), learner=name)
            for name in self.learners
        }
        return Scenario(
            name=f"{self.name} (evaluation)",
            description=f"Learners of {self.name} against {', '.join(self.evaluate.against)}.",
            env=self.env,
            agents={**learner_agents, **{n: self.agents[n] for n in self.evaluate.against}},
            matchups=CrossPlay(mode="cross_play", focal=list(self.learners), against=self.evaluate.against),
            run=RunSection(episodes=self.evaluate.episodes, seed=self.train.seed, record_trajectories=False),
            memory=self.memory,
        )


def check_files(scenario: TrainingScenario, *, source: str) -> None:
    """Build every agent and check that the checkpoints learners start from exist."""
    check_agents(scenario.env, scenario.agents, source=source)
    for name, learner in scenario.learners.items():
        if learner.init is not None and not Path(learner.init.path).is_file():
            raise ScenarioError(
                f"{source}: learners.{name}.init.path", expected="an existing checkpoint file",
                got=repr(learner.init.path),
                fix="Train one with `coplay train SCENARIO`; it prints where the checkpoint is saved.",
            )
