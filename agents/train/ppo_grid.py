"""PPO for egocentric grid views, with exploration bonuses: the whole recipe in one file.

Read it top to bottom: settings, then ``GridTrainer`` (build, ``collect`` a rollout, compute
advantages, ``update``), then saving and restoring.

Episode boundaries. Gymnasium's vector envs reset in *next-step* mode: the step that ends an
episode returns its true last observation, and the following ``step`` ignores its action and
returns the new episode's first observation with reward 0. That second transition belongs to
no episode. The rollout marks it ``valid = False``: it earns no bonus, takes no part in any
loss, and cuts the advantage recursion; the observation it returns starts a new episode, so
the bonus ``begin``s there and a recurrent policy's state is reset there (``starts``).
Terminated episodes bootstrap from 0; truncated ones from the value of their true last
observation, which the invalid transition's row holds.

Intrinsic rewards are computed as the rollout is collected (episodic memories must see the
episode in order), normalised, scaled by ``bonus.coef`` and added to the task's reward before
the advantages, as the bonus papers do.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from pydantic import ConfigDict, Field, model_validator
from pydantic.dataclasses import dataclass as settings
from torch.distributions import Categorical

import envs  # noqa: F401  (registers the grid tasks with Gymnasium)
from agents.checkpoint import load_checkpoint, write_checkpoint
from agents.exploration import BonusConfig, IntrinsicNormalizer, Transitions, make_bonus
from agents.grid_policy import GridPolicy, GridPolicyConfig
from agents.train.experience import apply_gradients, normalized
from coplay.errors import ConfigError

LEARNER = "agent"  # the learning-curve name of the one agent a grid run trains


# The update's settings, fixed for every grid task.
EPOCHS = 4
LEARNING_RATE = 5e-4
ADAM_EPS = 1e-5
GAMMA = 0.99
GAE_LAMBDA = 0.95
CLIP = 0.2
VALUE_COEF = 0.5
ENTROPY_COEF = 0.01
MAX_GRAD_NORM = 0.5


@settings(frozen=True, kw_only=True, config=ConfigDict(extra="forbid"))
class GridPPOConfig:
    # Environment steps over the whole run, rounded up to whole updates.
    frames: int = Field(default=1_000_000, ge=1)
    envs: int = Field(default=16, ge=1)
    steps: int = Field(default=128, ge=1)  # per env per update
    minibatches: int = Field(default=4, ge=1)  # per epoch, split over envs (whole sequences)
    policy: GridPolicyConfig = field(default_factory=GridPolicyConfig)
    seed: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _minibatches_split_the_envs(self) -> GridPPOConfig:
        if self.minibatches > self.envs:
            raise ValueError(f"minibatches: expected at most train.envs ({self.envs}), since "
                             f"minibatches split the envs, got {self.minibatches}")
        return self

    @property
    def updates(self) -> int:
        return math.ceil(self.frames / (self.envs * self.steps))


@dataclass
class Rollout:
    """``steps`` transitions of every env; observation row ``steps`` is the one after."""

    observations: torch.Tensor  # (T+1, N, W, H, 3) uint8
    starts: torch.Tensor  # (T+1, N) bool: the row's observation begins an episode
    actions: torch.Tensor  # (T, N)
    log_probs: torch.Tensor
    values: torch.Tensor  # (T+1, N); row T is the bootstrap value
    rewards: torch.Tensor  # task reward + coef * normalised bonus
    terminated: torch.Tensor  # (T, N) bool
    ended: torch.Tensor  # terminated or truncated
    valid: torch.Tensor  # false on the dummy transition of next-step autoreset
    initial_state: torch.Tensor  # (N, hidden) recurrent state before row 0


def advantages(data: Rollout, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over a rollout with next-step autoreset: see the module docstring."""
    steps = data.actions.shape[0]
    adv = torch.zeros_like(data.rewards)
    running = torch.zeros_like(data.rewards[0])
    for t in reversed(range(steps)):
        bootstrap = data.values[t + 1] * (~data.terminated[t])
        delta = data.rewards[t] + gamma * bootstrap - data.values[t]
        running = (delta + gamma * lam * (~data.ended[t]) * running) * data.valid[t]
        adv[t] = running
    return adv, adv + data.values[:-1]


def make_envs(env_id: str, env_settings: dict[str, Any], count: int) -> gym.vector.SyncVectorEnv:
    def build() -> gym.Env:
        return gym.make(env_id, disable_env_checker=True, **env_settings)

    return gym.vector.SyncVectorEnv([build] * count,
                                    autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)


class GridTrainer:
    def __init__(self, env_id: str, env_settings: dict[str, Any], config: GridPPOConfig,
                 bonus: BonusConfig) -> None:
        self.config = config
        self.bonus_config = bonus
        self.envs = make_envs(env_id, env_settings, config.envs)
        view_size = self.envs.single_observation_space.shape[0]
        num_actions = int(self.envs.single_action_space.n)
        torch.manual_seed(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.policy = GridPolicy(config.policy, view_size=view_size, num_actions=num_actions)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=LEARNING_RATE, eps=ADAM_EPS)
        self.bonus = make_bonus(bonus, num_envs=config.envs, num_actions=num_actions,
                                view_size=view_size, seed=config.seed)
        self.normalizer = IntrinsicNormalizer(config.envs, GAMMA)
        self.updates_done = 0
        self.frames_done = 0
        self._restart_episodes(config.seed)

    def _restart_episodes(self, seed: int) -> None:
        observations, info = self.envs.reset(seed=seed)
        n = self.config.envs
        self.observations = observations
        self.starts = np.ones(n, dtype=bool)
        self.pending_reset = np.zeros(n, dtype=bool)
        self.state = self.policy.initial_state(n)
        self.episode_return = np.zeros(n)
        self.episode_length = np.zeros(n, dtype=np.int64)
        if self.bonus is not None:
            self.bonus.begin(self.starts, observations, info["position"])

    @property
    def learner_names(self) -> tuple[str, ...]:
        return (LEARNER,)

    def finished(self) -> bool:
        return self.updates_done >= self.config.updates

    def collect(self) -> tuple[Rollout, dict[str, float]]:
        """Play ``steps`` steps in every env with the current policy."""
        c, n = self.config, self.config.envs
        obs = torch.zeros((c.steps + 1, n, *self.observations.shape[1:]), dtype=torch.uint8)
        starts = torch.zeros((c.steps + 1, n), dtype=torch.bool)
        actions = torch.zeros((c.steps, n), dtype=torch.int64)
        log_probs = torch.zeros((c.steps, n))
        values = torch.zeros((c.steps + 1, n))
        rewards = torch.zeros((c.steps, n))
        terminated = torch.zeros((c.steps, n), dtype=torch.bool)
        ended = torch.zeros((c.steps, n), dtype=torch.bool)
        valid = torch.zeros((c.steps, n), dtype=torch.bool)
        initial_state = self.state.clone()
        returns, lengths, successes, raw_bonuses = [], [], [], []
        for t in range(c.steps):
            obs[t] = torch.from_numpy(self.observations)
            starts[t] = torch.from_numpy(self.starts)
            with torch.no_grad():
                logits, values[t], self.state = self.policy.step(obs[t], self.state, starts[t])
                dist = Categorical(logits=logits)
                actions[t] = torch.multinomial(dist.probs, 1, generator=self.generator).squeeze(1)
                log_probs[t] = dist.log_prob(actions[t])
            next_obs, reward, term, trunc, info = self.envs.step(actions[t].numpy())
            arrived = ~self.pending_reset
            task_reward = np.where(arrived, reward, 0.0)
            total_reward = task_reward
            if self.bonus is not None:
                raw = self.bonus.reward(next_obs, info["position"], arrived)
                raw_bonuses.append(raw[arrived])
                intrinsic = self.normalizer(raw, arrived) if self.bonus_config.normalize else raw
                total_reward = task_reward + self.bonus_config.coef * intrinsic
                if self.pending_reset.any():
                    self.bonus.begin(self.pending_reset, next_obs, info["position"])
            done = (term | trunc) & arrived
            self.episode_return += task_reward
            self.episode_length += arrived
            for i in np.flatnonzero(done):
                returns.append(self.episode_return[i])
                lengths.append(self.episode_length[i])
                successes.append(bool(info["success"][i]))
                self.episode_return[i], self.episode_length[i] = 0.0, 0
            rewards[t] = torch.from_numpy(total_reward.astype(np.float32))
            terminated[t] = torch.from_numpy(term & arrived)
            ended[t], valid[t] = torch.from_numpy(done), torch.from_numpy(arrived)
            self.starts = self.pending_reset
            self.pending_reset = done
            self.observations = next_obs
        obs[c.steps] = torch.from_numpy(self.observations)
        starts[c.steps] = torch.from_numpy(self.starts)
        with torch.no_grad():
            _, values[c.steps], _ = self.policy.step(obs[c.steps], self.state, starts[c.steps])
        rollout = Rollout(obs, starts, actions, log_probs, values, rewards, terminated, ended,
                          valid, initial_state)
        stats = {"episodes": float(len(returns))}
        if returns:
            stats |= {"success_rate": float(np.mean(successes)), "return": float(np.mean(returns)),
                      "episode_length": float(np.mean(lengths))}
        if raw_bonuses:
            stats["bonus"] = float(np.concatenate(raw_bonuses).mean())
        return rollout, stats

    def update(self, data: Rollout) -> dict[str, float]:
        """``epochs`` clipped passes; each minibatch is a group of envs' whole rollouts."""
        c = self.config
        with torch.no_grad():
            adv, returns = advantages(data, GAMMA, GAE_LAMBDA)
        totals: dict[str, list[float]] = {}
        for epoch in range(EPOCHS):
            for group in torch.randperm(c.envs, generator=self.generator).chunk(c.minibatches):
                mask = data.valid[:, group]
                if not mask.any():
                    continue
                logits, values = self.policy.replay(
                    data.observations[:-1, group], data.initial_state[group], data.starts[:-1, group])
                dist = Categorical(logits=logits[mask])
                log_probs = dist.log_prob(data.actions[:, group][mask])
                batch_adv = normalized(adv[:, group][mask])
                ratio = torch.exp(log_probs - data.log_probs[:, group][mask])
                clipped = ratio.clamp(1 - CLIP, 1 + CLIP)
                policy_loss = -torch.min(ratio * batch_adv, clipped * batch_adv).mean()
                value_loss = 0.5 * (values[mask] - returns[:, group][mask]).pow(2).mean()
                entropy = dist.entropy().mean()
                loss = policy_loss + VALUE_COEF * value_loss - ENTROPY_COEF * entropy
                apply_gradients(self.optimizer, loss, self.policy, MAX_GRAD_NORM)
                metrics = {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(),
                           "entropy": entropy.item(),
                           "clip_fraction": ((ratio - 1).abs() > CLIP).float().mean().item()}
                if self.bonus is not None and epoch == 0:  # one pass: the bonus models' data
                    metrics |= self.bonus.fit(Transitions(
                        observations=data.observations[:-1, group][mask],
                        next_observations=data.observations[1:, group][mask],
                        actions=data.actions[:, group][mask],
                    ))
                for name, value in metrics.items():
                    totals.setdefault(name, []).append(value)
        return {name: sum(values) / len(values) for name, values in totals.items()}

    def step(self) -> list[dict[str, float]]:
        """One update: collect, then learn. Returns the learning-curve point of the one
        learner (a list, as trainers of several learners return one point each)."""
        start = time.perf_counter()
        rollout, stats = self.collect()
        metrics = self.update(rollout)
        frames = rollout.actions.numel()
        self.frames_done += frames
        self.updates_done += 1
        return [{"frames": float(self.frames_done), **stats, **metrics,
                 "frames_per_second": frames / (time.perf_counter() - start)}]

    def save(self, path: str | Path, *, extra: dict[str, Any] | None = None) -> None:
        write_checkpoint(path, {
            "recipe": "ppo_grid",
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "bonus": None if self.bonus is None else self.bonus.state_dict(),
            "normalizer": self.normalizer.state_dict(),
            "updates_done": self.updates_done,
            "frames_done": self.frames_done,
            "generator": self.generator.get_state(),
            **(extra or {}),
        })

    def restore(self, path: str | Path) -> dict:
        """Load a checkpoint of this run. Learning state is restored exactly; the envs start
        fresh episodes (seeded from the update count), as minigrid cannot save its own."""
        saved = load_checkpoint(path, where="--resume")
        if saved.get("recipe") != "ppo_grid":
            raise ConfigError("--resume", expected="a checkpoint of a grid exploration run",
                              got=repr(str(path)))
        self.policy.load_state_dict(saved["policy"])
        self.optimizer.load_state_dict(saved["optimizer"])
        if self.bonus is not None:
            self.bonus.load_state_dict(saved["bonus"])
        self.normalizer.load_state_dict(saved["normalizer"])
        self.updates_done = int(saved["updates_done"])
        self.frames_done = int(saved["frames_done"])
        self.generator.set_state(saved["generator"])
        self._restart_episodes(self.config.seed + 1_000_003 * self.updates_done)
        return saved
