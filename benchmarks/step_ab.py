"""Memory's share of a simulation step: an earlier commit's ``scenarios/memory_step.py``
and ``scenarios/runner.py`` against this checkout's, side by side in one process.

    python benchmarks/step_ab.py --against COMMIT          # 10k behaviors, 15 alternations
    python benchmarks/step_ab.py --against COMMIT --quick  # 2k behaviors, 3 alternations

As with ``retrieval_ab.py``, this VM's speed moves too much between processes to compare two
runs of ``memory_retrieval.py``. Here one handbook of 10k behaviors serves both versions;
each alternation runs the benchmark's 4,096-game scenario plain (this checkout's runner),
with the earlier commit's runner and memory step, and with this checkout's. The rest of
the code (agents, envs, the handbook) is this checkout's for both. Figures: medians in ms
per round, and memory's share of each (its time over the plain round's, minus one); the last
line printed is one JSON object of them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from memory_retrieval import STEP_SCENARIO, behaviors, fill

import scenarios
import scenarios.runner
from memory.handbook import Handbook


def load_at(commit: str, path: str, name: str, folder: Path, rename: dict[str, str]):
    """The file ``path`` at ``commit``, loaded as the module ``name``, its imports of other
    modules renamed as ``rename`` says (so that it uses their versions at ``commit``)."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{path}"],
                            check=True, capture_output=True, text=True).stdout
    for old, new in rename.items():
        source = source.replace(f"from {old} import", f"from {new} import")
    file = folder / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while decorating
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", required=True, help="the earlier commit (any git revision)")
    parser.add_argument("--rounds", type=int, default=15, help="alternations [15]")
    parser.add_argument("--quick", action="store_true", help="2k behaviors, 3 alternations")
    args = parser.parse_args()
    size = 2000 if args.quick else 10_000
    if args.quick:
        args.rounds = 3
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        try:
            load_at(args.against, "scenarios/memory_step.py", "memory_step_at_base", folder, {})
            base = load_at(args.against, "scenarios/runner.py", "runner_at_base", folder,
                           {"scenarios.memory_step": "memory_step_at_base"})
        except subprocess.CalledProcessError as error:
            sys.exit(f"step_ab: git cannot read the runner or memory step at {args.against!r}: "
                     f"{error.stderr.strip()}")
        handbook = Handbook.open(f"sqlite:///{folder / 'handbook.db'}")
        fill(handbook, behaviors(size))
        text = STEP_SCENARIO.format(opponent="{kind: tit_for_tat}")
        plain, with_memory = scenarios.parse(text), scenarios.parse(text + "memory: {k: 3}\n")
        contenders = {"plain": None, args.against: base.run, "this checkout": scenarios.runner.run}
        times: dict[str, list[float]] = {name: [] for name in contenders}
        try:
            for _ in range(args.rounds):
                for name, run in contenders.items():
                    start = time.perf_counter()
                    if run is None:
                        scenarios.run(plain)
                    else:
                        run(with_memory, handbook=handbook)
                    times[name].append((time.perf_counter() - start) / 100 * 1e3)
        finally:
            handbook.close()
    medians = {name: float(np.median(values)) for name, values in times.items()}
    print(f"{size} behaviors, {args.rounds} alternations; ms per round of 4,096 games, median")
    for name, value in medians.items():
        share = "" if name == "plain" else f"   memory's share {value / medians['plain'] - 1:+.1%}"
        print(f"  {name:<14} {value:.4f}{share}")
    base, this = medians[args.against], medians["this checkout"]
    print(json.dumps({
        "against": args.against, "size": size,
        "step_ms_plain": round(medians["plain"], 4),
        "step_ms_memory_base": round(base, 4), "step_ms_memory_this": round(this, 4),
        "memory_share_base": round(base / medians["plain"] - 1, 3),
        "memory_share_this": round(this / medians["plain"] - 1, 3),
        "quick": args.quick,
    }))


if __name__ == "__main__":
    main()
