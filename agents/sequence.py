"""Sequence-model policies that infer their co-player in context.

Inputs per step, as in the in-context co-player inference work: the observation token, the
agent's previous action and its previous reward, each with its own linear embedding (and,
for the identity ablation only, a vector describing the co-player). A behavior-conditioned
policy (``behavior_size`` > 0) also takes the pooled vector of the behaviors memory retrieved
for the step, through its own linear embedding; with ``follow_memory`` its policy head has a
third action, ``FOLLOW``: hand the step to the best executable hint (``agents.behavior_inputs``
says what that plays), offered only where there is one. A backbone carries the
episode's history: a GRU, or a causal transformer built from a ``transformers`` GPT-2 config
that steps with its key/value cache. Swish on the backbone's output feeds three linear heads:
the policy, the value, and a prediction of the co-player's action this round. That last head
is an auxiliary loss during training and, at every step, the agent's readable belief about
its co-player.

The recurrent state is explicit: callers pass it in and get it back, and every episode starts
from ``initial_state``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from pydantic import ConfigDict, Field, StrictBool, StrictInt, model_validator
from pydantic.dataclasses import dataclass as settings
from torch import nn
from torch.nn import functional as F

from coplay.errors import ConfigError
from envs import NUM_TOKENS

NUM_ACTIONS = 2
NO_ACTION = 2  # the "previous action" before the first round
FOLLOW = 2  # with follow_memory: the policy's third action, play the best executable hint
MASKED = -1e4  # the logit of FOLLOW where no hint can be followed (finite: no NaN entropy)
Backbone = Literal["gru", "transformer"]


@settings(frozen=True, kw_only=True, config=ConfigDict(extra="forbid"))
class SequencePolicyConfig:
    backbone: Backbone = "gru"
    hidden_size: StrictInt = Field(default=128, ge=1)
    embed_size: StrictInt = Field(default=32, ge=1)
    # Transformer only: depth, attention heads, and the longest episode it can attend over.
    layers: StrictInt = Field(default=2, ge=1)
    heads: StrictInt = Field(default=4, ge=1)
    context_length: StrictInt = Field(default=256, ge=1)
    # Size of the co-player identity input; 0 (the default) means the agent gets none.
    identity_size: StrictInt = Field(default=0, ge=0)
    # Size of the retrieved behaviors' pooled embedding (memory's embedder dimension); 0 (the
    # default): the policy takes no behaviors.
    behavior_size: StrictInt = Field(default=0, ge=0)
    # Whether the policy may hand a step to the best executable hint (a third action).
    follow_memory: StrictBool = False

    @property
    def num_choices(self) -> int:
        """The policy head's width: cooperate, defect, and with follow_memory ``FOLLOW``."""
        return NUM_ACTIONS + self.follow_memory

    @property
    def conditioned(self) -> bool:
        """Whether the policy reads memory's hints at all."""
        return bool(self.behavior_size) or self.follow_memory

    @model_validator(mode="after")
    def _heads_divide_the_width(self) -> SequencePolicyConfig:
        if self.backbone == "transformer" and self.hidden_size % self.heads:
            raise ValueError(f"hidden_size: expected a multiple of heads ({self.heads}), "
                             f"got {self.hidden_size}")
        return self


@dataclass(frozen=True)
class BehaviorInput:
    """The pooled behavior vectors of B games (or T steps of them), as rows of a bank: the
    distinct vectors are few (one per context a table lists), so games carry an index and
    the embedding is computed once per bank row. ``bank`` (R, behavior_size); ``rows``
    (...,) int64 indexes into it."""

    rows: torch.Tensor
    bank: torch.Tensor

    def unsqueeze(self, dim: int) -> BehaviorInput:
        return BehaviorInput(self.rows.unsqueeze(dim), self.bank)

    def __getitem__(self, key: object) -> BehaviorInput:
        return BehaviorInput(self.rows[key], self.bank)


class StepInputs(NamedTuple):
    """One step for B agents (shape (B,)), or a sequence of T steps (shape (T, B))."""

    observation: torch.Tensor  # int64 tokens, 0..4
    previous_action: torch.Tensor  # int64, 0 = C, 1 = D, 2 = none yet (the move played)
    previous_reward: torch.Tensor  # float32
    identity: torch.Tensor | None = None  # (..., identity_size) float32, ablation only
    behaviors: BehaviorInput | None = None  # behavior-conditioned policies only
    can_follow: torch.Tensor | None = None  # (...,) bool, follow_memory only: a hint to follow


class PolicyOutputs(NamedTuple):
    logits: torch.Tensor  # (..., num_choices) action logits (FOLLOW masked where impossible)
    value: torch.Tensor  # (...,)
    coplayer_logits: torch.Tensor  # (..., 2) predicted co-player action this round


class SequencePolicy(nn.Module, ABC):
    """Embeddings and heads shared by both backbones; subclasses supply ``backbone``.

    ``forward`` takes (T, B) inputs and the state after the steps already taken; ``step`` is
    the same for one step. Both return the new state, so acting step by step and training on
    a whole episode compute the same function (a test checks it for each backbone).
    """

    def __init__(self, config: SequencePolicyConfig) -> None:
        super().__init__()
        self.config = config
        e, h = config.embed_size, config.hidden_size
        self.embed_observation = nn.Linear(NUM_TOKENS, e)
        self.embed_action = nn.Linear(NUM_ACTIONS + 1, e)
        self.embed_reward = nn.Linear(1, e)
        self.embed_identity = nn.Linear(config.identity_size, e) if config.identity_size else None
        self.embed_behaviors = (nn.Linear(config.behavior_size, e) if config.behavior_size
                                else None)
        self.input_size = e * (3 + bool(config.identity_size) + bool(config.behavior_size))
        self.policy_head = nn.Linear(h, config.num_choices)
        self.value_head = nn.Linear(h, 1)
        self.coplayer_head = nn.Linear(h, NUM_ACTIONS)

    def embed(self, inputs: StepInputs) -> torch.Tensor:
        parts = [
            self.embed_observation(F.one_hot(inputs.observation, NUM_TOKENS).float()),
            self.embed_action(F.one_hot(inputs.previous_action, NUM_ACTIONS + 1).float()),
            self.embed_reward(inputs.previous_reward.unsqueeze(-1)),
        ]
        if self.embed_identity is not None:
            if inputs.identity is None:
                raise ConfigError(
                    "policy inputs", expected=f"an identity vector of size {self.config.identity_size}",
                    got="none", fix="This policy was trained with the identity ablation.",
                )
            parts.append(self.embed_identity(inputs.identity))
        if self.embed_behaviors is not None:
            if inputs.behaviors is None:
                raise ConfigError(
                    "policy inputs",
                    expected=f"retrieved behaviors (pooled, size {self.config.behavior_size})",
                    got="none", fix="This policy is behavior-conditioned: act with hints "
                                    "(agents.behavior_inputs.BehaviorBank).",
                )
            bank = self.embed_behaviors(inputs.behaviors.bank)
            parts.append(bank[inputs.behaviors.rows])
        return torch.cat(parts, dim=-1)

    def heads(self, features: torch.Tensor, can_follow: torch.Tensor | None = None) -> PolicyOutputs:
        features = F.silu(features)
        logits = self.policy_head(features)
        if self.config.follow_memory:
            if can_follow is None:
                raise ConfigError(
                    "policy inputs", expected="which games have a hint to follow (can_follow)",
                    got="none", fix="This policy was trained with follow_memory.",
                )
            blocked = torch.zeros_like(logits, dtype=torch.bool)
            blocked[..., FOLLOW] = ~can_follow
            logits = logits.masked_fill(blocked, MASKED)
        return PolicyOutputs(
            logits=logits,
            value=self.value_head(features).squeeze(-1),
            coplayer_logits=self.coplayer_head(features),
        )

    @abstractmethod
    def initial_state(self, batch_size: int) -> object:
        """The state before an episode's first step, for ``batch_size`` games."""

    @abstractmethod
    def backbone(self, x: torch.Tensor, state: object) -> tuple[torch.Tensor, object]:
        """(T, B, input_size) embeddings and a state -> (T, B, hidden) features, new state."""

    def forward(self, inputs: StepInputs, state: object) -> tuple[PolicyOutputs, object]:
        features, state = self.backbone(self.embed(inputs), state)
        return self.heads(features, inputs.can_follow), state

    def step(self, inputs: StepInputs, state: object) -> tuple[PolicyOutputs, object]:
        """One step for B agents: inputs of shape (B,)."""
        sequence = StepInputs(*(None if t is None else t.unsqueeze(0) for t in inputs))
        outputs, state = self(sequence, state)
        return PolicyOutputs(*(o.squeeze(0) for o in outputs)), state



class GRUPolicy(SequencePolicy):
    def __init__(self, config: SequencePolicyConfig | None = None) -> None:
        config = config or SequencePolicyConfig()
        super().__init__(config)
        self.gru = nn.GRU(self.input_size, config.hidden_size)

    def initial_state(self, batch_size: int) -> torch.Tensor:
        return torch.zeros(1, batch_size, self.config.hidden_size)

    def backbone(self, x: torch.Tensor, state: object) -> tuple[torch.Tensor, object]:
        return self.gru(x, state)


@dataclass
class TransformerState:
    """The key/value cache of the steps taken so far (None before the first step)."""

    cache: object | None
    steps: int


class TransformerPolicy(SequencePolicy):
    """A causal GPT-2 stack over the per-step embeddings; acting appends to its KV cache."""

    def __init__(self, config: SequencePolicyConfig) -> None:
        super().__init__(config)
        # Imported here: transformers takes seconds to import and only this backbone needs it.
        from transformers import GPT2Config, GPT2Model

        self.project = nn.Linear(self.input_size, config.hidden_size)
        self.transformer = GPT2Model(GPT2Config(
            n_embd=config.hidden_size, n_layer=config.layers, n_head=config.heads,
            n_positions=config.context_length, vocab_size=1, bos_token_id=0, eos_token_id=0,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        ))

    def initial_state(self, batch_size: int) -> TransformerState:
        return TransformerState(cache=None, steps=0)

    def backbone(self, x: torch.Tensor, state: object) -> tuple[torch.Tensor, object]:
        assert isinstance(state, TransformerState)
        steps = state.steps + x.shape[0]
        if steps > self.config.context_length:
            raise ConfigError(
                "policy.context_length", expected=f"at least the episode length ({steps})",
                got=str(self.config.context_length),
            )
        out = self.transformer(
            inputs_embeds=self.project(x).transpose(0, 1),
            past_key_values=state.cache, use_cache=True,
        )
        return out.last_hidden_state.transpose(0, 1), TransformerState(out.past_key_values, steps)


def make_policy(config: SequencePolicyConfig) -> SequencePolicy:
    return GRUPolicy(config) if config.backbone == "gru" else TransformerPolicy(config)
