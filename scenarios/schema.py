"""Scenario files: YAML validated into typed models, then checked by building what they name.

A scenario is data (as in Melting Pot): an environment, named agents, who plays whom, and
run settings. ``load`` reports the first problem as ``file: field: expected ..., got ...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

import agents
import envs
from coplay.errors import CoplayError, ScenarioError

BUNDLED_DIR = Path(__file__).parent


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvSection(_Strict):
    id: str
    # Checked by envs.Payoffs.parse, whose errors name the expected forms.
    payoffs: Any = None
    horizon: int = Field(default=100, ge=1)
    continuation_probability: float | None = Field(default=None, gt=0.0, lt=1.0)

    def settings(self) -> dict[str, Any]:
        return self.model_dump(exclude={"id"}, exclude_none=True)


class AgentSection(BaseModel):
    """``kind`` plus that kind's own parameters, written flat: ``{kind: random, p_cooperate: 0.3}``."""

    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class RoundRobin(_Strict):
    """Every pair of distinct players meets for ``run.episodes`` episodes."""

    mode: Literal["round_robin"]
    players: list[str] = Field(min_length=2)
    self_play: bool = False


class BackgroundEntry(_Strict):
    agent: str
    weight: float = Field(default=1.0, gt=0.0)


class FocalPopulation(_Strict):
    """Each focal agent plays ``run.episodes`` episodes; every episode draws its co-player
    from the background population by weight."""

    mode: Literal["population"]
    focal: list[str] = Field(min_length=1)
    background: list[BackgroundEntry] = Field(min_length=1)


Matchups = Annotated[RoundRobin | FocalPopulation, Field(discriminator="mode")]


class RunSection(_Strict):
    episodes: int = Field(default=100, ge=1)
    seed: int = Field(default=0, ge=0)
    # Episodes played side by side in one batch: bounds memory; part of the seeding.
    batch_size: int = Field(default=1024, ge=1)
    record_trajectories: bool = False


class Scenario(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    env: EnvSection
    agents: dict[str, AgentSection] = Field(min_length=1)
    matchups: Matchups
    run: RunSection = RunSection()

    @model_validator(mode="after")
    def _names_are_defined(self) -> Scenario:
        m = self.matchups
        if isinstance(m, RoundRobin):
            named = [("matchups.players", n) for n in m.players]
        else:
            named = [("matchups.focal", n) for n in m.focal]
            named += [("matchups.background", e.agent) for e in m.background]
        for field, name in named:
            if name not in self.agents:
                raise ValueError(
                    f"{field}: expected an agent defined under agents ({sorted(self.agents)}), "
                    f"got {name!r}"
                )
        return self

    def agent_context(self) -> agents.AgentContext:
        config = envs.make_config(self.env.id, **self.env.settings())
        return agents.AgentContext(env_id=self.env.id, payoffs=config.payoffs)

    def build_agent(self, name: str) -> agents.Agent:
        section = self.agents[name]
        return agents.build(
            section.kind, section.params, self.agent_context(), where=f"agents.{name}"
        )


def load(path: str | Path) -> Scenario:
    """Read, validate and check a scenario file (or a bundled scenario's name)."""
    path = resolve(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ScenarioError(
            str(path), expected="a readable scenario file", got=error.strerror or str(error),
            fix="Run `coplay scenarios list` for the bundled scenarios.",
        ) from None
    return parse(text, source=str(path))


def parse(text: str, *, source: str = "<scenario>") -> Scenario:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f"line {mark.line + 1}" if mark is not None else "the file"
        problem = getattr(error, "problem", None) or "unreadable YAML"
        raise ScenarioError(
            f"{source}: {at}", expected="valid YAML", got=problem,
        ) from None
    if not isinstance(data, dict):
        raise ScenarioError(
            source, expected="a mapping with name, env, agents, matchups",
            got=type(data).__name__,
        )
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as error:
        raise _scenario_error(source, error) from None
    try:
        scenario.agent_context()
        for name in scenario.agents:
            scenario.build_agent(name)
    except CoplayError as error:
        where = error.where if error.where.startswith("agents.") else _env_field(error.where)
        raise ScenarioError(
            f"{source}: {where}", expected=error.expected, got=error.got, fix=error.fix
        ) from None
    return scenario


def _env_field(where: str) -> str:
    return where if where.startswith("env") else f"env.{where}"


def _scenario_error(source: str, error: ValidationError) -> ScenarioError:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"] if part not in ("round_robin", "population"))
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "value_error" and ": expected " in message:
        field_in_message, rest = message.split(": expected ", 1)
        expected, _, got = rest.partition(", got ")
        return ScenarioError(f"{source}: {field_in_message}", expected=expected, got=got)
    kind, context = first["type"], first.get("ctx", {})
    if kind == "extra_forbidden":
        return ScenarioError(
            f"{source}: {field}", expected="a known field", got=f"unknown field {first['loc'][-1]!r}",
            fix="Check the spelling against the bundled scenarios (`coplay scenarios list`).",
        )
    if kind == "union_tag_invalid":
        return ScenarioError(
            f"{source}: {field}.{context['discriminator'].strip(chr(39))}",
            expected=f"one of {context['expected_tags']}", got=repr(context["tag"]),
        )
    got = "nothing" if kind == "missing" else repr(first.get("input"))
    expected = "this field" if kind == "missing" else message.removeprefix("Input should be ")
    return ScenarioError(f"{source}: {field or 'scenario'}", expected=expected, got=got)


def resolve(path: str | Path) -> Path:
    """A path as given, or the bundled scenario of that name."""
    candidate = Path(path)
    if candidate.exists() or candidate.suffix in (".yaml", ".yml"):
        return candidate
    bundled = BUNDLED_DIR / f"{path}.yaml"
    return bundled if bundled.exists() else candidate


def bundled() -> list[Path]:
    return sorted(BUNDLED_DIR.glob("*.yaml"))
