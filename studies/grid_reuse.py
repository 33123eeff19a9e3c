"""Reuse on key-door: frames to solve unseen layouts with behaviors from earlier layouts.

For each seed and grid size:

1. Two collection runs of ``random_actions`` on the training layouts (``contexts`` layouts
   drawn with ``context_seed`` = 100 + seed), with trajectories recorded, are stored and
   distilled by ``coplay``'s grid extractor into a fresh handbook (approach skills). The
   handbook's size after each run shows whether the lessons merge.
2. A second handbook holds action macros cut from the same episodes: per sub-goal, the
   shortest sequence of actions that completed it. This is the fixed-sequence reuse the
   skills replace, measured beside them.
3. Evaluation layouts are drawn with another ``context_seed``, chosen so that none of them
   equals a training layout (walls, door, key, goal, start cell and heading compared).
   The ``macro_follower`` plays them without memory, with the skills, with the skills but
   none of the actions to avoid that failures taught (``skills_no_avoid``), and with the
   macros, on the same seeds.

Figures per condition: success rate, frames per episode (an unsolved episode counts its
``max_steps``), frames per solved episode, and the ratio of frames with memory to without.

    python studies/grid_reuse.py --sizes 6 --seeds 0 1 2 3 4
    python studies/grid_reuse.py --sizes 8 --seeds 0 1 2
    python studies/grid_reuse.py --quick        # one seed, size 5, small runs

Writes ``--out/results.md`` (the table) and ``--out/results.json``; the last line printed
is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

STUDIES = Path(__file__).resolve().parent
sys.path.insert(0, str(STUDIES.parent))

import envs
import scenarios
from memory import RunStore
from memory.behaviors import NewBehavior, Provenance
from memory.handbook import Handbook
from scenarios.domains import extract_run
from scenarios.domains.grid import SUBGOALS, decode_steps

KEYDOOR = "coplay/grid-keydoor-v0"
CONDITIONS = ("none", "skills", "skills_no_avoid", "macros")


def collection(seed: int, run: int, size: int, contexts: int, episodes: int) -> scenarios.Scenario:
    return scenarios.parse(f"""\
kind: simulation
name: keydoor-train-layouts
env: {{id: {KEYDOOR}, contexts: {contexts}, context_seed: {100 + seed}, size: {size}}}
agents:
  explorer: {{kind: random_actions}}
matchups: {{mode: solo, players: [explorer]}}
run: {{episodes: {episodes}, seed: {1000 * seed + run}, batch_size: 64, record_trajectories: true}}
""")


def evaluation(seed: int, size: int, contexts: int, context_seed: int, episodes: int,
               memory: bool) -> scenarios.Scenario:
    return scenarios.parse(f"""\
kind: simulation
name: keydoor-unseen-layouts
env: {{id: {KEYDOOR}, contexts: {contexts}, context_seed: {context_seed}, size: {size}}}
agents:
  follower: {{kind: macro_follower}}
matchups: {{mode: solo, players: [follower]}}
run: {{episodes: {episodes}, seed: {seed}, batch_size: 64}}
{"memory: {k: 3, ranking: relevance}" if memory else ""}
""")


def layouts(size: int, contexts: int, context_seed: int) -> set[bytes]:
    """Each layout of the set as its content: the grid's encoding, start cell and heading."""
    env = envs.make(KEYDOOR, contexts=contexts, context_seed=context_seed, size=size).unwrapped
    found: dict[int, bytes] = {}
    seed = 0
    while len(found) < contexts and seed < 100 * contexts:
        _, info = env.reset(seed=seed)
        inner = env.inner
        found[info["layout_seed"]] = (inner.grid.encode().tobytes()
                                      + bytes([*inner.agent_pos, inner.agent_dir]))
        seed += 1
    return set(found.values())


def unseen_context_seed(size: int, contexts: int, train: set[bytes], start: int) -> int:
    """The first context seed from ``start`` whose layouts are all new and all distinct."""
    for context_seed in range(start, start + 1000):
        drawn = layouts(size, contexts, context_seed)
        if len(drawn) == contexts and not drawn & train:
            return context_seed
    raise RuntimeError("no set of unseen layouts found")


def macros(store: RunStore, run_ids: list[int]) -> list[NewBehavior]:
    """Per sub-goal, the shortest recorded action sequence that completed it."""
    task, subgoals = SUBGOALS[KEYDOOR]
    shortest: dict[int, list[int]] = {}
    for run_id in run_ids:
        for episode in store.episodes(run_id):
            actions, after, _ = decode_steps(episode.joint_actions)
            ends = after.copy()
            if episode.returns[0] > 0:  # solving the task completes the last sub-goal
                ends[-1] = len(subgoals)
            before = np.concatenate([[0], ends[:-1]])
            start = 0
            for step in np.flatnonzero(ends != before).tolist():
                goal = int(before[step])
                if ends[step] > goal and (goal not in shortest
                                          or step + 1 - start < len(shortest[goal])):
                    shortest[goal] = actions[start: step + 1].tolist()
                start = step + 1
    return [
        NewBehavior(
            name=f"{task}, {subgoals[goal]}: replay {len(steps)} actions",
            instruction=f"At '{subgoals[goal]}', play the shortest recorded sequence that "
            "completed it.",
            kind="action_macro", payload={"actions": steps},
            trigger={"subgoal": f"{task}/{subgoals[goal]}", "env": KEYDOOR},
            tags=("study", "macro"), provenance=Provenance(extractor="study_shortest_macro"),
        )
        for goal, steps in sorted(shortest.items())
    ]


def measure(pairing, max_steps: int) -> dict[str, float]:
    lengths = pairing.episodes.lengths
    solved = pairing.episodes.returns[:, 0] > 0
    return {
        "success": float(solved.mean()),
        "frames_per_episode": float(np.where(solved, lengths, max_steps).mean()),
        "frames_per_solved": float(lengths[solved].mean()) if solved.any() else float("nan"),
    }


def one_seed(seed: int, size: int, args: argparse.Namespace, out: Path) -> dict:
    folder = out / f"size{size}-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.db"):
        old.unlink()
    skills_url = f"sqlite:///{folder / 'skills.db'}"
    store, skills = RunStore(skills_url), Handbook.open(skills_url)
    run_ids, handbook_size = [], []
    for run in range(2):
        result = scenarios.run(collection(seed, run, size, args.train_contexts,
                                          args.train_episodes))
        run_ids.append(store.save(result))
        extract_run(skills, run_ids[-1], min_episodes=args.min_episodes)
        handbook_size.append(len(skills.list()))
    macro_url = f"sqlite:///{folder / 'macros.db'}"
    macro_book = Handbook.open(macro_url)
    macro_book.add_many(macros(store, run_ids))
    no_avoid_url = f"sqlite:///{folder / 'skills_no_avoid.db'}"
    no_avoid = Handbook.open(no_avoid_url)
    no_avoid.add_many([
        NewBehavior(name=b.name, instruction=b.instruction.split(" Never ")[0], kind=b.kind,
                    payload={**b.payload, "avoid": []}, trigger=b.trigger, tags=b.tags)
        for b in skills.list()
    ])
    train = layouts(size, args.train_contexts, 100 + seed)
    context_seed = unseen_context_seed(size, args.eval_layouts, train, 10_000 + 100 * seed)
    max_steps = 10 * size * size  # minigrid's DoorKey default
    figures = {}
    books = {"none": None, "skills": skills, "skills_no_avoid": no_avoid, "macros": macro_book}
    for condition, book in books.items():
        scenario = evaluation(seed, size, args.eval_layouts, context_seed, args.eval_episodes,
                              memory=book is not None)
        (pairing,) = scenarios.run(scenario, handbook=book).pairings
        figures[condition] = measure(pairing, max_steps)
    return {
        "seed": seed, "size": size, "eval_context_seed": context_seed,
        "behaviors_after_runs": handbook_size,
        "behaviors_per_1000_episodes": [1000 * n / ((i + 1) * args.train_episodes)
                                        for i, n in enumerate(handbook_size)],
        "skills": [{"name": b.name, "payload": dict(b.payload)} for b in skills.list()],
        "macro_lengths": [len(b.payload["actions"]) for b in macro_book.list()],
        "conditions": figures,
    }


def summary(rows: list[dict]) -> dict:
    table = {}
    for size in sorted({r["size"] for r in rows}):
        of_size = [r for r in rows if r["size"] == size]
        cell = {}
        for condition in CONDITIONS:
            for figure in ("success", "frames_per_episode", "frames_per_solved"):
                values = [r["conditions"][condition][figure] for r in of_size]
                cell[f"{condition}_{figure}"] = statistics.fmean(values)
                cell[f"{condition}_{figure}_sd"] = (statistics.stdev(values)
                                                    if len(values) > 1 else 0.0)
            ratios = [r["conditions"][condition]["frames_per_episode"]
                      / r["conditions"]["none"]["frames_per_episode"] for r in of_size]
            cell[f"{condition}_frames_ratio"] = statistics.fmean(ratios)
        cell["seeds"] = [r["seed"] for r in of_size]
        table[str(size)] = cell
    return table


def report(rows: list[dict], table: dict, args: argparse.Namespace, seconds: float) -> str:
    lines = [
        "# Reuse on key-door: unseen layouts with behaviors from earlier layouts",
        "",
        f"Training: {args.train_contexts} layouts, 2 runs x {args.train_episodes} episodes of "
        f"random actions per seed. Evaluation: {args.eval_layouts} unseen layouts, "
        f"{args.eval_episodes} episodes per condition, the macro follower, memory k = 3. "
        f"Mean ± sd over seeds; {seconds:.0f} s in all.",
        "",
        "| size | seeds | condition | success | frames per episode | frames per solved "
        "episode | frames vs none |",
        "|---|---|---|---|---|---|---|",
    ]
    for size, cell in table.items():
        for condition in CONDITIONS:
            lines.append(
                f"| {size} | {len(cell['seeds'])} | {condition} | "
                f"{cell[f'{condition}_success']:.3f} ± {cell[f'{condition}_success_sd']:.3f} | "
                f"{cell[f'{condition}_frames_per_episode']:.1f} ± "
                f"{cell[f'{condition}_frames_per_episode_sd']:.1f} | "
                f"{cell[f'{condition}_frames_per_solved']:.1f} | "
                f"{cell[f'{condition}_frames_ratio']:.3f} |")
    lines += ["", "Per seed: behaviors in the handbook after the first and second collection "
              "run, the evaluation layouts' context seed, the shortest macros' lengths.", ""]
    for r in rows:
        lines.append(f"- size {r['size']}, seed {r['seed']}: behaviors {r['behaviors_after_runs']}"
                     f", unseen context_seed {r['eval_context_seed']}, macros "
                     f"{r['macro_lengths']}; skills: "
                     + "; ".join(f"{s['name']} {s['payload']}" for s in r["skills"]))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sizes", type=int, nargs="+", default=[6])
    parser.add_argument("--train-contexts", type=int, default=8)
    parser.add_argument("--train-episodes", type=int, default=128)
    parser.add_argument("--eval-layouts", type=int, default=16)
    parser.add_argument("--eval-episodes", type=int, default=128)
    parser.add_argument("--min-episodes", type=int, default=8)
    parser.add_argument("--out", type=Path, default=STUDIES / "runs" / "grid_reuse")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.sizes, args.train_episodes, args.eval_episodes = [0], [5], 64, 32
        args.min_episodes = 2
    start = time.perf_counter()
    rows = [one_seed(seed, size, args, args.out) for size in args.sizes for seed in args.seeds]
    table = summary(rows)
    seconds = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(report(rows, table, args, seconds))
    (args.out / "results.json").write_text(json.dumps({"rows": rows, "table": table}, indent=1))
    print(report(rows, table, args, seconds))
    print(json.dumps({f"size{size}_{k}": v for size, cell in table.items()
                      for k, v in cell.items() if k != "seeds"}))


if __name__ == "__main__":
    main()
