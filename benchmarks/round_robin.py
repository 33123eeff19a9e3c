"""Wall time of ``coplay run round_robin`` (the bundled scenario) end to end, and of its main parts.

- command: ``python -m cli run`` of this checkout as a subprocess, as a user runs ``coplay run``,
  with a fresh temporary SQLite ``--db`` and ``--out`` folder per run, so interpreter start-up,
  imports, simulation, the store write, the tables and the PNG plots are all included.
  Median of 3 runs (1 with ``--quick``).
- startup: ``python -m cli --help`` as a subprocess: interpreter start and the CLI's imports,
  the fixed cost inside every command.
- runner: ``scenarios.runner.run(scenario)`` in process (after a warm-up).
- store save: ``memory.RunStore(url).save(result)`` in process, into a fresh SQLite file each
  time (opening the store and creating its tables is timed separately, as ``store_open``).

Run: ``python benchmarks/round_robin.py`` (``--quick`` for a single run of each).
The last line printed is one JSON object of named figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import scenarios
from memory import RunStore
from scenarios.runner import run, total_episodes

SCENARIO = REPO / "scenarios" / "data" / "round_robin.yaml"
# The command line of this checkout (PYTHONPATH below), not of whichever coplay is installed.
COPLAY = [sys.executable, "-m", "cli"]
GOAL_SECONDS = 10.0


def timed_command(args: list[str], workdir: Path) -> float:
    python_path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "COLUMNS": "100", "PYTHONPATH": python_path}
    env.pop("COPLAY_DB", None)
    start = time.perf_counter()
    done = subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"{' '.join(args)} failed with exit code {done.returncode}")
    return elapsed


def command_once() -> float:
    with tempfile.TemporaryDirectory(prefix="coplay-bench-") as tmp:
        tmp_path = Path(tmp)
        out = tmp_path / "plots"
        elapsed = timed_command(
            [*COPLAY, "run", str(SCENARIO), "--db", f"sqlite:///{tmp_path / 'bench.db'}",
             "--out", str(out)],
            tmp_path,
        )
        plots = sorted(p.name for p in out.glob("*.png"))
        if not plots:
            raise SystemExit("coplay run wrote no plots")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run of each part")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3

    print(f"python {platform.python_version()}, platform {platform.platform()}, "
          f"os.cpu_count() {os.cpu_count()}")
    scenario = scenarios.load(SCENARIO)
    print(f"scenario {SCENARIO.relative_to(REPO)}: {scenario.name}, "
          f"{total_episodes(scenario)} episodes of {scenario.env.horizon} rounds")
    print(f"command: python -m cli run {SCENARIO.relative_to(REPO)} --db sqlite:///<tmp> --out <tmp>")

    commands = []
    for i in range(repeats):
        commands.append(command_once())
        print(f"  coplay run, run {i + 1}/{repeats}: {commands[-1]:.2f} s")
    command = statistics.median(commands)

    startups = []
    with tempfile.TemporaryDirectory(prefix="coplay-bench-") as tmp:
        for _ in range(repeats):
            startups.append(timed_command([*COPLAY, "--help"], Path(tmp)))
    startup = statistics.median(startups)
    print(f"  python -m cli --help (start-up and imports): {startup:.2f} s (median of {repeats})")

    run(scenario)  # warm-up
    runner_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run(scenario)
        runner_times.append(time.perf_counter() - start)
    runner = statistics.median(runner_times)
    steps = sum(p.stats.steps for p in result.pairings)
    print(f"  scenarios.runner.run: {runner:.3f} s (median of {repeats}; "
          f"{steps} joint steps, {steps / runner:.3e} /s)")

    open_times, save_times = [], []
    with tempfile.TemporaryDirectory(prefix="coplay-bench-") as tmp:
        for i in range(repeats + 1):  # the first is a warm-up
            start = time.perf_counter()
            store = RunStore(f"sqlite:///{Path(tmp) / f'save-{i}.db'}")
            opened = time.perf_counter()
            store.save(result)
            saved = time.perf_counter()
            store.close()
            if i:
                open_times.append(opened - start)
                save_times.append(saved - opened)
    store_open, store_save = statistics.median(open_times), statistics.median(save_times)
    episodes = sum(p.stats.episodes for p in result.pairings)
    print(f"  RunStore(fresh sqlite): {store_open:.3f} s; RunStore.save: {store_save:.3f} s "
          f"(median of {repeats}; {len(result.pairings)} pairings, {episodes} episodes)")

    rest = command - startup - runner - store_save
    print(f"  rest of the command (store open, tables, plots, ...): ~{rest:.2f} s")
    met = command < GOAL_SECONDS
    print(f"goal: whole command under {GOAL_SECONDS:.0f} s: {'met' if met else 'MISSED'} "
          f"({command:.2f} s)")
    print(json.dumps({
        "round_robin_command_s": round(command, 3),
        "round_robin_command_runs_s": [round(t, 3) for t in commands],
        "coplay_startup_s": round(startup, 3),
        "runner_run_s": round(runner, 4),
        "store_open_s": round(store_open, 4),
        "store_save_s": round(store_save, 4),
        "runner_over_command": round(runner / command, 3),
        "store_save_over_command": round(store_save / command, 3),
        "goal_met": met,
        "quick": args.quick,
    }))


if __name__ == "__main__":
    main()
