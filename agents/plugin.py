"""``kind: plugin``: any importable factory that builds an agent, checked at the boundary.

Whatever a plug-in does wrong, at import, when built or while it plays (a wrong shape, dtype,
out-of-range or NaN actions, an exception), becomes a ``PluginError`` naming the agent and
its factory, never a traceback from inside the runner.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from agents.base import Agent, AgentContext
from coplay.errors import CoplayError, PluginError
from coplay.step import Hints


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
    except (Exception, SystemExit) as error:
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
    except Exception as error:
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
    return PluginAgent(agent, factory=factory, num_actions=context.num_actions)


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
        except Exception as error:
            raise self._failed("reset", error) from None

    def act(self, observations: np.ndarray, hints: Hints | None = None) -> np.ndarray:
        try:
            actions = (self._agent.act(observations) if hints is None
                       else self._agent.act(observations, hints))
        except CoplayError:
            raise
        except Exception as error:
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
        except Exception as error:
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
