"""Joint steps per second of the iterated prisoner's dilemma: batched core vs PettingZoo facade.

One joint step is one round of one game with both players acting.

(a) batched: ``scenarios.runner.play_batch`` (what ``coplay run`` calls) with a
    ``MemoryOneAgent(None, sample_uniform=True)`` on each seat, i.e. every game draws its own
    random memory-one table at reset. Each timed call is one whole batch of B games of 100
    rounds: core reset, agent resets (table draws), 100 x (agent.act on both seats, core.step,
    return and joint-action logging).
(b) facade: ``envs.make("coplay/ipd-v0")`` stepped one game at a time with a dict of actions.
    The headline figure takes actions from a pre-drawn list of dicts, so it measures the env's
    own stepping cost (resets every 100 rounds included in the time). A second figure adds a
    pure-Python tabular memory-one policy on both seats (each game its own random table), to
    show what a simple per-step Python policy costs on top.

Run: ``python benchmarks/ipd_throughput.py`` (``--quick`` for a few seconds).
The last line printed is one JSON object of named figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from env_facade import timed_pass  # beside this script

import agents
import envs
from scenarios.runner import play_batch

ENV_ID = "coplay/ipd-v0"
HORIZON = 100
GOAL_BATCHED = 2e7
GOAL_FACADE = 1e5


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def batched_rate(batch_size: int, repeats: int, seed: int = 0) -> tuple[float, list[float]]:
    """Median joint steps/s of ``play_batch`` over ``repeats`` timed batches (after a warm-up)."""
    config = envs.make_config(ENV_ID, horizon=HORIZON)
    seat_0 = agents.MemoryOneAgent(None, sample_uniform=True)
    seat_1 = agents.MemoryOneAgent(None, sample_uniform=True)
    rng = np.random.default_rng(seed)
    play_batch(config, seat_0, seat_1, batch_size, rng)  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        log = play_batch(config, seat_0, seat_1, batch_size, rng)
        elapsed = time.perf_counter() - start
        rates.append(int(log.lengths.sum()) / elapsed)
    return statistics.median(rates), rates


def facade_rate(steps: int, repeats: int, seed: int = 0) -> tuple[float, list[float]]:
    """Median steps/s of the ParallelEnv with actions from a pre-drawn list of dicts."""
    env = envs.make(ENV_ID, horizon=HORIZON)
    drawn = np.random.default_rng(seed).integers(0, 2, size=(steps, 2)).tolist()
    action_dicts = [{"player_0": a0, "player_1": a1} for a0, a1 in drawn]

    timed_pass(env, action_dicts, seed)  # warm-up
    rates = [timed_pass(env, action_dicts, seed) for _ in range(repeats)]
    return statistics.median(rates), rates


def facade_tabular_rate(steps: int, repeats: int, seed: int = 0) -> tuple[float, list[float]]:
    """Median steps/s of the ParallelEnv driven by a pure-Python memory-one policy per seat,
    each game drawing its own five cooperation probabilities at reset."""
    env = envs.make(ENV_ID, horizon=HORIZON)
    rng = np.random.default_rng(seed)
    games = -(-steps // HORIZON) + 1
    tables = rng.random((games, 2, 5)).tolist()
    uniforms = rng.random((steps, 2)).tolist()

    def one_pass() -> float:
        game = 0
        obs, _ = env.reset(seed=seed)
        table_0, table_1 = tables[game]
        step, reset = env.step, env.reset
        start = time.perf_counter()
        for u0, u1 in uniforms:
            if not env.agents:
                obs, _ = reset()
                game += 1
                table_0, table_1 = tables[game]
            actions = {
                "player_0": 0 if u0 < table_0[obs["player_0"]] else 1,
                "player_1": 0 if u1 < table_1[obs["player_1"]] else 1,
            }
            obs = step(actions)[0]
        return steps / (time.perf_counter() - start)

    one_pass()  # warm-up
    rates = [one_pass() for _ in range(repeats)]
    return statistics.median(rates), rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short form, a few seconds")
    args = parser.parse_args()

    if args.quick:
        batch_sizes, batched_repeats = [4096], 3
        facade_steps, facade_repeats = 20_000, 3
    else:
        batch_sizes, batched_repeats = [4096, 16384, 65536], 7
        facade_steps, facade_repeats = 200_000, 5

    import pettingzoo

    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"pettingzoo {pettingzoo.__version__}")
    print(f"platform {platform.platform()}, cpu {cpu_model()}, os.cpu_count() {os.cpu_count()}")
    print(f"env {ENV_ID}, horizon {HORIZON}; "
          f"{'quick' if args.quick else 'full'} form; medians of repeated timings after a warm-up")

    figures: dict[str, object] = {}
    per_batch: dict[str, float] = {}
    print("(a) batched core + MemoryOneAgent(sample_uniform) on both seats, via play_batch:")
    for batch_size in batch_sizes:
        median, rates = batched_rate(batch_size, batched_repeats)
        per_batch[str(batch_size)] = median
        figures[f"batched_joint_steps_per_s_b{batch_size}"] = round(median)
        print(f"  B={batch_size:>6}: {median:.3e} joint steps/s "
              f"(median of {len(rates)}; min {min(rates):.3e}, max {max(rates):.3e})")
    best_batch = max(per_batch, key=per_batch.get)
    best = per_batch[best_batch]

    print("(b) PettingZoo facade, one game at a time:")
    facade, rates = facade_rate(facade_steps, facade_repeats)
    print(f"  actions from a pre-drawn array (env cost only): {facade:.3e} steps/s "
          f"(median of {len(rates)} x {facade_steps} steps; "
          f"min {min(rates):.3e}, max {max(rates):.3e})")
    facade_tabular, rates = facade_tabular_rate(facade_steps, facade_repeats)
    print(f"  + pure-Python tabular memory-one policy per seat: {facade_tabular:.3e} steps/s "
          f"(median of {len(rates)})")

    ratio = best / facade
    print(f"ratio batched (best, B={best_batch}) / facade: {ratio:.1f}x")
    met_batched = any(v >= GOAL_BATCHED for k, v in per_batch.items() if int(k) >= 4096)
    met_facade = facade >= GOAL_FACADE
    print(f"goal batched >= {GOAL_BATCHED:.0e} at B >= 4096: {'met' if met_batched else 'MISSED'}")
    print(f"goal facade >= {GOAL_FACADE:.0e}: {'met' if met_facade else 'MISSED'}")

    figures = {
        "ipd_joint_steps_per_s": round(best),
        "ipd_joint_steps_per_s_batch": int(best_batch),
        **figures,
        "facade_steps_per_s": round(facade),
        "facade_tabular_policy_steps_per_s": round(facade_tabular),
        "batched_over_facade": round(ratio, 1),
        "goal_batched_met": met_batched,
        "goal_facade_met": met_facade,
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        "quick": args.quick,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
