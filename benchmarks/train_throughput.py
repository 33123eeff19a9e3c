"""Training throughput: agent-steps per second of rollout + update, per backbone.

An agent-step is one learner acting in one round of one episode (a learner-vs-learner round
counts two). Each configuration trains the mixed pool (two learners, half their episodes
against each other, half against random tabular co-players) for a few updates after one
warm-up update, and reports the median over updates, split into rollout and update time.

    python benchmarks/train_throughput.py                 # GRU and transformer, paper sizes
    python benchmarks/train_throughput.py --threads 1     # as the reproduction runs train
    python benchmarks/train_throughput.py --quick         # a few seconds
    python benchmarks/train_throughput.py --algorithms ppi --policies gru-64 --episodes 512
    python benchmarks/train_throughput.py --threads 1 2   # side by side, with the speed-up

PPI (GRU backbones only) counts the planning in its rollout time and the model fitting in its
update time; its first update, which pretrains the model, is the warm-up. With two or more
threads the two learners act and update side by side (``agents.train.experience.LearnerThreads``).

The last line is one JSON object of the figures, e.g. ``{"gru-128_a2c_agent_steps_per_s": ...}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import envs
from agents.coplayers import MemoryOneAgent
from agents.sequence import SequencePolicyConfig
from agents.train.config import PPOSettings, TrainConfig
from agents.train.experience import LEARNERS
from agents.train.recipes import make_trainer
from agents.train.trainer import LearnerSpec, TrainingSetup

POLICIES = {
    "gru-128": SequencePolicyConfig(hidden_size=128, embed_size=32),
    "gru-64": SequencePolicyConfig(hidden_size=64, embed_size=32),
    "transformer-64": SequencePolicyConfig(  # 2 layers, 4 heads
        backbone="transformer", hidden_size=64, embed_size=32, layers=2, heads=4, context_length=100
    ),
}


def measure(policy: SequencePolicyConfig, algorithm: str, episodes: int, updates: int) -> dict:
    config = TrainConfig(
        algorithm=algorithm, updates=updates + 1, episodes_per_update=episodes, policy=policy,
        ppo=PPOSettings(epochs=2, minibatches=4) if algorithm == "ppo" else None,
    )
    setup = TrainingSetup(
        game=envs.make_config("coplay/ipd-v0", horizon=100),
        learners=(LearnerSpec(name="a", policy=policy), LearnerSpec(name="b", policy=policy)),
        pool={LEARNERS: 0.5, "tabular": 0.5}, config=config,
    )
    trainer = make_trainer(setup, {"tabular": MemoryOneAgent(None, sample_uniform=True)})
    trainer.step()  # warm-up: allocator, first-call overheads
    totals, rollouts = [], []
    for _ in range(updates):
        start = time.perf_counter()
        metrics = trainer.step()
        totals.append(time.perf_counter() - start)
        rollouts.append(metrics[0]["rollout_seconds"])
    agent_steps = 2 * episodes * 100
    total, rollout = statistics.median(totals), statistics.median(rollouts)
    return {"agent_steps_per_s": agent_steps / total, "seconds_per_update": total,
            "rollout_s": rollout, "update_s": total - rollout}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=1024, help="per learner per update")
    parser.add_argument("--updates", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()],
                        help="torch threads; several counts are measured one after another")
    parser.add_argument("--algorithms", nargs="+", default=["a2c"], choices=["a2c", "ppo", "ppi"])
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=list(POLICIES))
    parser.add_argument("--quick", action="store_true", help="64 episodes, 1 timed update")
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.updates = 64, 1
    print(f"torch {torch.__version__}, {args.episodes} episodes per learner per update, "
          "2 learners, 100 rounds")
    figures = {}
    print(f"{'policy':16} {'algorithm':9} {'threads':>7} {'agent-steps/s':>14} {'s/update':>9} "
          f"{'rollout s':>10} {'update s':>9}")
    for name in args.policies:
        for algorithm in args.algorithms:
            if algorithm == "ppi" and POLICIES[name].backbone != "gru":
                print(f"{name:16} {algorithm:9} (plans with GRU models only)")
                continue
            rates = {}
            for threads in args.threads:
                torch.set_num_threads(threads)
                r = measure(POLICIES[name], algorithm, args.episodes, args.updates)
                rates[threads] = r["agent_steps_per_s"]
                key = f"{name}_{algorithm}" + (f"_{threads}t" if len(args.threads) > 1 else "")
                figures[f"{key}_agent_steps_per_s"] = round(r["agent_steps_per_s"])
                figures[f"{key}_seconds_per_update"] = round(r["seconds_per_update"], 3)
                print(f"{name:16} {algorithm:9} {threads:7d} {r['agent_steps_per_s']:14,.0f} "
                      f"{r['seconds_per_update']:9.2f} {r['rollout_s']:10.2f} {r['update_s']:9.2f}",
                      flush=True)
            if len(rates) > 1:
                most, fewest = max(rates), min(rates)
                speedup = round(rates[most] / rates[fewest], 3)
                figures[f"{name}_{algorithm}_speedup_{most}t_vs_{fewest}t"] = speedup
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
