"""The simulation scenario (``kind: simulation``, what `coplay run` plays) and the pieces every
scenario kind shares: reading YAML, turning validation errors into one line, building agents.

A simulation scenario is data (as in Melting Pot): an environment, named agents, who plays
whom, and run settings. ``scenarios.loading`` reads every kind of scenario file; it reports the
first problem as ``file: field: expected ..., got ...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

import agents
import envs
from coplay.errors import ConfigError, CoplayError, ScenarioError

# A round of one episode keeps its joint action (1 byte) and two beliefs (float32 each).
BYTES_PER_ROUND = 9
ROUND_ARRAYS_BUDGET = 4 * 2**30


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvSection(Strict):
    """An env id and its settings: a matrix game's below; a grid task's (``contexts``,
    ``context_seed`` and its layout settings) written flat, checked when the env is built."""

    model_config = ConfigDict(extra="allow", frozen=True)
    id: str
    # Checked by envs.Payoffs.parse, whose errors name the expected forms.
    payoffs: Any = None
    horizon: int = Field(default=100, ge=1)
    continuation_probability: float | None = Field(default=None, gt=0.0, lt=1.0)

    @property
    def is_grid(self) -> bool:
        return self.id in envs.GRID_TASK_IDS  # an unknown id is named when agents are built

    def settings(self) -> dict[str, Any]:
        if self.is_grid:
            return self.model_dump(exclude={"id", "payoffs", "horizon",
                                            "continuation_probability"}, exclude_none=False)
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


class Solo(Strict):
    """Each player plays ``run.episodes`` episodes of a single-agent task on its own."""

    mode: Literal["solo"]
    players: list[str] = Field(min_length=1)


Matchups = Annotated[RoundRobin | FocalPopulation | CrossPlay | Solo,
                     Field(discriminator="mode")]


class RunSection(Strict):
    episodes: int = Field(default=100, ge=1)
    seed: int = Field(default=0, ge=0)
    # Episodes played side by side in one batch: bounds memory; part of the seeding.
    batch_size: int = Field(default=1024, ge=1)
    record_trajectories: bool = False


class MemorySection(Strict):
    """The behavior handbook in the loop: every agent gets up to ``k`` behaviors at every
    step (filtered by ``tags`` and ``kinds``): with ``ranking: effect``, the relevant ones
    whose measured effect there is best, trying those with little evidence in some episodes
    if ``explore`` and offering only what is known to help if not (``memory.effects``); with
    ``ranking: relevance``, the most relevant ones whatever their effect. Usage and effect
    statistics are written back, and with ``extract`` the run's episodes are distilled into
    new behaviors when it ends (which records its trajectories)."""

    k: int = Field(default=3, ge=1, le=20)
    tags: list[str] = []
    kinds: list[Literal["text", "response_rule", "action_macro", "approach"]] = []
    extract: bool = False
    ranking: Literal["effect", "relevance"] = "effect"
    explore: bool = True


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
        if isinstance(m, Solo) != self.env.is_grid:
            raise ValueError(
                f"matchups.mode: expected {'solo' if self.env.is_grid else 'a two-player mode'} "
                f"for {self.env.id}, got {m.mode!r}"
            )
        if isinstance(m, RoundRobin | Solo):
            named = [("matchups.players", n) for n in m.players]
        elif isinstance(m, CrossPlay):
            named = [("matchups.focal", n) for n in m.focal]
            named += [("matchups.against", n) for n in m.against]
        else:
            named = [("matchups.focal", n) for n in m.focal]
            named += [("matchups.background", e.agent) for e in m.background]
        seen: set[tuple[str, str]] = set()
        for field, name in named:
            if name not in self.agents:
                raise ValueError(
                    f"{field}: expected an agent defined under agents ({sorted(self.agents)}), "
                    f"got {name!r}"
                )
            if (field, name) in seen:
                raise ValueError(f"{field}: expected each agent once, got {name!r} twice")
            seen.add((field, name))
        return self

    @model_validator(mode="after")
    def _fits_in_memory(self) -> Scenario:
        """Refuse, before anything is allocated, a run whose per-round arrays could not fit:
        a pairing keeps each round's joint action and beliefs for all its episodes."""
        if self.env.is_grid:
            return self
        needed = self.env.horizon * self.run.episodes * BYTES_PER_ROUND
        if needed > ROUND_ARRAYS_BUDGET:
            most = ROUND_ARRAYS_BUDGET // (self.env.horizon * BYTES_PER_ROUND)
            raise ValueError(
                f"run.episodes: expected at most {most} episodes of {self.env.horizon} rounds "
                f"per pairing (their round-by-round arrays must fit in memory), "
                f"got {self.run.episodes}"
            )
        return self

    def build_agent(self, name: str) -> agents.Agent:
        return build_agent(self.env, self.agents[name], name)


# The name the scenario kinds go by; `Scenario` stays the simulation model's class name.
SimulationScenario = Scenario


def read_text(path: Path) -> str:
    """A scenario file's text: refuses what cannot be read, binary files and non-UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ScenarioError(
            str(path), expected="a readable scenario file", got=error.strerror or str(error),
            fix="Run `coplay scenarios list` for the bundled scenarios.",
        ) from None
    if b"\0" in data:
        raise ScenarioError(str(path), expected="a YAML text file", got="a binary file",
                            fix="Pass the scenario's .yaml file.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ScenarioError(
            f"{path!s}: line {line}", expected="UTF-8 text",
            got=f"byte 0x{data[error.start]:02x}, which is not UTF-8",
            fix="Save the file as UTF-8.",
        ) from None


class _DuplicateKey(yaml.MarkedYAMLError):
    pass


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error
    rather than silently taking the last value."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                seen = key in first_line
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if seen:
                raise _DuplicateKey(
                    problem=f"key {key!r} again (first given at line {first_line[key]})",
                    problem_mark=key_node.start_mark,
                )
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def read_yaml(text: str, *, source: str, fields: str) -> dict:
    """The YAML mapping in ``text``; ``fields`` names what the mapping should hold."""
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)
    except _DuplicateKey as error:
        raise ScenarioError(
            f"{source}: line {error.problem_mark.line + 1}",
            expected="each key once in a mapping", got=error.problem,
            fix="Remove or rename one of them.",
        ) from None
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
    if env.is_grid:
        spec = envs.spec(env.id)
        unknown = set(env.model_extra or {}) - set(spec.settings)
        if unknown:
            raise ConfigError("env", expected=f"settings of {env.id} among {list(spec.settings)}",
                              got=str(sorted(unknown)))
        return agents.AgentContext(env_id=env.id, horizon=(env.model_extra or {}).get("max_steps"),
                                   num_actions=len(spec.actions))
    config = envs.make_config(env.id, **env.settings())  # names any unknown setting
    return agents.AgentContext(env_id=env.id, payoffs=config.payoffs, horizon=config.horizon)


def _env_field(where: str) -> str:
    return where if where.startswith("env") else f"env.{where}"


# Pydantic's error types for a key the model does not have (models, dataclasses).
UNKNOWN_FIELD_ERRORS = ("extra_forbidden", "unexpected_keyword_argument")


def error_field(loc: tuple[int | str, ...]) -> str:
    """A validation error's location as the file's dotted field (matchup modes are no fields)."""
    modes = ("round_robin", "population", "cross_play", "solo")
    return ".".join(str(part) for part in loc if part not in modes)


def validation_error(source: str, error: ValidationError) -> ScenarioError:
    first = error.errors()[0]
    field = error_field(first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "value_error" and ": expected " in message:
        field_in_message, rest = message.split(": expected ", 1)
        expected, _, got = rest.partition(", got ")
        # A nested section's validator names its field within the section.
        where = f"{field}.{field_in_message}" if field else field_in_message
        return ScenarioError(f"{source}: {where}", expected=expected, got=got)
    kind, context = first["type"], first.get("ctx", {})
    if kind in UNKNOWN_FIELD_ERRORS:
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
