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
        agent = agent_kind.build(context, **params)
    except CoplayError as error:
        # Builders name the offending parameter; the caller knows which agent it belongs to.
        raise type(error)(
            f"{where}.{error.where}", expected=error.expected, got=error.got, fix=error.fix
        ) from None
    if isinstance(agent, PluginAgent):
        agent.locate(where)  # its errors during play name the agent too
    return agent


def load_plugin(path: str, *, where: str) -> Callable[..., Any]:
    """The object named by ``module:attr`` (``attr`` may be dotted). Whatever importing the
    module raises (a syntax error, a failing import inside it, any exception at its top
    level) becomes a PluginError naming the module."""
    module_name, sep, attr_path = path.partition(":")
    if not sep or not module_name or not attr_path:
        raise PluginError(
            where, expected="an import path of the form 'package.module:factory'", got=repr(path)
        )
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if module_name == missing or module_name.startswith(f"{missing}."):
            raise PluginError(
                where, expected=f"an importable module {module_name!r}", got=f"{error}",
                fix="Install the package or add its folder to PYTHONPATH.",
            ) from None
        raise PluginError(
            where, expected=f"module {module_name!r} to import", got=describe_exception(error),
            fix="Install what the plug-in needs.",
        ) from None
    except (Exception, SystemExit) as error:  # noqa: BLE001  (the plug-in's code failed as it loaded)
        raise PluginError(
            where, expected=f"module {module_name!r} to import", got=describe_exception(error),
            fix="Fix the plug-in module.",
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


def describe_exception(error: BaseException) -> str:
    """An exception as one line: its type and the first line of its message (a syntax error
    also says where)."""
    if isinstance(error, SyntaxError):
        place = f"{error.filename}, line {error.lineno}" if error.filename else f"line {error.lineno}"
        return f"SyntaxError: {error.msg} ({place})"
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


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
    try:
        agent = make(context, **params)
    except CoplayError:
        raise  # the plug-in names its own bad parameter
    except Exception as error:  # noqa: BLE001  (whatever the plug-in raises, it is named)
        raise PluginError(
            "factory", expected=f"{factory}(context, ...) to build an agent",
            got=describe_exception(error), fix="Fix the plug-in or its params.",
        ) from None
    if not isinstance(agent, Agent):
        raise PluginError(
            "factory",
            expected=f"{factory} to return an agent with reset(num_games, rng) and act(obs)",
            got=type(agent).__name__,
        )
    return PluginAgent(agent, factory=factory, num_actions=int(context.payoffs.table.shape[0]))


_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


class PluginAgent:
    """A plug-in agent checked at the boundary: whatever its methods raise, and actions of
    the wrong type, shape or range, become a PluginError naming the plug-in, instead of a
    traceback from deep inside the runner. The checks cost a few array reductions a round.

    Everything else (``hint_used``, ``belief``, the plug-in's own attributes) is read from
    the plug-in itself.
    """

    def __init__(self, agent: Agent, *, factory: str, num_actions: int) -> None:
        self._agent = agent
        self._factory = factory
        self._num_actions = num_actions
        self._name = "agents.?"  # set by ``build``, which knows the agent's name

    def locate(self, where: str) -> None:
        """Name the agent (``agents.NAME``) in the errors it raises."""
        self._name = where

    @property
    def plugin(self) -> Agent:
        """The plug-in's own agent object."""
        return self._agent

    def _where(self, method: str) -> str:
        return f"{self._name}.{method} (plug-in {self._factory})"

    def _failed(self, method: str, error: Exception) -> PluginError:
        return PluginError(self._where(method), expected=f"{method} to run",
                           got=describe_exception(error), fix="Fix the plug-in.")

    def reset(self, num_games: int, rng: np.random.Generator) -> None:
        try:
            self._agent.reset(num_games, rng)
        except CoplayError:
            raise
        except Exception as error:  # noqa: BLE001  (whatever the plug-in raises, it is named)
            raise self._failed("reset", error) from None

    def act(self, observations: np.ndarray, hints: Hints | None = None) -> np.ndarray:
        try:
            actions = (self._agent.act(observations) if hints is None
                       else self._agent.act(observations, hints))
        except CoplayError:
            raise
        except Exception as error:  # noqa: BLE001  (whatever the plug-in raises, it is named)
            raise self._failed("act", error) from None
        self._check_actions(actions, len(observations))
        if hints is not None and hasattr(self._agent, "hint_used"):
            self._check_hint_used(self._agent.hint_used, len(observations), hints.table.shape[1])
        return actions

    def observe(self, rewards: np.ndarray, active: np.ndarray) -> None:
        observe = getattr(self._agent, "observe", None)
        if observe is None:
            return
        try:
            observe(rewards, active)
        except CoplayError:
            raise
        except Exception as error:  # noqa: BLE001  (whatever the plug-in raises, it is named)
            raise self._failed("observe", error) from None

    def _check_actions(self, actions: Any, num_games: int) -> None:
        if not isinstance(actions, np.ndarray):
            got = type(actions).__name__
        elif actions.shape != (num_games,):
            got = f"shape {actions.shape}"
        elif actions.dtype.kind not in "iu":
            nan = actions.dtype.kind == "f" and bool(np.isnan(actions).any())
            got = f"NaN actions (dtype {actions.dtype})" if nan else f"dtype {actions.dtype}"
        # Seen as unsigned, a negative action is huge: one reduction checks both ends.
        elif num_games and actions.view(_UNSIGNED[actions.itemsize]).max() >= self._num_actions:
            bad = actions[(actions < 0) | (actions >= self._num_actions)]
            got = f"action {int(bad[0])}"
        else:
            return
        expected = (f"a numpy integer array of shape ({num_games},) with actions in "
                    f"0..{self._num_actions - 1}")
        raise PluginError(self._where("act"), expected=expected, got=got,
                          fix="Fix the plug-in's act.")

    def _check_hint_used(self, used: Any, num_games: int, k: int) -> None:
        if (isinstance(used, np.ndarray) and used.shape == (num_games,)
                and used.dtype.kind in "iu"
                and (num_games == 0 or (used.min() >= -1 and used.max() < k))):
            return
        if not isinstance(used, np.ndarray):
            got = type(used).__name__
        elif used.shape != (num_games,) or used.dtype.kind not in "iu":
            got = f"shape {used.shape}, dtype {used.dtype}"
        else:
            got = f"{int(used[(used < -1) | (used >= k)][0])}"
        raise PluginError(self._where("hint_used"),
                          expected=f"a numpy integer array of shape ({num_games},) in -1..{k - 1}",
                          got=got, fix="Fix the plug-in's act.")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # never during unpickling, before _agent exists
            raise AttributeError(name)
        return getattr(self._agent, name)
