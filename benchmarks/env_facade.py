"""Steps per second of the PettingZoo facade against a minimal pure-Python ParallelEnv.

Both envs play the iterated prisoner's dilemma of ``coplay/ipd-v0`` (horizon 100), one game
at a time, with a ``{"player_0": a0, "player_1": a1}`` dict of actions per step:

- facade: ``envs.make("coplay/ipd-v0")``, which validates every action and returns numpy
  integer observations;
- pure Python: ``PurePythonIPD`` below, the smallest ParallelEnv of the same game a person
  would write (no validation, no random horizon).

The actions are drawn before timing starts; the ``reset()`` every 100 rounds is inside the
timed loop. The two envs are timed in alternation, pass by pass, the order swapping every
repetition, so both see the same machine load; each figure is the median over the passes.
``facade_slowdown`` is the pure-Python rate divided by the facade's (1.0: as fast).

Run: ``python benchmarks/env_facade.py`` (``--quick`` for a couple of seconds).
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
from gymnasium import spaces
from pettingzoo import ParallelEnv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import envs

ENV_ID = "coplay/ipd-v0"
HORIZON = 100
GOAL_SLOWDOWN = 2.0
# PAYOFFS[a0][a1] = (r0, r1): R=1 S=-1 T=2 P=0, the default payoffs of coplay/ipd-v0.
PAYOFFS = {0: {0: (1.0, 1.0), 1: (-1.0, 2.0)}, 1: {0: (2.0, -1.0), 1: (0.0, 0.0)}}


class PurePythonIPD(ParallelEnv):
    """The iterated prisoner's dilemma, R=1 S=-1 T=2 P=0, with a fixed horizon."""

    metadata = {"name": "pure_python_ipd", "render_modes": []}  # noqa: RUF012 (PettingZoo's)

    def __init__(self, horizon: int = HORIZON) -> None:
        self.horizon = horizon
        self.render_mode = None
        self.possible_agents = ["player_0", "player_1"]
        self.agents: list[str] = []
        self.round = 0

    def observation_space(self, agent: str) -> spaces.Discrete:
        return spaces.Discrete(5)

    def action_space(self, agent: str) -> spaces.Discrete:
        return spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        self.agents = self.possible_agents[:]
        self.round = 0
        return {"player_0": 0, "player_1": 0}, {"player_0": {}, "player_1": {}}

    def step(self, actions):
        a0, a1 = actions["player_0"], actions["player_1"]
        r0, r1 = PAYOFFS[a0][a1]
        self.round += 1
        done = self.round >= self.horizon
        if done:
            self.agents = []
        return (
            {"player_0": 1 + 2 * a0 + a1, "player_1": 1 + 2 * a1 + a0},
            {"player_0": r0, "player_1": r1},
            {"player_0": False, "player_1": False},
            {"player_0": done, "player_1": done},
            {"player_0": {}, "player_1": {}},
        )


def play(env: ParallelEnv, action_dicts: list[dict[str, int]]) -> list[tuple]:
    """Every step's outcome, resetting when a game ends."""
    env.reset(seed=0)
    outcomes = []
    for actions in action_dicts:
        if not env.agents:
            env.reset()
        obs, rewards, terminated, truncated, _ = env.step(actions)
        outcomes.append((obs, rewards, terminated, truncated))
    return outcomes


def timed_pass(env: ParallelEnv, action_dicts: list[dict[str, int]], seed: int = 0) -> float:
    """Steps per second of one pass over ``action_dicts``, resetting whenever a game ends."""
    env.reset(seed=seed)
    step, reset = env.step, env.reset
    start = time.perf_counter()
    for actions in action_dicts:
        if not env.agents:
            reset()
        step(actions)
    return len(action_dicts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short form, a couple of seconds")
    args = parser.parse_args()
    steps, repeats = (20_000, 5) if args.quick else (200_000, 9)

    import pettingzoo

    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"pettingzoo {pettingzoo.__version__}, platform {platform.platform()}, "
          f"os.cpu_count() {os.cpu_count()}")
    print(f"{ENV_ID}, horizon {HORIZON}; {'quick' if args.quick else 'full'} form: "
          f"{repeats} alternating passes of {steps} steps per env after a warm-up")

    drawn = np.random.default_rng(0).integers(0, 2, size=(steps, 2)).tolist()
    action_dicts = [{"player_0": a0, "player_1": a1} for a0, a1 in drawn]
    facade = envs.make(ENV_ID, horizon=HORIZON)
    reference = PurePythonIPD(HORIZON)
    if play(facade, action_dicts[:1000]) != play(reference, action_dicts[:1000]):
        raise SystemExit("the two envs do not play the same game; the comparison means nothing")

    rates: dict[str, list[float]] = {"facade": [], "pure_python": []}
    contenders = [("facade", facade), ("pure_python", reference)]
    for _, env in contenders:
        timed_pass(env, action_dicts)  # warm-up
    for repeat in range(repeats):
        for name, env in contenders if repeat % 2 == 0 else contenders[::-1]:
            rates[name].append(timed_pass(env, action_dicts))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, values in rates.items():
        print(f"  {name:>11}: {medians[name]:.3e} steps/s "
              f"(median of {len(values)}; min {min(values):.3e}, max {max(values):.3e})")
    slowdown = medians["pure_python"] / medians["facade"]
    met = slowdown <= GOAL_SLOWDOWN
    print(f"facade slowdown (pure Python / facade): {slowdown:.2f}x; "
          f"goal <= {GOAL_SLOWDOWN:g}x: {'met' if met else 'MISSED'}")
    print(json.dumps({
        "facade_steps_per_s": round(medians["facade"]),
        "pure_python_steps_per_s": round(medians["pure_python"]),
        "facade_slowdown": round(slowdown, 2),
        "goal_slowdown_met": met,
        "steps_per_pass": steps,
        "passes": repeats,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        "quick": args.quick,
    }))


if __name__ == "__main__":
    main()
