"""The PettingZoo face of an iterated matrix game: a batch of one over ``MatrixGameBatch``,
rendered as a line of text per round (``render_mode`` "ansi" or "human")."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from coplay.errors import ConfigError
from envs.matrix_core import NUM_ACTIONS, NUM_TOKENS, MatrixGameBatch, MatrixGameConfig

PLAYERS = ("player_0", "player_1")


class MatrixGameEnv(ParallelEnv):
    """Two players choose cooperate (0) or defect (1) each round and see a first-person token
    of the previous joint action (0 at the start). Rewards come from ``config.payoffs``."""

    metadata = {"render_modes": ["ansi", "human"], "is_parallelizable": True}

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
        self._last_round: tuple[int, int, float, float] | None = None
        self.possible_agents = list(PLAYERS)
        self.agents: list[str] = []
        self._core = MatrixGameBatch(config, batch_size=1)
        self._rng = np.random.default_rng()
        self._observation_spaces = {a: spaces.Discrete(NUM_TOKENS) for a in PLAYERS}
        self._action_spaces = {a: spaces.Discrete(NUM_ACTIONS) for a in PLAYERS}

    def observation_space(self, agent: str) -> spaces.Discrete:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._action_spaces[agent]

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, int], dict[str, dict]]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            for i, agent in enumerate(PLAYERS):
                self._action_spaces[agent].seed(seed + i)
        observations = self._core.reset(self._rng)
        self.agents = list(PLAYERS)
        self._last_round = None
        if self.render_mode == "human":
            self.render()
        return (
            {a: observations[i, 0] for i, a in enumerate(PLAYERS)},
            {a: {} for a in PLAYERS},
        )

    def step(self, actions: dict[str, int]):
        if not self.agents:
            raise ConfigError(
                "MatrixGameEnv.step", expected="a running game", got="a finished or unreset game",
                fix="Call reset() first.",
            )
        try:
            action_0, action_1 = actions[PLAYERS[0]], actions[PLAYERS[1]]
        except KeyError as missing:
            raise ConfigError(
                "MatrixGameEnv.step", expected=f"an action for each of {PLAYERS}",
                got=f"no action for {missing}",
            ) from None
        if action_0 not in (0, 1) or action_1 not in (0, 1):
            raise ConfigError(
                "MatrixGameEnv.step", expected="actions 0 (cooperate) or 1 (defect)",
                got=str(actions),
            )
        result = self._core.step(np.array([[action_0], [action_1]], dtype=np.int64))
        observations = list(result.observations[:, 0])
        rewards = result.rewards[:, 0].tolist()
        self._last_round = (int(action_0), int(action_1), rewards[0], rewards[1])
        terminated = bool(result.terminated[0])
        truncated = bool(result.truncated[0])
        if terminated or truncated:
            self.agents = []
        if self.render_mode == "human":
            self.render()
        return (
            dict(zip(PLAYERS, observations)),
            dict(zip(PLAYERS, rewards)),
            {a: terminated for a in PLAYERS},
            {a: truncated for a in PLAYERS},
            {a: {} for a in PLAYERS},
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
        head = f"{self.metadata['name']} round {self._core.round} of {limit}"
        if self._last_round is None:
            return f"{head}: start"
        action_0, action_1, reward_0, reward_1 = self._last_round
        names = ("C", "D")
        return (f"{head}: {PLAYERS[0]} {names[action_0]} ({reward_0:g}), "
                f"{PLAYERS[1]} {names[action_1]} ({reward_1:g})")

    def close(self) -> None:
        return None
