"""Reuse studies (``kind: reuse``, ``coplay reuse run``): does a handbook distilled from some
co-players make an agent better against others it never met?

    kind: reuse
    env: {id: coplay/ipd-v0, horizon: 100}
    agents: {...}                       # the subject, and every co-player of both splits
    subject: follower                   # the agent compared with and without memory
    train: {against: [tit_for_tat, ...], runs: 3, episodes: 128}
    evaluate: {against: [gradual, ...], episodes: 64, first_rounds: 10}
    seeds: [0, 1, 2]

For every seed, a fresh handbook is trained on the training split only: ``runs`` round robins
of the subject and the training co-players, memory on, each run's usage recorded and its
episodes distilled. The subject then meets every evaluation co-player, on the same seed, in
each condition: ``none`` (memory off), ``handbook`` (the trained handbook, exploring off, so
it plays what the handbook believes best) and, with ``oracle: true``, ``oracle`` (a handbook
trained with the evaluation co-players in its training split: what memory could do had it
met them). The split is enforced: no evaluation co-player may be a training one, under its
name or under another name with the same kind and parameters, and nothing the evaluation
plays is written to any handbook.

Figures per co-player and condition: return per step over the episode and over its first
rounds; the difference of each memory condition from ``none``, paired by episode (same seed,
same episode), with a bootstrap confidence interval; the same averaged over co-players; and
retrieval precision (``matrix_reuse.precision``).
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
from memory import RunStore
from memory.handbook import Handbook
from scenarios.domains import extract_run
from scenarios.domains.matrix_reuse import first_rounds_returns, precision
from scenarios.runner import run as run_scenario
from scenarios.schema import (
    AgentSection,
    CrossPlay,
    EnvSection,
    MemorySection,
    RoundRobin,
    RunSection,
    Scenario,
    Strict,
)

CONDITIONS = ("none", "handbook", "oracle")
CONFIDENCE = 0.95


class TrainSplit(Strict):
    against: list[str] = Field(min_length=1)
    runs: int = Field(default=3, ge=1, le=100)
    episodes: int = Field(default=128, ge=8)


class EvaluateSplit(Strict):
    against: list[str] = Field(min_length=1)
    episodes: int = Field(default=64, ge=2)
    first_rounds: int = Field(default=10, ge=1)


class ReuseScenario(Strict):
    kind: Literal["reuse"] = "reuse"
    name: str = Field(min_length=1)
    description: str = ""
    env: EnvSection
    agents: dict[str, AgentSection] = Field(min_length=2)
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
            raise ValueError("env.id: expected a matrix game (reuse studies on grid tasks hold "
                             f"out layouts, which this harness does not split yet), got {self.env.id}")
        named = [self.subject, *self.train.against, *self.evaluate.against]
        for name in named:
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
        return self

    def _spec(self, name: str) -> str:
        section = self.agents[name]
        return repr((section.kind, sorted(section.params.items())))

    def simulation(self, *, name: str, players: list[str], seed: int, episodes: int,
                   memory: MemorySection | None, cross: bool) -> Scenario:
        matchups = (CrossPlay(mode="cross_play", focal=[self.subject], against=players) if cross
                    else RoundRobin(mode="round_robin", players=[self.subject, *players]))
        return Scenario(
            name=name, env=self.env, matchups=matchups, memory=memory,
            agents={n: self.agents[n] for n in (self.subject, *players)},
            run=RunSection(episodes=episodes, seed=seed, record_trajectories=cross),
        )


Progress = Callable[[str], None]  # called with a label after each step (``steps``)


def steps(study: ReuseScenario) -> int:
    """How many steps ``compare`` reports: training runs, then evaluations, per seed."""
    handbooks = 2 if study.oracle else 1
    return len(study.seeds) * (handbooks * study.train.runs + handbooks + 1)


def compare(study: ReuseScenario, *, progress: Progress = lambda step: None) -> dict:
    """Run the study; returns its figures (a JSON-ready document, as stored)."""
    start = time.perf_counter()
    config = envs.make_config(study.env.id, **study.env.settings())
    if not study.agents[study.subject].kind or not _listens(study):
        raise ScenarioError(f"{study.name}: subject", expected="an agent that follows memory's "
                            "hints (e.g. kind: handbook_follower)", got=study.subject)
    conditions = [c for c in CONDITIONS if c != "oracle" or study.oracle]
    # per co-player, condition: per-episode (whole, first rounds) returns per step, seeds stacked
    returns: dict[str, dict[str, list[np.ndarray]]] = {
        c: {name: [] for name in conditions} for c in study.evaluate.against}
    opening: dict[str, dict[str, list[np.ndarray]]] = {
        c: {name: [] for name in conditions} for c in study.evaluate.against}
    hits = {"handbook": [0, 0], "oracle": [0, 0]}
    sizes: dict[str, list[int]] = {"handbook": [], "oracle": []}
    evaluation_memory = study.memory.model_copy(update={"explore": False, "extract": False})
    for seed in study.seeds:
        with tempfile.TemporaryDirectory(prefix="coplay-reuse-") as folder:
            handbooks = {"handbook": _trained(study, Path(folder) / "handbook.db",
                                              study.train.against, seed, progress)}
            if study.oracle:
                handbooks["oracle"] = _trained(
                    study, Path(folder) / "oracle.db",
                    [*study.train.against, *study.evaluate.against], seed, progress)
            for condition in conditions:
                handbook = handbooks.get(condition)
                evaluation = study.simulation(
                    name=f"{study.name}-evaluate", players=study.evaluate.against,
                    seed=10_000 + seed, episodes=study.evaluate.episodes,
                    memory=evaluation_memory if handbook else None, cross=True)
                result = run_scenario(evaluation, handbook=handbook)
                for outcome in result.pairings:
                    coplayer = outcome.stats.agents[1]
                    episodes = outcome.episodes
                    returns[coplayer][condition].append(
                        episodes.returns[:, 0] / np.maximum(episodes.lengths, 1))
                    opening[coplayer][condition].append(first_rounds_returns(
                        episodes.joint_actions, episodes.lengths, config.payoffs.table,
                        study.evaluate.first_rounds))
                    if handbook is not None:
                        found, total = precision(handbook, evaluation_memory, scenario=evaluation,
                                                 joint_actions=episodes.joint_actions,
                                                 lengths=episodes.lengths)
                        hits[condition][0] += found
                        hits[condition][1] += total
                progress(f"seed {seed}: evaluated {condition}")
            for condition, handbook in handbooks.items():
                sizes[condition].append(len(handbook))
                handbook.close()
    rng = np.random.default_rng(0)
    figures = {
        "subject": study.subject, "seeds": study.seeds, "conditions": conditions,
        "first_rounds": study.evaluate.first_rounds, "confidence": CONFIDENCE,
        "train_against": study.train.against, "evaluate_against": study.evaluate.against,
        "handbook_behaviors": {c: sizes[c] for c in conditions if c != "none"},
        "precision": {c: (hits[c][0] / hits[c][1] if hits[c][1] else None)
                      for c in conditions if c != "none"},
        "coplayers": {},
    }
    for measure, data in (("episode", returns), ("opening", opening)):
        stacked = {c: {n: np.concatenate(v) for n, v in by.items()} for c, by in data.items()}
        for coplayer, by_condition in stacked.items():
            entry = figures["coplayers"].setdefault(coplayer, {})
            entry[measure] = {n: float(v.mean()) for n, v in by_condition.items()}
            entry[f"{measure}_gain"] = {
                n: _paired(by_condition[n] - by_condition["none"], rng, study.bootstrap)
                for n in conditions if n != "none"}
        figures[f"{measure}_gain"] = {
            n: _averaged([stacked[c][n] - stacked[c]["none"] for c in stacked], rng,
                         study.bootstrap)
            for n in conditions if n != "none"}
        figures[measure] = {n: float(np.mean([stacked[c][n].mean() for c in stacked]))
                            for n in conditions}
    figures["wall_seconds"] = time.perf_counter() - start
    return figures


def _listens(study: ReuseScenario) -> bool:
    from scenarios.runner import follows_hints

    return follows_hints(study.simulation(
        name=study.name, players=study.evaluate.against[:1], seed=0, episodes=2, memory=None,
        cross=True).build_agent(study.subject))


def _trained(study: ReuseScenario, path: Path, against: list[str], seed: int,
             progress: Progress) -> Handbook:
    """A fresh handbook distilled from ``runs`` round robins of the subject and ``against``."""
    handbook = Handbook.open(f"sqlite:///{path}")
    store = RunStore(engine=handbook.engine)
    memory = study.memory.model_copy(update={"explore": True, "extract": True})
    for index in range(study.train.runs):
        training = study.simulation(name=f"{study.name}-train", players=against,
                                    seed=seed * 1_000 + index, episodes=study.train.episodes,
                                    memory=memory, cross=False)
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
    """The mean over co-players of their mean paired differences, each co-player's episodes
    resampled on their own."""
    means = np.zeros(samples)
    for values in differences:
        draws = rng.integers(len(values), size=(samples, len(values)))
        means += values[draws].mean(axis=1)
    means /= len(differences)
    return _summary(float(np.mean([v.mean() for v in differences])), means)


def _summary(mean: float, resampled: np.ndarray) -> dict:
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    verdict = "gain" if low > 0 else "loss" if high < 0 else "no significant difference"
    return {"mean": mean, "low": float(low), "high": float(high), "verdict": verdict}
