"""The agent protocol and the registry that builds agents by kind.

Agents are batched: one agent object plays the same seat in B games at once, so the
runner's cost per round is a few array operations however many games run. Whatever an agent
remembers within an episode is explicit per-game data that ``reset`` clears.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from coplay.errors import ConfigError, CoplayError, PluginError
from coplay.step import Hints
from envs import Payoffs


@runtime_checkable
class Agent(Protocol):
    """What the runner needs of anything that takes a seat in a game.

    ``observations`` and the returned actions have shape (B,), one entry per game.
    ``hints`` carries each game's behaviors retrieved from memory when a scenario enables
    it; agents that cannot use them ignore them. An agent that follows a hint says which in
    ``hint_used``, a (B,) array of positions in each game's hints (-1: none), after ``act``.
    An agent may also define ``observe(rewards, active)``, called after every round with
    (B,) arrays.
    """

    def reset(self, num_games: int, rng: np.random.Generator) -> None: ...

    def act(self, observations: np.ndarray, hints: Hints | None = None) -> np.ndarray: ...


@dataclass(frozen=True)
class AgentContext:
    """What a builder may know about the game its agent will play (never the co-player):
    the env, its payoffs (matrix games; None elsewhere), the episode length when it is fixed
    or bounded (a matrix game's horizon, a grid task's step limit), and how many discrete
    actions there are."""

    env_id: str
    payoffs: Payoffs | None = None
    horizon: int | None = None
    num_actions: int = 2

    def matrix_payoffs(self, kind: str) -> Payoffs:
        """The payoffs, for kinds that only play matrix games."""
        if self.payoffs is None:
            raise ConfigError("kind", expected=f"a matrix game for kind {kind!r}",
                              got=repr(self.env_id))
        return self.payoffs


Builder = Callable[..., Agent]


@dataclass(frozen=True)
class AgentKind:
    name: str
    build: Builder
    description: str

    def parameters(self) -> list[str]:
        return list(inspect.signature(self.build).parameters)[1:]


_KINDS: dict[str, AgentKind] = {}


def register_kind(name: str, description: str) -> Callable[[Builder], Builder]:
    """Register ``build(context, *, param=...) -> Agent`` under ``name``."""

    def decorate(build: Builder) -> Builder:
        if name in _KINDS:
            raise ConfigError("agents.register_kind", expected="a new kind", got=repr(name))
        _KINDS[name] = AgentKind(name, build, description)
        return build

    return decorate


def kinds() -> list[AgentKind]:
    return [_KINDS[k] for k in sorted(_KINDS)]


def build(kind: str, params: dict[str, Any], context: AgentContext, *, where: str) -> Agent:
    """Build one agent; ``where`` (e.g. ``agents.tft``) prefixes any error message."""
    if kind not in _KINDS:
        raise ConfigError(
            f"{where}.kind", expected=f"one of {sorted(_KINDS)}", got=repr(kind),
            fix="Run `coplay agents` to list agent kinds, or use kind: plugin.",
        )
    agent_kind = _KINDS[kind]
    try:
        inspect.signature(agent_kind.build).bind(context, **params)
    except TypeError:
        raise ConfigError(
            f"{where}.params",
            expected=f"parameters among {agent_kind.parameters()} for kind {kind!r}",
            got=f"{sorted(params)}",
        ) from None
    try:
        return agent_kind.build(context, **params)
    except CoplayError as error:
        # Builders name the offending parameter; the caller knows which agent it belongs to.
        raise type(error)(
            f"{where}.{error.where}", expected=error.expected, got=error.got, fix=error.fix
        ) from None


def load_plugin(path: str, *, where: str) -> Callable[..., Any]:
    """The object named by ``module:attr`` (``attr`` may be dotted)."""
    module_name, sep, attr_path = path.partition(":")
    if not sep or not module_name or not attr_path:
        raise PluginError(
            where, expected="an import path of the form 'package.module:factory'", got=repr(path)
        )
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise PluginError(
            where, expected=f"an importable module {module_name!r}", got=f"{error}",
            fix="Install the package or add its folder to PYTHONPATH.",
        ) from None
    for part in attr_path.split("."):
        if not hasattr(target, part):
            raise PluginError(
                where, expected=f"{module_name!r} to define {attr_path!r}",
                got=f"no attribute {part!r}",
            )
        target = getattr(target, part)
    if not callable(target):
        raise PluginError(where, expected=f"{path!r} to be callable", got=type(target).__name__)
    return target


@register_kind(
    "plugin",
    "Any importable factory(context, **params) -> Agent, named as 'package.module:factory'.",
)
def build_plugin(
    context: AgentContext, *, factory: str, params: dict[str, Any] | None = None
) -> Agent:
    make = load_plugin(factory, where="factory")
    params = params or {}
    try:
        inspect.signature(make).bind(context, **params)
    except TypeError as error:
        raise PluginError(
            "params",
            expected=f"parameters that {factory}(context, ...) accepts", got=f"{error}",
        ) from None
    agent = make(context, **params)
    if not isinstance(agent, Agent):
        raise PluginError(
            "factory",
            expected=f"{factory} to return an agent with reset(num_games, rng) and act(obs)",
            got=type(agent).__name__,
        )
    return agent
