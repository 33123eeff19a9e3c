"""Training frames per second on a contextual grid task, per exploration bonus.

One frame is one environment step. Each bonus trains the grid PPO recipe
(``agents.train.ppo_grid.GridTrainer``, its default 16 envs x 128 steps per update, a new
layout every episode) on one thread: one warm-up update, then the frames of the timed
updates over their wall time (rollout, bonus and update together). ``*_vs_none`` is each
bonus's rate over the rate without a bonus, measured in the same run.

    python benchmarks/grid_train_throughput.py                  # multiroom, 10 timed updates
    python benchmarks/grid_train_throughput.py --task keydoor
    python benchmarks/grid_train_throughput.py --quick          # 2 timed updates

The last line printed is one JSON object of named figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.exploration import BonusConfig
from agents.train.ppo_grid import GridPPOConfig, GridTrainer
from scenarios.exploration import TASKS

# Figure name -> the bonus it trains with: each term alone, and the combinations the
# bundled exploration scenarios use.
BONUSES = {
    "none": {},
    "global_counts": {"global_term": "counts"},
    "episodic_counts": {"episodic_term": "counts"},
    "global_rnd": {"global_term": "rnd"},
    "episodic_e3b": {"episodic_term": "e3b"},
    "noveld_first_visit": {"global_term": "noveld", "episodic_term": "first_visit"},
    "e3b_x_rnd": {"global_term": "rnd", "episodic_term": "e3b"},
}


def frames_per_second(env_id: str, bonus: dict, updates: int) -> float:
    frames_per_update = GridPPOConfig().envs * GridPPOConfig().steps
    config = GridPPOConfig(frames=frames_per_update * (updates + 1))
    trainer = GridTrainer(env_id, {"contexts": None}, config, BonusConfig(**bonus))
    trainer.step()  # warm-up: first-call overheads, the bonus's networks built
    start = time.perf_counter()
    for _ in range(updates):
        trainer.step()
    return frames_per_update * updates / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=TASKS, default="multiroom")
    parser.add_argument("--updates", type=int, default=10, help="timed updates per bonus [10]")
    parser.add_argument("--quick", action="store_true", help="2 timed updates per bonus")
    args = parser.parse_args()
    if args.updates < 1:
        parser.error(f"--updates: expected a positive number of updates, got {args.updates}")
    updates = 2 if args.quick else args.updates
    torch.set_num_threads(1)
    env_id = f"coplay/grid-{args.task}-v0"
    print(f"python {platform.python_version()}, torch {torch.__version__}; {env_id}, "
          f"new layout every episode, {updates} timed updates per bonus, one thread")
    rates: dict[str, float] = {}
    for name, bonus in BONUSES.items():
        rates[name] = frames_per_second(env_id, bonus, updates)
        print(f"  {name:20s} {rates[name]:8.0f} frames/s ({rates[name] / rates['none'] - 1:+.0%} vs none)",
              flush=True)
    figures: dict[str, object] = {"env": env_id}
    for name, rate in rates.items():
        figures[f"{name}_frames_per_s"] = round(rate)
        if name != "none":
            figures[f"{name}_vs_none"] = round(rate / rates["none"], 3)
    figures["quick"] = args.quick
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
