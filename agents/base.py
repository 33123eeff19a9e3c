"""The agent protocol and the registry that builds agents by kind.

Agents are batched: one agent object plays the same seat in B games at once, so the
runner's cost per round is a few array operations however many games run. Whatever an agent
remembers within an episode is explicit per-game data that ``reset`` clears.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from coplay.errors import ConfigError, CoplayError, PluginError

if TYPE_CHECKING:
    import numpy as np

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
class HintedBehavior:
    """A behavior from memory as an agent sees it."""

    behavior_id: int
    name: str
    instruction: str
    kind: str
    payload: Mapping[str, Any] | None


@dataclass(frozen=True)
class Hints:
    """The behaviors retrieved for each of B games this round, best first.

    Games in the same situation get the same hints, so they come as a table: game b is in
    context ``contexts[b]``, and ``table`` (C, k) lists each context's hints as indexes into
    ``behaviors`` (-1 where fewer were found); ``rows`` gives them per game. For agents that
    execute behaviors in bulk, the catalogue arrays have one row per behavior plus a last
    sentinel row, which hints of -1 pick: ``executable`` (R + 1,) says whether a behavior
    can be played (never the sentinel), ``cooperate`` (R + 1, 5) holds a response rule's
    chance of cooperating per observation token (NaN for other kinds), ``macros``
    (R + 1, L) an action macro's actions (-1 padding; all -1 for other kinds).
    """

    contexts: np.ndarray
    table: np.ndarray
    behaviors: Sequence[HintedBehavior]
    executable: np.ndarray
    cooperate: np.ndarray
    macros: np.ndarray

    @property
    def rows(self) -> np.ndarray:
        """(B, k): each game's hints."""
        return self.table[self.contexts]

    def take(self, games: np.ndarray) -> Hints:
        """The hints of a subset of the games (for a population's members)."""
        return Hints(self.contexts[games], self.table, self.behaviors, self.executable,
                     self.cooperate, self.macros)


@dataclass(frozen=True)
class AgentContext:
    """What a builder may know about the game its agent will play (never the co-player)."""

    env_id: str
    payoffs: Payoffs


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
        return builder(context, **params)
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
