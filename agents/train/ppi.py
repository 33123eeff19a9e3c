"""Predictive policy improvement (PPI): the sequence policy as a world model, planned with.

After the in-context co-player inference work (Weis, Wołczyk et al., 2026, section 2 and
appendix A.3.1), simplified to run on a CPU:

- The policy's heads predict the agent's own next action (the prior p(a | h)) and the
  co-player's; with the game's payoffs that is a model of the whole interaction.
- Before the first phase, the model learns from games between random memory-one co-players
  (unless ``pretrain_episodes`` is 0).
- Acting: for each candidate action, ``samples`` rollouts of ``depth`` rounds inside the
  model (never past the episode's end; ``depth: end`` rolls out to it; with
  ``knows_horizon: false`` the planner is not told where the end is and imagines past it,
  as the agent's inputs never say the round) give Q(h, a); the
  agent plays pi(a | h) ∝ p(a | h) exp(beta * Q(h, a)). Sample j of each candidate action
  uses the same random numbers, so the two estimates differ by the action, not by noise.
  Bootstrapped rollouts diverge after the first round and end on different value estimates,
  each scaled by 1 / (1 - gamma), so a few samples leave Q(h, C) - Q(h, D) mostly noise
  (``studies/ppi_q_noise.py`` measures it). With ``samples: exact`` a short search takes
  the expectation over every joint outcome instead, without noise; but the noise is also the
  learners' only exploration, and planned exactly they can stop trying cooperation at all.
- With ``bootstrap``, the value head learns the discounted return that follows each
  history in the replay, and a rollout adds the value where it stops: a short rollout then
  also credits what an action does to the rest of the episode, such as a co-player's
  trust.
- After each phase (one trainer update), the model is fitted on a replay of every episode so
  far, the pretraining games included, so the prior moves toward the improved policy slowly.
  (The paper retrains from scratch on all data each phase; fitting a few steps is cheaper.)
  With ``replay_phases``, the replay keeps only the newest phases, so the prior follows the
  latest improved policy and successive improvements compound.
- The prior is fitted to the actions played (``prior_target: actions``), or to the improved
  policy's log-odds of cooperating at each step played (``log_odds``). Fitted to actions, noise
  in Q(h, C) - Q(h, D) flattens each phase's improvement (the mean of a sigmoid over noisy
  log-odds lies nearer 1/2 than the sigmoid of their mean), and a learner's log-odds settle at
  about beta * signal / (shrinkage - 1): with noise as large as the signal, near 1/2.
  Fitted to log-odds, the squared error averages the noise out, and the prior moves by beta
  times the mean Q difference per phase, within ``log_odds_limit``.
- Fitted to log-odds, the prior no longer needs the acted policy to be the improved one:
  with ``acting_beta`` below ``beta`` the learners play p(a | h) exp(acting_beta * Q(h, a))
  (``toward_prior``), with less of the planning noise, while the prior still moves by beta
  times the mean Q difference; with ``acting_temperature`` below 1 they play their likelier
  action more surely.

The replay is part of the trainer's state, saved and restored with it. GRU backbones only:
planning copies the recurrent state once per rollout. In the identity ablation the model also
reads the co-player's identity vector, which stays fixed through a game, so a rollout keeps it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch.nn import functional as F

import envs
from agents.coplayers import MemoryOneAgent
from agents.sequence import NO_ACTION, GRUPolicy, PolicyOutputs, SequencePolicy, StepInputs
from agents.train.config import PPISettings
from agents.train.experience import IDENTITY_SIZE, Rollout, apply_gradients
from coplay.errors import ConfigError


def own_payoffs(payoffs: envs.Payoffs) -> torch.Tensor:
    """``own[a, c]``: the reward for playing ``a`` against ``c``, the same in either seat."""
    if payoffs.as_rstp() is None:
        raise ConfigError(
            "train.algorithm", expected="a symmetric game for ppi (its model is seat-blind)",
            got=f"payoffs {payoffs.table.tolist()}",
        )
    return torch.tensor(payoffs.table[..., 0], dtype=torch.float32)


class ModelRounds:
    """A GRU policy's model of the game, one imagined round at a time, for B rollouts.

    In a rollout, a round's joint outcome (own action, co-player action) fixes the next input
    (token, previous action, reward), so the GRU's input side is four precomputed rows and a
    round costs one hidden-to-hidden product. Planning with it takes about 60% of the time that
    stepping the policy took, with the same numbers (a test checks).

    With ``identity`` (G, IDENTITY_SIZE), the identity ablation's input for G games: its
    embedding is the last block of the GRU's input, so its share of the input gates is added
    to every row. Rows are game-minor: row i belongs to game i mod G.
    """

    def __init__(self, policy: GRUPolicy, payoff: torch.Tensor, identity: torch.Tensor | None = None) -> None:
        gru = policy.gru
        own, theirs = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])
        rounds = StepInputs(1 + 2 * own + theirs, own, payoff[own, theirs])
        if policy.embed_identity is None:
            self.input_gates = F.linear(policy.embed(rounds), gru.weight_ih_l0, gru.bias_ih_l0)  # (4, 3h)
            self.identity_gates = None
        else:
            if identity is None:
                raise ConfigError(
                    "ppi planning", expected="the co-players' identity vectors",
                    got="none", fix="This policy was trained with the identity ablation.",
                )
            # Embed the four rounds with a zero identity, whose share is the identity layer's bias.
            blank = torch.zeros(4, policy.config.identity_size)
            joint = policy.embed(rounds._replace(identity=blank))
            self.input_gates = F.linear(joint, gru.weight_ih_l0, gru.bias_ih_l0)
            identity_weight = gru.weight_ih_l0[:, -policy.config.embed_size:]
            self.identity_gates = F.linear(
                policy.embed_identity(identity) - policy.embed_identity.bias, identity_weight
            )  # (B, 3h)
        self.weight_hh, self.bias_hh = gru.weight_hh_l0, gru.bias_hh_l0
        # Cooperating is action 0: each head's logit margin for it, then the value.
        self.head_weight = torch.stack([
            policy.policy_head.weight[0] - policy.policy_head.weight[1],
            policy.coplayer_head.weight[0] - policy.coplayer_head.weight[1],
            policy.value_head.weight[0],
        ])
        self.head_bias = torch.stack([
            policy.policy_head.bias[0] - policy.policy_head.bias[1],
            policy.coplayer_head.bias[0] - policy.coplayer_head.bias[1],
            policy.value_head.bias[0],
        ])

    def __call__(self, hidden: torch.Tensor, own: torch.Tensor, theirs: torch.Tensor):
        """The hidden state (B, h) after the round (own, theirs), and from it the prior's and
        the co-player head's probabilities of cooperating next, and the value."""
        x = self.input_gates[2 * own + theirs]
        if self.identity_gates is not None:
            games, width = self.identity_gates.shape
            x = (x.view(-1, games, width) + self.identity_gates).view(-1, width)
        h = F.linear(hidden, self.weight_hh, self.bias_hh)
        x_r, x_z, x_n = x.chunk(3, dim=1)
        h_r, h_z, h_n = h.chunk(3, dim=1)
        reset, update = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        hidden = torch.lerp(torch.tanh(x_n + reset * h_n), hidden, update)
        heads = F.linear(F.silu(hidden), self.head_weight, self.head_bias)
        return hidden, torch.sigmoid(heads[:, 0]), torch.sigmoid(heads[:, 1]), heads[:, 2]


def rollout_depth(settings: PPISettings, rounds_left: int | None) -> int:
    """Rounds to imagine from a history with ``rounds_left`` rounds to play, this one included
    (None: unknown, as in games of random length)."""
    if settings.depth == "end":
        if rounds_left is None:
            raise ConfigError(
                "train.ppi.depth", expected="a number of rounds for games of unknown length",
                got="'end'",
            )
        return rounds_left
    return settings.depth if rounds_left is None else min(settings.depth, rounds_left)


@torch.no_grad()
def plan(
    policy: SequencePolicy, outputs: PolicyOutputs, state: torch.Tensor, *,
    settings: PPISettings, gamma: float, payoff: torch.Tensor, generator: torch.Generator,
    rounds_left: int | None, identity: torch.Tensor | None = None,
) -> torch.Tensor:
    """log pi(a | h) for B games: the prior re-weighted by model-rollout action values.
    ``identity``: the co-players' identity vectors (B, IDENTITY_SIZE), identity ablation only.

    Sampled rollouts of the two candidate actions share their random numbers (sample j of
    cooperating and sample j of defecting draw the same uniforms), so the noise cancels in
    Q(h, C) - Q(h, D), which is all the improvement uses, until the two rollouts diverge."""
    if not settings.knows_horizon:
        rounds_left = None
    depth = rollout_depth(settings, rounds_left)
    search = RolloutSearch(
        model=ModelRounds(policy, payoff, identity), payoff=payoff, gamma=gamma, depth=depth,
        bootstrap=settings.bootstrap and (rounds_left is None or depth < rounds_left),
    )
    p_theirs = torch.sigmoid(outputs.coplayer_logits[:, 0] - outputs.coplayer_logits[:, 1])
    if settings.samples == "exact":
        q = search.exact(state[0], p_theirs)
    else:
        q = search.sampled(state[0], p_theirs, settings.samples, generator)
    return F.log_softmax(F.log_softmax(outputs.logits, -1) + settings.beta * q, -1)


def acting_policy(
    improved: torch.Tensor, prior_logits: torch.Tensor, settings: PPISettings, phase: int | None,
) -> torch.Tensor:
    """log pi (B, 2) a learner plays by in ``phase`` (None: after training): the improved
    policy moved toward the prior by ``acting_beta``, then sharpened by ``acting_temperature``."""
    acted = toward_prior(improved, prior_logits, settings.acting_share(phase))
    temperature = settings.acting_temperature_in(phase)
    return acted if temperature == 1.0 else F.log_softmax(acted / temperature, -1)


def toward_prior(improved: torch.Tensor, prior_logits: torch.Tensor, share: float) -> torch.Tensor:
    """log pi_act (B, 2) between the prior (share 0) and the improved policy (share 1): since
    log pi = log p + beta * Q + const, p^(1 - share) pi^share is p exp(share * beta * Q), the
    policy a smaller beta would give, from the same rollouts."""
    if share == 1.0:
        return improved
    log_prior = F.log_softmax(prior_logits, -1)
    return F.log_softmax(torch.lerp(log_prior, improved, share), -1)


class RolloutSearch(NamedTuple):
    """Q(h, a) for G games and both candidate actions a, inside a model: ``depth`` rounds in
    which the co-player plays as its head predicts and the agent as its prior, then (with
    ``bootstrap``) the value head's estimate of the rest."""

    model: ModelRounds
    payoff: torch.Tensor
    gamma: float
    depth: int
    bootstrap: bool

    def sampled(self, hidden: torch.Tensor, p_theirs: torch.Tensor, samples: int,
                generator: torch.Generator) -> torch.Tensor:
        """Monte Carlo: ``samples`` rollouts per candidate action, (G, 2)."""
        n, k = hidden.shape[0], samples
        own = torch.arange(2).repeat_interleave(k * n)  # rows: action-major, then sample, game
        hidden = hidden.repeat(2 * k, 1)
        p_theirs = p_theirs.repeat(2 * k)
        value = torch.zeros(2 * k * n)
        discount = 1.0
        for round_ in range(self.depth):
            uniforms = torch.rand(2, k * n, generator=generator).repeat(1, 2)
            theirs = (uniforms[0] >= p_theirs).long()
            value += discount * self.payoff[own, theirs]
            discount *= self.gamma
            if round_ == self.depth - 1 and not self.bootstrap:
                break
            hidden, p_own, p_theirs, estimate = self.model(hidden, own, theirs)
            own = (uniforms[1] >= p_own).long()
        if self.bootstrap:  # the value head predicts (1 - gamma) times the return
            value += discount * estimate / (1.0 - self.gamma)
        return value.view(2, k, n).mean(dim=1).T

    def exact(self, hidden: torch.Tensor, p_theirs: torch.Tensor) -> torch.Tensor:
        """The expectation over every joint outcome of the rounds, (G, 2): no sampling noise,
        at the price of 4^depth leaves per game.

        Each tensor is (branches, games), the candidate action the outermost branch. Every round
        splits each branch on the co-player's reply, then (if a round follows) on the agent's
        own next action, each weighted by its head's probability."""
        n, size = hidden.shape
        own = torch.arange(2)[:, None].expand(2, n)
        weight, value = torch.ones(2, n), torch.zeros(2, n)
        hidden, p_theirs = hidden.expand(2, n, size), p_theirs.expand(2, n)
        discount = 1.0
        for round_ in range(self.depth):
            theirs = _choices(own.shape[0])
            weight = _split(weight, p_theirs)
            own, value, hidden = (x.repeat_interleave(2, dim=0) for x in (own, value, hidden))
            value = value + discount * self.payoff[own, theirs]
            discount *= self.gamma
            if round_ == self.depth - 1 and not self.bootstrap:
                break
            branches = own.shape[0]
            hidden, p_own, p_theirs, estimate = self.model(
                hidden.reshape(-1, size), own.reshape(-1), theirs.expand(branches, n).reshape(-1)
            )
            hidden, p_own, p_theirs, estimate = (
                x.view(branches, n, *x.shape[1:]) for x in (hidden, p_own, p_theirs, estimate)
            )
            if round_ == self.depth - 1:
                break
            own, weight = _choices(branches).expand(2 * branches, n), _split(weight, p_own)
            value, hidden, p_theirs = (x.repeat_interleave(2, dim=0) for x in (value, hidden, p_theirs))
        if self.bootstrap:
            value = value + discount * estimate / (1.0 - self.gamma)
        return (weight * value).view(2, -1, n).sum(dim=1).T


def _choices(branches: int) -> torch.Tensor:
    """(2 * branches, 1): the action of each new branch, cooperate then defect, per old branch."""
    return torch.arange(2).repeat(branches)[:, None]


def _split(weight: torch.Tensor, p_cooperate: torch.Tensor) -> torch.Tensor:
    """(B, G) -> (2B, G): each branch's weight, split by the chance of cooperating or not."""
    return torch.stack([weight * p_cooperate, weight * (1.0 - p_cooperate)], dim=1).flatten(0, 1)


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
