"""What a reuse study costs and shows: ``coplay reuse run ipd_unseen_coplayers`` end to end.

The command of this checkout runs as a subprocess, as a user runs it, into a fresh temporary
SQLite ``--db`` (no plots), and prints its comparison as JSON. Figures: wall time per seed,
and the comparison's headline numbers (the handbook's and the oracle's mean gain in return
per step over no memory, with their 95% bootstrap intervals; retrieval precision; held-out
co-players with a significant loss). ``--quick``: one seed, one training run per handbook
and short evaluations (a smoke test of the harness's cost, not of its figures).

Run: ``python benchmarks/reuse.py [--quick] [--seeds 0,1,2]``. The last line printed is one
JSON object of named figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPLAY = [sys.executable, "-m", "cli"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one seed, one run, short")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds [0,1,2]")
    args = parser.parse_args()
    seeds = args.seeds or ("0" if args.quick else "0,1,2")
    quick = ["--set", "train.runs=1", "--set", "train.episodes=32",
             "--set", "evaluate.episodes=8"] if args.quick else []
    with tempfile.TemporaryDirectory() as folder:
        command = [*COPLAY, "reuse", "run", "ipd_unseen_coplayers", "--db",
                   f"sqlite:///{Path(folder) / 'reuse.db'}", "--seeds", seeds, "--no-plots",
                   "--json", *quick]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=folder,
                              env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
        seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"coplay reuse run failed ({done.returncode}): {done.stderr.strip()}")
    figures = json.loads(done.stdout)["figures"]
    losses = sorted(unit for unit, entry in figures["units"].items()
                    if entry["episode_gain"]["handbook"]["verdict"] == "lower")
    result = {
        "seconds_per_seed": round(seconds / len(figures["seeds"]), 1),
        "handbook_gain": round(figures["episode_gain"]["handbook"]["mean"], 4),
        "handbook_gain_low": round(figures["episode_gain"]["handbook"]["low"], 4),
        "handbook_gain_high": round(figures["episode_gain"]["handbook"]["high"], 4),
        "handbook_first_rounds_gain": round(figures["opening_gain"]["handbook"]["mean"], 4),
        "precision_handbook": figures["precision"]["handbook"],
        "coplayers_with_a_significant_loss": len(losses),
    }
    if "oracle" in figures["episode_gain"]:
        result["oracle_gain"] = round(figures["episode_gain"]["oracle"]["mean"], 4)
    print(f"machine: {platform.machine()}, {platform.platform()}, python {platform.python_version()}")
    print(f"seeds {seeds}; held-out co-players with a significant loss: {losses or 'none'}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
