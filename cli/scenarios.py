"""`coplay scenarios ...`: list the bundled scenarios and validate scenario files."""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import typer

from cli.options import JsonOption
from cli.output import compact_table, console, print_json

scenarios_app = typer.Typer(help="List and validate scenario files.", no_args_is_help=True)

# The command that plays each kind of scenario.
COMMANDS = {"simulation": "coplay run", "training": "coplay train", "exploration": "coplay train",
            "reuse": "coplay reuse run"}


@dataclass(frozen=True)
class BundledScenario:
    """What a listing shows of a bundled scenario file, read without validating it."""

    scenario: str  # the file's stem: the name that `coplay run` or `coplay train` takes
    kind: str
    name: str
    env: str
    description: str
    path: str


def data_dir() -> Path:
    """The bundled scenario files' folder, found without importing the scenarios package
    (which loads the runner and its dependencies)."""
    spec = importlib.util.find_spec("scenarios")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the scenarios package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def bundled_scenarios() -> list[BundledScenario]:
    """Every bundled file with a ``kind`` (populations have none), by kind, then name."""
    import yaml

    # libyaml's loader parses the same YAML several times faster than the pure-Python one.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    found = []
    for path in sorted(data_dir().rglob("*.yaml")):
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
        if not isinstance(data, dict) or "kind" not in data:
            continue
        env = data.get("env")
        found.append(BundledScenario(
            scenario=path.stem, kind=str(data["kind"]), name=str(data.get("name", path.stem)),
            env=str(env.get("id", "")) if isinstance(env, dict) else "",
            description=" ".join(str(data.get("description", "")).split()), path=str(path),
        ))
    order = list(COMMANDS)
    found.sort(key=lambda s: (order.index(s.kind) if s.kind in order else len(order), s.scenario))
    return found


def summary(description: str, limit: int = 100) -> str:
    """The description's first sentence, shortened between words to at most ``limit``
    characters."""
    sentence = description.split(". ")[0].rstrip(".")
    if len(sentence) <= limit:
        return sentence
    return sentence[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"


@scenarios_app.command("list")
def scenarios_list(as_json: JsonOption = False) -> None:
    """List the bundled scenarios.

    Simulations (`coplay run NAME`), training and exploration (`coplay train NAME`), reuse
    studies (`coplay reuse run NAME`).
    `coplay scenarios validate NAME` checks one whole; --json gives each one's whole
    description."""
    found = bundled_scenarios()
    if as_json:
        print_json([asdict(s) for s in found])
        return
    # One table per kind and env, so that each row needs only a name and a description: in 80
    # columns, names stay whole and descriptions wrap between words.
    groups: dict[tuple[str, str], list[BundledScenario]] = {}
    for s in found:
        groups.setdefault((s.kind, s.env), []).append(s)
    for (kind, env), members in groups.items():
        table = compact_table(f"{kind} on {env} (`{COMMANDS.get(kind, 'coplay')} NAME`)")
        table.title_justify = "left"
        table.add_column("NAME", no_wrap=True)
        table.add_column("description", ratio=1)
        for s in members:
            table.add_row(s.scenario, summary(s.description))
        console.print(table)


@scenarios_app.command("validate")
def scenarios_validate(
    files: Annotated[list[str], typer.Argument(help="Scenario files (or bundled names).")],
) -> None:
    """Check scenario files of any kind.

    Their YAML, fields, env, agent kinds and parameters, plug-ins and checkpoints."""
    from scenarios import loading

    for file in files:
        s = loading.load(file)
        if s.kind == "simulation":
            summary_line = f"{s.matchups.mode} on {s.env.id}"
        elif s.kind == "training":
            summary_line = f"training on {s.env.id}"
        else:
            summary_line = (f"exploration on {s.env.id}, {s.contexts_label} context(s), "
                            f"bonus {s.bonus.label}")
        console.print(f"[green]ok[/green] {file}: {s.name} ({summary_line})")
