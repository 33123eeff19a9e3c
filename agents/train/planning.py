"""PPI's planner: a sequence policy used as a model of the game, and searched in.

The policy's heads predict the agent's own next action (the prior p(a | h)) and the
co-player's; with the game's payoffs that is a model of the whole interaction. For each
candidate action, ``samples`` rollouts of ``depth`` rounds inside the model (never past the
episode's end; ``depth: end`` rolls out to it; with ``knows_horizon: false`` the planner is
not told where the end is and imagines past it, as the agent's inputs never say the round)
give Q(h, a); the agent plays pi(a | h) ∝ p(a | h) exp(beta * Q(h, a)).

Sample j of each candidate action uses the same random numbers, so the two estimates differ by
the action, not by noise. Bootstrapped rollouts (``bootstrap``: a rollout adds the value head's
estimate where it stops, so a short rollout also credits what an action does to the rest of
the episode, such as a co-player's trust) diverge after the first round and end on different
value estimates, each scaled by 1 / (1 - gamma), so a few samples leave Q(h, C) - Q(h, D)
mostly noise (``studies/ppi_q_noise.py`` measures it). With ``samples: exact`` a short
search takes the expectation over every joint outcome instead, without noise; but the noise is
also the learners' only exploration.

With ``acting_beta`` below ``beta`` a learner plays p(a | h) exp(acting_beta * Q(h, a))
(``toward_prior``), with less of the planning noise; with ``acting_temperature`` below 1 it
plays its likelier action more surely. The recipe that trains with this planner is
``ppi.py``; a frozen learner (``agents/sequence_agent.py``) plans with it too.

GRU backbones only: planning copies the recurrent state once per rollout. In the identity
ablation the model also reads the co-player's identity vector, which stays fixed through a
game, so a rollout keeps it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.nn import functional as F

import envs
from agents.sequence import GRUPolicy, PolicyOutputs, SequencePolicy, StepInputs
from agents.train.config import PPISettings
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
