"""Run a training scenario: train, checkpoint, record learning curves, evaluate.

The checkpoint is written every ``checkpoint_every`` updates and at the end; learning-curve
points reach the store just before each checkpoint, so after a crash the store holds at least
the points up to the last checkpoint, and a resume drops any past it. A run stopped by an
interruption or an error is marked ``interrupted`` in the store; one stopped by its time
limit, ``stopped``; both continue with ``resume``. A training scenario with a memory section
trains with the handbook's hints at every step; what its learners did with them is written
to the handbook at every checkpoint, so that effect-aware ranking learns during the run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agents.train.trainer import Metrics
from coplay.errors import ConfigError, StoreError
from memory import LearningPoint, RunStore, TrainingStore
from memory.behaviors import MemoryUsage
from memory.training import FINISHED, INTERRUPTED, RUNNING, STOPPED
from scenarios.runner import run as run_scenario
from scenarios.training import TrainingScenario

if TYPE_CHECKING:
    from memory.handbook import Handbook


class Trainer(Protocol):
    """What the loop needs of a recipe: ``agents.train.trainer.Trainer`` (matrix games) and
    ``agents.train.ppo_grid.GridTrainer`` (grid exploration) both provide it."""

    updates_done: int

    @property
    def learner_names(self) -> Sequence[str]: ...

    def finished(self) -> bool: ...

    def step(self) -> Metrics: ...

    def save(self, path: str | Path, *, extra: dict[str, Any] | None = None) -> None: ...

    def restore(self, path: str | Path) -> dict: ...


class TrainableScenario(Protocol):
    name: str
    train: Any  # the recipe's settings; they carry the seed

    def make_trainer(self) -> Trainer: ...

    def model_dump(self, *, mode: str) -> dict[str, Any]: ...

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass(frozen=True)
class TrainingOutcome:
    training_run_id: int
    checkpoint: Path
    trainer: Trainer
    seconds: float  # training time of this invocation (rollouts, updates, checkpoints)
    memory_usage: MemoryUsage | None = None  # with memory: what this invocation recorded


def train(
    scenario: TrainableScenario,
    *,
    out: Path,
    store: TrainingStore,
    resume: bool = False,
    checkpoint_every: int = 25,
    time_limit: float | None = None,
    on_update: Callable[[int, Metrics], None] = lambda update, metrics: None,
    handbook: Handbook | None = None,
) -> TrainingOutcome:
    """Train until ``train.updates`` (or, if given, until ``time_limit`` seconds have passed:
    the update under way finishes, then training stops as if that were the last one).
    ``handbook``: the one a scenario with a memory section trains with."""
    checkpoint = out / CHECKPOINT_NAME
    memory = None
    if isinstance(scenario, TrainingScenario) and scenario.memory is not None:
        if handbook is None:
            raise ConfigError("memory", expected="a handbook for a scenario with memory",
                              got="none")
        memory = scenario.training_memory(handbook)
        trainer = scenario.make_trainer(memory)
    else:
        trainer = scenario.make_trainer()
    if resume:
        if not checkpoint.exists():
            raise ConfigError(
                "--resume", expected=f"a checkpoint to continue from in {out}",
                got="none", fix="Train without --resume to start the run afresh.",
            )
        saved = trainer.restore(checkpoint)
        training_run_id = int(saved["training_run_id"])
        store.set_status(training_run_id, RUNNING)
        store.drop_points_after(training_run_id, trainer.updates_done)
    elif checkpoint.exists():
        raise ConfigError(
            "--out", expected="a folder without a checkpoint", got=f"{checkpoint} exists",
            fix="Pass --resume to continue that run, or --out for a new folder.",
        )
    else:
        training_run_id = store.start(
            scenario_name=scenario.name, seed=scenario.train.seed,
            scenario=scenario.model_dump(mode="json"), checkpoint=str(checkpoint),
            learners=trainer.learner_names,
        )
    start = time.perf_counter()
    pending: list[LearningPoint] = []
    recorded: list[MemoryUsage] = []

    def save() -> None:
        store.add_points(training_run_id, pending)
        pending.clear()
        if memory is not None:
            # With the checkpoint: usage and effects so far steer the ranking from here on.
            recorded.append(memory.drain())
            handbook.record(recorded[-1])
        trainer.save(checkpoint, extra={"training_run_id": training_run_id,
                                        "scenario": scenario.model_dump(mode="json")})

    try:
        if not resume:
            # A checkpoint before the first update: a run killed at any point can resume.
            save()
        while not trainer.finished():
            if time_limit is not None and time.perf_counter() - start >= time_limit:
                break
            metrics = trainer.step()
            pending.extend(
                LearningPoint(trainer.updates_done, name, m)
                for name, m in zip(trainer.learner_names, metrics)
            )
            on_update(trainer.updates_done, metrics)
            if trainer.updates_done % checkpoint_every == 0:
                save()
        save()
    except BaseException:
        # Killed (Ctrl-C, SIGTERM turned into KeyboardInterrupt by the CLI) or failed: the
        # store says so, and the last checkpoint is where --resume continues. The update
        # under way may be half done, so no checkpoint is written now.
        # If the store itself failed (e.g. locked), the original error is the one to report.
        with contextlib.suppress(StoreError):
            store.set_status(training_run_id, INTERRUPTED)
        raise
    usage = MemoryUsage.merged(recorded) if memory is not None else None
    store.set_status(training_run_id, FINISHED if trainer.finished() else STOPPED)
    return TrainingOutcome(training_run_id, checkpoint, trainer, time.perf_counter() - start,
                           usage)


def evaluate(scenario: TrainingScenario, checkpoint: Path, runs: RunStore,
             handbook: Handbook | None = None) -> int | None:
    """Play the trained learners against ``evaluate.against`` (with the handbook, for a
    scenario with memory, whose usage is recorded as a simulation's); returns the stored
    run's id."""
    if not scenario.evaluate.against:
        return None
    result = run_scenario(scenario.evaluation(checkpoint), handbook=handbook)
    run_id = runs.save(result)
    if result.memory_usage is not None:
        handbook.record(result.memory_usage)
    return run_id
