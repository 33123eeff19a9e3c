"""The one registry of environment ids: iterated matrix games and contextual grid tasks.

Every id has a typed spec: its family ("matrix" or "grid"), a line of description and the
settings ``make`` accepts. ``make(id, **settings)`` builds any registered id; a grid task loads
minigrid (``envs.grid``) only when one is built. ``make_config`` and ``make_batch`` are the
matrix family's path to the batched core. ``envs/__init__.py`` also registers the grid tasks
with Gymnasium, so ``gymnasium.make`` builds them too.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from gymnasium import Env
from pettingzoo import ParallelEnv

from coplay.errors import ConfigError
from envs.matrix_core import MatrixGameBatch, MatrixGameConfig, Payoffs
from envs.matrix_env import MatrixGameEnv


@dataclass(frozen=True, kw_only=True)
class EnvSpec(ABC):
    """A registered environment id."""

    family: ClassVar[str]
    env_id: str
    description: str

    @property
    @abstractmethod
    def settings(self) -> tuple[str, ...]:
        """The names ``make`` accepts as settings of this id."""

    @abstractmethod
    def build(self, settings: dict[str, Any], render_mode: str | None) -> ParallelEnv | Env:
        """The env, from settings already checked against ``settings``."""

    def as_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready data, for listings read by scripts."""
        return {"id": self.env_id, "family": self.family, "settings": list(self.settings),
                "description": self.description}


@dataclass(frozen=True, kw_only=True)
class MatrixGameSpec(EnvSpec):
    """An iterated two-player matrix game, a PettingZoo ParallelEnv, with default payoffs."""

    family: ClassVar[str] = "matrix"
    default_payoffs: Payoffs

    @property
    def settings(self) -> tuple[str, ...]:
        return ("payoffs", "horizon", "continuation_probability")

    def config(
        self,
        *,
        payoffs: Any = None,
        horizon: int = 100,
        continuation_probability: float | None = None,
    ) -> MatrixGameConfig:
        return MatrixGameConfig(
            payoffs=self.default_payoffs if payoffs is None else Payoffs.parse(payoffs),
            horizon=horizon,
            continuation_probability=continuation_probability,
        )

    def build(self, settings: dict[str, Any], render_mode: str | None) -> MatrixGameEnv:
        return MatrixGameEnv(self.config(**settings), env_id=self.env_id,
                             render_mode=render_mode)

    def as_dict(self) -> dict[str, Any]:
        rstp = self.default_payoffs.as_rstp()
        payoffs = ({k: float(v) for k, v in rstp.items()} if rstp is not None
                   else self.default_payoffs.table.tolist())
        return {**super().as_dict(), "payoffs": payoffs}


GRID_ENTRY_POINT = "envs.grid:ContextualGridEnv"


@dataclass(frozen=True, kw_only=True)
class GridTaskSpec(EnvSpec):
    """A single-agent contextual grid task on minigrid, a Gymnasium env (``envs.grid``)."""

    family: ClassVar[str] = "grid"
    # The task's own layout knobs, on top of the context settings every grid task has.
    layout_settings: tuple[str, ...]
    # minigrid action names, in the order of the env's discrete actions.
    actions: tuple[str, ...]

    @property
    def settings(self) -> tuple[str, ...]:
        return ("contexts", "context_seed", *self.layout_settings)

    def build(self, settings: dict[str, Any], render_mode: str | None) -> Env:
        # Named, as Gymnasium's entry points are: minigrid loads on first use, and the
        # implementation (which reads its spec here) is never imported by the registry.
        module, _, name = GRID_ENTRY_POINT.partition(":")
        env_class = getattr(importlib.import_module(module), name)
        return env_class(task_id=self.env_id, render_mode=render_mode, **settings)

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "actions": list(self.actions)}


_SPECS: dict[str, EnvSpec] = {}


def register(spec: EnvSpec) -> None:
    if spec.env_id in _SPECS:
        raise ConfigError("envs.register", expected="a new env id", got=f"{spec.env_id!r} again")
    _SPECS[spec.env_id] = spec


def spec(env_id: str) -> EnvSpec:
    try:
        return _SPECS[env_id]
    except KeyError:
        raise _unknown(env_id, sorted(_SPECS)) from None


def _unknown(env_id: str, known: list[str]) -> ConfigError:
    return ConfigError(
        "env.id", expected=f"one of {known}", got=repr(env_id),
        fix="Run `coplay envs` to list the registered environments.",
    )


def registered(family: str | None = None) -> list[EnvSpec]:
    """Every registered spec in registration order, or those of one family."""
    return [s for s in _SPECS.values() if family is None or s.family == family]


def _checked(env_id: str, settings: dict[str, Any]) -> EnvSpec:
    found = spec(env_id)
    unknown = set(settings) - set(found.settings)
    if unknown:
        raise ConfigError(
            "env", expected=f"settings of {env_id} among {list(found.settings)}",
            got=f"{sorted(unknown)}",
        )
    return found


def _matrix_game(env_id: str, settings: dict[str, Any]) -> MatrixGameSpec:
    # Only matrix games have a batched path, so only they are worth naming here.
    games = sorted(s.env_id for s in registered("matrix"))
    if env_id not in _SPECS:
        raise _unknown(env_id, games)
    found = _checked(env_id, settings)
    if not isinstance(found, MatrixGameSpec):
        raise ConfigError(
            "env.id", expected=f"a matrix game among {games}",
            got=f"{env_id!r}, a {found.family} env",
            fix="Build it with envs.make(id) instead.",
        )
    return found


def make(env_id: str, *, render_mode: str | None = None, **settings: Any) -> ParallelEnv | Env:
    """Any registered env: a PettingZoo ParallelEnv for a matrix game
    (``make("coplay/ipd-v0", horizon=50)``), a Gymnasium env for a grid task
    (``make("coplay/grid-keydoor-v0", contexts=None)``)."""
    return _checked(env_id, settings).build(settings, render_mode)


def make_config(env_id: str, **settings: Any) -> MatrixGameConfig:
    """The validated game configuration of a matrix game with scenario overrides applied."""
    return _matrix_game(env_id, settings).config(**settings)


def make_batch(env_id: str, batch_size: int, **settings: Any) -> MatrixGameBatch:
    """The batched numpy core of a matrix game, ``batch_size`` games at once."""
    return MatrixGameBatch(make_config(env_id, **settings), batch_size=batch_size)


register(MatrixGameSpec(
    env_id="coplay/ipd-v0",
    default_payoffs=Payoffs.symmetric(R=1.0, S=-1.0, T=2.0, P=0.0),
    description="Iterated prisoner's dilemma; payoffs R=1 S=-1 T=2 P=0 as in the in-context "
    "co-player inference work (give {R: 3, S: 0, T: 5, P: 1} for the classic tournament).",
))
register(MatrixGameSpec(
    env_id="coplay/stag-hunt-v0",
    default_payoffs=Payoffs.symmetric(R=4.0, S=0.0, T=3.0, P=3.0),
    description="Iterated stag hunt: hunting the stag together (R=4) beats the safe hare (3), "
    "but hunting it alone yields nothing.",
))
register(MatrixGameSpec(
    env_id="coplay/chicken-v0",
    default_payoffs=Payoffs.symmetric(R=0.0, S=-1.0, T=1.0, P=-10.0),
    description="Iterated chicken (hawk-dove): swerving (cooperate) against a driver who holds "
    "on loses a little; both holding on (defect) is a crash.",
))
_TURN_AND_WALK = ("left", "right", "forward")
register(GridTaskSpec(
    env_id="coplay/grid-multiroom-v0",
    layout_settings=("rooms", "room_size", "max_steps"),
    actions=(*_TURN_AND_WALK, "toggle"),
    description="Rooms in a chain, each door closed; the goal is in the last room.",
))
register(GridTaskSpec(
    env_id="coplay/grid-keydoor-v0",
    layout_settings=("size", "max_steps"),
    actions=(*_TURN_AND_WALK, "pickup", "toggle"),
    description="Pick up the key, unlock the door in the wall, reach the goal behind it.",
))
register(GridTaskSpec(
    env_id="coplay/grid-deadends-v0",
    layout_settings=("branches", "branch_length", "max_steps"),
    actions=_TURN_AND_WALK,
    description="A corridor with dead-end branches; the goal ends one of them.",
))
