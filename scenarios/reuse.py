"""Reuse studies (``kind: reuse``, ``coplay reuse run``): does a handbook distilled from some
co-players, or some layouts, make an agent better against others it never met?

    kind: reuse
    env: {id: coplay/ipd-v0, horizon: 100}
    agents: {...}                       # the subject, and every co-player of both splits
    subject: follower                   # the agent compared with and without memory
    train: {against: [tit_for_tat, ...], runs: 3, episodes: 128}
    evaluate: {against: [gradual, ...], episodes: 64, first_rounds: 10}
    seeds: [0, 1, 2]

On a grid task the splits are layouts: ``train: {layouts: {contexts: 8, context_seed: 100},
players: [explorer]}`` and ``evaluate: {layouts: {contexts: 16, context_seed: 200}}``.

For every seed, a fresh handbook is trained on the training split only: ``runs`` runs (a
round robin of the subject and the training co-players; on a grid, the ``players``, the
subject by default, on the training layouts), memory on, each run's usage recorded and its
episodes distilled. The subject then plays the evaluation split, on the same seeds, in each
condition: ``none`` (memory off), ``handbook`` (the trained handbook, exploring off, so it
offers only what it knows to help) and, with ``oracle: true``, ``oracle`` (a handbook trained
on the evaluation split too: what memory could do had it met it). The split is enforced: no
evaluation co-player may be a training one, under its name or under another name with the
same kind and parameters; no evaluation layout may be a training layout (compared by
content); and nothing the evaluation plays is written to any handbook.

Figures per unit (a co-player; a grid task's unseen layouts) and condition: the family's
measures (matrix games: return per step over the episode and over its first rounds; grids:
success and frames per episode, an unsolved episode counting its step limit); each memory
condition's difference from ``none``, paired by episode (same seed, same episode), with a
bootstrap interval; the same averaged over units; and, on matrix games, retrieval precision
(``matrix_reuse.precision``).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

import envs
from coplay.errors import ScenarioError
from memory import PairingOutcome, RunStore
from memory.handbook import Handbook
from scenarios.domains import extract_run
from scenarios.domains.matrix_reuse import first_rounds_returns, precision
from scenarios.runner import follows_hints
from scenarios.runner import run as run_scenario
from scenarios.schema import (
    AgentSection,
    CrossPlay,
    EnvSection,
    MemorySection,
    RoundRobin,
    RunSection,
    Scenario,
    Solo,
    Strict,
    build_agent,
)

CONDITIONS = ("none", "handbook", "oracle")
CONFIDENCE = 0.95
# Each family's measures: (key, what it is, whether higher is better).
MATRIX_MEASURES = (("episode", "return per step", True),
                   ("opening", "return per step over the first rounds", True))
GRID_MEASURES = (("success", "success rate", True),
                 ("frames", "frames per episode (unsolved: the step limit)", False))


class Layouts(Strict):
    """A grid task's fixed set of layouts: ``contexts`` of them, drawn from ``context_seed``."""

    contexts: int = Field(ge=1, le=1000)
    context_seed: int = Field(ge=0)


class TrainSplit(Strict):
    against: list[str] = Field(default_factory=list)  # matrix games: training co-players
    layouts: Layouts | None = None  # grid tasks: the layouts of the training runs
    # grid tasks: who plays the training runs (default: the subject)
    players: list[str] = Field(default_factory=list)
    runs: int = Field(default=3, ge=1, le=100)
    episodes: int = Field(default=128, ge=8)


class EvaluateSplit(Strict):
    against: list[str] = Field(default_factory=list)
    layouts: Layouts | None = None
    episodes: int = Field(default=64, ge=2)
    first_rounds: int = Field(default=10, ge=1)


class ReuseScenario(Strict):
    kind: Literal["reuse"] = "reuse"
    name: str = Field(min_length=1)
    description: str = ""
    env: EnvSection
    agents: dict[str, AgentSection] = Field(min_length=1)
    subject: str
    train: TrainSplit
    evaluate: EvaluateSplit
    seeds: list[int] = Field(default=[0, 1, 2], min_length=1)
    memory: MemorySection = MemorySection()
    oracle: bool = True
    bootstrap: int = Field(default=2000, ge=100)

    @model_validator(mode="after")
    def _splits_are_held_out(self) -> ReuseScenario:
        if self.env.is_grid:
            self._check_grid_splits()
        else:
            self._check_coplayer_splits()
        for name in (self.subject, *self.train.players):
            if name not in self.agents:
                raise ValueError(f"agents: expected an agent named {name!r}, got {sorted(self.agents)}")
        return self

    def _check_grid_splits(self) -> None:
        for split in (self.train, self.evaluate):
            if split.against or split.layouts is None:
                where = "train" if split is self.train else "evaluate"
                raise ValueError(f"{where}.layouts: expected the split's layouts on a grid task "
                                 f"(and no co-players), got {split.layouts} and {split.against}")
        if self.train.layouts == self.evaluate.layouts:
            raise ValueError("evaluate.layouts: expected layouts held out of training, got the "
                             "training ones")

    def _check_coplayer_splits(self) -> None:
        for split in (self.train, self.evaluate):
            where = "train" if split is self.train else "evaluate"
            if not split.against or split.layouts is not None:
                raise ValueError(f"{where}.against: expected the split's co-players on a matrix "
                                 f"game (and no layouts), got {split.against}")
        if self.train.players:
            raise ValueError("train.players: expected none on a matrix game (the training runs "
                             "are round robins of the subject and train.against)")
        for name in (*self.train.against, *self.evaluate.against):
            if name not in self.agents:
                raise ValueError(f"agents: expected an agent named {name!r}, got {sorted(self.agents)}")
        if self.subject in self.train.against or self.subject in self.evaluate.against:
            raise ValueError(f"subject: expected an agent outside both splits, got {self.subject!r}")
        seen = {self._spec(name): name for name in self.train.against}
        for name in self.evaluate.against:
            trained = seen.get(self._spec(name))
            if trained is not None:
                same = "" if trained == name else f" (the same as training's {trained!r})"
                raise ValueError(f"evaluate.against: expected co-players held out of training, "
                                 f"got {name!r}{same}")

    def _spec(self, name: str) -> str:
        section = self.agents[name]
        return repr((section.kind, sorted(section.params.items())))

    @property
    def measures(self) -> tuple[tuple[str, str, bool], ...]:
        return GRID_MEASURES if self.env.is_grid else MATRIX_MEASURES

    def simulation(self, *, name: str, seed: int, episodes: int, memory: MemorySection | None,
                   evaluation: bool, layouts: Layouts | None = None,
                   against: list[str] | None = None) -> Scenario:
        """One run of the study: a training run (``evaluation`` false: recorded for
        extraction) or an evaluation of the subject; on a grid, on ``layouts``; on a matrix
        game, against ``against`` (default: the split's)."""
        if self.env.is_grid:
            players = [self.subject] if evaluation else (self.train.players or [self.subject])
            env = self.env.model_copy(update=layouts.model_dump())
            matchups = Solo(mode="solo", players=players)
        else:
            env = self.env
            if evaluation:
                players = against or self.evaluate.against
                matchups = CrossPlay(mode="cross_play", focal=[self.subject], against=players)
            else:
                players = [self.subject, *(against or self.train.against)]
                matchups = RoundRobin(mode="round_robin", players=players)
        return Scenario(
            name=name, env=env, matchups=matchups, memory=memory,
            agents={n: self.agents[n] for n in dict.fromkeys((self.subject, *players))},
            run=RunSection(episodes=episodes, seed=seed, record_trajectories=True),
        )


Progress = Callable[[str], None]  # called with a label after each step (``steps``)


def steps(study: ReuseScenario) -> int:
    """How many steps ``compare`` reports: training runs, then evaluations, per seed."""
    handbooks = 2 if study.oracle else 1
    return len(study.seeds) * (handbooks * study.train.runs + handbooks + 1)


def compare(study: ReuseScenario, *, progress: Progress = lambda step: None) -> dict:
    """Run the study; returns its figures (a JSON-ready document, as stored)."""
    start = time.perf_counter()
    _check_subject(study)
    if study.env.is_grid:
        _check_layouts_held_out(study)
    conditions = [c for c in CONDITIONS if c != "oracle" or study.oracle]
    # unit -> measure -> condition -> per-episode values, seeds concatenated in order
    values: dict[str, dict[str, dict[str, list[np.ndarray]]]] = {}
    hits = {"handbook": [0, 0], "oracle": [0, 0]}
    sizes: dict[str, list[int]] = {"handbook": [], "oracle": []}
    evaluation_memory = study.memory.model_copy(update={"explore": False, "extract": False})
    for seed in study.seeds:
        with tempfile.TemporaryDirectory(prefix="coplay-reuse-") as folder:
            handbooks = {"handbook": _trained(study, Path(folder) / "handbook.db",
                                              oracle=False, seed=seed, progress=progress)}
            if study.oracle:
                handbooks["oracle"] = _trained(study, Path(folder) / "oracle.db", oracle=True,
                                               seed=seed, progress=progress)
            for condition in conditions:
                handbook = handbooks.get(condition)
                evaluation = study.simulation(
                    name=f"{study.name}-evaluate", seed=10_000 + seed,
                    episodes=study.evaluate.episodes, evaluation=True,
                    memory=evaluation_memory if handbook else None,
                    layouts=study.evaluate.layouts)
                result = run_scenario(evaluation, handbook=handbook)
                for outcome in result.pairings:
                    unit = _unit(study, outcome)
                    for measure, per_episode in _measured(study, outcome).items():
                        values.setdefault(unit, {}).setdefault(measure, {}).setdefault(
                            condition, []).append(per_episode)
                    if handbook is not None and not study.env.is_grid:
                        found, total = precision(handbook, evaluation_memory, scenario=evaluation,
                                                 joint_actions=outcome.episodes.joint_actions,
                                                 lengths=outcome.episodes.lengths)
                        hits[condition][0] += found
                        hits[condition][1] += total
                progress(f"seed {seed}: evaluated {condition}")
            for condition, handbook in handbooks.items():
                sizes[condition].append(len(handbook))
                handbook.close()
    figures = {
        "family": "grid" if study.env.is_grid else "matrix",
        "subject": study.subject, "seeds": study.seeds, "conditions": conditions,
        "confidence": CONFIDENCE,
        "measures": [{"key": key, "label": label, "higher_is_better": higher}
                     for key, label, higher in study.measures],
        "first_rounds": None if study.env.is_grid else study.evaluate.first_rounds,
        "train": study.train.model_dump(mode="json", exclude_defaults=True),
        "evaluate": study.evaluate.model_dump(mode="json", exclude_defaults=True),
        "handbook_behaviors": {c: sizes[c] for c in conditions if c != "none"},
        "precision": {c: (hits[c][0] / hits[c][1] if hits[c][1] else None)
                      for c in conditions if c != "none"},
        "units": {},
    }
    _summarise(figures, values, study, conditions)
    figures["wall_seconds"] = time.perf_counter() - start
    return figures


def _summarise(figures: dict, values: dict, study: ReuseScenario, conditions: list[str]) -> None:
    rng = np.random.default_rng(0)
    memory_conditions = [c for c in conditions if c != "none"]
    for key, _, _ in study.measures:
        stacked = {unit: {c: np.concatenate(by[key][c]) for c in conditions}
                   for unit, by in values.items()}
        for unit, by_condition in stacked.items():
            entry = figures["units"].setdefault(unit, {})
            entry[key] = {c: float(v.mean()) for c, v in by_condition.items()}
            entry[f"{key}_gain"] = {
                c: _paired(by_condition[c] - by_condition["none"], rng, study.bootstrap)
                for c in memory_conditions}
        figures[key] = {c: float(np.mean([stacked[u][c].mean() for u in stacked]))
                        for c in conditions}
        figures[f"{key}_gain"] = {
            c: _averaged([stacked[u][c] - stacked[u]["none"] for u in stacked], rng,
                         study.bootstrap)
            for c in memory_conditions}


def _unit(study: ReuseScenario, outcome: PairingOutcome) -> str:
    """What a pairing of the evaluation is about: its co-player, or the task's unseen layouts."""
    if study.env.is_grid:
        return f"{outcome.stats.agents[1]} ({study.evaluate.layouts.contexts} unseen layouts)"
    return outcome.stats.agents[1]


def _measured(study: ReuseScenario, outcome: PairingOutcome) -> dict[str, np.ndarray]:
    """Each measure per episode of an evaluation pairing (seat 0: the subject)."""
    episodes = outcome.episodes
    if study.env.is_grid:
        # A minigrid task rewards only success, with 1 - 0.9 * steps / limit.
        solved = episodes.returns[:, 0] > 0
        limit = _step_limit(study)
        return {"success": solved.astype(float),
                "frames": np.where(solved, episodes.lengths, limit).astype(float)}
    config = envs.make_config(study.env.id, **study.env.settings())
    return {
        "episode": episodes.returns[:, 0] / np.maximum(episodes.lengths, 1),
        "opening": first_rounds_returns(episodes.joint_actions, episodes.lengths,
                                        config.payoffs.table, study.evaluate.first_rounds),
    }


def _step_limit(study: ReuseScenario) -> int:
    env = envs.make(study.env.id, **study.env.settings()).unwrapped
    return int(env.inner.max_steps)


def _check_subject(study: ReuseScenario) -> None:
    subject = build_agent(study.env, study.agents[study.subject], study.subject)
    if not follows_hints(subject):
        raise ScenarioError(f"{study.name}: subject", expected="an agent that follows memory's "
                            "hints (e.g. kind: handbook_follower, macro_follower)",
                            got=f"{study.subject} ({study.agents[study.subject].kind})")


def _check_layouts_held_out(study: ReuseScenario) -> None:
    """No evaluation layout may be a training one: compared by content, as two context seeds
    can draw the same layout."""
    def contents(layouts: Layouts) -> set[bytes]:
        settings = {**study.env.settings(), **layouts.model_dump()}
        return set(envs.make(study.env.id, **settings).unwrapped.layout_contents())

    shared = contents(study.train.layouts) & contents(study.evaluate.layouts)
    if shared:
        raise ScenarioError(
            f"{study.name}: evaluate.layouts", expected="layouts none of which is a training one",
            got=f"{len(shared)} shared with train.layouts",
            fix="Pick another evaluate.layouts.context_seed.")


def _trained(study: ReuseScenario, path: Path, *, oracle: bool, seed: int,
             progress: Progress) -> Handbook:
    """A fresh handbook distilled from ``train.runs`` runs of the training split (with the
    evaluation split's co-players or layouts too for the oracle)."""
    handbook = Handbook.open(f"sqlite:///{path}")
    store = RunStore(engine=handbook.engine)
    memory = study.memory.model_copy(update={"explore": True, "extract": True})
    splits: list[tuple[Layouts | None, list[str] | None]]
    if study.env.is_grid:
        splits = [(study.train.layouts, None)]
        if oracle:
            splits.append((study.evaluate.layouts, None))
    else:
        splits = [(None, study.train.against + (study.evaluate.against if oracle else []))]
    for index in range(study.train.runs):
        for layouts, against in splits:
            training = study.simulation(
                name=f"{study.name}-train", seed=seed * 1_000 + index,
                episodes=study.train.episodes, memory=memory, evaluation=False,
                layouts=layouts, against=against)
            result = run_scenario(training, handbook=handbook)
            run_id = store.save(result)
            handbook.record(result.memory_usage)
            extract_run(handbook, run_id)
        progress(f"seed {seed}: {path.stem} trained, run {index + 1} of {study.train.runs}")
    handbook.sync()
    return handbook


def _paired(differences: np.ndarray, rng: np.random.Generator, samples: int) -> dict:
    """The mean paired difference and its bootstrap percentile interval."""
    draws = rng.integers(len(differences), size=(samples, len(differences)))
    means = differences[draws].mean(axis=1)
    return _summary(float(differences.mean()), means)


def _averaged(differences: list[np.ndarray], rng: np.random.Generator, samples: int) -> dict:
    """The mean over units of their mean paired differences, each unit's episodes resampled
    on their own."""
    means = np.zeros(samples)
    for values in differences:
        draws = rng.integers(len(values), size=(samples, len(values)))
        means += values[draws].mean(axis=1)
    means /= len(differences)
    return _summary(float(np.mean([v.mean() for v in differences])), means)


def _summary(mean: float, resampled: np.ndarray) -> dict:
    """The difference (memory minus none), its interval, and whether it is significantly
    above or below 0 (the caller knows whether higher is better)."""
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    verdict = "higher" if low > 0 else "lower" if high < 0 else "no significant difference"
    return {"mean": mean, "low": float(low), "high": float(high), "verdict": verdict}
