"""Agents for single-agent tasks with discrete actions (the contextual grid tasks).

``random_actions`` acts uniformly; ``grid_checkpoint`` seats a policy trained by
``coplay train`` on an exploration scenario, frozen; ``macro_follower`` carries out the
executable behaviors memory hands it (action macros, approaches planned from its view), and
acts uniformly where it has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agents.base import Agent, AgentContext
from agents.grid_skills import Approach
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
    """Carries out, in each game, the best-ranked executable behavior among its hints.

    An action macro plays from its first action; it keeps playing while it stays among the
    game's hints, and starts again when another takes its place. An approach
    (``agents.grid_skills``) plans a move from the game's view every step; while its object
    is out of view the agent acts at random, though never with an action the approach says
    to avoid. Where no behavior is offered (or a macro has run out) it acts uniformly at
    random. Reports, in ``hint_used``, the position of the behavior that chose the action.
    """

    def __init__(self, num_actions: int, action_names: Sequence[str] = ()) -> None:
        self._action_names = tuple(action_names)
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
            found = self._executable_of(hints, game)
            if found is None:
                self._playing[game] = -1
                continue
            position, behavior_id, plan = found
            if self._playing[game] != behavior_id:
                self._playing[game], self._progress[game] = behavior_id, 0
            if isinstance(plan, Approach):
                action = self._approach(plan, observations[game])
                if action is not None:
                    actions[game] = action
                    self.hint_used[game] = position
            elif self._progress[game] < len(plan):
                actions[game] = plan[self._progress[game]]
                self._progress[game] += 1
                self.hint_used[game] = position
        return actions

    def _approach(self, approach: Approach, view: np.ndarray) -> int | None:
        """The approach's move, or a random action it allows; None if it says nothing."""
        move = approach.step(view)
        if move is not None or not approach.avoid:
            return move
        allowed = [a for a in range(self._num_actions) if a not in approach.avoid]
        return int(allowed[self._rng.integers(len(allowed))])

    def _executable_of(self, hints: Hints, game: int) -> tuple[int, int, list[int] | Approach] | None:
        """The game's best-ranked behavior this env can execute: its position, behavior id
        and its macro's actions or its compiled approach."""
        for position, index in enumerate(hints.table[hints.contexts[game]].tolist()):
            if index < 0:
                continue
            behavior = hints.behaviors[index]
            if behavior.kind == "action_macro":
                steps = list(behavior.payload["actions"])
                # A macro written for another env's actions is skipped, not played out of range.
                if all(0 <= a < self._num_actions for a in steps):
                    return position, behavior.behavior_id, steps
            elif behavior.kind == "approach":
                approach = Approach.compile(behavior.payload, self._action_names)
                if approach is not None:
                    return position, behavior.behavior_id, approach
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
    import envs

    # Approaches act by action names, which only grid tasks have; macros need only ids.
    names = envs.spec(context.env_id).actions if context.env_id in envs.GRID_TASK_IDS else ()
    return MacroFollower(context.num_actions, names)


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
