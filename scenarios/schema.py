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

BUNDLED_DIR = Path(__file__).parent / "data"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvSection(Strict):
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


class RoundRobin(Strict):
    """Every pair of distinct players meets for ``run.episodes`` episodes."""

    mode: Literal["round_robin"]
    players: list[str] = Field(min_length=2)
    self_play: bool = False


class BackgroundEntry(Strict):
    agent: str
    weight: float = Field(default=1.0, gt=0.0)


class FocalPopulation(Strict):
    """Each focal agent plays ``run.episodes`` episodes; every episode draws its co-player
    from the background population by weight."""

    mode: Literal["population"]
    focal: list[str] = Field(min_length=1)
    background: list[BackgroundEntry] = Field(min_length=1)


class CrossPlay(Strict):
    """Each focal agent meets each co-player in ``against`` for ``run.episodes`` episodes:
    the cross-play table of an evaluation."""

    mode: Literal["cross_play"]
    focal: list[str] = Field(min_length=1)
    against: list[str] = Field(min_length=1)


Matchups = Annotated[RoundRobin | FocalPopulation | CrossPlay, Field(discriminator="mode")]


class RunSection(Strict):
    episodes: int = Field(default=100, ge=1)
    seed: int = Field(default=0, ge=0)
    # Episodes played side by side in one batch: bounds memory; part of the seeding.
    batch_size: int = Field(default=1024, ge=1)
    record_trajectories: bool = False


class MemorySection(Strict):
    """The behavior handbook in the loop: every agent gets its ``k`` best behaviors at every
    step (filtered by ``tags`` and ``kinds``), usage statistics are written back, and with
    ``extract`` the run's episodes are distilled into new behaviors when it ends (which
    records its trajectories)."""

    k: int = Field(default=3, ge=1, le=20)
    tags: list[str] = []
    kinds: list[Literal["text", "response_rule", "action_macro"]] = []
    extract: bool = False


class Scenario(Strict):
    kind: Literal["simulation"] = "simulation"
    name: str = Field(min_length=1)
    description: str = ""
    env: EnvSection
    agents: dict[str, AgentSection] = Field(min_length=1)
    matchups: Matchups
    run: RunSection = RunSection()
    memory: MemorySection | None = None

    @model_validator(mode="after")
    def _names_are_defined(self) -> Scenario:
        m = self.matchups
        if isinstance(m, RoundRobin):
            named = [("matchups.players", n) for n in m.players]
        elif isinstance(m, CrossPlay):
            named = [("matchups.focal", n) for n in m.focal]
            named += [("matchups.against", n) for n in m.against]
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

    def build_agent(self, name: str) -> agents.Agent:
        return build_agent(self.env, self.agents[name], name)


def load(path: str | Path) -> Scenario:
    """Read, validate and check a scenario file (or a bundled scenario's name)."""
    path = resolve(path)
    return parse(read_text(path), source=str(path))


def read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as error:
        raise ScenarioError(
            str(path), expected="a readable scenario file", got=error.strerror or str(error),
            fix="Run `coplay scenarios list` for the bundled scenarios.",
        ) from None


def read_yaml(text: str, *, source: str, fields: str) -> dict:
    """The YAML mapping in ``text``; ``fields`` names what the mapping should hold."""
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
        raise ScenarioError(source, expected=f"a mapping with {fields}", got=type(data).__name__)
    return data


def parse(text: str, *, source: str = "<scenario>") -> Scenario:
    data = read_yaml(text, source=source, fields="name, env, agents, matchups")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as error:
        raise validation_error(source, error) from None
    check_agents(scenario.env, scenario.agents, source=source)
    return scenario


def check_agents(env: EnvSection, sections: dict[str, AgentSection], *, source: str) -> None:
    """Build every agent once, so a bad kind, parameter or plug-in fails at load time."""
    try:
        for name, section in sections.items():
            build_agent(env, section, name)
    except CoplayError as error:
        where = error.where if error.where.startswith("agents.") else _env_field(error.where)
        raise ScenarioError(
            f"{source}: {where}", expected=error.expected, got=error.got, fix=error.fix
        ) from None


def build_agent(env: EnvSection, section: AgentSection, name: str) -> agents.Agent:
    return agents.build(section.kind, section.params, agent_context(env), where=f"agents.{name}")


def agent_context(env: EnvSection) -> agents.AgentContext:
    config = envs.make_config(env.id, **env.settings())
    return agents.AgentContext(env_id=env.id, payoffs=config.payoffs)


def _env_field(where: str) -> str:
    return where if where.startswith("env") else f"env.{where}"


def validation_error(source: str, error: ValidationError) -> ScenarioError:
    first = error.errors()[0]
    field = ".".join(
        str(part) for part in first["loc"] if part not in ("round_robin", "population", "cross_play")
    )
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "value_error" and ": expected " in message:
        field_in_message, rest = message.split(": expected ", 1)
        expected, _, got = rest.partition(", got ")
        # A nested section's validator names its field within the section.
        where = f"{field}.{field_in_message}" if field else field_in_message
        return ScenarioError(f"{source}: {where}", expected=expected, got=got)
    kind, context = first["type"], first.get("ctx", {})
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
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


def resolve(path: str | Path, folder: Path = BUNDLED_DIR) -> Path:
    """A path as given, or the file of that name bundled in ``folder``."""
    candidate = Path(path)
    if candidate.exists() or candidate.suffix in (".yaml", ".yml"):
        return candidate
    bundled_path = folder / f"{path}.yaml"
    return bundled_path if bundled_path.exists() else candidate


def bundled() -> list[Path]:
    return sorted(BUNDLED_DIR.glob("*.yaml"))
