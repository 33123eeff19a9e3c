"""`coplay eval`: trained learners against any population, as a cross-play scenario.

``--against`` takes, each time it is given: a population file (YAML with an ``agents``
mapping, or the name of one bundled in ``scenarios/data/populations/``), an agent kind that needs
no parameters (``tit_for_tat``), or a plug-in factory named by import path (``pkg.mod:make``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

import agents
from agents.checkpoint import load_checkpoint
from coplay.errors import ScenarioError
from scenarios.loading import resolve
from scenarios.schema import (
    AgentSection,
    CrossPlay,
    EnvSection,
    RunSection,
    Scenario,
    check_agents,
    read_text,
    read_yaml,
    validation_error,
)

POPULATIONS_DIR = Path(__file__).parent / "data" / "populations"
DEFAULT_POPULATION = "classics"


def bundled_populations() -> list[Path]:
    return sorted(POPULATIONS_DIR.glob("*.yaml"))


def population_agents(spec: str) -> dict[str, AgentSection]:
    """The co-players one ``--against`` value names."""
    path = resolve(spec, [POPULATIONS_DIR])
    if path.exists() or path.suffix in (".yaml", ".yml"):
        data = read_yaml(read_text(path), source=str(path), fields="agents")
        try:
            sections = {
                name: AgentSection.model_validate(section)
                for name, section in (data.get("agents") or {}).items()
            }
        except ValidationError as error:
            raise validation_error(f"{path}: agents", error) from None
        if not sections:
            raise ScenarioError(str(path), expected="an agents mapping with at least one agent", got="none")
        return sections
    if ":" in spec:
        return {spec.rpartition(":")[2]: AgentSection(kind="plugin", factory=spec)}
    if spec in {kind.name for kind in agents.kinds()}:
        return {spec: AgentSection(kind=spec)}  # a kind that needs parameters fails its check
    raise ScenarioError(
        "--against", expected="a population file, a bundled population "
        f"({[p.stem for p in bundled_populations()]}), an agent kind, or 'package.module:factory'",
        got=repr(spec),
    )


def evaluation_scenario(
    checkpoint: Path, *, learners: list[str] | None, against: list[str], episodes: int, seed: int,
    record_trajectories: bool = False, greedy: bool = False,
) -> Scenario:
    saved = load_checkpoint(checkpoint, where="CHECKPOINT")
    names = learners or list(saved["learners"])
    for name in names:
        if name not in saved["learners"]:
            raise ScenarioError(
                "--learner", expected=f"one of {sorted(saved['learners'])}", got=repr(name)
            )
    env = EnvSection.model_validate(saved.get("scenario", {}).get("env", {"id": "coplay/ipd-v0"}))
    coplayers: dict[str, AgentSection] = {}
    for spec in against or [DEFAULT_POPULATION]:
        coplayers.update(population_agents(spec))
    clashes = sorted(set(coplayers) & set(names))
    if clashes:
        raise ScenarioError("--against", expected="co-player names other than the learners'",
                            got=str(clashes))
    check_agents(env, coplayers, source="--against")
    focal = {
        name: AgentSection(kind="checkpoint", path=str(checkpoint), learner=name, greedy=greedy)
        for name in names
    }
    return Scenario(
        name=f"eval {checkpoint}",
        description=f"{', '.join(names)} from {checkpoint}{' (greedy)' if greedy else ''} "
                    f"against {', '.join(coplayers)}.",
        env=env,
        agents={**focal, **coplayers},
        matchups=CrossPlay(mode="cross_play", focal=names, against=list(coplayers)),
        run=RunSection(episodes=episodes, seed=seed, record_trajectories=record_trajectories),
    )
