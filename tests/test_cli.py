"""The `coplay` command line through its real entry point: output, files, exit codes."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest

import agents
import memory
from cli import app as cli
from cli import options
from memory import RunStore
from tests.conftest import TINY_SCENARIO, write

REPO = Path(__file__).resolve().parents[1]


def coplay(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["coplay", *args])
    try:
        cli.main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_run_prints_summary_stores_and_plots(monkeypatch, capsys, tmp_path, db_url) -> None:
    scenario = write(tmp_path, "tiny.yaml", TINY_SCENARIO)
    out = tmp_path / "plots"
    code, stdout, stderr = coplay(
        monkeypatch, capsys, "run", str(scenario), "--db", db_url, "--out", str(out))
    assert code == 0, stderr
    assert "run 1: tiny" in stdout
    assert "tft" in stdout and "alld" in stdout
    assert "-0.100 / 0.200" in stdout  # tit for tat against always-defect over 10 rounds
    assert "per role" in stdout
    assert f"stored run 1 in {db_url}" in stdout
    for name in ("heatmap.png", "cooperation_by_round.png"):
        png = out / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 10_000
    assert RunStore(db_url).run(1).episodes == 21


def test_run_overrides_seed_and_episodes(monkeypatch, capsys, tmp_path, db_url) -> None:
    scenario = write(tmp_path, "tiny.yaml", TINY_SCENARIO)
    code, _, stderr = coplay(monkeypatch, capsys, "run", str(scenario), "--db", db_url,
                             "--seed", "9", "--episodes", "2", "--no-plots")
    assert code == 0, stderr
    info = RunStore(db_url).run(1)
    assert (info.seed, info.episodes) == (9, 6)


def test_runs_list_and_show(monkeypatch, capsys, tmp_path, db_url) -> None:
    scenario = write(tmp_path, "tiny.yaml", TINY_SCENARIO)
    for _ in range(2):
        coplay(monkeypatch, capsys, "run", str(scenario), "--db", db_url, "--no-plots")
    code, stdout, _ = coplay(monkeypatch, capsys, "runs", "list", "--db", db_url)
    assert code == 0
    assert stdout.count("tiny") == 2
    code, stdout, _ = coplay(monkeypatch, capsys, "runs", "show", "2", "--db", db_url, "--json")
    assert code == 0
    shown = json.loads(stdout)
    assert shown["run"]["id"] == 2
    assert shown["scenario"]["name"] == "tiny"
    by_agents = {tuple(p["agents"]): p for p in shown["pairings"]}
    assert by_agents[("tft", "alld")]["return_per_step"] == pytest.approx([-0.1, 0.2])
    assert [r["role"] for r in shown["roles"]] == ["focal"]
    tft_responses = by_agents[("tft", "alld")]["responses"][0]  # CC, CD, DC, DD: [after, cooperated]
    assert tft_responses[1][0] > 0 and tft_responses[1][1] == 0 and tft_responses[0] == [0, 0]
    plots = tmp_path / "again"
    code, stdout, _ = coplay(monkeypatch, capsys, "runs", "show", "2", "--db", db_url,
                             "--plots", str(plots))
    assert code == 0 and "run 2: tiny" in stdout
    rows = [line.split() for line in stdout[stdout.index("responses"):].splitlines()]
    # round 1, then after CC, CD, DC, DD: tit for tat opens with C, meets only D, answers it in kind
    assert ["tft", "alld", "1.00", "-", "0.00", "-", "0.00"] in rows
    assert (plots / "heatmap.png").exists() and (plots / "responses.png").exists()


def test_scenarios_list_and_validate(monkeypatch, capsys) -> None:
    code, stdout, _ = coplay(monkeypatch, capsys, "scenarios", "list")
    assert code == 0
    for name in ("round_robin", "focal_vs_mixed", "classic_tournament"):
        assert name in stdout
    code, stdout, _ = coplay(monkeypatch, capsys, "scenarios", "validate", "round_robin",
                             "scenarios/data/chicken.yaml")
    assert code == 0
    assert stdout.count("ok ") == 2


def test_envs_and_agents_are_listed(monkeypatch, capsys) -> None:
    code, stdout, _ = coplay(monkeypatch, capsys, "envs")
    assert code == 0 and "coplay/stag-hunt-v0" in stdout
    code, stdout, _ = coplay(monkeypatch, capsys, "agents")
    assert code == 0 and "extortionate_zd" in stdout and "chi" in stdout


@pytest.mark.parametrize("args", [
    ["--help"], ["run", "--help"], ["scenarios", "--help"], ["scenarios", "list", "--help"],
    ["scenarios", "validate", "--help"], ["runs", "--help"], ["runs", "list", "--help"],
    ["runs", "show", "--help"], ["train", "--help"], ["eval", "--help"], ["training", "--help"],
    ["training", "list", "--help"], ["training", "show", "--help"],
])
def test_every_command_has_help(monkeypatch, capsys, args) -> None:
    code, stdout, _ = coplay(monkeypatch, capsys, *args)
    assert code == 0
    assert "Usage: coplay" in stdout
    assert len(stdout.splitlines()) > 5


@pytest.mark.parametrize("group", [[], ["scenarios"], ["runs"], ["training"], ["memory"], ["db"],
                                   ["reuse"]])
def test_command_listings_show_whole_summaries(monkeypatch, capsys, group) -> None:
    code, stdout, _ = coplay(monkeypatch, capsys, *group, "--help")
    assert code == 0
    commands = stdout[stdout.index("Commands:"):].splitlines()[1:]
    assert len(commands) >= 2
    assert not [line for line in commands if line.endswith("...")]


@pytest.mark.parametrize(("args", "message"), [
    (["run", "nowhere.yaml"],
     "coplay: error: nowhere.yaml: expected a readable scenario file, got No such file or "
     "directory. Run `coplay scenarios list` for the bundled scenarios.\n"),
    (["runs", "show", "5", "--db", "sqlite:///{tmp}/empty.db"],
     "coplay: error: run id: expected the id of a stored run, got 5. Run `coplay runs list` "
     "to see the stored runs.\n"),
    (["runs", "list", "--db", "sqlite:////nonexistent-dir/x.db"],
     "coplay: error: --db: expected a reachable coplay database at "
     "sqlite:////nonexistent-dir/x.db, got unable to open database file.\n"),
])
def test_user_errors_print_one_line_and_exit_2(monkeypatch, capsys, tmp_path, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, stdout, stderr = coplay(monkeypatch, capsys, *args)
    assert code == 2
    assert stderr == message
    assert "Traceback" not in stdout + stderr


def test_bad_scenario_is_reported_before_anything_is_stored(monkeypatch, capsys, tmp_path, db_url):
    bad = write(tmp_path, "bad.yaml", TINY_SCENARIO.replace("tit_for_tat", "tit_for_that"))
    code, _, stderr = coplay(monkeypatch, capsys, "run", str(bad), "--db", db_url)
    assert code == 2
    assert stderr.startswith(f"coplay: error: {bad}: agents.tft.kind: expected one of [")
    assert RunStore(db_url).list() == []


def test_interrupted_run_stores_nothing(monkeypatch, capsys, tmp_path, db_url) -> None:
    from scenarios import runner

    def interrupt(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run", interrupt)
    scenario = write(tmp_path, "tiny.yaml", TINY_SCENARIO)
    code, _, stderr = coplay(monkeypatch, capsys, "run", str(scenario), "--db", db_url)
    assert code == 130
    assert stderr == "coplay: interrupted; nothing was stored\n"
    assert RunStore(db_url).list() == []


def test_console_script_is_installed() -> None:
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "coplay").exists()


# --- start-up: what a command imports --------------------------------------------------------

HEAVY_MODULES = ("torch", "numba", "transformers", "matplotlib", "scipy", "psycopg", "psycopg2",
                 "sqlalchemy")


def imported_after(*args: str) -> set[str]:
    """The top-level packages in ``sys.modules`` after ``coplay ARGS`` in a fresh interpreter."""
    script = (
        "import sys\n"
        f"sys.argv = ['coplay', *{list(args)!r}]\n"
        "from cli.app import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit_:\n"
        "    assert not exit_.code, exit_.code\n"
        "print('MODULES', ' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, check=True)
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("MODULES ")
    return set(last.split()[1:])


@pytest.mark.parametrize("args", [
    ["--help"], ["scenarios", "list"], ["scenarios", "list", "--json"],
])
def test_help_and_scenarios_list_import_no_heavy_module(args) -> None:
    loaded = imported_after(*args)
    assert "cli" in loaded
    assert loaded.isdisjoint(HEAVY_MODULES), sorted(loaded & set(HEAVY_MODULES))


def test_help_imports_none_of_the_toolkit() -> None:
    """`--help` loads only the command line: the store, runner and agents wait for a command."""
    loaded = imported_after("--help")
    assert loaded.isdisjoint({"numpy", "envs", "agents", "memory", "scenarios", "yaml"})


def test_agent_kinds_are_listed_without_importing_their_modules() -> None:
    script = ("import sys, agents\n"
              "names = [k.name for k in agents.kinds()]\n"
              "implementations = ('agents.coplayers', 'agents.trained', 'numpy')\n"
              "print('tit_for_tat' in names, 'checkpoint' in names,"
              " any(m.startswith(implementations) for m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, check=True)
    assert done.stdout.split() == ["True", "True", "False"]


def test_listed_kind_parameters_are_what_the_builders_take() -> None:
    for kind in agents.kinds():
        if callable(kind.builder):
            builder = kind.builder
        else:
            module, _, function = kind.builder.partition(":")
            builder = getattr(import_module(module), function)
        assert tuple(inspect.signature(builder).parameters)[1:] == kind.parameters, kind.name


def test_the_db_option_names_the_stores_own_default_and_variable() -> None:
    assert options.DEFAULT_DB_URL == memory.DEFAULT_URL
    assert options.DB_ENV_VAR == memory.URL_ENV_VAR


# --- every listing has --json ----------------------------------------------------------------


def listing(monkeypatch, capsys, *args: str):
    code, stdout, stderr = coplay(monkeypatch, capsys, *args, "--json")
    assert code == 0, stderr
    return json.loads(stdout)


def test_every_listing_prints_json(monkeypatch, capsys, tmp_path, db_url) -> None:
    scenario = write(tmp_path, "tiny.yaml", TINY_SCENARIO)
    assert coplay(monkeypatch, capsys, "run", str(scenario), "--db", db_url, "--no-plots")[0] == 0

    bundled = {s["scenario"]: s for s in listing(monkeypatch, capsys, "scenarios", "list")}
    assert bundled["round_robin"]["kind"] == "simulation"
    assert bundled["round_robin"]["env"] == "coplay/ipd-v0"
    assert bundled["mixed_pool"]["kind"] == "training"
    assert bundled["multiroom_1_global"]["kind"] == "exploration"
    assert "classics" not in bundled  # a population, not a scenario
    kinds = {k["kind"]: k for k in listing(monkeypatch, capsys, "agents")}
    assert kinds["extortionate_zd"]["parameters"] == ["chi", "phi_fraction", "start_cooperation"]
    runs = listing(monkeypatch, capsys, "runs", "list", "--db", db_url)
    assert [(r["id"], r["scenario_name"], r["episodes"]) for r in runs] == [(1, "tiny", 21)]
    assert listing(monkeypatch, capsys, "training", "list", "--db", db_url) == []
    assert listing(monkeypatch, capsys, "memory", "list", "--db", db_url) == []
    assert listing(monkeypatch, capsys, "memory", "search", "they defect", "--db", db_url) == []
    assert listing(monkeypatch, capsys, "memory", "stats", "--db", db_url)["behaviors"] == 0


# --- tables at 80 columns --------------------------------------------------------------------


def narrow(*args: str) -> str:
    """``coplay ARGS`` in a terminal 80 columns wide; every line must fit it, and no cell is
    cut short (rich marks a cut with an ellipsis)."""
    done = subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "80"}, check=False)
    assert done.returncode == 0, done.stderr
    too_long = [line for line in done.stdout.splitlines() if len(line) > 80]
    assert not too_long, too_long
    return done.stdout


def test_scenarios_list_fits_80_columns_with_whole_names() -> None:
    from cli.scenarios import bundled_scenarios

    shown = narrow("scenarios", "list")
    rows = [line.split() for line in shown.splitlines()]
    names = {row[0] for row in rows if row}
    every = bundled_scenarios()
    assert len(every) > 50
    for scenario in every:
        assert scenario.scenario in names  # each name whole, first on its row
        assert scenario.env in shown
    # A description is shortened between words only: each shown word is one of its words.
    round_robin = next(row for row in rows if row and row[0] == "round_robin")
    description = next(s.description for s in every if s.scenario == "round_robin")
    assert all(word.rstrip("…") in description.split() for word in round_robin[1:])


def test_runs_list_and_show_fit_80_columns(monkeypatch, capsys, db_url) -> None:
    assert coplay(monkeypatch, capsys, "run", "round_robin", "--db", db_url, "--episodes", "2",
                  "--no-plots")[0] == 0
    listed = narrow("runs", "list", "--db", db_url)
    assert "…" not in listed
    assert {"round-robin", "coplay/ipd-v0"} <= set(listed.split())
    shown = narrow("runs", "show", "1", "--db", db_url)
    assert "…" not in shown
    pairing_rows = [line.split() for line in shown.splitlines() if "/" in line]
    assert ["always_cooperate", "tit_for_two_tats", "2", "1.000", "/", "1.000", "1.000", "/",
            "1.000"] in pairing_rows


# --- a round robin's standings ---------------------------------------------------------------


def test_round_robin_prints_and_stores_standings(monkeypatch, capsys, db_url) -> None:
    code, stdout, stderr = coplay(monkeypatch, capsys, "run", "round_robin", "--db", db_url,
                                  "--episodes", "4", "--no-plots")
    assert code == 0, stderr
    assert stdout.index("run 1: round-robin") < stdout.index("standings") < stdout.index("per role")
    shown = listing(monkeypatch, capsys, "runs", "show", "1", "--db", db_url)
    standings = shown["standings"]
    assert len(standings) == 10
    # Nine co-players, four episodes of 100 rounds each; ranked by mean return per step.
    assert {s["episodes"] for s in standings} == {36}
    assert {s["steps"] for s in standings} == {3600}
    means = [s["return_per_step"] for s in standings]
    assert means == sorted(means, reverse=True)
    assert [s["rank"] for s in standings] == sorted(s["rank"] for s in standings)
    assert standings[0]["rank"] == 1
    for s in standings:
        assert s["return_per_step"] == pytest.approx(s["total_return"] / s["steps"])
    by_player = {s["player"]: s for s in standings}
    assert by_player["always_cooperate"]["cooperation_rate"] == 1.0
    assert by_player["always_defect"]["cooperation_rate"] == 0.0
    # Each player's total is what the pairings' returns add up to.
    totals = dict.fromkeys(by_player, 0.0)
    for p in shown["pairings"]:
        for seat in (0, 1):
            totals[p["agents"][seat]] += p["returns"][seat]
    assert totals == pytest.approx({name: s["total_return"] for name, s in by_player.items()})
    # The table `runs show` prints lists the same ranking.
    table = coplay(monkeypatch, capsys, "runs", "show", "1", "--db", db_url)[1]
    rows = table[table.index("standings"):table.index("per role")].splitlines()
    first = next(line.split() for line in rows if line.split()[:1] == ["1"])
    assert first[1] == standings[0]["player"]


def test_standings_only_for_round_robins(monkeypatch, capsys, db_url) -> None:
    assert coplay(monkeypatch, capsys, "run", "focal_vs_mixed", "--db", db_url, "--episodes", "2",
                  "--no-plots")[0] == 0
    code, stdout, _ = coplay(monkeypatch, capsys, "runs", "show", "1", "--db", db_url)
    assert code == 0 and "standings" not in stdout
    shown = listing(monkeypatch, capsys, "runs", "show", "1", "--db", db_url)
    assert shown["standings"] is None


def test_the_listing_names_the_command_of_every_scenario_kind() -> None:
    from cli.scenarios import COMMANDS
    from scenarios.loading import COMMANDS as LOADER_COMMANDS

    assert COMMANDS == LOADER_COMMANDS  # restated so that --help need not import scenarios
