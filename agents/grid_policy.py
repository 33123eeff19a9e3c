"""The policy network for egocentric grid views: a small CNN, an optional GRU, two heads.

Kept apart from the update rule (``agents/train/ppo_grid.py``) as cleanrl keeps its
``Agent`` apart from its loop. A recurrent policy resets its state at every episode start,
explicitly, from the ``starts`` flags the trainer passes, both when acting and when it
replays a rollout for the update.
"""

from __future__ import annotations

import torch
from pydantic import ConfigDict, Field, StrictBool
from pydantic.dataclasses import dataclass
from torch import nn

# minigrid's cell encoding: object (11 values), colour (6), state (3).
CHANNEL_SIZES = (11, 6, 3)
ONE_HOT_CHANNELS = sum(CHANNEL_SIZES)
_OFFSETS = torch.tensor([0, CHANNEL_SIZES[0], CHANNEL_SIZES[0] + CHANNEL_SIZES[1]])


def one_hot_view(observations: torch.Tensor) -> torch.Tensor:
    """(N, W, H, 3) integer cells -> (N, 20, W, H) one-hot planes."""
    index = observations.long() + _OFFSETS
    planes = torch.zeros(*observations.shape[:-1], ONE_HOT_CHANNELS)
    planes.scatter_(-1, index, 1.0)
    return planes.permute(0, 3, 1, 2)


@dataclass(frozen=True, kw_only=True, config=ConfigDict(extra="forbid"))
class GridPolicyConfig:
    hidden_size: int = Field(default=128, ge=1)
    recurrent: StrictBool = False  # a GRU between the CNN and the heads


class GridPolicy(nn.Module):
    def __init__(self, config: GridPolicyConfig, *, view_size: int, num_actions: int) -> None:
        super().__init__()
        self.config = config
        hidden = config.hidden_size
        conv_out = 64 * (view_size - 2) ** 2
        self.trunk = nn.Sequential(
            nn.Conv2d(ONE_HOT_CHANNELS, 32, kernel_size=2), nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=2), nn.ReLU(),
            nn.Flatten(), nn.Linear(conv_out, hidden), nn.ReLU(),
        )
        self.gru = nn.GRUCell(hidden, hidden) if config.recurrent else None
        self.policy_head = nn.Linear(hidden, num_actions)
        self.value_head = nn.Linear(hidden, 1)
        # Small policy logits start the agent near uniform, as cleanrl's std=0.01 init does.
        nn.init.orthogonal_(self.policy_head.weight, gain=0.01)
        nn.init.zeros_(self.policy_head.bias)

    def initial_state(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, self.config.hidden_size if self.gru is not None else 0)

    def step(
        self, observations: torch.Tensor, state: torch.Tensor, starts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step for a batch: logits (N, A), values (N,), next state."""
        features = self.trunk(one_hot_view(observations))
        if self.gru is not None:
            state = self.gru(features, state * (~starts).unsqueeze(1))
            features = state
        return self.policy_head(features), self.value_head(features).squeeze(-1), state

    def replay(
        self, observations: torch.Tensor, state: torch.Tensor, starts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A rollout (T, N, ...) from its first state: logits (T, N, A) and values (T, N)."""
        steps, batch = observations.shape[:2]
        features = self.trunk(one_hot_view(observations.flatten(0, 1))).view(steps, batch, -1)
        if self.gru is not None:
            outputs = []
            for t in range(steps):
                state = self.gru(features[t], state * (~starts[t]).unsqueeze(1))
                outputs.append(state)
            features = torch.stack(outputs)
        return self.policy_head(features), self.value_head(features).squeeze(-1)
