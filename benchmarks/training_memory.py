"""Memory's share of a training update: behavior-conditioned learners with and without hints.

Two learners (GRU, ``behavior_size`` 128, ``follow_memory``) train on the mixed pool (half
their episodes against each other, half against random tabular co-players, 100 rounds) with
A2C, built from a training scenario as ``coplay train`` builds it. One trainer has the
scenario's memory section (k = 3 hints at every step of every game, from a handbook of
synthetic behaviors, one in four a response rule); the other is the same scenario without
memory, whose learners get no hints (a zero pooled vector, nothing to follow). Updates of the
two alternate, after one warm-up update each, and the medians are compared:

    memory_share = (with - without) / with     the part of an update memory adds (goal <= 10%)

The with-memory trainer's memory calls (``LearnerMemory`` and its batches: retrieval,
regrouping hints per learner, recording use, the tally) are also timed from inside, as a
share of its updates (``memory_calls_share``): a figure that load on the machine disturbs
less than a difference of two medians. It leaves out the learners' lookups of their pooled
vectors (``agents.behavior_inputs``), a few array operations per step.

A third trainer, a plain GRU of the same size (no behavior input), shows what the
conditioned policy's extra input costs by itself (``conditioned_over_plain``).

    python benchmarks/training_memory.py            # 512 episodes per learner, 1,000 behaviors
    python benchmarks/training_memory.py --quick    # 64 episodes, 200 behaviors

The last line is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import scenarios
from benchmarks.memory_retrieval import behaviors, fill
from memory.handbook import Handbook
from scenarios.training import TrainingScenario

SCENARIO = """\
kind: training
name: training_memory_benchmark
env: {{id: coplay/ipd-v0, horizon: 100}}
agents:
  tabular: {{kind: memory_one, table: uniform}}
learners: {{a: {{}}, b: {{}}}}
pool: {{learners: 0.5, tabular: 0.5}}
train:
  algorithm: a2c
  episodes_per_update: {episodes}
  policy: {{hidden_size: 64, embed_size: 32{conditioned}}}
"""
CONDITIONED = ", behavior_size: 128, follow_memory: true"


def scenario(episodes: int, *, conditioned: bool, memory: bool) -> TrainingScenario:
    text = SCENARIO.format(episodes=episodes, conditioned=CONDITIONED if conditioned else "")
    if memory:
        text += "memory: {k: 3}\n"
    return scenarios.parse(text, source="training_memory_benchmark.yaml")


class TimedMemory:
    """The scenario's ``TrainingMemory``, with the seconds spent in it summed."""

    def __init__(self, memory) -> None:
        self.memory = memory
        self.seconds = 0.0

    def batch(self, owner, horizon):
        start = time.perf_counter()
        made = TimedBatch(self.memory.batch(owner, horizon), self)
        self.seconds += time.perf_counter() - start
        return made

    def drain(self):
        return self.memory.drain()


class TimedBatch:
    def __init__(self, batch, clock: TimedMemory) -> None:
        self.batch, self.clock = batch, clock

    def _time(self, method: str, *arguments):
        start = time.perf_counter()
        result = getattr(self.batch, method)(*arguments)
        self.clock.seconds += time.perf_counter() - start
        return result

    def hints(self):
        return self._time("hints")

    def record(self, hint_used) -> None:
        self._time("record", hint_used)

    def observe(self, joint_actions, active) -> None:
        self._time("observe", joint_actions, active)

    def finish(self, returns) -> None:
        self._time("finish", returns)


def timed(trainer) -> float:
    start = time.perf_counter()
    trainer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=512, help="per learner per update")
    parser.add_argument("--behaviors", type=int, default=1000, help="in the handbook")
    parser.add_argument("--updates", type=int, default=5, help="timed updates of each trainer")
    parser.add_argument("--quick", action="store_true", help="64 episodes, 200 behaviors, 3 updates")
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.behaviors, args.updates = 64, 200, 3
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; 2 learners x "
          f"{args.episodes} episodes x 100 rounds per update; {args.behaviors} behaviors, k = 3")
    with tempfile.TemporaryDirectory() as folder:
        handbook = Handbook.open(f"sqlite:///{folder}/handbook.db")
        fill(handbook, behaviors(args.behaviors))
        with_memory = scenario(args.episodes, conditioned=True, memory=True)
        clock = TimedMemory(with_memory.training_memory(handbook))
        trainers = {
            "with memory": with_memory.make_trainer(clock),
            "without memory": scenario(args.episodes, conditioned=True, memory=False).make_trainer(),
            "plain": scenario(args.episodes, conditioned=False, memory=False).make_trainer(),
        }
        times: dict[str, list[float]] = {name: [] for name in trainers}
        for trainer in trainers.values():
            timed(trainer)  # warm-up: allocator, first-call overheads, the first retrieval
        clock.seconds = 0.0
        for _ in range(args.updates):  # alternating, so load changes hit all three alike
            for name, trainer in trainers.items():
                times[name].append(timed(trainer))
        usage = trainers["with memory"].memory.drain()
        handbook.close()
    median = {name: statistics.median(t) for name, t in times.items()}
    for name, seconds in median.items():
        print(f"{name:15} {seconds:8.3f} s per update (median of {args.updates})")
    share = (median["with memory"] - median["without memory"]) / median["with memory"]
    inside = clock.seconds / sum(times["with memory"])
    print(f"memory's share of an update: {100 * share:.1f}% side by side, "
          f"{100 * inside:.1f}% timed inside (goal <= 10%); "
          f"{usage.shown} behaviors shown, {usage.used} used")
    print(json.dumps({
        "seconds_per_update_with_memory": round(median["with memory"], 4),
        "seconds_per_update_without_memory": round(median["without memory"], 4),
        "seconds_per_update_plain": round(median["plain"], 4),
        "memory_share_of_update": round(share, 4),
        "memory_calls_share": round(inside, 4),
        "with_over_without_memory": round(median["with memory"] / median["without memory"], 4),
        "conditioned_over_plain": round(median["without memory"] / median["plain"], 4),
    }))


if __name__ == "__main__":
    main()
