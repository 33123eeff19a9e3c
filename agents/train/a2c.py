"""Decentralized A2C for sequence policies on the batched iterated-game core.

Each learner is trained on its own experience only (no shared parameters, no centralized
critic), against a pool: a fraction of its episodes against the other learners, the rest
against tabular memory-one co-players drawn fresh per episode. Co-player identity is never
an input. The recipe follows the in-context co-player inference work; defaults are that
paper's A2C settings.

Read top to bottom: config, game layout, rollout, advantage, loss, training loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

import envs
from agents.coplayers import MemoryOneAgent
from agents.sequence import NO_ACTION, GRUPolicy, SequencePolicyConfig, StepInputs
from coplay.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class A2CConfig:
    env_id: str = "coplay/ipd-v0"
    horizon: int = 100
    learners: int = 2
    episodes_per_update: int = 4096  # per learner
    learner_fraction: float = 0.5  # of a learner's episodes, played against other learners
    updates: int = 500
    policy: SequencePolicyConfig = field(default_factory=SequencePolicyConfig)
    learning_rate: float = 1e-3
    adam_eps: float = 1e-5
    gamma: float = 0.99
    gae_lambda: float = 1.0
    reward_scale: float = 0.02
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    coplayer_coef: float = 1.0
    max_grad_norm: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.learners < 1:
            raise ConfigError("train.learners", expected="at least 1", got=str(self.learners))
        if not 0.0 <= self.learner_fraction <= 1.0:
            raise ConfigError(
                "train.learner_fraction", expected="a fraction in [0, 1]",
                got=str(self.learner_fraction),
            )
        if self.episodes_per_update < 2:
            raise ConfigError(
                "train.episodes_per_update", expected="at least 2",
                got=str(self.episodes_per_update),
            )


TABULAR = -1


def game_layout(config: A2CConfig) -> np.ndarray:
    """Who sits where: ``owner[seat, game]`` is a learner index or TABULAR.

    Learner i meets learner i+1 (mod N) in seat 0 and learner i-1 in seat 1, so every learner
    has ``learner_fraction`` of its episodes against learners (itself when N = 1) and the rest
    against tabular co-players, in seat 0 or 1 alternately.
    """
    n, e = config.learners, config.episodes_per_update
    versus_learners = int(round(e * config.learner_fraction))
    versus_tabular = e - versus_learners
    blocks = []
    for i in range(n):
        blocks.append(np.full((2, versus_learners // 2), [[i], [(i + 1) % n]]))
        blocks.append(np.full((2, versus_tabular), [[i], [TABULAR]]))
    owner = np.concatenate(blocks, axis=1)
    # Put half of each learner's tabular games in seat 1 so it learns both seats.
    tabular_games = np.flatnonzero(owner[1] == TABULAR)
    owner[:, tabular_games[::2]] = owner[::-1, tabular_games[::2]]
    return owner


@dataclass
class Rollout:
    """One learner's experience from one batch of episodes, all shaped (T, S)."""

    inputs: StepInputs
    actions: torch.Tensor
    rewards: torch.Tensor
    coplayer_actions: torch.Tensor
    versus_learner: np.ndarray  # (S,) bool


def rollout(
    config: A2CConfig, policies: list[GRUPolicy], owner: np.ndarray,
    rng: np.random.Generator, generator: torch.Generator,
) -> list[Rollout]:
    game = envs.make_batch(config.env_id, owner.shape[1], horizon=config.horizon)
    observations = game.reset(rng)
    slots = [np.nonzero(owner == i) for i in range(len(policies))]
    tabular_slots = np.nonzero(owner == TABULAR)
    tabular = MemoryOneAgent(None, sample_uniform=True)
    tabular.reset(len(tabular_slots[0]), rng)

    T = config.horizon
    logs = [
        {k: torch.empty((T, len(s[0])), dtype=d) for k, d in
         (("obs", torch.long), ("prev_action", torch.long), ("prev_reward", torch.float32),
          ("action", torch.long), ("reward", torch.float32), ("coplayer", torch.long))}
        for s in slots
    ]
    states = [p.initial_state(len(s[0])) for p, s in zip(policies, slots)]
    previous = [(torch.full((len(s[0]),), NO_ACTION), torch.zeros(len(s[0]))) for s in slots]
    actions = np.empty_like(owner)
    with torch.no_grad():
        for t in range(T):
            for i, (policy, slot) in enumerate(zip(policies, slots)):
                obs = torch.from_numpy(observations[slot])
                inputs = StepInputs(obs, *previous[i])
                outputs, states[i] = policy.step(inputs, states[i])
                action = torch.multinomial(F.softmax(outputs.logits, -1), 1, generator=generator)[:, 0]
                actions[slot] = action.numpy()
                logs[i]["obs"][t], logs[i]["prev_action"][t] = obs, inputs.previous_action
                logs[i]["prev_reward"][t], logs[i]["action"][t] = inputs.previous_reward, action
            if len(tabular_slots[0]):
                actions[tabular_slots] = tabular.act(observations[tabular_slots])
            result = game.step(actions)
            for i, slot in enumerate(slots):
                reward = torch.from_numpy(result.rewards[slot]).float()
                logs[i]["reward"][t] = reward
                logs[i]["coplayer"][t] = torch.from_numpy(actions[1 - slot[0], slot[1]])
                previous[i] = (logs[i]["action"][t], reward)
            observations = result.observations
    return [
        Rollout(
            inputs=StepInputs(log["obs"], log["prev_action"], log["prev_reward"]),
            actions=log["action"], rewards=log["reward"], coplayer_actions=log["coplayer"],
            versus_learner=owner[1 - slot[0], slot[1]] != TABULAR,
        )
        for log, slot in zip(logs, slots)
    ]


def advantages(
    rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over whole episodes of equal length (the last step has no successor)."""
    T = rewards.shape[0]
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(T)):
        next_value = values[t + 1] if t + 1 < T else torch.zeros_like(values[t])
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * lam * running
        adv[t] = running
    return adv, adv + values


def update(
    config: A2CConfig, policy: GRUPolicy, optimizer: torch.optim.Optimizer, data: Rollout
) -> dict[str, float]:
    outputs, _ = policy(data.inputs, policy.initial_state(data.actions.shape[1]))
    values = outputs.value
    adv, returns = advantages(
        data.rewards * config.reward_scale, values.detach(), config.gamma, config.gae_lambda
    )
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    log_probs = F.log_softmax(outputs.logits, -1)
    chosen = log_probs.gather(-1, data.actions.unsqueeze(-1)).squeeze(-1)
    policy_loss = -(chosen * adv).mean()
    value_loss = 0.5 * (values - returns).pow(2).mean()
    entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
    coplayer_loss = F.cross_entropy(
        outputs.coplayer_logits.reshape(-1, 2), data.coplayer_actions.reshape(-1)
    )
    loss = (policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy
            + config.coplayer_coef * coplayer_loss)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
    optimizer.step()
    return {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(),
            "entropy": entropy.item(), "coplayer_loss": coplayer_loss.item()}


def episode_metrics(data: Rollout) -> dict[str, float]:
    cooperated = (data.actions == 0).float()
    metrics = {}
    for name, mask in (("learner", data.versus_learner), ("tabular", ~data.versus_learner)):
        if mask.any():
            columns = torch.from_numpy(np.flatnonzero(mask))
            metrics[f"cooperation_vs_{name}"] = cooperated[:, columns].mean().item()
            metrics[f"reward_vs_{name}"] = data.rewards[:, columns].mean().item()
    return metrics


def train(
    config: A2CConfig, on_update: Callable[[int, list[dict[str, float]]], None] = lambda u, m: None
) -> list[GRUPolicy]:
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    policies = [GRUPolicy(config.policy) for _ in range(config.learners)]
    optimizers = [
        torch.optim.Adam(p.parameters(), lr=config.learning_rate, eps=config.adam_eps)
        for p in policies
    ]
    owner = game_layout(config)
    for u in range(config.updates):
        start = time.perf_counter()
        data = rollout(config, policies, owner, rng, generator)
        metrics = []
        for policy, optimizer, d in zip(policies, optimizers, data):
            metrics.append({**episode_metrics(d), **update(config, policy, optimizer, d)})
        for m in metrics:
            m["seconds"] = time.perf_counter() - start
        on_update(u, metrics)
    return policies
