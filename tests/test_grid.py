"""Contextual grid tasks: contexts, endings, settings and the fast view's fidelity (their
Gymnasium conformance is in tests/test_envs.py, with every registered env)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs
import envs.grid
from coplay.errors import ConfigError

TASK_IDS = sorted(envs.grid.TASKS)


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_fast_view_equals_minigrids_own_view_along_random_play(env_id) -> None:
    """Slices, rotations, occlusion, doors opening, keys picked up and dropped: every
    observation of 4000 random steps over new layouts matches minigrid's gen_obs."""
    env = gym.make(env_id, contexts=None, disable_env_checker=True).unwrapped
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=1)
    changed_cells = 0
    for _ in range(4000):
        assert np.array_equal(obs, env.minigrid_view())
        action = int(rng.integers(env.action_space.n))
        before = env.inner.grid.encode()
        obs, _, terminated, truncated, _ = env.step(action)
        changed_cells += int(not np.array_equal(before, env.inner.grid.encode()))
        if terminated or truncated:
            obs, _ = env.reset()
    if env_id != "coplay/grid-deadends-v0":  # dead ends has nothing to open or pick up
        assert changed_cells > 0, "the walk never changed the grid, so it proves too little"


def test_fast_view_and_minigrid_view_give_the_same_episode() -> None:
    fast = gym.make("coplay/grid-keydoor-v0", contexts=None, disable_env_checker=True)
    slow = gym.make("coplay/grid-keydoor-v0", contexts=None, fast_view=False,
                    disable_env_checker=True)
    a, _ = fast.reset(seed=5)
    b, _ = slow.reset(seed=5)
    rng = np.random.default_rng(5)
    for _ in range(500):
        action = int(rng.integers(fast.action_space.n))
        a, ra, ta, ua, _ = fast.step(action)
        b, rb, tb, ub, _ = slow.step(action)
        assert np.array_equal(a, b) and (ra, ta, ua) == (rb, tb, ub)
        if ta or ua:
            a, _ = fast.reset()
            b, _ = slow.reset()


def _layouts(env, episodes: int) -> set[int]:
    return {env.reset()[1]["layout_seed"] for _ in range(episodes)}


def test_contexts_bound_the_number_of_layouts() -> None:
    def make(contexts):
        env = gym.make("coplay/grid-multiroom-v0", contexts=contexts, disable_env_checker=True)
        env.reset(seed=0)
        return env

    assert len(_layouts(make(1), 20)) == 1
    assert len(_layouts(make(3), 60)) == 3
    assert len(_layouts(make(None), 20)) == 20
    # The same context_seed gives the same fixed set of layouts, whatever the episode seed.
    other = gym.make("coplay/grid-multiroom-v0", contexts=3, disable_env_checker=True)
    other.reset(seed=99)
    assert _layouts(other, 60) == _layouts(make(3), 60)


def test_one_context_replays_the_same_grid_and_start() -> None:
    env = gym.make("coplay/grid-deadends-v0", contexts=1, disable_env_checker=True).unwrapped
    first, _ = env.reset(seed=0)
    grid = env.inner.grid.encode()
    for _ in range(3):
        obs, _ = env.reset()
        assert np.array_equal(obs, first) and np.array_equal(env.inner.grid.encode(), grid)


def test_reaching_the_goal_is_a_success_and_timing_out_is_not() -> None:
    env = gym.make("coplay/grid-deadends-v0", contexts=1, branches=1, branch_length=2,
                   disable_env_checker=True).unwrapped
    env.reset(seed=0)
    # One branch at x=2: walk east one cell, turn towards the branch, walk its length.
    middle = env.inner.branch_length + 1
    goal_y = next(y for y in range(env.inner.height) if env.inner.grid.get(2, y) is not None
                  and env.inner.grid.get(2, y).type == "goal")
    turn = 1 if goal_y > middle else 0  # right turns south in minigrid's frame
    outcome = [env.step(2), env.step(turn), env.step(2), env.step(2)]
    _, reward, terminated, _, info = outcome[-1]
    assert terminated and reward > 0 and info["success"] is True
    assert [tuple(o[-1]["position"]) for o in outcome] == [(2, middle), (2, middle),
                                                            (2, middle + 2 * turn - 1), (2, goal_y)]
    env = gym.make("coplay/grid-deadends-v0", contexts=1, max_steps=3,
                   disable_env_checker=True).unwrapped
    env.reset(seed=0)
    *_, (_, reward, terminated, truncated, info) = [env.step(0) for _ in range(3)]
    assert truncated and not terminated and reward == 0 and info["success"] is False


@pytest.mark.parametrize("settings, where", [
    ({"contexts": 0}, "env.contexts"),
    ({"contexts": "many"}, "env.contexts"),
    ({"rooms": 2, "doors": 3}, "env"),
])
def test_bad_settings_name_the_setting(settings, where) -> None:
    with pytest.raises(ConfigError) as caught:
        gym.make("coplay/grid-multiroom-v0", disable_env_checker=True, **settings)
    assert caught.value.where == where


def test_an_unknown_task_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="grid-deadends-v0"):
        envs.grid.task("coplay/grid-maze-v0")


def test_every_registered_grid_task_has_a_builder_and_minigrid_actions() -> None:
    assert list(envs.grid.TASKS) == list(envs.GRID_TASK_IDS) == list(envs.grid.BUILDERS)
    for env_id, grid_task in envs.grid.TASKS.items():
        assert grid_task.spec is envs.spec(env_id)
        assert [a.name for a in grid_task.actions] == list(grid_task.spec.actions)
        env = envs.make(env_id)
        assert env.action_space.n == len(grid_task.actions)


def test_a_render_mode_the_grid_tasks_lack_is_refused() -> None:
    with pytest.raises(ConfigError, match="rgb_array"):
        envs.make("coplay/grid-keydoor-v0", render_mode="ansi")
