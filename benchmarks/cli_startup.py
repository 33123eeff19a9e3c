"""CPU time the command line costs before it does any work: ``coplay --help``, ``coplay
scenarios list``, and ``python -c pass`` (the interpreter alone: the floor), side by side.

Each figure is the CPU time (user + system) of one child process, from ``os.wait4``, so it
counts the imports and the command's own work and not the time the machine spends on other
processes. The three commands run in turn, round after round, and each figure is the median
over the rounds (15; 5 with ``--quick``). The CLI runs as ``python -m cli`` from the
repository root, so it measures the working tree (the ``coplay`` console script runs the same
``cli.app:main``).

Run: ``python benchmarks/cli_startup.py`` (``--quick`` for fewer rounds).
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HELP_GOAL_CPU_S = 0.3
COMMANDS = {
    "python_pass": [sys.executable, "-c", "pass"],
    "help": [sys.executable, "-m", "cli", "--help"],
    "scenarios_list": [sys.executable, "-m", "cli", "scenarios", "list"],
}


def cpu_seconds(args: list[str]) -> float:
    """User + system CPU time of one run of ``args``; fails loudly if the command does."""
    env = {**os.environ, "COLUMNS": "80"}
    child = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    stderr = child.stderr.read().decode() if child.stderr else ""
    child.stderr.close()
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed with exit code {child.returncode}:\n{stderr}")
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 15.")
    parser.add_argument("--rounds", type=int, default=None, help="Rounds (overrides --quick).")
    options = parser.parse_args()
    rounds = options.rounds or (5 if options.quick else 15)
    print(f"python {platform.python_version()} on {platform.platform()}, "
          f"{os.cpu_count()} CPUs; {rounds} rounds", flush=True)

    for args in COMMANDS.values():  # warm the file cache and the bytecode caches
        cpu_seconds(args)
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for round_ in range(rounds):
        for name, args in COMMANDS.items():
            samples[name].append(cpu_seconds(args))
        print(f"round {round_ + 1}/{rounds}: " + ", ".join(
            f"{name} {values[-1]:.3f} s" for name, values in samples.items()), flush=True)

    median = {name: statistics.median(values) for name, values in samples.items()}
    floor = median["python_pass"]
    figures = {
        "python_pass_cpu_s": round(floor, 4),
        "help_cpu_s": round(median["help"], 4),
        "scenarios_list_cpu_s": round(median["scenarios_list"], 4),
        "help_over_python_pass": round(median["help"] / floor, 2),
        "scenarios_list_over_python_pass": round(median["scenarios_list"] / floor, 2),
        "help_goal_cpu_s": HELP_GOAL_CPU_S,
        "help_goal_met": median["help"] <= HELP_GOAL_CPU_S,
        "rounds": rounds,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
