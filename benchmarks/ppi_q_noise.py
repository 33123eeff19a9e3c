"""How noisy is PPI's improvement signal? Q(h, C) - Q(h, D) in learner-vs-learner play.

Two PPI learners from one checkpoint play each other as they do in training. At the chosen
rounds, for every game, the first learner's planner estimates Q(h, C) - Q(h, D) several times
with its own settings (``samples`` rollouts per action), and once with many rollouts (the
reference). The report gives, per round: the reference's mean and spread over games (the
signal), the spread of the planner's estimates around it (the noise), how often the two
disagree in sign, and how the noise-free exact search of depths 1-3 (``samples: exact``)
agrees with the reference.

    python benchmarks/ppi_q_noise.py CHECKPOINT                    # learners alice and bob
    python benchmarks/ppi_q_noise.py CHECKPOINT --games 64 --rounds 2 30
    python benchmarks/ppi_q_noise.py CHECKPOINT --quick            # 16 games, 2 rounds

The last line is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import envs  # noqa: E402
from agents.checkpoint import CheckpointRef, load_learner  # noqa: E402
from agents.sequence import NO_ACTION, StepInputs  # noqa: E402
from agents.train import ppi  # noqa: E402
from agents.train.config import PPISettings  # noqa: E402
from coplay.errors import CoplayError  # noqa: E402


def q_difference(policy, outputs, state, settings, planning, generator, rounds_left) -> torch.Tensor:
    """The planner's Q(h, C) - Q(h, D) per game: plan() with beta 1 shifts the prior's
    log-odds by exactly that."""
    log_pi = ppi.plan(policy, outputs, state, settings=replace(settings, beta=1.0),
                      gamma=planning["gamma"], payoff=planning["payoff"],
                      generator=generator, rounds_left=rounds_left)
    prior = torch.log_softmax(outputs.logits, -1)
    return (log_pi[:, 0] - log_pi[:, 1]) - (prior[:, 0] - prior[:, 1])


@torch.no_grad()
def measure(checkpoint: str, learners: list[str], games: int, rounds: list[int], repeats: int,
            reference_samples: int, seed: int) -> list[dict]:
    loaded = [load_learner(CheckpointRef(path=checkpoint, learner=name), where="checkpoint") for name in learners]
    for name, (_, planning) in zip(learners, loaded):
        if planning is None:
            raise SystemExit(f"{name} in {checkpoint} is not a PPI learner: it does not plan")
        planning["payoff"] = torch.tensor(planning["payoff"])
    settings_of = [PPISettings(**planning["ppi"]) for _, planning in loaded]
    horizon = loaded[0][1]["horizon"]
    game = envs.make_config("coplay/ipd-v0", horizon=horizon)
    batch = envs.MatrixGameBatch(game, batch_size=games)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    observations = batch.reset(rng)
    states = [policy.initial_state(games) for policy, _ in loaded]
    previous = [torch.full((games,), NO_ACTION) for _ in loaded]
    rewards = [torch.zeros(games) for _ in loaded]
    report = []
    for t in range(horizon):
        actions = []
        for seat, (policy, planning) in enumerate(loaded):
            settings = settings_of[seat]
            outputs, states[seat] = policy.step(
                StepInputs(torch.from_numpy(observations[seat].astype(np.int64)), previous[seat], rewards[seat]),
                states[seat],
            )
            rounds_left = horizon - t
            if seat == 0 and t + 1 in rounds:
                args = (policy, outputs, states[seat])
                reference = q_difference(*args, replace(settings, samples=reference_samples), planning,
                                         generator, rounds_left)
                estimates = torch.stack([q_difference(*args, settings, planning, generator, rounds_left)
                                         for _ in range(repeats)])
                row = {
                    "round": t + 1,
                    "prior_cooperation": torch.softmax(outputs.logits, -1)[:, 0].mean().item(),
                    "signal_mean": reference.mean().item(), "signal_sd": reference.std().item(),
                    "noise_sd": (estimates - reference).std().item(),
                    "sign_wrong": ((estimates > 0) != (reference > 0)).float().mean().item(),
                }
                for depth in (1, 2, 3):
                    exact = q_difference(*args, replace(settings, samples="exact", depth=depth), planning,
                                         generator, rounds_left)
                    row[f"exact{depth}_mean"] = exact.mean().item()
                    row[f"exact{depth}_sign_agrees"] = ((exact > 0) == (reference > 0)).float().mean().item()
                report.append(row)
            log_pi = ppi.plan(policy, outputs, states[seat], settings=settings, gamma=planning["gamma"],
                              payoff=planning["payoff"], generator=generator,
                              rounds_left=rounds_left)
            actions.append(torch.multinomial(log_pi.exp(), 1, generator=generator).squeeze(1))
        joint = torch.stack(actions).numpy()
        result = batch.step(joint)
        observations = result.observations
        for seat in range(len(loaded)):
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
        exact = " / ".join(f"{row[f'exact{d}_mean']:+.2f} ({row[f'exact{d}_sign_agrees']:.2f})" for d in (1, 2, 3))
        print(f"| {row['round']} | {row['prior_cooperation']:.2f} | {row['signal_mean']:+.3f} / "
              f"{row['signal_sd']:.3f} | {row['noise_sd']:.3f} | {row['sign_wrong']:.2f} | {exact} |")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
