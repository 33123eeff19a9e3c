"""Contextual gridworlds on minigrid: a task, and how many layouts ("contexts") it draws from.

A context is one procedurally generated layout. ``contexts=1`` replays one layout every
episode, ``contexts=K`` draws each episode's layout from a fixed set of K, and
``contexts=None`` generates a new layout for every episode. The study of global and
episodic exploration bonuses turns on exactly this knob: how much structure episodes share.

    env = envs.make("coplay/grid-multiroom-v0", contexts=None)
    env = gymnasium.make("coplay/grid-multiroom-v0", contexts=None)  # the same, in wrappers

The tasks' ids, descriptions, settings and action names are registered in ``envs.registry``;
this module adds what needs minigrid: each task's builder and its minigrid actions.

Observations are minigrid's egocentric 7x7x3 encoding (object, colour, state per cell). The
info of every reset and step holds the agent's cell, ``info["position"]`` (x, y), which
position counts key by.
minigrid builds that view in pure Python, cell object by cell object, which costs most of a
step; ``EgocentricView`` builds the identical array with numpy from a cached encoding of the
whole grid (``tests/test_grid.py`` proves equality against minigrid's own ``gen_obs``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from minigrid.core.actions import Actions
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX
from minigrid.core.grid import Grid
from minigrid.core.mission import MissionSpace
from minigrid.core.world_object import Goal, Wall
from minigrid.envs import DoorKeyEnv, MultiRoomEnv
from minigrid.minigrid_env import MiniGridEnv

from coplay.errors import ConfigError
from envs.registry import GridTaskSpec, registered

VIEW_SIZE = 7
WALL = (OBJECT_TO_IDX["wall"], COLOR_TO_IDX["grey"], 0)
EMPTY = (OBJECT_TO_IDX["empty"], 0, 0)
DOOR, OPEN = OBJECT_TO_IDX["door"], 0
# The actions that change the grid, and only ever the cell in front of the agent.
GRID_CHANGING = frozenset({Actions.pickup, Actions.drop, Actions.toggle})


class DeadEndsEnv(MiniGridEnv):
    """A corridor with side branches; all but one are dead ends, and the goal ends the other.

    The agent starts at the corridor's west end facing east. Each branch leaves the corridor
    north or south (chosen with the layout), so finding the goal means walking into branches
    and back out: an episodic bonus that remembers which branches were visited helps when the
    goal moves every episode, a global one when it stays put.
    """

    def __init__(self, *, branches: int = 4, branch_length: int = 4, max_steps: int | None = None,
                 **kwargs: Any) -> None:
        self.branches = branches
        self.branch_length = branch_length
        width = 2 * branches + 3
        height = 2 * branch_length + 3
        super().__init__(
            mission_space=MissionSpace(mission_func=lambda: "find the goal at a branch's end"),
            width=width, height=height,
            max_steps=max_steps or 4 * branches * (2 * branch_length + 2) + width,
            see_through_walls=False, **kwargs,
        )

    def _gen_grid(self, width: int, height: int) -> None:
        self.grid = Grid(width, height)
        self.grid.wall_rect(0, 0, width, height)
        for x in range(1, width - 1):
            for y in range(1, height - 1):
                self.grid.set(x, y, Wall())
        middle = self.branch_length + 1
        for x in range(1, width - 1):
            self.grid.set(x, middle, None)
        goal_branch = int(self.np_random.integers(self.branches))
        for branch in range(self.branches):
            x = 2 * branch + 2
            step = 1 if self.np_random.integers(2) else -1
            for depth in range(1, self.branch_length + 1):
                self.grid.set(x, middle + step * depth, None)
            if branch == goal_branch:
                self.grid.set(x, middle + step * self.branch_length, Goal())
        self.agent_pos = (1, middle)
        self.agent_dir = 0
        self.mission = "find the goal at a branch's end"


@dataclass(frozen=True)
class GridTask:
    """A registered contextual task (``envs.registry.GridTaskSpec``) with what minigrid needs:
    how to build its env and the minigrid actions behind the env's discrete actions."""

    spec: GridTaskSpec
    build: Callable[..., MiniGridEnv]
    actions: tuple[Actions, ...]

    @property
    def env_id(self) -> str:
        return self.spec.env_id

    @property
    def layout_settings(self) -> tuple[str, ...]:
        return self.spec.layout_settings

    @property
    def description(self) -> str:
        return self.spec.description


BUILDERS: dict[str, Callable[..., MiniGridEnv]] = {
    "coplay/grid-multiroom-v0": lambda *, rooms=4, room_size=5, max_steps=None: MultiRoomEnv(
        minNumRooms=rooms, maxNumRooms=rooms, maxRoomSize=room_size, max_steps=max_steps,
    ),
    "coplay/grid-keydoor-v0": lambda *, size=6, max_steps=None: DoorKeyEnv(
        size=size, max_steps=max_steps,
    ),
    "coplay/grid-deadends-v0": lambda *, branches=4, branch_length=4, max_steps=None: DeadEndsEnv(
        branches=branches, branch_length=branch_length, max_steps=max_steps,
    ),
}
TASKS: dict[str, GridTask] = {
    grid_spec.env_id: GridTask(
        grid_spec, BUILDERS[grid_spec.env_id], tuple(Actions[name] for name in grid_spec.actions),
    )
    for grid_spec in registered("grid")
}


def task(env_id: str) -> GridTask:
    try:
        return TASKS[env_id]
    except KeyError:
        raise ConfigError(
            "env.id", expected=f"a contextual grid task among {sorted(TASKS)}", got=repr(env_id),
        ) from None


class EgocentricView:
    """minigrid's partial view (slice, rotation, occlusion, carried object), in numpy.

    The whole grid's encoding is cached with a wall border ``VIEW_SIZE`` wide, so the view is
    one slice and one rotation. Only pickup, drop and toggle change the grid, and only the
    cell in front of the agent, so a step re-encodes at most that cell.
    """

    def __init__(self) -> None:
        self._encoded = np.zeros((0, 0, 3), dtype=np.uint8)
        self._opaque = np.zeros((0, 0), dtype=bool)

    def reset(self, env: MiniGridEnv) -> None:
        pad = VIEW_SIZE
        width, height = env.grid.width, env.grid.height
        self._encoded = np.empty((width + 2 * pad, height + 2 * pad, 3), dtype=np.uint8)
        self._encoded[...] = WALL
        self._encoded[pad:pad + width, pad:pad + height] = env.grid.encode()
        self._opaque = _opaque(self._encoded)

    def refresh(self, env: MiniGridEnv, x: int, y: int) -> None:
        cell = env.grid.get(x, y)
        code = EMPTY if cell is None else cell.encode()
        self._encoded[x + VIEW_SIZE, y + VIEW_SIZE] = code
        self._opaque[x + VIEW_SIZE, y + VIEW_SIZE] = _opaque(np.asarray(code)[None, None])[0, 0]

    def observe(self, env: MiniGridEnv) -> np.ndarray:
        top_x, top_y, _, _ = env.get_view_exts(VIEW_SIZE)
        window = (slice(top_x + VIEW_SIZE, top_x + 2 * VIEW_SIZE),
                  slice(top_y + VIEW_SIZE, top_y + 2 * VIEW_SIZE))
        # minigrid rotates left (counter-clockwise in its x-right, y-down frame) dir+1 times.
        turns = -(env.agent_dir + 1)
        view = np.rot90(self._encoded[window], turns, axes=(0, 1)).copy()
        opaque = np.rot90(self._opaque[window], turns, axes=(0, 1))
        view[~_visible(opaque)] = 0
        agent_x, agent_y = VIEW_SIZE // 2, VIEW_SIZE - 1
        view[agent_x, agent_y] = EMPTY if env.carrying is None else env.carrying.encode()
        return view


def _opaque(encoded: np.ndarray) -> np.ndarray:
    kind, state = encoded[..., 0], encoded[..., 2]
    return (kind == OBJECT_TO_IDX["wall"]) | ((kind == DOOR) & (state != OPEN))


ROW_MASK = (1 << VIEW_SIZE) - 1
_BITS = np.array([[(bits >> i) & 1 for i in range(VIEW_SIZE)] for bits in range(1 << VIEW_SIZE)],
                 dtype=bool)


def _visible(opaque: np.ndarray) -> np.ndarray:
    """minigrid's ``Grid.process_vis`` from the agent at the bottom centre, on bit rows.

    Row by row from the agent's row upward, visibility spreads east then west through
    see-through cells, and each see-through visible cell lights the cells diagonally and
    straight ahead of it in the next row. Columns are bits, so a spread is a few shifts.
    """
    see_through = np.packbits(~opaque, axis=0, bitorder="little")[0].tolist()  # a byte per row y
    rows = [0] * VIEW_SIZE
    ahead = 1 << (VIEW_SIZE // 2)
    last = 1 << (VIEW_SIZE - 1)
    for y in reversed(range(VIEW_SIZE)):
        seen, clear = ahead, see_through[y]
        while True:  # east: a lit see-through cell lights its east neighbour
            spread = seen | ((seen & clear & ~last) << 1)
            if spread == seen:
                break
            seen = spread
        east_sources = seen & clear & ~last
        while True:  # west
            spread = seen | ((seen & clear & ~1) >> 1)
            if spread == seen:
                break
            seen = spread
        west_sources = seen & clear & ~1
        rows[y] = seen
        ahead = (east_sources | (east_sources << 1) | west_sources | (west_sources >> 1)) & ROW_MASK
    return _BITS[rows].T


def _no_view() -> dict[str, Any]:
    return {}


class ContextualGridEnv(gym.Env):
    """One contextual grid task as a Gymnasium env; see the module docstring."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        *,
        task_id: str,
        contexts: int | None = 1,
        context_seed: int = 0,
        fast_view: bool = True,
        render_mode: str | None = None,
        **layout: Any,
    ) -> None:
        grid_task = task(task_id)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(
                "render_mode", expected=f"None or one of {self.metadata['render_modes']}",
                got=repr(render_mode),
            )
        if contexts is not None and (not isinstance(contexts, int) or contexts < 1):
            raise ConfigError(
                "env.contexts", expected="a positive number of layouts, or null for a new layout "
                "every episode", got=repr(contexts),
            )
        unknown = set(layout) - set(grid_task.layout_settings)
        if unknown:
            raise ConfigError(
                "env", expected=f"layout settings of {task_id} among "
                f"{list(grid_task.layout_settings)}", got=str(sorted(unknown)),
            )
        self.task = grid_task
        self.contexts = contexts
        self.inner = grid_task.build(**layout)
        self.inner.render_mode = render_mode
        self.render_mode = render_mode
        self.fast_view = fast_view
        self._view = EgocentricView()
        if fast_view:
            # The inner env's own view is the slow part of its step; ours replaces it.
            self.inner.gen_obs = _no_view
        self.observation_space = gym.spaces.Box(0, 255, (VIEW_SIZE, VIEW_SIZE, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(len(grid_task.actions))
        self._layout_seeds = (
            None if contexts is None
            else np.random.SeedSequence(context_seed).generate_state(contexts).tolist()
        )
        self._context_rng = np.random.default_rng()

    def layout_contents(self) -> list[bytes]:
        """Each layout of the fixed set as its content (the grid's encoding, the start cell
        and heading), to tell sets apart whatever seeds drew them. Leaves the env needing a
        reset."""
        if self._layout_seeds is None:
            raise ConfigError("env.contexts", expected="a fixed set of layouts", got="None")
        contents = []
        for layout_seed in self._layout_seeds:
            self.inner.reset(seed=layout_seed)
            contents.append(self.inner.grid.encode().tobytes()
                            + bytes([*self.inner.agent_pos, self.inner.agent_dir]))
        return contents

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._context_rng = np.random.default_rng(seed)
        if self._layout_seeds is None:
            layout_seed = int(self._context_rng.integers(2**31))
        else:
            layout_seed = self._layout_seeds[int(self._context_rng.integers(len(self._layout_seeds)))]
        self.inner.reset(seed=layout_seed)
        self._view.reset(self.inner)
        return self._observe(), {"layout_seed": layout_seed, "position": self._position()}

    def step(self, action: int):
        if not self.action_space.contains(action):
            raise ConfigError("action", expected=f"an int in [0, {self.action_space.n})",
                              got=repr(action))
        move = self.task.actions[int(action)]
        _, reward, terminated, truncated, _ = self.inner.step(move)
        if move in GRID_CHANGING:  # these act on the cell ahead and never move the agent
            front = self.inner.front_pos
            self._view.refresh(self.inner, int(front[0]), int(front[1]))
        info: dict[str, Any] = {"position": self._position()}
        if terminated or truncated:
            info["success"] = bool(terminated and reward > 0)
        return self._observe(), float(reward), terminated, truncated, info

    def _position(self) -> np.ndarray:
        return np.array(self.inner.agent_pos, dtype=np.int16)

    def _observe(self) -> np.ndarray:
        if self.fast_view:
            return self._view.observe(self.inner)
        return self.minigrid_view()

    def render(self):
        return self.inner.render()

    def minigrid_view(self) -> np.ndarray:
        """minigrid's own egocentric view of the current state, to check ours against."""
        return MiniGridEnv.gen_obs(self.inner)["image"]
