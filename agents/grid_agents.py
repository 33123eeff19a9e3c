"""Agents for single-agent tasks with discrete actions (the contextual grid tasks).

``random_actions`` acts uniformly; ``grid_checkpoint`` seats a policy trained by
``coplay train`` on an exploration scenario, frozen; ``macro_follower`` plays the action
macros memory hands it, from their first action, and acts uniformly where it has none.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agents.base import Agent, AgentContext
from coplay.errors import ConfigError
from coplay.step import Hints


class RandomActions:
    """Each game's action drawn uniformly from the env's actions every step."""

    def __init__(self, num_actions: int) -> None:
        self._num_actions = num_actions
        self._rng = np.random.default_rng()

    def reset(self, num_games: int, rng: np.random.Generator) -> None:
        self._rng = rng

    def act(self, observations: np.ndarray, hints: Hints | None = None) -> np.ndarray:
        return self._rng.integers(self._num_actions, size=observations.shape[0])


class MacroFollower:
    """Plays, in each game, the best-ranked action macro among its hints, from its first
    action; a macro keeps playing while it stays among the game's hints, and starts again
    when another takes its place. Where no macro is offered (or one has run out) it acts
    uniformly at random. Reports the position of the macro it played in ``hint_used``."""

    def __init__(self, num_actions: int) -> None:
        self._num_actions = num_actions
        self._rng = np.random.default_rng()
        self._playing = np.zeros(0, dtype=np.int64)  # behavior id per game, -1: none
        self._progress = np.zeros(0, dtype=np.int64)
        self.hint_used = np.zeros(0, dtype=np.int64)

    def reset(self, num_games: int, rng: np.random.Generator) -> None:
        self._rng = rng
        self._playing = np.full(num_games, -1, dtype=np.int64)
        self._progress = np.zeros(num_games, dtype=np.int64)
        self.hint_used = np.full(num_games, -1, dtype=np.int64)

    def act(self, observations: np.ndarray, hints: Hints | None = None) -> np.ndarray:
        games = observations.shape[0]
        actions = self._rng.integers(self._num_actions, size=games)
        self.hint_used = np.full(games, -1, dtype=np.int64)
        if hints is None:
            return actions
        for game in range(games):
            macro = self._macro_of(hints, game)
            if macro is None:
                self._playing[game] = -1
                continue
            position, behavior_id, steps = macro
            if self._playing[game] != behavior_id:
                self._playing[game], self._progress[game] = behavior_id, 0
            if self._progress[game] < len(steps):
                actions[game] = steps[self._progress[game]]
                self._progress[game] += 1
                self.hint_used[game] = position
        return actions

    def _macro_of(self, hints: Hints, game: int) -> tuple[int, int, list[int]] | None:
        """The game's best-ranked playable macro: its position, behavior id and actions."""
        for position, index in enumerate(hints.table[hints.contexts[game]].tolist()):
            if index < 0:
                continue
            behavior = hints.behaviors[index]
            if behavior.kind != "action_macro":
                continue
            steps = list(behavior.payload["actions"])
            # A macro written for another env's actions is skipped, not played out of range.
            if all(0 <= a < self._num_actions for a in steps):
                return position, behavior.behavior_id, steps
        return None


class GridCheckpointAgent:
    """A frozen grid policy: samples (or, ``greedy``, takes the likeliest) action per game,
    keeping a recurrent policy's state per game from the episode's start."""

    def __init__(self, policy, *, greedy: bool) -> None:
        import torch

        self._torch = torch
        self._policy = policy.eval()
        self._greedy = greedy
        self._state = policy.initial_state(0)
        self._starts = torch.zeros(0, dtype=torch.bool)
        self._generator = torch.Generator()

    def reset(self, num_games: int, rng: np.random.Generator) -> None:
        torch = self._torch
        self._state = self._policy.initial_state(num_games)
        self._starts = torch.ones(num_games, dtype=torch.bool)
        self._generator.manual_seed(int(rng.integers(2**63)))

    def act(self, observations: np.ndarray, hints: Hints | None = None) -> np.ndarray:
        torch = self._torch
        with torch.no_grad():
            logits, _, self._state = self._policy.step(
                torch.as_tensor(observations), self._state, self._starts)
        self._starts = torch.zeros_like(self._starts)
        if self._greedy:
            return logits.argmax(dim=1).numpy()
        chosen = torch.multinomial(torch.softmax(logits, dim=1), 1, generator=self._generator)
        return chosen.squeeze(1).numpy()


def build_random_actions(context: AgentContext) -> Agent:
    return RandomActions(context.num_actions)


def build_macro_follower(context: AgentContext) -> Agent:
    return MacroFollower(context.num_actions)


def build_grid_checkpoint(context: AgentContext, *, path: str, greedy: bool = False) -> Agent:
    from agents.checkpoint import load_checkpoint
    from agents.grid_policy import GridPolicy, GridPolicyConfig
    from envs.grid import VIEW_SIZE

    saved = load_checkpoint(Path(path), where="path")
    if saved.get("recipe") != "ppo_grid" or "scenario" not in saved:
        raise ConfigError("path", expected="a checkpoint of a grid exploration run",
                          got=repr(path))
    trained_on = saved["scenario"]["env"]["id"]
    config = GridPolicyConfig(**saved["scenario"]["train"].get("policy", {}))
    num_actions = saved["policy"]["policy_head.bias"].shape[0]
    if num_actions != context.num_actions:
        raise ConfigError(
            "path", expected=f"a policy for {context.num_actions} actions ({context.env_id})",
            got=f"one for {num_actions} actions, trained on {trained_on}",
        )
    policy = GridPolicy(config, view_size=VIEW_SIZE, num_actions=num_actions)
    policy.load_state_dict(saved["policy"])
    return GridCheckpointAgent(policy, greedy=greedy)
