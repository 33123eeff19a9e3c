"""What every decentralized recipe shares: the learners, their optimizers, every random stream,
one update's shape, and the checkpoint of all of it.

A recipe (``a2c.py``, ``ppo.py``, ``ppi.py``) subclasses ``Trainer`` with its update rule. Each
update plays one batch of episodes (every learner against its pool, through
``experience.collect``), then updates each learner on its own experience, several learners at
once where torch may use several threads. A checkpoint holds every random stream, so a run
resumed from it continues exactly as if it had never stopped, and names the learners'
policies, so a scenario can seat a trained learner as an agent.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

import envs
from agents.base import Agent
from agents.checkpoint import CheckpointRef, load_checkpoint, load_policy, write_checkpoint
from agents.sequence import SequencePolicy, SequencePolicyConfig, make_policy
from agents.train.config import TrainConfig
from agents.train.experience import (
    IDENTITY_SIZE,
    LEARNERS,
    Acting,
    LearnerMemory,
    LearnerThreads,
    Rollout,
    collect,
    episode_metrics,
    seating,
)
from coplay.errors import ConfigError

ADAM_EPS = 1e-5


@dataclass(frozen=True, kw_only=True)
class LearnerSpec:
    name: str
    policy: SequencePolicyConfig
    init: CheckpointRef | None = None  # start from a trained learner instead of random weights


@dataclass(frozen=True, kw_only=True)
class TrainingSetup:
    """What is trained, against whom, on which game (validated by the training scenario)."""

    game: envs.MatrixGameConfig
    learners: tuple[LearnerSpec, ...]
    pool: Mapping[str, float]  # LEARNERS and co-player names -> share of each learner's episodes
    config: TrainConfig


Metrics = list[dict[str, float]]  # one dict per learner


class Trainer(ABC):
    # How learners choose their moves; None: by sampling the policy head.
    acting: Acting | None = None

    def __init__(self, setup: TrainingSetup, coplayers: Mapping[str, Agent], *,
                 memory: LearnerMemory | None = None) -> None:
        """``memory``: hints for the learners at every step of every game (training with
        memory on); its usage statistics stay with it."""
        self.setup = setup
        self.config = setup.config
        self.memory = memory
        self.groups = [name for name in setup.pool if name != LEARNERS]
        self.coplayers = [coplayers[name] for name in self.groups]
        self.rng = np.random.default_rng(self.config.seed)
        # Initial weights come from torch's global generator; fork it so that building a
        # trainer neither depends on nor changes the caller's random state.
        with torch.random.fork_rng():
            torch.manual_seed(self.config.seed)
            self.policies = [self._initial_policy(spec) for spec in setup.learners]
        self.optimizers = [
            torch.optim.Adam(p.parameters(), lr=self.config.learning_rate, eps=ADAM_EPS)
            for p in self.policies
        ]
        self.owner = seating(
            len(self.policies), self.config.episodes_per_update, setup.pool, self.groups
        )
        self.updates_done = 0
        self.history: list[Metrics] = []

    def _initial_policy(self, spec: LearnerSpec) -> SequencePolicy:
        wanted = spec.policy
        if self.config.identity_vector:
            wanted = replace(wanted, identity_size=IDENTITY_SIZE)
        if spec.init is None:
            return make_policy(wanted)
        policy = load_policy(spec.init, where=f"learners.{spec.name}.init")
        if policy.config != wanted:
            raise ConfigError(
                f"learners.{spec.name}.init", expected=f"a policy with {wanted}",
                got=f"{policy.config}", fix="Give the learner the checkpoint's policy settings.",
            )
        return policy

    @property
    def learner_names(self) -> list[str]:
        return [spec.name for spec in self.setup.learners]

    def finished(self) -> bool:
        return self.updates_done >= self.config.updates

    def step(self) -> Metrics:
        """One update of every learner; returns each learner's metrics."""
        start = time.perf_counter()
        for policy in self.policies:
            policy.eval()
        # Each learner acts and updates with its own random streams, seeded here in order, so
        # that the result does not depend on how many learners run at once.
        acting_seeds, update_seeds = self.rng.integers(2**63, size=(2, len(self.policies)))
        with LearnerThreads(len(self.policies)) as threads:
            data = collect(
                self.setup.game, self.policies, self.owner, self.coplayers, self.rng,
                [torch.Generator().manual_seed(int(seed)) for seed in acting_seeds],
                identity=self.config.identity_vector, acting=self.acting, threads=threads,
                memory=self.memory,
            )
            rollout_seconds = time.perf_counter() - start

            def learn(i: int) -> dict[str, float]:
                self.policies[i].train()
                losses = self.update(i, data[i], int(update_seeds[i]))
                return {**episode_metrics(data[i], self.groups), **losses}

            metrics = threads.map(learn)
        seconds = time.perf_counter() - start
        for m in metrics:
            m.update(rollout_seconds=rollout_seconds, seconds=seconds)
        self.updates_done += 1
        self.history.append(metrics)
        return metrics

    @abstractmethod
    def update(self, i: int, rollout: Rollout, seed: int) -> dict[str, float]:
        """Learner i's update on its experience, with its own random stream seeded by ``seed``;
        returns its losses."""

    def planning(self) -> dict | None:
        """How a learner acts if not by its policy head, saved with it so that a frozen copy
        acts the same way; None: by its policy head."""
        return None

    def save(self, path: str | Path, *, extra: Mapping[str, object] | None = None) -> None:
        """Everything needed to resume exactly, and to seat the learners as agents."""
        write_checkpoint(path, {
            "learners": {
                spec.name: {"policy": asdict(policy.config), "state_dict": policy.state_dict(),
                            "optimizer": optimizer.state_dict(), "planning": self.planning()}
                for spec, policy, optimizer in zip(self.setup.learners, self.policies, self.optimizers)
            },
            "updates_done": self.updates_done,
            "history": self.history,
            "rng": self.rng.bit_generator.state,
            **(extra or {}),
        })

    def restore(self, path: str | Path) -> dict:
        """Continue from a checkpoint written by ``save`` for the same setup; returns it."""
        saved = load_checkpoint(path, where="resume")
        if sorted(saved["learners"]) != sorted(self.learner_names):
            raise ConfigError(
                "resume", expected=f"a checkpoint of learners {self.learner_names}",
                got=f"learners {sorted(saved['learners'])}",
            )
        for spec, policy, optimizer in zip(self.setup.learners, self.policies, self.optimizers):
            entry = saved["learners"][spec.name]
            # Compared as settings: a checkpoint from before a setting existed has its default.
            if SequencePolicyConfig(**entry["policy"]) != policy.config:
                raise ConfigError(
                    "resume", expected=f"learner {spec.name} with policy {asdict(policy.config)}",
                    got=str(entry["policy"]),
                )
            policy.load_state_dict(entry["state_dict"])
            optimizer.load_state_dict(entry["optimizer"])
        self.updates_done = saved["updates_done"]
        self.history = saved["history"]
        self.rng.bit_generator.state = saved["rng"]
        return saved
