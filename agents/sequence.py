"""Sequence-model policies that infer their co-player in context.

Inputs per step, as in the in-context co-player inference work: the observation token, the
agent's previous action and its previous reward, each with its own linear embedding. A GRU
carries the episode's history; Swish on its output feeds three linear heads: the policy, the
value, and a prediction of the co-player's action this round. That last head is an auxiliary
loss during training and, at every step, the agent's readable belief about its co-player.

The recurrent state is explicit: callers pass it in and get it back, and a new episode starts
from ``initial_state``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from coplay.errors import ConfigError
from envs import NUM_TOKENS

NUM_ACTIONS = 2
NO_ACTION = 2  # the "previous action" before the first round


@dataclass(frozen=True, kw_only=True)
class SequencePolicyConfig:
    hidden_size: int = 128
    embed_size: int = 32

    def __post_init__(self) -> None:
        for name in ("hidden_size", "embed_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"policy.{name}", expected="a positive integer", got=repr(value))


class StepInputs(NamedTuple):
    """One step for B agents (shape (B,)), or a sequence of T steps (shape (T, B))."""

    observation: torch.Tensor  # int64 tokens, 0..4
    previous_action: torch.Tensor  # int64, 0 = C, 1 = D, 2 = none yet
    previous_reward: torch.Tensor  # float32


class PolicyOutputs(NamedTuple):
    logits: torch.Tensor  # (..., 2) action logits
    value: torch.Tensor  # (...,)
    coplayer_logits: torch.Tensor  # (..., 2) predicted co-player action this round


class GRUPolicy(nn.Module):
    def __init__(self, config: SequencePolicyConfig = SequencePolicyConfig()) -> None:
        super().__init__()
        self.config = config
        e, h = config.embed_size, config.hidden_size
        self.embed_observation = nn.Linear(NUM_TOKENS, e)
        self.embed_action = nn.Linear(NUM_ACTIONS + 1, e)
        self.embed_reward = nn.Linear(1, e)
        self.gru = nn.GRU(3 * e, h)
        self.policy_head = nn.Linear(h, NUM_ACTIONS)
        self.value_head = nn.Linear(h, 1)
        self.coplayer_head = nn.Linear(h, NUM_ACTIONS)

    def initial_state(self, batch_size: int) -> torch.Tensor:
        return torch.zeros(1, batch_size, self.config.hidden_size)

    def forward(
        self, inputs: StepInputs, state: torch.Tensor
    ) -> tuple[PolicyOutputs, torch.Tensor]:
        """Run T steps: inputs of shape (T, B), state (1, B, H). Returns (T, B, ...) outputs."""
        x = torch.cat([
            self.embed_observation(F.one_hot(inputs.observation, NUM_TOKENS).float()),
            self.embed_action(F.one_hot(inputs.previous_action, NUM_ACTIONS + 1).float()),
            self.embed_reward(inputs.previous_reward.unsqueeze(-1)),
        ], dim=-1)
        features, state = self.gru(x, state)
        features = F.silu(features)
        outputs = PolicyOutputs(
            logits=self.policy_head(features),
            value=self.value_head(features).squeeze(-1),
            coplayer_logits=self.coplayer_head(features),
        )
        return outputs, state

    def step(self, inputs: StepInputs, state: torch.Tensor) -> tuple[PolicyOutputs, torch.Tensor]:
        """One step for B agents: inputs of shape (B,)."""
        outputs, state = self(StepInputs(*(t.unsqueeze(0) for t in inputs)), state)
        return PolicyOutputs(*(o.squeeze(0) for o in outputs)), state

    def describe(self) -> dict:
        return {"backbone": "gru", **asdict(self.config)}
