"""The PettingZoo face of one iterated matrix game, rendered as a line of text per round
(``render_mode`` "ansi" or "human").

A round here is a few dictionary lookups in plain Python: the batched core's numpy machinery
costs more than the game itself when there is only one game. The rules still come from
``envs.matrix_core`` alone: the payoffs and tokens of each joint action (``joint_outcomes``)
are read once at construction, and each game's length is drawn by ``draw_lengths``, so a
facade and a batch of one given the same seed and actions play the same game.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from coplay.errors import ConfigError
from envs.matrix_core import (
    NUM_ACTIONS,
    NUM_TOKENS,
    START,
    MatrixGameConfig,
    draw_lengths,
    joint_outcomes,
)

PLAYERS = ("player_0", "player_1")
_P0, _P1 = PLAYERS
# Observations are numpy integers of the observation space's dtype, as PettingZoo's API test
# expects; one shared scalar per token costs nothing per round.
_TOKENS = tuple(np.int64(token) for token in range(NUM_TOKENS))
_ACTION_NAMES = ("C", "D")


class MatrixGameEnv(ParallelEnv):
    """Two players choose cooperate (0) or defect (1) each round and see a first-person token
    of the previous joint action (0 at the start). Rewards come from ``config.payoffs``."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "human"], "is_parallelizable": True}

    def __init__(
        self,
        config: MatrixGameConfig,
        *,
        env_id: str = "coplay/matrix-game",
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(
                "render_mode", expected=f"None or one of {self.metadata['render_modes']}",
                got=repr(render_mode),
            )
        self.config = config
        self.render_mode = render_mode
        self.metadata = {**MatrixGameEnv.metadata, "name": env_id}
        self.possible_agents = list(PLAYERS)
        self.agents: list[str] = []
        rewards, tokens = joint_outcomes(config.payoffs)
        # outcomes[a0][a1] = (token_0, token_1, reward_0, reward_1); keyed by the valid actions
        # only, so a lookup is also the validity check.
        self._outcomes = {
            a0: {
                a1: (_TOKENS[tokens[0, 2 * a0 + a1]], _TOKENS[tokens[1, 2 * a0 + a1]],
                     float(rewards[0, 2 * a0 + a1]), float(rewards[1, 2 * a0 + a1]))
                for a1 in range(NUM_ACTIONS)
            }
            for a0 in range(NUM_ACTIONS)
        }
        self._round = 0
        self._length = 0
        self._ended_by_chance = False
        self._last: tuple[np.int64, np.int64, float, float] | None = None
        self._rng = np.random.default_rng()
        self._observation_spaces = {a: spaces.Discrete(NUM_TOKENS) for a in PLAYERS}
        self._action_spaces = {a: spaces.Discrete(NUM_ACTIONS) for a in PLAYERS}

    def observation_space(self, agent: str) -> spaces.Discrete:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._action_spaces[agent]

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.int64], dict[str, dict]]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            for i, agent in enumerate(PLAYERS):
                self._action_spaces[agent].seed(seed + i)
        lengths, ended_by_chance = draw_lengths(self.config, self._rng, 1)
        self._length = int(lengths[0])
        self._ended_by_chance = bool(ended_by_chance[0])
        self._round = 0
        self._last = None
        self.agents = list(PLAYERS)
        if self.render_mode == "human":
            self.render()
        start = _TOKENS[START]
        return {_P0: start, _P1: start}, {_P0: {}, _P1: {}}

    def step(self, actions: dict[str, int]):
        if not self.agents:
            raise ConfigError(
                "MatrixGameEnv.step", expected="a running game", got="a finished or unreset game",
                fix="Call reset() first.",
            )
        try:
            action_0, action_1 = actions[_P0], actions[_P1]
        except KeyError as missing:
            raise ConfigError(
                "MatrixGameEnv.step", expected=f"an action for each of {PLAYERS}",
                got=f"no action for {missing}",
            ) from None
        try:
            outcome = self._outcomes[action_0][action_1]
        except (KeyError, TypeError):  # TypeError: an unhashable action, e.g. a list
            raise ConfigError(
                "MatrixGameEnv.step", expected="actions 0 (cooperate) or 1 (defect)",
                got=str(actions),
            ) from None
        self._last = outcome
        token_0, token_1, reward_0, reward_1 = outcome
        self._round += 1
        if self._round < self._length:
            terminated = truncated = False
        else:
            terminated = self._ended_by_chance
            truncated = not terminated
            self.agents = []
        if self.render_mode == "human":
            self.render()
        return (
            {_P0: token_0, _P1: token_1},
            {_P0: reward_0, _P1: reward_1},
            {_P0: terminated, _P1: terminated},
            {_P0: truncated, _P1: truncated},
            {_P0: {}, _P1: {}},
        )

    def render(self) -> str | None:
        """The last round as a line of text: returned with ``render_mode="ansi"``, printed with
        ``"human"``. Without a render mode there is nothing to render."""
        if self.render_mode is None:
            gymnasium.logger.warn(
                "render() was called without a render_mode; make the env with "
                "render_mode='ansi' or 'human'."
            )
            return None
        text = self._describe()
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def _describe(self) -> str:
        horizon = self.config.horizon
        limit = f"at most {horizon}" if self.config.continuation_probability else str(horizon)
        head = f"{self.metadata['name']} round {self._round} of {limit}"
        if self._last is None:
            return f"{head}: start"
        token_0, _, reward_0, reward_1 = self._last
        # The token is 1 + 2 * own + other from player_0's side.
        action_0, action_1 = divmod(int(token_0) - 1, 2)
        return (f"{head}: {_P0} {_ACTION_NAMES[action_0]} ({reward_0:g}), "
                f"{_P1} {_ACTION_NAMES[action_1]} ({reward_1:g})")

    def close(self) -> None:
        return None
