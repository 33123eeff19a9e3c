"""Versioned environment ids (``coplay/ipd-v0``) and the factories behind them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from coplay.errors import ConfigError
from envs.matrix_core import MatrixGameBatch, MatrixGameConfig, Payoffs
from envs.matrix_env import MatrixGameEnv


@dataclass(frozen=True)
class MatrixGameSpec:
    """A registered iterated matrix game: its id, default payoffs and a line for listings."""

    env_id: str
    default_payoffs: Payoffs
    description: str

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


SETTINGS = ("payoffs", "horizon", "continuation_probability")
_SPECS: dict[str, MatrixGameSpec] = {}


def register(spec: MatrixGameSpec) -> None:
    if spec.env_id in _SPECS:
        raise ConfigError("envs.register", expected="a new env id", got=f"{spec.env_id!r} again")
    _SPECS[spec.env_id] = spec


def spec(env_id: str) -> MatrixGameSpec:
    try:
        return _SPECS[env_id]
    except KeyError:
        raise ConfigError(
            "env.id", expected=f"one of {sorted(_SPECS)}", got=repr(env_id),
            fix="Run `coplay envs` to list the registered environments.",
        ) from None


def registered() -> list[MatrixGameSpec]:
    return [_SPECS[k] for k in sorted(_SPECS)]


def make_config(env_id: str, **settings: Any) -> MatrixGameConfig:
    """The validated game configuration of ``env_id`` with scenario overrides applied."""
    game = spec(env_id)
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise ConfigError(
            "env", expected=f"settings among {list(SETTINGS)}", got=f"{sorted(unknown)}"
        )
    return game.config(**settings)


def make(env_id: str, *, render_mode: str | None = None, **settings: Any) -> MatrixGameEnv:
    """A PettingZoo ParallelEnv, e.g. ``make("coplay/ipd-v0", horizon=50)``."""
    return MatrixGameEnv(make_config(env_id, **settings), env_id=env_id, render_mode=render_mode)


def make_batch(env_id: str, batch_size: int, **settings: Any) -> MatrixGameBatch:
    """The batched numpy core of the same game, ``batch_size`` games at once."""
    return MatrixGameBatch(make_config(env_id, **settings), batch_size=batch_size)


register(MatrixGameSpec(
    "coplay/ipd-v0",
    Payoffs.symmetric(R=1.0, S=-1.0, T=2.0, P=0.0),
    "Iterated prisoner's dilemma; payoffs R=1 S=-1 T=2 P=0 as in the in-context co-player "
    "inference work (give {R: 3, S: 0, T: 5, P: 1} for the classic tournament).",
))
register(MatrixGameSpec(
    "coplay/stag-hunt-v0",
    Payoffs.symmetric(R=4.0, S=0.0, T=3.0, P=3.0),
    "Iterated stag hunt: hunting the stag together (R=4) beats the safe hare (3), "
    "but hunting it alone yields nothing.",
))
register(MatrixGameSpec(
    "coplay/chicken-v0",
    Payoffs.symmetric(R=0.0, S=-1.0, T=1.0, P=-10.0),
    "Iterated chicken (hawk-dove): swerving (cooperate) against a driver who holds on loses "
    "a little; both holding on (defect) is a crash.",
))
