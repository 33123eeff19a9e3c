"""`coplay runs ...`: the simulation runs stored in the database, and the tables that show one."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import report
from cli.options import DEFAULT_DB_URL, DbOption, JsonOption, LimitOption, PlotsFolderOption
from cli.output import console, print_json, print_written

if TYPE_CHECKING:
    from memory import PairingStats, RunInfo

runs_app = typer.Typer(help="Inspect runs stored in the database.", no_args_is_help=True)


def is_round_robin(scenario: dict[str, Any]) -> bool:
    """Whether a stored scenario (as ``RunStore.scenario`` returns it) is a round robin."""
    return scenario.get("matchups", {}).get("mode") == "round_robin"


def print_results(pairings: list[PairingStats], *, title: str, round_robin: bool) -> None:
    """A run's tables: a single-agent run's per player; otherwise the pairings (with a round
    robin's standings and the responses) and the per-role figures."""
    if report.is_solo(pairings):
        console.print(report.solo_table(pairings, title=title))
        return
    print_pairings(pairings, title=title, round_robin=round_robin)
    console.print(report.role_table(pairings))


def print_pairings(pairings: list[PairingStats], *, title: str, round_robin: bool = False) -> None:
    """The cross-play table, a round robin's standings, then how each player answered its
    co-player's moves."""
    console.print(report.pairing_table(pairings, title=title))
    if round_robin:
        console.print(report.standings_table(pairings))
    responses = report.response_table(pairings)
    if responses is not None:
        console.print(responses)


def _run_record(info: RunInfo) -> dict[str, Any]:
    return {**asdict(info), "created_at": info.created_at.isoformat()}


@runs_app.command("list")
def runs_list(db: DbOption = DEFAULT_DB_URL, limit: LimitOption = 50,
              as_json: JsonOption = False) -> None:
    """List stored runs, newest first."""
    from memory import RunStore

    runs = RunStore(db).list(limit=limit)
    if as_json:
        print_json([_run_record(r) for r in runs])
        return
    console.print(report.runs_table(runs))


@runs_app.command("show")
def runs_show(
    run_id: Annotated[int, typer.Argument(help="A run id from `coplay runs list`.")],
    db: DbOption = DEFAULT_DB_URL, plots: PlotsFolderOption = None, as_json: JsonOption = False,
) -> None:
    """Show one stored run's tables.

    Its per-pairing and per-role results, a round robin's standings, and each player's
    responses; --json adds the scenario."""
    from memory import RunStore

    store = RunStore(db)
    info = store.run(run_id)
    scenario = store.scenario(run_id)
    pairings = store.pairings(run_id)
    round_robin = is_round_robin(scenario)
    if as_json:
        print_json({
            "run": _run_record(info),
            "scenario": scenario,
            "pairings": [
                {**asdict(p), "return_per_step": [p.return_per_step(0), p.return_per_step(1)],
                 "cooperation_rate": [p.cooperation_rate(0), p.cooperation_rate(1)]}
                for p in pairings
            ],
            "roles": [{**asdict(r), "return_per_step": r.return_per_step,
                       "cooperation_rate": r.cooperation_rate}
                      for r in report.role_stats(pairings)],
            "standings": ([s.record() for s in report.standings(pairings)]
                          if round_robin else None),
        })
        return
    console.print(report.runs_table([info]))
    print_results(pairings, title=f"run {run_id}: {info.scenario_name}", round_robin=round_robin)
    if plots is not None:
        from cli.plots import plot_run

        written = plot_run(pairings, plots, title=f"{info.scenario_name} (run {run_id})")
        print_written(written)
