"""Predictive policy improvement (PPI): learners that plan with their own policy as a model.

After the in-context co-player inference work (Weis, Wołczyk et al., 2026, section 2 and
appendix A.3.1), simplified to run on a CPU. Read top to bottom:

- Before the first phase (one trainer update), the model learns from games between random
  memory-one co-players (unless ``pretrain_episodes`` is 0).
- Each phase, the learners play one batch of episodes (``Trainer.step``), choosing each move by
  planning with their model (``planning.py``): the improved policy
  pi(a | h) ∝ p(a | h) exp(beta * Q(h, a)).
- After each phase, the model (the own-action prior, the co-player head, and with
  ``bootstrap`` the value head) is fitted on a replay of every episode so far, the pretraining
  games included, so the prior moves toward the improved policy slowly. (The paper retrains
  from scratch on all data each phase; fitting a few steps is cheaper.) With
  ``replay_phases``, the replay keeps only the newest phases, so the prior follows the latest
  improved policy and successive improvements compound.
- The prior is fitted to the actions played (``prior_target: actions``), or to the improved
  policy's log-odds of cooperating at each step played (``log_odds``). Fitted to actions, noise
  in Q(h, C) - Q(h, D) flattens each phase's improvement (the mean of a sigmoid over noisy
  log-odds lies nearer 1/2 than the sigmoid of their mean), so a learner's log-odds settle
  near 1/2. Fitted to log-odds, the squared error averages the noise out, and the prior moves
  by beta times the mean Q difference per phase, within ``log_odds_limit``; the acted policy
  then need not be the improved one (``acting_beta``, ``acting_temperature``).

The replay is part of the trainer's state, saved and restored with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.nn import functional as F

import envs
from agents.base import Agent
from agents.coplayers import MemoryOneAgent
from agents.sequence import NO_ACTION, PolicyOutputs, SequencePolicy, StepInputs
from agents.train.config import PPISettings
from agents.train.experience import (
    IDENTITY_SIZE,
    LearnerMemory,
    LearnerThreads,
    Rollout,
    apply_gradients,
)
from agents.train.planning import acting_policy, own_payoffs, plan
from agents.train.trainer import Metrics, Trainer, TrainingSetup


class PPI(Trainer):
    def __init__(self, setup: TrainingSetup, coplayers: Mapping[str, Agent], *,
                 memory: LearnerMemory | None = None) -> None:
        super().__init__(setup, coplayers, memory=memory)
        self.settings = self.config.ppi
        self.own_payoffs = own_payoffs(setup.game.payoffs)  # what the model plans with
        # The episodes each learner's model refits on.
        self.replays = [
            Replay(self.settings.replay_phases, log_odds=self.settings.prior_target == "log_odds")
            for _ in self.policies
        ]
        self.acting = self._plan

    def step(self) -> Metrics:
        if not any(replay.parts for replay in self.replays):
            self._pretrain_models()
        return super().step()

    def _pretrain_models(self) -> None:
        """The models first learn how random memory-one co-players play."""
        settings = self.settings
        if not settings.pretrain_episodes:
            return
        games = tabular_games(self.setup.game, settings.pretrain_episodes, self.rng)
        identity = games.identity if self.config.identity_vector else None
        seeds = self.rng.integers(2**63, size=len(self.policies))

        def pretrain(i: int) -> None:
            self.replays[i].add(games.observations, games.actions, games.coplayer_actions,
                                games.rewards, identity=identity)
            self.policies[i].train()
            fit(self.policies[i], self.optimizers[i], self.replays[i], settings.pretrain_steps,
                settings, np.random.default_rng(seeds[i]), self.config.max_grad_norm,
                self.config.gamma, phase=0)

        with LearnerThreads(len(self.policies)) as threads:
            threads.map(pretrain)

    def _plan(
        self, policy: SequencePolicy, outputs: PolicyOutputs, state: torch.Tensor, rounds_left: int,
        identity: torch.Tensor | None, generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A move in this phase: the policy played by, and the improved one (the prior's target)."""
        improved = plan(policy, outputs, state, settings=self.settings, gamma=self.config.gamma,
                        payoff=self.own_payoffs, generator=generator, rounds_left=rounds_left,
                        identity=identity)
        acting = acting_policy(improved, outputs.logits, self.settings, self.updates_done + 1)
        return acting, improved

    def update(self, i: int, rollout: Rollout, seed: int) -> dict[str, float]:
        self.replays[i].add_rollout(rollout)
        return fit(self.policies[i], self.optimizers[i], self.replays[i], self.settings.fit_steps,
                   self.settings, np.random.default_rng(seed), self.config.max_grad_norm,
                   self.config.gamma, phase=self.updates_done + 1)

    def planning(self) -> dict:
        return {"ppi": asdict(self.settings), "gamma": self.config.gamma,
                "payoff": self.own_payoffs.tolist(), "horizon": self.setup.game.horizon}

    def save(self, path: str | Path, *, extra: Mapping[str, object] | None = None) -> None:
        super().save(path, extra={"replays": [replay.state_dict() for replay in self.replays],
                                  **(extra or {})})

    def restore(self, path: str | Path) -> dict:
        saved = super().restore(path)
        # Checkpoints from before the replay was saved hold none: the replay starts empty.
        for replay, parts in zip(self.replays, saved.get("replays", [[] for _ in self.replays])):
            replay.load_state_dict(parts)
        return saved


def fit(
    policy: SequencePolicy, optimizer: torch.optim.Optimizer, replay: Replay, steps: int,
    settings: PPISettings, rng: np.random.Generator, max_grad_norm: float, gamma: float, *,
    phase: int,
) -> dict[str, float]:
    """Fit the model (own-action prior and co-player head; with ``settings.bootstrap``, the
    value head too) on minibatches from the replay, after ``phase`` phases (0: pretraining)."""
    log_odds = settings.fits_log_odds(phase)
    totals = {"prior_loss": 0.0, "coplayer_loss": 0.0, "entropy": 0.0}
    if settings.bootstrap:
        totals["value_loss"] = 0.0
    for _ in range(steps):
        batch = replay.sample(settings.minibatch, rng, recent_parts=settings.recent_phases)
        actions, rewards = batch["actions"].long(), batch["rewards"]
        outputs, _ = policy(replay_inputs(batch), policy.initial_state(actions.shape[1]))
        log_prior = F.log_softmax(outputs.logits, -1)
        if log_odds:
            prior_loss = log_odds_loss(log_prior, actions, batch["log_odds"], settings.log_odds_limit)
        else:
            prior_loss = F.nll_loss(log_prior.reshape(-1, 2), actions.reshape(-1))
        coplayer_loss = F.cross_entropy(
            outputs.coplayer_logits.reshape(-1, 2), batch["coplayer_actions"].long().reshape(-1)
        )
        loss = prior_loss + coplayer_loss
        if settings.bootstrap:
            # Targets scaled by (1 - gamma): per-round rewards, so the loss stays near one.
            target = (1.0 - gamma) * returns_to_go(rewards, gamma)
            value_loss = 0.5 * (outputs.value - target).pow(2).mean()
            loss = loss + value_loss
            totals["value_loss"] += value_loss.item()
        apply_gradients(optimizer, loss, policy, max_grad_norm)
        totals["prior_loss"] += prior_loss.item()
        totals["coplayer_loss"] += coplayer_loss.item()
        totals["entropy"] += -(log_prior.exp() * log_prior).sum(-1).mean().item()
    return {name: value / max(steps, 1) for name, value in totals.items()}


# The prior's log-odds are regressed with this spread, about that of a few rollouts' Q
# difference, so that the loss's gradients are of the size of a cross-entropy's.
LOG_ODDS_SCALE = 3.0


def log_odds_loss(log_prior: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor,
                  limit: float) -> torch.Tensor:
    """The prior's loss where the improved policy's log-odds of cooperating are known (targets,
    clipped to +-limit): squared error on the log-odds, whose minimiser over noisy targets is
    their mean; elsewhere (NaN targets) the negative log-likelihood of the action played."""
    known = torch.isfinite(targets)
    log_odds = log_prior[..., 0] - log_prior[..., 1]
    squared = 0.5 * ((log_odds - targets.nan_to_num().clamp(-limit, limit)) / LOG_ODDS_SCALE).pow(2)
    played = -log_prior.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    return torch.where(known, squared, played).mean()


def returns_to_go(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """(T, E): the discounted sum of each round's reward and those after it in its episode."""
    returns = torch.empty_like(rewards)
    following = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        following = rewards[t] + gamma * following
        returns[t] = following
    return returns


def replay_inputs(episodes: dict[str, torch.Tensor]) -> StepInputs:
    """The policy's inputs (T, E) for replayed episodes (a minibatch or a whole part): each
    step's token, and the agent's action and reward of the step before."""
    actions, rewards = episodes["actions"].long(), episodes["rewards"]
    identity = episodes.get("identity")
    return StepInputs(
        episodes["observations"].long(),
        torch.cat([torch.full_like(actions[:1], NO_ACTION), actions[:-1]]),
        torch.cat([torch.zeros_like(rewards[:1]), rewards[:-1]]),
        None if identity is None else identity.expand(actions.shape[0], -1, -1),
    )


class Replay:
    """Every episode a learner has seen, from its seat: tokens, own and co-player actions,
    rewards, each (T, E); one part per phase. With ``keep_phases``, only the newest parts.
    In the identity ablation also each episode's co-player identity, (1, E, IDENTITY_SIZE):
    it is the same every round, and a leading axis of one lets it be drawn like the rest.
    With ``log_odds``, also the acting policy's log-odds of cooperating at every step
    (NaN where the agent did not plan, as in the pretraining games)."""

    def __init__(self, keep_phases: int = 0, *, log_odds: bool = False) -> None:
        self.parts: list[dict[str, torch.Tensor]] = []
        self.keep_phases = keep_phases
        self.keeps_log_odds = log_odds

    def add(self, observations, actions, coplayer_actions, rewards, *, identity=None, log_odds=None) -> None:
        """One phase's episodes, each (T, E); ``identity`` (E, IDENTITY_SIZE) or None;
        ``log_odds`` (T, E) or None (kept only by a replay made with ``log_odds``)."""
        part = {
            "observations": torch.as_tensor(observations).to(torch.int8),
            "actions": torch.as_tensor(actions).to(torch.int8),
            "coplayer_actions": torch.as_tensor(coplayer_actions).to(torch.int8),
            "rewards": torch.as_tensor(rewards).to(torch.float32),
        }
        if self.keeps_log_odds:
            part["log_odds"] = (
                torch.full(part["rewards"].shape, float("nan")) if log_odds is None
                else torch.as_tensor(log_odds, dtype=torch.float32)
            )
        if identity is not None:
            part["identity"] = torch.as_tensor(identity, dtype=torch.float32).unsqueeze(0)
        if self.parts and self.parts[0].keys() != part.keys():
            raise ValueError("a replay holds episodes with identity vectors or without, not both")
        self.parts.append(part)
        if self.keep_phases:
            del self.parts[:-self.keep_phases]

    def add_rollout(self, rollout: Rollout) -> None:
        identity = rollout.inputs.identity
        self.add(rollout.inputs.observation, rollout.actions, rollout.coplayer_actions,
                 rollout.rewards, identity=None if identity is None else identity[0],
                 log_odds=rollout.log_odds)

    @property
    def episodes(self) -> int:
        return sum(part["actions"].shape[1] for part in self.parts)

    def sample(self, size: int, rng: np.random.Generator, *, recent_parts: int = 0):
        """A minibatch of whole episodes; with ``recent_parts``, half from the newest parts."""
        if recent_parts and len(self.parts) > recent_parts:
            half = size // 2
            return _join(self._draw(self.parts[-recent_parts:], half, rng),
                         self._draw(self.parts, size - half, rng))
        return self._draw(self.parts, size, rng)

    @staticmethod
    def _draw(parts, size, rng):
        sizes = np.array([part["actions"].shape[1] for part in parts])
        picks = rng.choice(sizes.sum(), size=min(size, sizes.sum()), replace=False)
        owner = np.searchsorted(np.cumsum(sizes), picks, side="right")
        offsets = picks - np.concatenate([[0], np.cumsum(sizes)[:-1]])[owner]
        return {
            key: torch.stack([parts[p][key][:, o] for p, o in zip(owner, offsets)], dim=1)
            for key in parts[0]
        }

    def state_dict(self) -> list[dict[str, torch.Tensor]]:
        return self.parts

    def load_state_dict(self, parts: list[dict[str, torch.Tensor]]) -> None:
        """A run resumed with another prior target keeps its episodes: those saved without
        log-odds get NaN ones (fitted to their actions), and unused log-odds are dropped."""
        self.parts = []
        for part in parts:
            part = {key: value for key, value in part.items() if key != "log_odds" or self.keeps_log_odds}
            if self.keeps_log_odds and "log_odds" not in part:
                part["log_odds"] = torch.full(part["rewards"].shape, float("nan"))
            self.parts.append(part)


def _join(a: dict, b: dict) -> dict:
    return {key: torch.cat([a[key], b[key]], dim=1) for key in a}


class TabularGames(NamedTuple):
    """Seat 0's view of games between random memory-one co-players: (T, E) arrays, and the
    identity vector of each game's seat-1 player (E, IDENTITY_SIZE; its table, learner flag 0)."""

    observations: np.ndarray
    actions: np.ndarray
    coplayer_actions: np.ndarray
    rewards: np.ndarray
    identity: np.ndarray


def tabular_games(game: envs.MatrixGameConfig, episodes: int, rng: np.random.Generator) -> TabularGames:
    """``episodes`` games between two random memory-one co-players, from seat 0."""
    batch = envs.MatrixGameBatch(game, batch_size=episodes)
    observations = batch.reset(rng)
    players = [MemoryOneAgent(None, sample_uniform=True) for _ in range(2)]
    for player in players:
        player.reset(episodes, rng)
    T = game.horizon
    tokens, own, theirs = (np.empty((T, episodes), dtype=np.int8) for _ in range(3))
    rewards = np.empty((T, episodes), dtype=np.float32)
    for t in range(T):
        actions = np.stack([players[0].act(observations[0]), players[1].act(observations[1])])
        tokens[t], own[t], theirs[t] = observations[0], actions[0], actions[1]
        result = batch.step(actions)
        rewards[t] = result.rewards[0]
        observations = result.observations
    identity = np.zeros((episodes, IDENTITY_SIZE), dtype=np.float32)
    identity[:, :5] = np.asarray(players[1].game_tables)
    return TabularGames(tokens, own, theirs, rewards, identity)
