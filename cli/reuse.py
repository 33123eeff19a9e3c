"""`coplay reuse ...`: reuse studies (does memory help against held-out co-players?), run and
stored as comparisons."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.options import (
    DEFAULT_DB_URL,
    DbOption,
    JsonOption,
    LimitOption,
    PlotsFolderOption,
    PlotsOption,
    SetOption,
    overrides,
)
from cli.output import compact_table, console, print_json, print_written, progress_bar

if TYPE_CHECKING:
    from memory.comparisons import Comparison

reuse_app = typer.Typer(help="Reuse studies: memory against co-players it never met.",
                        no_args_is_help=True)


@reuse_app.command("run")
def reuse_run(
    scenario_path: Annotated[str, typer.Argument(
        metavar="SCENARIO", help="A `kind: reuse` YAML file, or a bundled one's name.")],
    db: DbOption = DEFAULT_DB_URL,
    seeds: Annotated[str | None, typer.Option(
        help="Comma-separated seeds, e.g. 0,1,2 (overrides the scenario's).")] = None,
    settings: SetOption = None,
    out: Annotated[Path | None, typer.Option(
        help="Folder for the plot [default: coplay-reuse/comparison-ID].")] = None,
    plots: PlotsOption = True,
    as_json: JsonOption = False,
) -> None:
    """Run a reuse study and store its comparison.

    SCENARIO says `kind: reuse`. Per seed, a handbook is trained on the training split; the
    subject then meets the held-out split with no memory, with it and (oracle: true) with a
    handbook that met them too. Every seed trains its own handbook in a temporary database;
    the comparison (figures, intervals, precision) is stored in --db and can be shown again
    with `coplay reuse show`."""
    from memory.comparisons import get_comparison, save_comparison
    from memory.db import check_writable, open_engine
    from scenarios import loading
    from scenarios.loading import Override
    from scenarios.reuse import compare, steps

    parsed = None if seeds is None else _seeds(seeds)
    study = loading.load(scenario_path, accept=["reuse"], overrides=overrides(settings, [
        Override("seeds", parsed, option="--seeds")]))
    engine = open_engine(db)
    check_writable(engine)
    with progress_bar(study.name, "steps", on_stderr=as_json) as progress:
        task = progress.add_task("reuse", total=steps(study))
        figures = compare(study, progress=lambda label: progress.update(
            task, advance=1, description=label))
    comparison_id = save_comparison(
        engine, name=study.name, env_id=study.env.id, wall_seconds=figures["wall_seconds"],
        scenario=study.model_dump(mode="json"), figures=figures)
    comparison = get_comparison(engine, comparison_id)
    if as_json:
        print_json(_record(comparison))
    else:
        _print(comparison)
    if plots:
        from cli.plots import plot_reuse

        folder = out or Path("coplay-reuse") / f"comparison-{comparison_id}"
        written = plot_reuse(comparison.figures, folder, title=study.name)
        if not as_json:  # standard output holds the JSON alone
            print_written(written)
    if not as_json:
        console.print(f"stored reuse comparison {comparison_id} ({figures['wall_seconds']:.0f} s)")


@reuse_app.command("list")
def reuse_list(db: DbOption = DEFAULT_DB_URL, limit: LimitOption = 50,
               as_json: JsonOption = False) -> None:
    """Stored reuse comparisons, newest first."""
    from memory.comparisons import list_comparisons
    from memory.db import open_engine

    found = list_comparisons(open_engine(db), limit=limit)
    if as_json:
        print_json([{k: v for k, v in _record(c).items() if k != "figures"} for c in found])
        return
    table = compact_table(f"{len(found)} reuse comparisons")
    for column in ("id", "name", "created", "seeds", "handbook - none (95% interval)"):
        table.add_column(column)
    for c in found:
        main = c.figures["measures"][0]
        gain = c.figures[f"{main['key']}_gain"]["handbook"]
        table.add_row(str(c.id), c.name, c.created_at.isoformat(timespec="seconds"),
                      ",".join(map(str, c.figures["seeds"])),
                      f"{main['key']} {_gain(gain, main['higher_is_better'])}")
    console.print(table)


@reuse_app.command("show")
def reuse_show(
    comparison_id: Annotated[int, typer.Argument(metavar="ID", help="A comparison id.")],
    db: DbOption = DEFAULT_DB_URL, plots: PlotsFolderOption = None, as_json: JsonOption = False,
) -> None:
    """One stored comparison: per co-player and on average."""
    from memory.comparisons import get_comparison
    from memory.db import open_engine

    comparison = get_comparison(open_engine(db), comparison_id)
    if as_json:
        print_json(_record(comparison))
    else:
        _print(comparison)
    if plots is not None:
        from cli.plots import plot_reuse

        print_written(plot_reuse(comparison.figures, plots, title=comparison.name))


def _seeds(text: str) -> list[int]:
    from coplay.errors import ConfigError

    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError("--seeds", expected="comma-separated whole numbers, e.g. 0,1,2",
                          got=repr(text)) from None
    if any(seed < 0 for seed in seeds):
        raise ConfigError("--seeds", expected="seeds >= 0", got=repr(text))
    return seeds


def _record(comparison: Comparison) -> dict[str, Any]:
    return {"id": comparison.id, "name": comparison.name, "env_id": comparison.env_id,
            "created_at": comparison.created_at.isoformat(), "wall_seconds": comparison.wall_seconds,
            "scenario": comparison.scenario, "figures": comparison.figures}


def _gain(gain: dict[str, Any], higher_is_better: bool) -> str:
    """The mean difference (memory minus none), its interval, and + (significantly better),
    - (significantly worse) or nothing."""
    better = "higher" if higher_is_better else "lower"
    mark = {better: "+", "no significant difference": " "}.get(gain["verdict"], "-")
    return f"{gain['mean']:+.3f} [{gain['low']:+.3f},{gain['high']:+.3f}]{mark}"


def _print(comparison: Comparison) -> None:
    figures = comparison.figures
    conditions = figures["conditions"]
    memory_conditions = [c for c in conditions if c != "none"]
    (main, *others) = figures["measures"]
    key, better = main["key"], main["higher_is_better"]
    table = compact_table(
        f"comparison {comparison.id}: {comparison.name}; {figures['subject']}, held out: "
        f"{main['label']} (seeds {','.join(map(str, figures['seeds']))}); differences paired by "
        "episode, 95% bootstrap intervals, + significantly better, - significantly worse")
    table.add_column("held out")
    for condition in conditions:
        table.add_column(condition, justify="right")
    for condition in memory_conditions:
        table.add_column(f"{condition} - none", justify="right", no_wrap=True)
    for other in others:
        table.add_column(_short(other, figures), justify="right", no_wrap=True)
    rows = [(unit, entry) for unit, entry in figures["units"].items()]
    rows.append(("mean", figures))
    for unit, entry in rows:
        table.add_row(
            unit, *(f"{entry[key][c]:.3f}" for c in conditions),
            *(_gain(entry[f"{key}_gain"][c], better) for c in memory_conditions),
            *("/".join(f"{entry[other['key']][c]:.2f}" for c in conditions) for other in others))
    console.print(table)
    for condition in memory_conditions:
        parts = [f"{_short(other, figures)} "
                 f"{_gain(figures[other['key'] + '_gain'][condition], other['higher_is_better'])}"
                 for other in others]
        precision = figures["precision"].get(condition)
        if figures["family"] == "matrix":
            parts.append(f"retrieval precision {'-' if precision is None else f'{precision:.3f}'}")
        parts.append(f"behaviors per seed {figures['handbook_behaviors'][condition]}")
        console.print(f"{condition}: " + "; ".join(parts), soft_wrap=True)


def _short(measure: dict[str, Any], figures: dict[str, Any]) -> str:
    if measure["key"] == "opening":
        return f"first {figures['first_rounds']}"
    return measure["key"]
