"""Memory's share of a simulation round, this checkout beside an earlier commit's.

    python benchmarks/memory_step.py                     # this checkout only
    python benchmarks/memory_step.py --against d00be3a   # and that commit, alternating

A round is 4,096 games of the prisoner's dilemma between a handbook follower and
tit-for-tat, with and without memory (k = 3 of 2,000 behaviors): ``memory_retrieval.step_times``
of each checkout, run in a child process with that checkout on the path. The checkouts take
turns, so whatever the host does slows both alike; the figures are medians over the turns.
The last line printed is one JSON object of named figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, sys, tempfile
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/benchmarks"]
import memory_retrieval as bench
from memory.handbook import Handbook
with tempfile.TemporaryDirectory() as folder:
    handbook = Handbook.open(f"sqlite:///{folder}/h.db")
    bench.fill(handbook, bench.behaviors(2000))
    plain, memory = bench.step_times(handbook, "{kind: tit_for_tat}", int(sys.argv[2]))
    print(json.dumps({"plain_ms": plain, "memory_ms": memory}))
"""


def measure(checkout: Path, repeats: int) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", CHILD, str(checkout), str(repeats)],
                          capture_output=True, text=True, cwd=checkout, check=False,
                          env={**os.environ, "PYTHONPATH": str(checkout)})
    if done.returncode:
        sys.exit(f"measuring {checkout} failed: {done.stderr.strip()[-400:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", help="an earlier commit to measure beside this checkout")
    parser.add_argument("--turns", type=int, default=3, help="turns per checkout [3]")
    parser.add_argument("--repeats", type=int, default=9, help="runs per turn [9]")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        checkouts = {"this": ROOT}
        if args.against:
            base = Path(folder) / "base"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q",
                            str(base), args.against], check=True)
            checkouts["base"] = base
        try:
            shares: dict[str, list[float]] = {name: [] for name in checkouts}
            for _ in range(args.turns):
                for name, checkout in checkouts.items():
                    times = measure(checkout, args.repeats)
                    shares[name].append(times["memory_ms"] / times["plain_ms"] - 1)
                    print(f"{name}: plain {times['plain_ms']:.3f} ms, memory "
                          f"{times['memory_ms']:.3f} ms per round", flush=True)
        finally:
            if args.against:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(checkouts["base"])], check=False)
    figures = {f"memory_step_overhead_{name}": round(statistics.median(values), 3)
               for name, values in shares.items()}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
