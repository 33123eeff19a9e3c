"""The `coplay` command line. Errors in the user's input print one line and exit with 2.

Start-up stays cheap: modules import only typer, rich and each other at load time, and a
command imports what it needs (the store, the runner, torch) when it runs, so `--help` and
the listings never load what only a simulation or a training run uses.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.memory import db_app, memory_app
from cli.options import (
    DEFAULT_DB_URL,
    DbOption,
    EmbedderOption,
    JsonOption,
    OutOption,
    PlotsOption,
    RecordTrajectoriesOption,
    SeedOption,
    SetOption,
    overrides,
)
from cli.output import compact_table, console, print_json, print_written, progress_bar
from cli.reuse import reuse_app
from cli.runs import print_pairings, print_results, runs_app
from cli.scenarios import scenarios_app
from cli.training import train_command, training_app
from coplay.errors import CoplayError

if TYPE_CHECKING:
    from memory.handbook import Handbook
    from scenarios.schema import Scenario

app = typer.Typer(
    help="coplay: multi-agent simulation with memory and reuse.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(scenarios_app, name="scenarios")
app.add_typer(runs_app, name="runs")
app.add_typer(training_app, name="training")
app.add_typer(memory_app, name="memory")
app.add_typer(db_app, name="db")
app.add_typer(reuse_app, name="reuse")


@app.command("run")
def run_command(
    scenario_path: Annotated[str, typer.Argument(
        metavar="SCENARIO", help="A scenario YAML file, or a bundled scenario's name.")],
    db: DbOption = DEFAULT_DB_URL,
    out: OutOption = None,
    seed: SeedOption = None,
    episodes: Annotated[int | None, typer.Option(
        min=1, help="Override run.episodes (per pairing or focal agent).")] = None,
    record_trajectories: RecordTrajectoriesOption = False,
    settings: SetOption = None,
    plots: PlotsOption = True,
    embedder: EmbedderOption = "hashing",
) -> None:
    """Play a scenario, print a summary, store the run and plot it.

    SCENARIO says `kind: simulation`. A scenario with a `memory` section also uses the
    handbook in the same database, records how its behaviors fared, and (with
    `memory.extract`) distils the run into new behaviors. Plots go to --out [default:
    coplay-runs/run-ID]."""
    from cli.memory import open_handbook
    from memory import RunStore
    from scenarios import loading, runner
    from scenarios.loading import Override

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
    with progress_bar(scenario.name, "episodes") as progress:
        task = progress.add_task("run", total=runner.total_episodes(scenario))
        try:
            result = runner.run(scenario, handbook=handbook,
                                on_episodes=lambda n: progress.advance(task, n))
        except KeyboardInterrupt:
            # Runs are stored only once complete, so an interrupted one leaves no trace.
            print("coplay: interrupted; nothing was stored", file=sys.stderr)
            raise typer.Exit(130) from None
    run_id = store.save(result)
    if handbook is not None:
        _update_memory(handbook, scenario, result, run_id)
    pairings = store.pairings(run_id)
    print_results(pairings, title=f"run {run_id}: {scenario.name}",
                  round_robin=scenario.matchups.mode == "round_robin")
    if plots:
        from cli.plots import plot_run

        folder = out or Path("coplay-runs") / f"run-{run_id}"
        print_written(plot_run(pairings, folder, title=f"{scenario.name} (run {run_id})"))
    url = store.engine.url.render_as_string(hide_password=True)
    console.print(f"stored run {run_id} in {url} ({result.wall_seconds:.2f} s of simulation)",
                  soft_wrap=True)


def _update_memory(handbook: Handbook, scenario: Scenario, result, run_id: int) -> None:
    from scenarios.domains import extract_run

    usage = result.memory_usage
    handbook.record(usage)
    line = f"memory: {usage.shown} behaviors shown, {usage.used} used"
    if scenario.memory.extract:
        extracted = extract_run(handbook, run_id)
        new = sum(not r.merged for r in extracted)
        line += f"; extracted {len(extracted)} ({new} new, {len(extracted) - new} merged)"
    console.print(line)
    handbook.close()


app.command("train")(train_command)


@app.command("eval")
def eval_command(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint written by `coplay train`.")],
    against: Annotated[list[str] | None, typer.Option(
        help="Co-players: a population file or bundled name, an agent kind, or "
             "'package.module:factory'. Repeat to combine. [default: classics]")] = None,
    learner: Annotated[list[str] | None, typer.Option(
        help="Evaluate only this learner of the checkpoint (repeatable).")] = None,
    episodes: Annotated[int, typer.Option(min=1, help="Episodes per learner and co-player.")] = 256,
    seed: SeedOption = None,
    db: DbOption = DEFAULT_DB_URL,
    out: OutOption = None,
    record_trajectories: RecordTrajectoriesOption = False,
    greedy: Annotated[bool, typer.Option(
        "--greedy", help="The learners take their likelier action instead of sampling one. "
        "Checkpoints named in --against populations say so themselves (greedy: true).")] = False,
    plots: PlotsOption = True,
) -> None:
    """Play trained learners against a population.

    Prints, stores and plots the cross-play table (plots go to --out [default:
    coplay-runs/run-ID])."""
    from memory import RunStore
    from scenarios import runner
    from scenarios.evaluation import evaluation_scenario

    scenario = evaluation_scenario(
        checkpoint, learners=learner, against=against or [], episodes=episodes,
        seed=0 if seed is None else seed, record_trajectories=record_trajectories, greedy=greedy,
    )
    store = RunStore(db)
    with progress_bar("eval", "episodes") as progress:
        task = progress.add_task("eval", total=runner.total_episodes(scenario))
        result = runner.run(scenario, on_episodes=lambda n: progress.advance(task, n))
    run_id = store.save(result)
    pairings = store.pairings(run_id)
    print_pairings(pairings, title=f"run {run_id}: {scenario.description}")
    if plots:
        from cli.plots import plot_run

        folder = out or Path("coplay-runs") / f"run-{run_id}"
        title = f"evaluation of {checkpoint} (run {run_id})"
        print_written(plot_run(pairings, folder, title=title))
    console.print(f"stored run {run_id} in {store.engine.url.render_as_string(hide_password=True)}",
                  soft_wrap=True)


@app.command("envs")
def envs_list(as_json: JsonOption = False) -> None:
    """List the registered environments: matrix games and grid tasks.

    Each with the settings a scenario's env section (or envs.make) accepts."""
    import envs

    specs = envs.registered()
    if as_json:
        print_json([spec.as_dict() for spec in specs])
        return
    table = compact_table("environments (settings go in a scenario's env section)")
    table.add_column("id", no_wrap=True)
    table.add_column("family")
    table.add_column("description and settings", ratio=1)
    for spec in specs:
        table.add_row(spec.env_id, spec.family,
                      f"{spec.description} Settings: {', '.join(spec.settings)}.")
    console.print(table)


@app.command("agents")
def agents_list(as_json: JsonOption = False) -> None:
    """List the agent kinds and their parameters."""
    import agents

    if as_json:
        print_json([{"kind": k.name, "parameters": list(k.parameters),
                     "description": k.description} for k in agents.kinds()])
        return
    table = compact_table("agent kinds")
    table.add_column("kind", no_wrap=True)
    table.add_column("parameters", max_width=20)
    table.add_column("description", ratio=1)
    for kind in agents.kinds():
        table.add_row(kind.name, ", ".join(kind.parameters) or "-", kind.description)
    console.print(table)


def main() -> None:
    try:
        app(prog_name="coplay")
    except CoplayError as error:
        print(f"coplay: error: {error}", file=sys.stderr)
        sys.exit(2)
    except Exception as error:
        # A store that failed after it was opened and checked (a disk that filled, a lock held
        # past the timeout by another writer): one line too. coplay's own bugs still show.
        failure = _database_failure(error)
        if failure is None:
            raise
        print(f"coplay: error: {failure}", file=sys.stderr)
        sys.exit(2)


def _database_failure(error: Exception) -> str | None:
    """One line for a database's own failure; None for anything else. sqlalchemy is looked
    at only if a command loaded it, so start-up never pays for it."""
    if "sqlalchemy" not in sys.modules:
        return None
    from sqlalchemy.exc import DBAPIError

    from memory.db import describe_failure

    return describe_failure(error) if isinstance(error, DBAPIError) else None


if __name__ == "__main__":
    main()
