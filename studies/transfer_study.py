"""Transfer through the handbook: does what was learned on scenario A speed up learning on B?

1. **A**: a sequence learner trains on the iterated prisoner's dilemma (the env's default
   payoffs R=1 S=-1 T=2 P=0, 20 rounds) against tit-for-tat, always-cooperate and
   always-defect. Its evaluation run against the same three is recorded with trajectories and
   distilled into a handbook (``scenarios.domains.extract_run``: one response rule per
   co-player, triggered by the co-player type it showed).
2. **B** (held out): other payoffs (the classic R=3 S=0 T=5 P=1) and other co-players
   (suspicious tit-for-tat, which opens by defecting and then copies, and random co-players
   that cooperate 95% and 5% of the time). A fresh
   behavior-conditioned learner (pooled behavior input and the FOLLOW action) trains with
   memory on, k = 3, once with a copy of A's handbook and once with an empty one, per seed;
   everything else is the same.

The figure is the env steps (rounds of its games) a B learner takes until its reward per
step, averaged over the three co-players and over the last ``--window`` updates, reaches the
target: ``--target`` of the level the learners without the handbook end at (their reward
per step over the last ``--window`` updates, averaged over seeds). A run that never reaches
it is counted at its budget and marked. Beside it, each run's mean reward per step over the
whole training (the area under its learning curve).

    python studies/transfer_study.py --seeds 0 1 2 --out studies/runs/transfer
    python studies/transfer_study.py --quick --out studies/runs/transfer_quick

It writes ``results.md`` and ``results.json`` to ``--out``; the last line printed is one
JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import scenarios
from memory import RunStore
from memory.handbook import Handbook
from scenarios.domains import extract_run
from scenarios.schema import RunSection
from scenarios.training import TrainingScenario

HORIZON = 20
POLICY = "{hidden_size: 32, embed_size: 16%s}"
CONDITIONED = ", behavior_size: 128, follow_memory: true"
SCENARIO_A = f"""\
kind: training
name: transfer_a
env: {{id: coplay/ipd-v0, horizon: {HORIZON}}}
agents:
  tft: {{kind: tit_for_tat}}
  allc: {{kind: always_cooperate}}
  alld: {{kind: always_defect}}
learners: {{learner: {{}}}}
pool: {{tft: 1, allc: 1, alld: 1}}
train: {{updates: %d, episodes_per_update: %d, policy: {POLICY % ""}, seed: 0}}
evaluate: {{against: [tft, allc, alld], episodes: 256}}
"""
SCENARIO_B = f"""\
kind: training
name: transfer_b
env: {{id: coplay/ipd-v0, horizon: {HORIZON}, payoffs: {{R: 3, S: 0, T: 5, P: 1}}}}
agents:
  stft: {{kind: memory_one, table: [0, 1, 0, 1, 0]}}
  mostly_c: {{kind: random, p_cooperate: 0.95}}
  mostly_d: {{kind: random, p_cooperate: 0.05}}
learners: {{learner: {{}}}}
pool: {{stft: 1, mostly_c: 1, mostly_d: 1}}
train: {{updates: %d, episodes_per_update: %d, policy: {POLICY % CONDITIONED}, seed: %d}}
memory: {{k: 3, ranking: %s}}
"""
COPLAYERS_B = ("stft", "mostly_c", "mostly_d")
RECORD_EVERY = 25  # updates between writing memory's usage and effects to the handbook


def train_a(out: Path, updates: int, episodes: int) -> tuple[int, list[str]]:
    """Train on A, record its evaluation, distil it into A's handbook; returns the number of
    behaviors and their names."""
    scenario = scenarios.parse(SCENARIO_A % (updates, episodes), source="transfer_a.yaml")
    assert isinstance(scenario, TrainingScenario)
    trainer = scenario.make_trainer()
    while not trainer.finished():
        metrics = trainer.step()
    print("A, last update:", {k: round(v, 3) for k, v in metrics[0].items() if "vs" in k})
    checkpoint = out / "a_checkpoint.pt"
    trainer.save(checkpoint)
    evaluation = scenario.evaluation(checkpoint)
    evaluation = evaluation.model_copy(update={"run": RunSection(
        episodes=256, seed=0, record_trajectories=True)})
    (out / "handbook_a.db").unlink(missing_ok=True)
    url = f"sqlite:///{out / 'handbook_a.db'}"
    runs = RunStore(url)
    run_id = runs.save(scenarios.run(evaluation))
    runs.engine.dispose()
    handbook = Handbook.open(url)
    extracted = extract_run(handbook, run_id)
    # Duplicates are merged into the behavior they repeat: list each behavior once.
    names = list({r.behavior.id: r.behavior.name for r in extracted}.values())
    handbook.close()
    return len(extracted), names


def train_b(out: Path, seed: int, arm: str, updates: int, episodes: int, ranking: str) -> dict:
    """One B run; ``arm``: "handbook" (a copy of A's) or "empty"."""
    db = out / f"b_{arm}_{seed}.db"
    db.unlink(missing_ok=True)
    if arm == "handbook":
        # Through SQLite's backup: a plain file copy could miss what is still in the WAL.
        with sqlite3.connect(out / "handbook_a.db") as source, sqlite3.connect(db) as copy:
            source.backup(copy)
    handbook = Handbook.open(f"sqlite:///{db}")
    scenario = scenarios.parse(SCENARIO_B % (updates, episodes, seed, ranking),
                               source="transfer_b.yaml")
    assert isinstance(scenario, TrainingScenario)
    memory = scenario.training_memory(handbook)
    trainer = scenario.make_trainer(memory)
    start = time.perf_counter()
    rewards, followed = [], []
    while not trainer.finished():
        [metrics] = trainer.step()
        rewards.append([metrics[f"reward_vs_{name}"] for name in COPLAYERS_B])
        followed.append(metrics["followed"])
        if trainer.updates_done % RECORD_EVERY == 0:  # as `coplay train` does at checkpoints
            handbook.record(memory.drain())
    handbook.close()
    return {"seed": seed, "arm": arm, "rewards": rewards, "followed": followed,
            "seconds": time.perf_counter() - start}


def steps_to_target(run: dict, target: float, window: int, steps_per_update: int) -> tuple[int, bool]:
    """Env steps until the running mean over ``window`` updates reaches ``target``; the budget
    and False if it never does."""
    mean = np.asarray(run["rewards"]).mean(axis=1)
    running = np.convolve(mean, np.ones(window) / window, mode="valid")
    reached = np.flatnonzero(running >= target)
    if len(reached):
        return int((reached[0] + window) * steps_per_update), True
    return len(mean) * steps_per_update, False


SHARES = (0.8, 0.85, 0.9, 0.95)


def curves(runs: list[dict], args: argparse.Namespace, target: float) -> None:
    """Reward per step over env steps, per arm: the mean over seeds, as a running mean."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5))
    for arm, label in (("handbook", "with A's handbook"), ("empty", "empty handbook")):
        mean = np.mean([np.asarray(r["rewards"]).mean(axis=1) for r in runs if r["arm"] == arm],
                       axis=0)
        running = np.convolve(mean, np.ones(args.window) / args.window, mode="valid")
        steps = (np.arange(len(running)) + args.window) * args.episodes * HORIZON
        axes.plot(steps, running, label=label)
    axes.axhline(target, color="grey", linestyle="--", linewidth=1, label="target")
    axes.set_xlabel("env steps (rounds played by the learner)")
    axes.set_ylabel("reward per step on B")
    axes.legend()
    figure.tight_layout()
    figure.savefig(args.out / "learning_curves.png", dpi=120)
    plt.close(figure)


def report(runs: list[dict], args: argparse.Namespace, count: int, names: list[str],
           a_seconds: float) -> dict:
    steps_per_update = args.episodes * HORIZON
    plateau = statistics.mean(float(np.mean(run["rewards"][-args.window:])) for run in runs
                              if run["arm"] == "empty")
    target = args.target * plateau
    rows, figures = [], {}
    area: dict[str, list[float]] = {"handbook": [], "empty": []}
    by_arm: dict[str, list[int]] = {"handbook": [], "empty": []}
    for run in runs:
        steps, reached = steps_to_target(run, target, args.window, steps_per_update)
        by_arm[run["arm"]].append(steps)
        final = np.asarray(run["rewards"])[-args.window:].mean(axis=0)
        area[run["arm"]].append(float(np.mean(run["rewards"])))
        rows.append(f"| {run['seed']} | {run['arm']} | {steps:,}{'' if reached else ' (not reached)'} "
                    f"| {area[run['arm']][-1]:.2f} "
                    f"| {final.mean():.2f} | {' / '.join(f'{x:.2f}' for x in final)} "
                    f"| {np.mean(run['followed'][-args.window:]):.2f} | {run['seconds']:.0f} |")
    ratios = [h / e for h, e in zip(by_arm["handbook"], by_arm["empty"])]
    saving = 1 - statistics.mean(ratios)
    sensitivity = ["| target (share of the final level without) | steps with / without, per seed "
                   "| mean |", "|---|---|---|"]
    for share in SHARES:
        pairs = [[steps_to_target(run, share * plateau, args.window, steps_per_update)
                  for run in runs if run["arm"] == arm] for arm in ("handbook", "empty")]
        per_seed = [(h[0] / e[0], h[1] and e[1]) for h, e in zip(*pairs)]
        sensitivity.append(
            f"| {share:.0%} ({share * plateau:.2f}) | "
            + ", ".join(f"{r:.2f}{'' if both else '*'}" for r, both in per_seed)
            + f" | {statistics.mean(r for r, _ in per_seed):.2f} |")
    curves(runs, args, target)
    figures = {
        "target_reward_per_step": round(target, 3),
        "steps_with_handbook": by_arm["handbook"], "steps_without": by_arm["empty"],
        "steps_ratio_per_seed": [round(r, 3) for r in ratios],
        "mean_fewer_steps_with_handbook": round(saving, 3),
        "mean_reward_over_training_with_handbook": round(statistics.mean(area["handbook"]), 3),
        "mean_reward_over_training_without": round(statistics.mean(area["empty"]), 3),
    }
    text = "\n".join([
        "# Transfer through the handbook (`studies/transfer_study.py`)", "",
        f"Command: `python studies/transfer_study.py {' '.join(sys.argv[1:])}`", "",
        f"A trained for {args.updates_a} updates x {args.episodes} episodes ({a_seconds:.0f} s); "
        f"its evaluation, distilled: {count} rules extracted, {len(names)} behaviors after "
        f"merging: {'; '.join(names)}.", "",
        f"B: {args.updates_b} updates x {args.episodes} episodes x {HORIZON} rounds per run; "
        f"target {target:.2f} per step ({args.target:.0%} of {plateau:.2f}, where the learners "
        f"without the handbook end), running mean over {args.window} updates.", "",
        "| seed | B learner's handbook | env steps to target | mean reward / step over training "
        "| final reward / step | vs stft / mostly_c / mostly_d (final) "
        "| share of moves following a hint (final) | s |",
        "|---|---|---|---|---|---|---|---|", *rows, "",
        f"Steps with / without A's handbook, per seed: {', '.join(f'{r:.2f}' for r in ratios)}; "
        f"mean {1 - saving:.2f} ({saving:+.0%} fewer steps with the handbook; goal >= 30% fewer).",
        "", "The same at other targets (* : a run of the pair did not reach it; counted at its "
        "budget):", "", *sensitivity, "",
        "Learning curves (mean over seeds, running mean): `learning_curves.png`.", "",
    ])
    (args.out / "results.md").write_text(text)
    (args.out / "results.json").write_text(json.dumps({"figures": figures, "runs": runs}))
    print(text)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--updates-a", type=int, default=300)
    parser.add_argument("--updates-b", type=int, default=200)
    parser.add_argument("--episodes", type=int, default=96, help="per update")
    parser.add_argument("--target", type=float, default=0.9,
                        help="share of the final level of the learners without the handbook")
    parser.add_argument("--window", type=int, default=5, help="updates in the running mean")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ranking", choices=["relevance", "effect"], default="relevance",
                        help="memory's ranking in B (relevance: as the table was measured)")
    parser.add_argument("--out", type=Path, default=Path("studies/runs/transfer"))
    parser.add_argument("--quick", action="store_true", help="a few updates, one seed")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.updates_a, args.updates_b, args.episodes = [0], 5, 8, 32
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    count, names = train_a(args.out, args.updates_a, args.episodes)
    a_seconds = time.perf_counter() - start
    print(f"A: {count} behaviors extracted ({a_seconds:.0f} s): {names}", flush=True)
    runs = []
    for seed in args.seeds:
        for arm in ("handbook", "empty"):
            runs.append(train_b(args.out, seed, arm, args.updates_b, args.episodes, args.ranking))
            print(f"B seed {seed} {arm}: {runs[-1]['seconds']:.0f} s, final reward "
                  f"{np.mean(runs[-1]['rewards'][-args.window:]):.2f}", flush=True)
    figures = report(runs, args, count, names, a_seconds)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
