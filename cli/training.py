"""`coplay train` and `coplay training ...`: train learners, and inspect stored training runs
and their learning curves."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import report
from cli.options import (
    DEFAULT_DB_URL,
    DbOption,
    EmbedderOption,
    JsonOption,
    LimitOption,
    OutOption,
    PlotsFolderOption,
    PlotsOption,
    SeedOption,
    SetOption,
    overrides,
)
from cli.output import console, print_json, print_written

if TYPE_CHECKING:
    from memory import TrainingRunInfo

training_app = typer.Typer(
    help="Inspect training runs and their learning curves.", no_args_is_help=True
)


def train_command(
    scenario_path: Annotated[str, typer.Argument(
        metavar="SCENARIO", help="A training scenario YAML file, or a bundled one's name.")],
    db: DbOption = DEFAULT_DB_URL,
    out: OutOption = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue from the checkpoint in the output folder.")] = False,
    updates: Annotated[int | None, typer.Option(min=1, help="Override train.updates.")] = None,
    seed: SeedOption = None,
    settings: SetOption = None,
    minutes: Annotated[float | None, typer.Option(
        min=0.0,
        help="Stop after this many minutes of training (at the end of an update).")] = None,
    checkpoint_every: Annotated[int, typer.Option(
        min=1, help="Save a checkpoint (and store learning curves) every this many updates.")] = 25,
    plots: PlotsOption = True,
    embedder: EmbedderOption = "hashing",
) -> None:
    """Train a scenario's learners; store and plot the curves.

    Checkpoints, stores the learning curves, evaluates the trained learners and plots.

    SCENARIO is a matrix-game training scenario (`kind: training`: learners against a pool) or
    an exploration scenario (`kind: exploration`: one PPO agent with a bonus on a contextual
    grid task); `coplay scenarios list` shows both kinds. A training scenario with a `memory`
    section trains with the handbook in the same database (hints at every step) and records
    how its behaviors fared. The checkpoint and plots go to --out [default:
    coplay-train/NAME].
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from memory import RunStore, TrainingStore
    from scenarios import loading, training_loop  # torch: only when training
    from scenarios.loading import Override

    given = overrides(settings, [
        Override("train.updates", updates, option="--updates",
                 fix="An exploration scenario's budget is in frames: use --set train.frames=N."),
        Override("train.seed", seed, option="--seed"),
    ])
    scenario = loading.load(scenario_path, accept=["training", "exploration"], overrides=given)
    folder = out or Path("coplay-train") / scenario.name
    store = TrainingStore(db)
    handbook = None
    if scenario.kind == "training" and scenario.memory is not None:
        from cli.memory import open_handbook

        handbook = open_handbook(db, embedder, writing=True)
    with Progress(
        TextColumn(f"[bold]{scenario.name}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("updates"), TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
        TimeRemainingColumn(), console=console,
    ) as progress:
        task = progress.add_task("train", total=scenario.train.updates, status="")

        def on_update(update: int, metrics: list[dict[str, float]]) -> None:
            progress.update(task, completed=update, status=training_status(metrics))

        try:
            with terminate_as_interrupt():
                outcome = training_loop.train(
                    scenario, out=folder, store=store, resume=resume,
                    checkpoint_every=checkpoint_every, on_update=on_update,
                    time_limit=None if minutes is None else 60 * minutes, handbook=handbook,
                )
        except KeyboardInterrupt:
            print(f"coplay: interrupted; the run is marked so, and the last checkpoint is in "
                  f"{folder} (continue with --resume)", file=sys.stderr)
            raise typer.Exit(130) from None
    console.print(f"checkpoint: {outcome.checkpoint} ({outcome.seconds:.1f} s of training)")
    if outcome.memory_usage is not None:
        usage = outcome.memory_usage
        console.print(f"memory: {usage.shown} behaviors shown, {usage.used} used in training")
    console.print(f"training run {outcome.training_run_id} stored in "
                  f"{store.engine.url.render_as_string(hide_password=True)}", soft_wrap=True)
    points = store.curve(outcome.training_run_id)
    if scenario.kind == "exploration":
        console.print(report.learning_table(points, columns=report.EXPLORATION_COLUMNS))
        if plots:
            from cli.plots import exploration_curves

            print_written([exploration_curves(points, folder / "learning_curves.png",
                                              title=scenario.name)])
        return
    console.print(report.learning_table(points))
    runs = RunStore(engine=store.engine)
    run_id = training_loop.evaluate(scenario, outcome.checkpoint, runs, handbook)
    if handbook is not None:
        handbook.close()
    if run_id is not None:
        from cli.runs import print_pairings

        print_pairings(runs.pairings(run_id), title=f"evaluation (run {run_id})")
    if plots:
        from cli.plots import learning_curves, plot_run

        written = [learning_curves(points, folder / "learning_curves.png", title=scenario.name)]
        if run_id is not None:
            written += plot_run(runs.pairings(run_id), folder / "evaluation",
                                title=f"{scenario.name}: evaluation (run {run_id})")
        print_written(written)


def training_status(metrics: list[dict[str, float]]) -> str:
    """The progress bar's live summary: the learners' cooperation with each other, or an
    exploring agent's success rate."""
    rates = [m["cooperation_vs_learners"] for m in metrics if "cooperation_vs_learners" in m]
    if rates:
        return f"coop vs learners {sum(rates) / len(rates):.2f}"
    successes = [m["success_rate"] for m in metrics if "success_rate" in m]
    return f"success {successes[0]:.2f}" if successes else ""


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While training, SIGTERM (``kill``, a job scheduler's stop) interrupts like Ctrl-C, so
    the run is marked interrupted in the store instead of vanishing mid-update."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def interrupt(_signum, _frame) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _training_record(info: TrainingRunInfo) -> dict[str, Any]:
    return {**asdict(info), "created_at": info.created_at.isoformat()}


@training_app.command("list")
def training_list(db: DbOption = DEFAULT_DB_URL, limit: LimitOption = 50,
                  as_json: JsonOption = False) -> None:
    """List stored training runs, newest first."""
    from memory import TrainingStore

    runs = TrainingStore(db).list(limit=limit)
    if as_json:
        print_json([_training_record(r) for r in runs])
        return
    console.print(report.training_runs_table(runs))


@training_app.command("show")
def training_show(
    training_run_id: Annotated[int, typer.Argument(help="An id from `coplay training list`.")],
    db: DbOption = DEFAULT_DB_URL, plots: PlotsFolderOption = None, as_json: JsonOption = False,
) -> None:
    """Show one training run's learning curves.

    A summary row every tenth of training."""
    from memory import TrainingStore

    store = TrainingStore(db)
    info = store.run(training_run_id)
    points = store.curve(training_run_id)
    if as_json:
        print_json({"training_run": _training_record(info), "points": [asdict(p) for p in points]})
        return
    console.print(report.training_runs_table([info]))
    console.print(f"checkpoint: {info.checkpoint}", soft_wrap=True)
    console.print(report.learning_table(points))
    if plots is not None:
        from cli.plots import learning_curves

        plots.mkdir(parents=True, exist_ok=True)
        print_written([learning_curves(points, plots / "learning_curves.png",
                                       title=info.scenario_name)])
