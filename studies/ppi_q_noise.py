"""How noisy is PPI's improvement signal? Q(h, C) - Q(h, D) in learner-vs-learner play.

Two PPI learners from one checkpoint play each other as they do in training. At the chosen
rounds, for every game, the first learner's planner estimates Q(h, C) - Q(h, D) several times
with its own settings (``samples`` rollouts per action), and once with many rollouts (the
reference). The report gives, per round: the reference's mean and spread over games (the
signal), the spread of the planner's estimates around it (the noise), how often the two
disagree in sign, and how the noise-free exact search of depths 1-3 (``samples: exact``)
agrees with the reference.

    python studies/ppi_q_noise.py CHECKPOINT                    # learners alice and bob
    python studies/ppi_q_noise.py CHECKPOINT --games 64 --rounds 2 30
    python studies/ppi_q_noise.py CHECKPOINT --quick            # 16 games, 2 rounds

The last line is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import envs
from agents.checkpoint import CheckpointRef, load_learner
from agents.sequence import NO_ACTION, SequencePolicy, StepInputs
from agents.train.config import PPISettings
from agents.train.planning import plan
from coplay.errors import CoplayError


class Planner(NamedTuple):
    """One PPI learner of the checkpoint, planning as it did in training."""

    policy: SequencePolicy
    settings: PPISettings
    gamma: float
    payoff: torch.Tensor
    generator: torch.Generator

    def log_pi(self, outputs, state, rounds_left: int, settings: PPISettings | None = None) -> torch.Tensor:
        return plan(self.policy, outputs, state, settings=settings or self.settings, gamma=self.gamma,
                    payoff=self.payoff, generator=self.generator, rounds_left=rounds_left)

    def q_difference(self, outputs, state, rounds_left: int, settings: PPISettings) -> torch.Tensor:
        """Q(h, C) - Q(h, D) per game: with beta 1 the plan shifts the prior's log-odds by exactly that."""
        log_pi = self.log_pi(outputs, state, rounds_left, replace(settings, beta=1.0))
        prior = torch.log_softmax(outputs.logits, -1)
        return (log_pi[:, 0] - log_pi[:, 1]) - (prior[:, 0] - prior[:, 1])


def noise_row(planner: Planner, outputs, state, rounds_left: int, repeats: int,
              reference_samples: int) -> dict:
    """The planner's estimates at one round, against a many-rollout reference and the exact
    search."""
    settings = planner.settings
    q_difference = planner.q_difference
    reference = q_difference(outputs, state, rounds_left,
                             replace(settings, samples=reference_samples))
    estimates = torch.stack([q_difference(outputs, state, rounds_left, settings)
                             for _ in range(repeats)])
    row = {
        "prior_cooperation": torch.softmax(outputs.logits, -1)[:, 0].mean().item(),
        "signal_mean": reference.mean().item(), "signal_sd": reference.std().item(),
        "noise_sd": (estimates - reference).std().item(),
        "sign_wrong": ((estimates > 0) != (reference > 0)).float().mean().item(),
    }
    for depth in (1, 2, 3):
        exact = q_difference(outputs, state, rounds_left,
                             replace(settings, samples="exact", depth=depth))
        row[f"exact{depth}_mean"] = exact.mean().item()
        row[f"exact{depth}_sign_agrees"] = ((exact > 0) == (reference > 0)).float().mean().item()
    return row


@torch.no_grad()
def measure(checkpoint: str, learners: list[str], games: int, rounds: list[int], repeats: int,
            reference_samples: int, seed: int) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    planners = []
    for name in learners:
        policy, planning = load_learner(CheckpointRef(path=checkpoint, learner=name), where="checkpoint")
        if planning is None:
            raise SystemExit(f"{name} in {checkpoint} is not a PPI learner: it does not plan")
        planners.append(Planner(policy, PPISettings(**planning["ppi"]), planning["gamma"],
                                torch.tensor(planning["payoff"]), generator))
        horizon = planning["horizon"]
    batch = envs.MatrixGameBatch(envs.make_config("coplay/ipd-v0", horizon=horizon), batch_size=games)
    observations = batch.reset(np.random.default_rng(seed))
    states = [planner.policy.initial_state(games) for planner in planners]
    previous = [torch.full((games,), NO_ACTION) for _ in planners]
    rewards = [torch.zeros(games) for _ in planners]
    report = []
    for t in range(horizon):
        actions = []
        for seat, planner in enumerate(planners):
            outputs, states[seat] = planner.policy.step(
                StepInputs(torch.from_numpy(observations[seat].astype(np.int64)), previous[seat],
                           rewards[seat]),
                states[seat],
            )
            if seat == 0 and t + 1 in rounds:
                row = noise_row(planner, outputs, states[seat], horizon - t, repeats, reference_samples)
                report.append({"round": t + 1, **row})
            log_pi = planner.log_pi(outputs, states[seat], horizon - t)
            actions.append(torch.multinomial(log_pi.exp(), 1, generator=generator).squeeze(1))
        joint = torch.stack(actions).numpy()
        result = batch.step(joint)
        observations = result.observations
        for seat in range(len(planners)):
            previous[seat] = torch.from_numpy(joint[seat])
            rewards[seat] = torch.from_numpy(np.asarray(result.rewards[seat], dtype=np.float32))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--learners", nargs=2, default=["alice", "bob"], metavar="NAME",
                        help="the measured learner, then its co-player (default: alice bob)")
    parser.add_argument("--games", type=int, default=128)
    parser.add_argument("--rounds", type=int, nargs="+", default=[2, 10, 30, 60, 90])
    parser.add_argument("--repeats", type=int, default=8, help="estimates per game and round")
    parser.add_argument("--reference-samples", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="16 games, rounds 2 and 30, small samples")
    args = parser.parse_args()
    if args.quick:
        args.games, args.rounds, args.repeats, args.reference_samples = 16, [2, 30], 2, 64
    torch.set_num_threads(args.threads)
    try:
        report = measure(args.checkpoint, args.learners, args.games, args.rounds, args.repeats,
                         args.reference_samples, args.seed)
    except CoplayError as error:
        raise SystemExit(f"error: {error}") from None
    print("| round | prior C | signal: mean / sd over games | noise sd | sign wrong "
          "| exact depth 1 / 2 / 3: mean (sign agrees) |")
    print("|---|---|---|---|---|---|")
    for row in report:
        exact = " / ".join(f"{row[f'exact{d}_mean']:+.2f} ({row[f'exact{d}_sign_agrees']:.2f})"
                           for d in (1, 2, 3))
        print(f"| {row['round']} | {row['prior_cooperation']:.2f} | {row['signal_mean']:+.3f} / "
              f"{row['signal_sd']:.3f} | {row['noise_sd']:.3f} | {row['sign_wrong']:.2f} | {exact} |")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
