"""One loader for every scenario file: YAML mapping, then the command line's overrides, then one
validation into the model its ``kind`` names.

    kind: simulation    # `coplay run`: agents meet in matchups        (scenarios.schema.Scenario)
    kind: training      # `coplay train`: learners against a pool      (scenarios.training)
    kind: exploration   # `coplay train`: one agent, grid task, bonus  (scenarios.exploration)
    kind: reuse         # `coplay reuse run`: memory on held-out co-players (scenarios.reuse)

``kind`` is required and is the union's one discriminator: nothing else in a file says what it
is. Overrides (``--set train.seed=3``, and options such as ``--seed``) are set in the mapping
read from the file before it is validated, so they are checked exactly like the file's own
fields. Bundled scenarios live in ``scenarios/data/`` (simulations) and its ``train/``,
``explore/`` and ``reuse/`` folders; a bundled scenario's name finds it in any of them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ValidationError

from coplay.errors import ConfigError, CoplayError, ScenarioError
from scenarios.schema import (
    UNKNOWN_FIELD_ERRORS,
    Scenario,
    UniqueKeyLoader,
    check_agents,
    error_field,
    read_text,
    read_yaml,
    validation_error,
)

if TYPE_CHECKING:
    from scenarios.exploration import ExplorationScenario
    from scenarios.reuse import ReuseScenario
    from scenarios.training import TrainingScenario

    AnyScenario = Scenario | TrainingScenario | ExplorationScenario | ReuseScenario

# Each kind and the command that takes it.
COMMANDS = {"simulation": "coplay run", "training": "coplay train", "exploration": "coplay train",
            "reuse": "coplay reuse run"}
KINDS = tuple(COMMANDS)

BUNDLED_DIR = Path(__file__).parent / "data"
# Where each kind's bundled files live; names are unique across these folders.
FOLDERS = {"simulation": BUNDLED_DIR, "training": BUNDLED_DIR / "train",
           "exploration": BUNDLED_DIR / "explore", "reuse": BUNDLED_DIR / "reuse"}


def model(kind: str) -> type[BaseModel]:
    """The model of one kind. The training kinds' modules are imported only when a file of
    theirs is read: their recipes' settings import torch, which `coplay run` does not need."""
    if kind == "simulation":
        return Scenario
    if kind == "training":
        from scenarios.training import TrainingScenario

        return TrainingScenario
    if kind == "exploration":
        from scenarios.exploration import ExplorationScenario

        return ExplorationScenario
    if kind == "reuse":
        from scenarios.reuse import ReuseScenario

        return ReuseScenario
    raise ValueError(f"no scenario kind {kind!r}; the kinds are {list(KINDS)}")


@dataclass(frozen=True)
class Override:
    """A field set from the command line. ``key`` is the field's dotted path in the file,
    ``option`` what the user typed (named when the field is unknown), and ``fix`` replaces the
    spelling hint of that error."""

    key: str
    value: Any
    option: str
    fix: str = ""

    @classmethod
    def parse(cls, text: str) -> Override:
        """``KEY=VALUE`` as given to ``--set``; VALUE is read as YAML (``3``, ``true``,
        ``[a, b]``, ``{hidden_size: 8}``)."""
        key, sep, value = text.partition("=")
        if not sep or not all(key.split(".")):
            raise ConfigError("--set", expected="KEY=VALUE with a dotted KEY, e.g. train.seed=3",
                              got=repr(text))
        try:
            parsed = yaml.load(value, Loader=UniqueKeyLoader)
        except yaml.YAMLError as error:
            problem = getattr(error, "problem", None) or "unreadable YAML"
            raise ConfigError(f"--set {key}", expected="a YAML value", got=problem) from None
        return cls(key, parsed, option=f"--set {key}")


def load(
    path_or_name: str | Path, *, overrides: Sequence[Override] = (),
    accept: Collection[str] | None = None, build: bool = True,
) -> AnyScenario:
    """Read and validate a scenario file, or a bundled scenario by name. See ``parse``."""
    path = resolve(path_or_name)
    return parse(read_text(path), source=str(path), overrides=overrides, accept=accept, build=build)


def parse(
    text: str, *, source: str = "<scenario>", overrides: Sequence[Override] = (),
    accept: Collection[str] | None = None, build: bool = True,
) -> AnyScenario:
    """The scenario ``text`` describes, with ``overrides`` set. ``accept``: the kinds the caller
    takes (any by default), checked before anything else is. ``build``: also build every agent
    and check that the checkpoints it names exist (off to list scenarios whose checkpoints come
    from running earlier ones)."""
    data = read_yaml(text, source=source, fields="kind, name, env and the sections of its kind")
    for override in overrides:
        _set(data, override, source=source)
    kind = _kind(data, source=source, accept=accept)
    try:
        scenario = model(kind).model_validate(data)
    except ValidationError as error:
        raise _validation_error(source, error, overrides) from None
    except CoplayError as error:  # settings dataclasses check themselves as pydantic builds them
        # A matrix-game policy's checks name policy.*; it sits under train.policy in the file.
        where = f"train.{error.where}" if error.where.startswith("policy.") else error.where
        raise ScenarioError(
            f"{source}: {where}", expected=error.expected, got=error.got, fix=error.fix
        ) from None
    if build:
        _build(scenario, source=source)
    return scenario


def _set(data: dict, override: Override, *, source: str) -> None:
    *parents, last = override.key.split(".")
    node = data
    for depth, part in enumerate(parents, start=1):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ScenarioError(
                f"{source}: {override.option}",
                expected=f"a mapping at {'.'.join(parents[:depth])} to set a field in",
                got=repr(child),
            )
        node = child
    node[last] = override.value


def _kind(data: dict, *, source: str, accept: Collection[str] | None) -> str:
    kind = data.get("kind")
    if kind not in KINDS:
        if "kind" not in data:
            raise ScenarioError(
                f"{source}: kind", expected=f"one of {list(KINDS)}", got="nothing",
                fix="Add a first line `kind: simulation` (or training, exploration, reuse) "
                    "saying what the file describes.",
            )
        raise ScenarioError(f"{source}: kind", expected=f"one of {list(KINDS)}", got=repr(kind))
    if accept is not None and kind not in accept:
        commands = sorted({COMMANDS[k] for k in accept})
        raise ScenarioError(
            f"{source}: kind",
            expected=f"{' or '.join(repr(k) for k in accept)} for `{'` or `'.join(commands)}`",
            got=repr(kind), fix=f"Use `{COMMANDS[kind]}` for a {kind} scenario.",
        )
    return kind


def _validation_error(
    source: str, error: ValidationError, overrides: Sequence[Override]
) -> ScenarioError:
    """As for a file's own fields, except that an unknown field an override introduced is
    reported under the option that set it: the file does not have it."""
    first = error.errors()[0]
    if first["type"] in UNKNOWN_FIELD_ERRORS:
        field = error_field(first["loc"])
        for override in reversed(overrides):
            if field == override.key or field.startswith(f"{override.key}.") \
                    or override.key.startswith(f"{field}."):
                return ScenarioError(
                    f"{source}: {override.option}", expected="a known field",
                    got=f"unknown field {first['loc'][-1]!r}",
                    fix=override.fix or "Check the spelling against the bundled scenarios "
                                        "(`coplay scenarios list`).",
                )
    return validation_error(source, error)


def _build(scenario: BaseModel, *, source: str) -> None:
    if scenario.kind in ("simulation", "reuse"):
        check_agents(scenario.env, scenario.agents, source=source)
    elif scenario.kind == "training":
        from scenarios.training import check_files

        check_files(scenario, source=source)
    # An exploration scenario builds its env as it validates; it names no agents or files.


def resolve(path_or_name: str | Path, folders: Collection[Path] = FOLDERS.values()) -> Path:
    """A path as given, or the file of that name bundled in one of ``folders``."""
    candidate = Path(path_or_name)
    if candidate.exists() or candidate.suffix in (".yaml", ".yml"):
        return candidate
    for folder in folders:
        path = folder / f"{path_or_name}.yaml"
        if path.is_file():
            return path
    return candidate


def bundled(kind: str | None = None) -> list[Path]:
    """The bundled scenario files of one kind, or of every kind."""
    folders = FOLDERS.values() if kind is None else [FOLDERS[kind]]
    return [path for folder in folders for path in sorted(folder.glob("*.yaml"))]
