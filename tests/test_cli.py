"""The `coplay` command line through its real entry point: output, files, exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from memory import RunStore
from cli import app as cli
from tests.conftest import TINY_SCENARIO, write


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
    def interrupt(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_scenario", interrupt)
    scenario = write(tmp_path, "tiny.yaml", TINY_SCENARIO)
    code, _, stderr = coplay(monkeypatch, capsys, "run", str(scenario), "--db", db_url)
    assert code == 130
    assert stderr == "coplay: interrupted; nothing was stored\n"
    assert RunStore(db_url).list() == []


def test_console_script_is_installed() -> None:
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "coplay").exists()
