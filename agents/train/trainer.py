"""Decentralized training of several sequence-model learners side by side.

Each update: play one batch of episodes (every learner against its pool), then update each
learner on its own experience with A2C, PPO or PPI, several learners at once where torch may use
several threads. A ``Trainer`` owns the learners, their
optimizers and every random stream, and saves all of it in one checkpoint, so a run resumed
from a checkpoint continues exactly as if it had never stopped. The same file names the
learners' policies, so a scenario can seat a trained learner as an agent.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

import envs
from agents.base import Agent
from agents.checkpoint import CheckpointRef, load_checkpoint, load_policy, write_checkpoint
from agents.sequence import SequencePolicy, SequencePolicyConfig, make_policy
from agents.train import a2c, ppi, ppo
from agents.train.config import TrainConfig
from agents.train.experience import (
    IDENTITY_SIZE,
    LEARNERS,
    LearnerThreads,
    Rollout,
    collect,
    episode_metrics,
    seating,
)
from coplay.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class LearnerSpec:
    name: str
    policy: SequencePolicyConfig
    init: CheckpointRef | None = None  # start from a trained learner instead of random weights


@dataclass(frozen=True, kw_only=True)
class TrainingSetup:
    """What is trained, against whom, on which game."""

    game: envs.MatrixGameConfig
    learners: tuple[LearnerSpec, ...]
    pool: Mapping[str, float]  # LEARNERS and co-player names -> share of each learner's episodes
    config: TrainConfig

    def __post_init__(self) -> None:
        if not self.learners:
            raise ConfigError("train.learners", expected="at least one learner", got="none")
        names = [spec.name for spec in self.learners]
        if len(set(names)) != len(names):
            raise ConfigError("train.learners", expected="distinct names", got=str(names))
        if not self.pool or any(w < 0 for w in self.pool.values()) or sum(self.pool.values()) <= 0:
            raise ConfigError(
                "train.pool", expected="weights >= 0 with a positive sum", got=str(dict(self.pool))
            )


Metrics = list[dict[str, float]]  # one dict per learner


class Trainer:
    def __init__(self, setup: TrainingSetup, coplayers: Mapping[str, Agent]) -> None:
        missing = sorted(set(setup.pool) - {LEARNERS} - set(coplayers))
        if missing:
            raise ConfigError(
                "train.pool", expected="co-players defined under agents", got=f"unknown {missing}"
            )
        self.setup = setup
        self.config = setup.config
        self.groups = [name for name in setup.pool if name != LEARNERS]
        self.coplayers = [coplayers[name] for name in self.groups]
        self.rng = np.random.default_rng(self.config.seed)
        # Initial weights come from torch's global generator; fork it so that building a
        # trainer neither depends on nor changes the caller's random state.
        with torch.random.fork_rng():
            torch.manual_seed(self.config.seed)
            self.policies = [self._initial_policy(spec) for spec in setup.learners]
        self.optimizers = [
            torch.optim.Adam(p.parameters(), lr=self.config.learning_rate, eps=self.config.adam_eps)
            for p in self.policies
        ]
        self.owner = seating(
            len(self.policies), self.config.episodes_per_update, setup.pool, self.groups
        )
        self.updates_done = 0
        self.history: list[Metrics] = []
        # PPI: the episodes each learner's model refits on, and the payoffs it plans with.
        keep_phases = self.config.ppi.replay_phases if self.config.ppi else 0
        log_odds = self.config.ppi is not None and self.config.ppi.prior_target == "log_odds"
        self.replays = [ppi.Replay(keep_phases, log_odds=log_odds) for _ in self.policies]
        if self.config.algorithm == "ppi":
            self.own_payoffs = ppi.own_payoffs(setup.game.payoffs)

    def _initial_policy(self, spec: LearnerSpec) -> SequencePolicy:
        wanted = spec.policy
        if self.config.identity_vector:
            wanted = SequencePolicyConfig(**{**asdict(wanted), "identity_size": IDENTITY_SIZE})
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

    def step(self) -> Metrics:
        """One update of every learner; returns each learner's metrics."""
        start = time.perf_counter()
        if self.config.algorithm == "ppi" and not any(r.parts for r in self.replays):
            self._pretrain_models()
        for policy in self.policies:
            policy.eval()
        # Each learner acts and updates with its own random streams, seeded here in order, so
        # that the result does not depend on how many learners run at once.
        acting_seeds, update_seeds = self.rng.integers(2**63, size=(2, len(self.policies)))
        with LearnerThreads(len(self.policies)) as threads:
            data = collect(
                self.setup.game, self.policies, self.owner, self.coplayers, self.rng,
                [torch.Generator().manual_seed(int(seed)) for seed in acting_seeds],
                identity=self.config.identity_vector,
                acting=self._plan if self.config.algorithm == "ppi" else None, threads=threads,
            )
            rollout_seconds = time.perf_counter() - start
            metrics = threads.map(lambda i: self._update(i, data[i], int(update_seeds[i])))
        seconds = time.perf_counter() - start
        for m in metrics:
            m.update(rollout_seconds=rollout_seconds, seconds=seconds)
        self.updates_done += 1
        self.history.append(metrics)
        return metrics

    def _update(self, i: int, rollout: Rollout, seed: int) -> dict[str, float]:
        """Learner i's update on its experience; returns its metrics."""
        policy, optimizer = self.policies[i], self.optimizers[i]
        policy.train()
        if self.config.algorithm == "ppo":
            generator = torch.Generator().manual_seed(seed)
            losses = ppo.update(self.config, policy, optimizer, rollout, generator)
        elif self.config.algorithm == "ppi":
            self.replays[i].add_rollout(rollout)
            losses = ppi.fit(policy, optimizer, self.replays[i], self.config.ppi.fit_steps,
                             self.config.ppi, np.random.default_rng(seed),
                             self.config.max_grad_norm, self.config.gamma,
                             phase=self.updates_done + 1)
        else:
            losses = a2c.update(self.config, policy, optimizer, rollout)
        return {**episode_metrics(rollout, self.groups), **losses}

    def _planning(self) -> dict | None:
        """How a PPI learner acts (saved with it, so a frozen copy acts the same way)."""
        if self.config.algorithm != "ppi":
            return None
        return {"ppi": asdict(self.config.ppi), "gamma": self.config.gamma,
                "payoff": self.own_payoffs.tolist(), "horizon": self.setup.game.horizon}

    def _plan(
        self, policy: SequencePolicy, outputs, state, rounds_left: int, identity: torch.Tensor | None,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        improved = ppi.plan(policy, outputs, state, settings=self.config.ppi, gamma=self.config.gamma,
                            payoff=self.own_payoffs, generator=generator, rounds_left=rounds_left,
                            identity=identity)
        acting = ppi.acting_policy(improved, outputs.logits, self.config.ppi, self.updates_done + 1)
        return acting, improved

    def _pretrain_models(self) -> None:
        """PPI's models first learn how random memory-one co-players play."""
        settings = self.config.ppi
        if not settings.pretrain_episodes:
            return
        games = ppi.tabular_games(self.setup.game, settings.pretrain_episodes, self.rng)
        identity = games.identity if self.config.identity_vector else None
        seeds = self.rng.integers(2**63, size=len(self.policies))

        def pretrain(i: int) -> None:
            self.replays[i].add(games.observations, games.actions, games.coplayer_actions,
                                games.rewards, identity=identity)
            self.policies[i].train()
            ppi.fit(self.policies[i], self.optimizers[i], self.replays[i], settings.pretrain_steps,
                    settings, np.random.default_rng(seeds[i]), self.config.max_grad_norm,
                    self.config.gamma, phase=0)

        with LearnerThreads(len(self.policies)) as threads:
            threads.map(pretrain)

    def finished(self) -> bool:
        return self.updates_done >= self.config.updates

    def save(self, path: str | Path, *, extra: Mapping[str, object] | None = None) -> None:
        """Everything needed to resume exactly, and to seat the learners as agents."""
        write_checkpoint(path, {
            "learners": {
                spec.name: {"policy": asdict(policy.config), "state_dict": policy.state_dict(),
                            "optimizer": optimizer.state_dict(), "planning": self._planning()}
                for spec, policy, optimizer in zip(self.setup.learners, self.policies, self.optimizers)
            },
            "updates_done": self.updates_done,
            "history": self.history,
            "rng": self.rng.bit_generator.state,
            "replays": [replay.state_dict() for replay in self.replays],
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
            if entry["policy"] != asdict(policy.config):
                raise ConfigError(
                    "resume", expected=f"learner {spec.name} with policy {asdict(policy.config)}",
                    got=str(entry["policy"]),
                )
            policy.load_state_dict(entry["state_dict"])
            optimizer.load_state_dict(entry["optimizer"])
        self.updates_done = saved["updates_done"]
        self.history = saved["history"]
        self.rng.bit_generator.state = saved["rng"]
        for replay, parts in zip(self.replays, saved.get("replays", [[] for _ in self.replays])):
            replay.load_state_dict(parts)
        return saved
