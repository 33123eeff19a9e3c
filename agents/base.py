"""The agent protocol and the registry that builds agents by kind.

Agents are batched: one agent object plays the same seat in B games at once, so the
runner's cost per round is a few array operations however many games run. Whatever an agent
remembers within an episode is explicit per-game data that ``reset`` clears.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from coplay.errors import ConfigError, CoplayError

if TYPE_CHECKING:
    import numpy as np

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


@runtime_checkable
class Locatable(Protocol):
    """An agent that wants to know where the scenario names it, for its error messages."""

    def locate(self, where: str) -> None: ...


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
    """A kind a scenario can name. ``builder`` is the builder itself, or ``module:function``
    for one imported on the first build, so that listing kinds imports none of them."""

    name: str
    description: str
    parameters: tuple[str, ...]
    builder: Builder | str


_KINDS: dict[str, AgentKind] = {}


def _keyword_parameters(builder: Builder) -> tuple[str, ...]:
    return tuple(list(inspect.signature(builder).parameters)[1:])


def _add(kind: AgentKind) -> None:
    if kind.name in _KINDS:
        raise ConfigError("agents.register_kind", expected="a new kind", got=repr(kind.name))
    _KINDS[kind.name] = kind


def register_kind(name: str, description: str) -> Callable[[Builder], Builder]:
    """Register ``build(context, *, param=...) -> Agent`` under ``name``."""

    def decorate(builder: Builder) -> Builder:
        _add(AgentKind(name, description, _keyword_parameters(builder), builder))
        return builder

    return decorate


def register_lazy_kind(
    name: str, description: str, *, builder: str, parameters: Sequence[str]
) -> None:
    """Register a kind whose builder, ``module:function``, is imported when it is first built;
    ``parameters`` are the builder's keyword parameters, for listing it without the import."""
    _add(AgentKind(name, description, tuple(parameters), builder))


def kinds() -> list[AgentKind]:
    return [_KINDS[k] for k in sorted(_KINDS)]


def _builder(kind: AgentKind) -> Builder:
    """The kind's builder, imported on first use; its parameters must be the ones declared."""
    if callable(kind.builder):
        return kind.builder
    module_name, _, function = kind.builder.partition(":")
    builder = getattr(importlib.import_module(module_name), function)
    if _keyword_parameters(builder) != kind.parameters:
        raise ConfigError(
            f"agents.register_lazy_kind({kind.name!r})",
            expected=f"the parameters of {kind.builder}, {list(_keyword_parameters(builder))}",
            got=f"{list(kind.parameters)}",
        )
    _KINDS[kind.name] = AgentKind(kind.name, kind.description, kind.parameters, builder)
    return builder


def build(kind: str, params: dict[str, Any], context: AgentContext, *, where: str) -> Agent:
    """Build one agent; ``where`` (e.g. ``agents.tft``) prefixes any error message."""
    if kind not in _KINDS:
        raise ConfigError(
            f"{where}.kind", expected=f"one of {sorted(_KINDS)}", got=repr(kind),
            fix="Run `coplay agents` to list agent kinds, or use kind: plugin.",
        )
    agent_kind = _KINDS[kind]
    builder = _builder(agent_kind)
    try:
        inspect.signature(builder).bind(context, **params)
    except TypeError:
        raise ConfigError(
            f"{where}.params",
            expected=f"parameters among {list(agent_kind.parameters)} for kind {kind!r}",
            got=f"{sorted(params)}",
        ) from None
    try:
        agent = builder(context, **params)
    except CoplayError as error:
        # Builders name the offending parameter; the caller knows which agent it belongs to.
        raise type(error)(
            f"{where}.{error.where}", expected=error.expected, got=error.got, fix=error.fix
        ) from None
    if isinstance(agent, Locatable):
        agent.locate(where)  # its errors during play name the agent too
    return agent
