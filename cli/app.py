"""The `coplay` command line. Errors in the user's input print one line and exit with 2."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

import agents
import envs
from coplay.errors import CoplayError
from memory import URL_ENV_VAR, PairingStats, RunStore, TrainingStore, default_url
from cli import report
from scenarios import loading
from scenarios.loading import Override
from cli.memory import EmbedderOption, db_app, memory_app, open_handbook
from scenarios.runner import run as run_scenario
from scenarios.runner import total_episodes
from scenarios.schema import Scenario

console = Console()
app = typer.Typer(
    help="coplay: multi-agent simulation with memory and reuse.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
)
scenarios_app = typer.Typer(help="List and validate scenario files.", no_args_is_help=True)
runs_app = typer.Typer(help="Inspect runs stored in the database.", no_args_is_help=True)
training_app = typer.Typer(
    help="Inspect training runs and their learning curves.", no_args_is_help=True
)
app.add_typer(scenarios_app, name="scenarios")
app.add_typer(runs_app, name="runs")
app.add_typer(training_app, name="training")
app.add_typer(memory_app, name="memory")
app.add_typer(db_app, name="db")

DbOption = Annotated[str, typer.Option(
    "--db", envvar=URL_ENV_VAR, show_envvar=True,
    help="SQLAlchemy URL of the store, e.g. sqlite:///coplay.db or postgresql+psycopg://...",
)]
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", metavar="KEY=VALUE",
    help="Override any scenario field by its dotted path, e.g. --set run.episodes=10 "
         "(repeatable; VALUE is read as YAML).",
)]


def overrides(settings: list[str] | None, options: list[Override]) -> list[Override]:
    """The ``--set`` overrides, then the options the user gave (value not None), which win:
    the scenario file is validated once with all of them in place."""
    return [Override.parse(text) for text in settings or []] + [
        option for option in options if option.value is not None]


@app.command("run")
def run_command(
    scenario_path: Annotated[str, typer.Argument(
        metavar="SCENARIO", help="A scenario YAML file, or a bundled scenario's name.")],
    db: DbOption = default_url(),
    out: Annotated[Path | None, typer.Option(
        help="Folder for the plots [default: coplay-runs/run-<id>].")] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Override run.seed.")] = None,
    episodes: Annotated[int | None, typer.Option(
        min=1, help="Override run.episodes (per pairing or focal agent).")] = None,
    record_trajectories: Annotated[bool, typer.Option(
        "--record-trajectories", help="Also store every episode's joint actions.")] = False,
    settings: SetOption = None,
    plots: Annotated[bool, typer.Option(help="Write PNG plots.")] = True,
    embedder: EmbedderOption = "hashing",
) -> None:
    """Play a simulation scenario (`kind: simulation`), print a summary, store the run and
    plot it. A scenario with a `memory` section also uses the handbook in the same database,
    records how its behaviors fared, and (with `memory.extract`) distils the run into new
    behaviors."""
    scenario = loading.load(scenario_path, accept=["simulation"], overrides=overrides(settings, [
        Override("run.seed", seed, option="--seed"),
        Override("run.episodes", episodes, option="--episodes"),
        Override("run.record_trajectories", record_trajectories or None,
                 option="--record-trajectories"),
    ]))
    # Open and check the store first: a bad URL, a read-only or locked database, or a name
    # too long for its column should fail before minutes of simulation, not after.
    store = RunStore(db)
    store.prepare(scenario_name=scenario.name, env_id=scenario.env.id, agents=scenario.agents)
    handbook = open_handbook(db, embedder) if scenario.memory is not None else None
    with Progress(
        TextColumn(f"[bold]{scenario.name}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("episodes"), TimeElapsedColumn(), console=console, transient=False,
    ) as progress:
        task = progress.add_task("run", total=total_episodes(scenario))
        try:
            result = run_scenario(scenario, handbook=handbook,
                                  on_episodes=lambda n: progress.advance(task, n))
        except KeyboardInterrupt:
            # Runs are stored only once complete, so an interrupted one leaves no trace.
            print("coplay: interrupted; nothing was stored", file=sys.stderr)
            raise typer.Exit(130) from None
    run_id = store.save(result)
    if handbook is not None:
        _update_memory(handbook, scenario, result, run_id)
    pairings = store.pairings(run_id)
    console.print(report.pairing_table(pairings, title=f"run {run_id}: {scenario.name}"))
    console.print(report.role_table(pairings))
    if plots:
        from cli.plots import plot_run  # matplotlib is slow to import; only load it here

        folder = out or Path("coplay-runs") / f"run-{run_id}"
        written = plot_run(pairings, folder, title=f"{scenario.name} (run {run_id})")
        console.print("plots: " + ", ".join(str(p) for p in written), soft_wrap=True)
    url = store.engine.url.render_as_string(hide_password=True)
    console.print(f"stored run {run_id} in {url} ({result.wall_seconds:.2f} s of simulation)",
                  soft_wrap=True)


def _update_memory(handbook, scenario: Scenario, result, run_id: int) -> None:
    from scenarios.domains import extract_run

    usage = result.memory_usage
    handbook.record_usage(usage.usages, edges=usage.edges, accumulate_edges=usage.accumulate_edges)
    line = f"memory: {usage.shown} behaviors shown, {usage.used} used"
    if scenario.memory.extract:
        extracted = extract_run(handbook, run_id)
        new = sum(not r.merged for r in extracted)
        line += f"; extracted {len(extracted)} ({new} new, {len(extracted) - new} merged)"
    console.print(line)
    handbook.close()


@app.command("train")
def train_command(
    scenario_path: Annotated[str, typer.Argument(
        metavar="SCENARIO", help="A training scenario YAML file, or a bundled one's name.")],
    db: DbOption = default_url(),
    out: Annotated[Path | None, typer.Option(
        help="Folder for the checkpoint and plots [default: coplay-train/<scenario name>].")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue from the checkpoint in the output folder.")] = False,
    updates: Annotated[int | None, typer.Option(min=1, help="Override train.updates.")] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Override train.seed.")] = None,
    settings: SetOption = None,
    minutes: Annotated[float | None, typer.Option(
        min=0.0, help="Stop after this many minutes of training (at the end of an update).")] = None,
    checkpoint_every: Annotated[int, typer.Option(
        min=1, help="Save a checkpoint (and store learning curves) every this many updates.")] = 25,
    plots: Annotated[bool, typer.Option(help="Write PNG plots.")] = True,
) -> None:
    """Train the scenario's learners; checkpoint, store learning curves, evaluate, plot.

    SCENARIO is a matrix-game training scenario (`kind: training`: learners against a pool) or
    an exploration scenario (`kind: exploration`: one PPO agent with a bonus on a contextual
    grid task); `coplay scenarios list` shows both kinds.
    """
    from scenarios import training_loop  # torch: only when training

    given = overrides(settings, [
        Override("train.updates", updates, option="--updates",
                 fix="An exploration scenario's budget is in frames: use --set train.frames=N."),
        Override("train.seed", seed, option="--seed"),
    ])
    scenario = loading.load(scenario_path, accept=["training", "exploration"], overrides=given)
    folder = out or Path("coplay-train") / scenario.name
    store = TrainingStore(db)
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
                    time_limit=None if minutes is None else 60 * minutes,
                )
        except KeyboardInterrupt:
            print(f"coplay: interrupted; the run is marked so, and the last checkpoint is in "
                  f"{folder} (continue with --resume)", file=sys.stderr)
            raise typer.Exit(130) from None
    console.print(f"checkpoint: {outcome.checkpoint} ({outcome.seconds:.1f} s of training)")
    console.print(f"training run {outcome.training_run_id} stored in "
                  f"{store.engine.url.render_as_string(hide_password=True)}", soft_wrap=True)
    points = store.curve(outcome.training_run_id)
    if scenario.kind == "exploration":
        console.print(report.learning_table(points, columns=report.EXPLORATION_COLUMNS))
        if plots:
            from cli.plots import exploration_curves

            path = exploration_curves(points, folder / "learning_curves.png", title=scenario.name)
            console.print(f"plots: {path}", soft_wrap=True)
        return
    console.print(report.learning_table(points))
    runs = RunStore(engine=store.engine)
    run_id = training_loop.evaluate(scenario, outcome.checkpoint, runs)
    if run_id is not None:
        print_pairings(runs.pairings(run_id), title=f"evaluation (run {run_id})")
    if plots:
        from cli.plots import learning_curves, plot_run

        written = [learning_curves(points, folder / "learning_curves.png", title=scenario.name)]
        if run_id is not None:
            written += plot_run(runs.pairings(run_id), folder / "evaluation",
                                title=f"{scenario.name}: evaluation (run {run_id})")
        console.print("plots: " + ", ".join(str(p) for p in written), soft_wrap=True)


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


def training_status(metrics: list[dict[str, float]]) -> str:
    """The progress bar's live summary: the learners' cooperation with each other, or an
    exploring agent's success rate."""
    rates = [m["cooperation_vs_learners"] for m in metrics if "cooperation_vs_learners" in m]
    if rates:
        return f"coop vs learners {sum(rates) / len(rates):.2f}"
    successes = [m["success_rate"] for m in metrics if "success_rate" in m]
    return f"success {successes[0]:.2f}" if successes else ""


def print_pairings(pairings: list[PairingStats], *, title: str) -> None:
    """The cross-play table, then how each player answered its co-player's moves."""
    console.print(report.pairing_table(pairings, title=title))
    responses = report.response_table(pairings)
    if responses is not None:
        console.print(responses)


@app.command("eval")
def eval_command(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint written by `coplay train`.")],
    against: Annotated[list[str] | None, typer.Option(
        help="Co-players: a population file or bundled name, an agent kind, or "
             "'package.module:factory'. Repeat to combine. [default: classics]")] = None,
    learner: Annotated[list[str] | None, typer.Option(
        help="Evaluate only this learner of the checkpoint (repeatable).")] = None,
    episodes: Annotated[int, typer.Option(min=1, help="Episodes per learner and co-player.")] = 256,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    db: DbOption = default_url(),
    out: Annotated[Path | None, typer.Option(
        help="Folder for the plots [default: coplay-runs/run-<id>].")] = None,
    record_trajectories: Annotated[bool, typer.Option(
        "--record-trajectories", help="Also store every episode's actions and beliefs.")] = False,
    greedy: Annotated[bool, typer.Option(
        "--greedy", help="The learners take their likelier action instead of sampling one. "
        "Checkpoints named in --against populations say so themselves (greedy: true).")] = False,
    plots: Annotated[bool, typer.Option(help="Write PNG plots.")] = True,
) -> None:
    """Play trained learners against a population: print, store and plot the cross-play table."""
    from scenarios.evaluation import evaluation_scenario

    scenario = evaluation_scenario(
        checkpoint, learners=learner, against=against or [], episodes=episodes, seed=seed,
        record_trajectories=record_trajectories, greedy=greedy,
    )
    store = RunStore(db)
    store.prepare(scenario_name=scenario.name, env_id=scenario.env.id, agents=scenario.agents)
    with Progress(
        TextColumn("[bold]eval"), BarColumn(), MofNCompleteColumn(), TextColumn("episodes"),
        TimeElapsedColumn(), console=console,
    ) as progress:
        task = progress.add_task("eval", total=total_episodes(scenario))
        result = run_scenario(scenario, on_episodes=lambda n: progress.advance(task, n))
    run_id = store.save(result)
    pairings = store.pairings(run_id)
    print_pairings(pairings, title=f"run {run_id}: {scenario.description}")
    if plots:
        from cli.plots import plot_run

        folder = out or Path("coplay-runs") / f"run-{run_id}"
        written = plot_run(pairings, folder, title=f"evaluation of {checkpoint} (run {run_id})")
        console.print("plots: " + ", ".join(str(p) for p in written), soft_wrap=True)
    console.print(f"stored run {run_id} in {store.engine.url.render_as_string(hide_password=True)}",
                  soft_wrap=True)


@training_app.command("list")
def training_list(
    db: DbOption = default_url(),
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many, newest first.")] = 50,
) -> None:
    """List stored training runs, newest first."""
    console.print(report.training_runs_table(TrainingStore(db).list(limit=limit)))


@training_app.command("show")
def training_show(
    training_run_id: Annotated[int, typer.Argument(help="An id from `coplay training list`.")],
    db: DbOption = default_url(),
    plots: Annotated[Path | None, typer.Option(help="Also write the learning curves here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the curve as JSON.")] = False,
) -> None:
    """Show one training run's learning curves (a summary row every tenth of training)."""
    store = TrainingStore(db)
    info = store.run(training_run_id)
    points = store.curve(training_run_id)
    if as_json:
        print(json.dumps({
            "training_run": {**asdict(info), "created_at": info.created_at.isoformat()},
            "points": [asdict(p) for p in points],
        }))
        return
    console.print(report.training_runs_table([info]))
    console.print(f"checkpoint: {info.checkpoint}", soft_wrap=True)
    console.print(report.learning_table(points))
    if plots is not None:
        from cli.plots import learning_curves

        plots.mkdir(parents=True, exist_ok=True)
        path = learning_curves(points, plots / "learning_curves.png", title=info.scenario_name)
        console.print(f"plots: {path}")


@scenarios_app.command("list")
def scenarios_list() -> None:
    """List the bundled scenarios: simulations (`coplay run`), training and exploration
    (`coplay train`)."""
    # Listed without building agents: some seat checkpoints that earlier scenarios write.
    loaded = [(path, loading.load(path, build=False)) for path in loading.bundled()]
    table = Table(title=f"bundled scenarios (in {loading.BUNDLED_DIR})")
    # The first column is what `coplay run` or `coplay train` takes.
    table.add_column("scenario", no_wrap=True)
    table.add_column("env", overflow="fold")
    table.add_column("matchups", no_wrap=True)
    table.add_column("description", ratio=1)
    for path, s in loaded:
        if s.kind == "simulation":
            table.add_row(path.stem, s.env.id, s.matchups.mode, _first_sentence(s.description))
        elif s.kind == "training":
            table.add_row(path.stem, s.env.id, f"train ({s.train.algorithm})",
                          _first_sentence(s.description))
    console.print(table)
    explore = Table(title=f"bundled exploration scenarios (`coplay train NAME`; in "
                          f"{loading.FOLDERS['exploration']})")
    explore.add_column("scenario", no_wrap=True)
    explore.add_column("contexts")
    explore.add_column("bonus", ratio=1)
    for path, e in loaded:
        if e.kind == "exploration":
            explore.add_row(path.stem, e.contexts_label, e.bonus.label)
    console.print(explore)


def _first_sentence(text: str) -> str:
    return " ".join(text.split()).split(". ")[0].rstrip(".")


@scenarios_app.command("validate")
def scenarios_validate(
    files: Annotated[list[str], typer.Argument(help="Scenario files (or bundled names).")],
) -> None:
    """Check scenario files of any kind: YAML, fields, env, agent kinds and parameters,
    plug-ins, checkpoints."""
    for file in files:
        s = loading.load(file)
        if s.kind == "simulation":
            summary = f"{s.matchups.mode} on {s.env.id}"
        elif s.kind == "training":
            summary = f"training on {s.env.id}"
        else:
            summary = (f"exploration on {s.env.id}, {s.contexts_label} context(s), "
                       f"bonus {s.bonus.label}")
        console.print(f"[green]ok[/green] {file}: {s.name} ({summary})")


@runs_app.command("list")
def runs_list(
    db: DbOption = default_url(),
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many, newest first.")] = 50,
) -> None:
    """List stored runs, newest first."""
    console.print(report.runs_table(RunStore(db).list(limit=limit)))


@runs_app.command("show")
def runs_show(
    run_id: Annotated[int, typer.Argument(help="A run id from `coplay runs list`.")],
    db: DbOption = default_url(),
    plots: Annotated[Path | None, typer.Option(help="Also write the run's plots here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Show one stored run: its scenario, per-pairing and per-role results."""
    store = RunStore(db)
    info = store.run(run_id)
    pairings = store.pairings(run_id)
    if as_json:
        print(json.dumps({
            "run": {**asdict(info), "created_at": info.created_at.isoformat()},
            "scenario": store.scenario(run_id),
            "pairings": [
                {**asdict(p), "return_per_step": [p.return_per_step(0), p.return_per_step(1)],
                 "cooperation_rate": [p.cooperation_rate(0), p.cooperation_rate(1)]}
                for p in pairings
            ],
            "roles": [{**asdict(r), "return_per_step": r.return_per_step,
                       "cooperation_rate": r.cooperation_rate}
                      for r in report.role_stats(pairings)],
        }))
        return
    console.print(report.runs_table([info]))
    print_pairings(pairings, title=f"run {run_id}: {info.scenario_name}")
    console.print(report.role_table(pairings))
    if plots is not None:
        from cli.plots import plot_run

        written = plot_run(pairings, plots, title=f"{info.scenario_name} (run {run_id})")
        console.print("plots: " + ", ".join(str(p) for p in written))


@app.command("envs")
def envs_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List every registered environment: matrix games and grid tasks, with the settings a
    scenario's env section (or envs.make) accepts."""
    specs = envs.registered()
    if as_json:
        print(json.dumps([spec.as_dict() for spec in specs], indent=2))
        return
    table = Table(title="environments (settings go in a scenario's env section)")
    table.add_column("id", no_wrap=True)
    table.add_column("family")
    table.add_column("description and settings", ratio=1, overflow="fold")
    for spec in specs:
        table.add_row(spec.env_id, spec.family,
                      f"{spec.description}\n[dim]settings: {', '.join(spec.settings)}[/dim]")
    console.print(table)


@app.command("agents")
def agents_list() -> None:
    """List the agent kinds a scenario can name, with their parameters."""
    table = Table(title="agent kinds")
    for header in ("kind", "parameters", "description"):
        table.add_column(header)
    for kind in agents.kinds():
        table.add_row(kind.name, ", ".join(kind.parameters()) or "-", kind.description)
    console.print(table)


def main() -> None:
    from sqlalchemy.exc import DBAPIError

    from memory.db import describe_failure

    try:
        app(prog_name="coplay")
    except CoplayError as error:
        print(f"coplay: error: {error}", file=sys.stderr)
        sys.exit(2)
    except DBAPIError as error:
        # A store that failed after it was opened and checked (a disk that filled, a lock held
        # past the timeout by another writer): one line too. coplay's own bugs still show.
        failure = describe_failure(error)
        if failure is None:
            raise
        print(f"coplay: error: {failure}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
