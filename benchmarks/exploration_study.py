"""The study of global and episodic bonuses (Henaff, Jiang, Raileanu 2023) at CPU scale.

For each task x context count x method x seed, train the bundled exploration scenario
``scenarios/explore/<task>_<contexts>_<method>.yaml`` for ``--frames`` frames, and report the
success rate (and task return) over the last 10% of its frames. Methods:

    none        no bonus
    global      1/sqrt(N(s)) over all of training
    episodic    1/sqrt(N_e(s)) within the episode
    product     episodic x global (the study's recommended combination)
    sum         episodic + global
    e3b_x_rnd   E3B x RND, the study's state of the art (learned bonuses)

    python benchmarks/exploration_study.py                      # the table, 3 seeds, 2 workers
    python benchmarks/exploration_study.py --tasks deadends --frames 200000 --seeds 3
    python benchmarks/exploration_study.py --throughput         # frames/s per bonus
    python benchmarks/exploration_study.py --quick              # about 1 min, temporary folder

Each run's curve is written to ``--out/runs/<run>.json`` as soon as it finishes, and a run
whose file exists is not trained again, so an interrupted study resumes where it stopped.
Then ``study.md`` (the table), ``study.json`` and one PNG of learning curves per task and
context count are written to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scenarios.exploration import CONTEXTS, METHODS, TASKS  # noqa: E402
from scenarios.exploration import bundled_name as scenario_name  # noqa: E402

STUDY_METHODS = ("none", "global", "episodic", "product", "sum")
THROUGHPUT_BONUSES = {
    "none": {},
    "global counts": {"global_term": "counts"},
    "episodic counts": {"episodic_term": "counts"},
    "global rnd": {"global_term": "rnd"},
    "episodic e3b": {"episodic_term": "e3b"},
    "noveld (rnd, first visit)": {"global_term": "noveld", "episodic_term": "first_visit"},
    "e3b x rnd": {"global_term": "rnd", "episodic_term": "e3b"},
}
TAIL = 0.1  # the share of frames, at the end of training, that the table averages over


def train_one(name: str, frames: int, seed: int, out: Path) -> dict:
    """One run in a worker process; the curve goes to ``out`` and back to the caller."""
    import torch

    from scenarios import exploration

    torch.set_num_threads(1)
    scenario = exploration.load(name)
    data = scenario.model_dump(mode="json")
    data["train"] |= {"frames": frames, "seed": seed}
    scenario = exploration.ExplorationScenario.model_validate(data)
    trainer = scenario.make_trainer()
    start = time.perf_counter()
    curve = []
    while not trainer.finished():
        point = trainer.step()[0]
        curve.append({k: point[k] for k in ("frames", "episodes", "success_rate", "return", "bonus")
                      if k in point})
    record = {"scenario": name, "seed": seed, "frames": frames, "method": scenario.bonus.label,
              "seconds": time.perf_counter() - start, "curve": curve}
    (out / f"{name}_seed{seed}.json").write_text(json.dumps(record))
    return record


def tail_mean(curve: list[dict], key: str) -> float:
    """Episode-weighted mean of ``key`` over the last ``TAIL`` of the frames."""
    last = curve[-1]["frames"]
    tail = [p for p in curve if p["frames"] > last * (1 - TAIL) and key in p]
    weight = sum(p["episodes"] for p in tail)
    return sum(p[key] * p["episodes"] for p in tail) / weight if weight else 0.0


def run_study(args: argparse.Namespace) -> None:
    runs_dir = args.out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(scenario_name(t, c, m), s) for t in args.tasks for c in args.contexts
            for m in args.methods for s in range(args.seeds)]
    records, todo = {}, []
    for name, seed in jobs:
        path = runs_dir / f"{name}_seed{seed}.json"
        if path.exists() and json.loads(path.read_text())["frames"] == args.frames:
            records[(name, seed)] = json.loads(path.read_text())
        else:
            todo.append((name, seed))
    print(f"{len(jobs)} runs, {len(records)} already done, {len(todo)} to train "
          f"({args.frames:,} frames each, {args.workers} workers)", flush=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with ProcessPoolExecutor(args.workers) as pool:
        futures = {pool.submit(train_one, name, args.frames, seed, runs_dir): (name, seed)
                   for name, seed in todo}
        for done, future in enumerate(as_completed(futures), 1):
            record = future.result()
            records[futures[future]] = record
            print(f"[{done}/{len(todo)}] {record['scenario']} seed {record['seed']}: "
                  f"success {tail_mean(record['curve'], 'success_rate'):.2f} "
                  f"({record['seconds']:.0f} s)", flush=True)
    summarize(args, records)


def summarize(args: argparse.Namespace, records: dict) -> None:
    from scenarios.plots import method_curves

    rows, summary = [], {}
    for task in args.tasks:
        for contexts in args.contexts:
            curves = {}
            for method in args.methods:
                mine = [records[(scenario_name(task, contexts, method), s)] for s in range(args.seeds)]
                success = [tail_mean(r["curve"], "success_rate") for r in mine]
                returns = [tail_mean(r["curve"], "return") for r in mine]
                key = scenario_name(task, contexts, method)
                summary[key] = {"success": success, "return": returns}
                rows.append((task, contexts, method, success, returns))
                curves[method] = [_curve(r["curve"]) for r in mine]
            method_curves(curves, args.out / f"{task}_{contexts}.png",
                          title=f"{task}, {contexts} context(s): success rate ({args.seeds} seeds)")
    lines = [
        f"Success rate (and task return) over the last {TAIL:.0%} of {args.frames:,} frames; "
        f"mean ± std over {args.seeds} seeds; best per task and context count in bold.", "",
        "| task | contexts | " + " | ".join(args.methods) + " |",
        "|---|---|" + "---|" * len(args.methods),
    ]
    for task in args.tasks:
        for contexts in args.contexts:
            cells = [(m, summary[scenario_name(task, contexts, m)]) for m in args.methods]
            best = max(statistics.mean(c["success"]) for _, c in cells)
            row = []
            for _, c in cells:
                mean = statistics.mean(c["success"])
                text = (f"{mean:.2f} ± {statistics.pstdev(c['success']):.2f} "
                        f"({statistics.mean(c['return']):.2f})")
                row.append(f"**{text}**" if mean == best else text)
            lines.append(f"| {task} | {contexts} | " + " | ".join(row) + " |")
    table = "\n".join(lines)
    (args.out / "study.md").write_text(table + "\n")
    (args.out / "study.json").write_text(json.dumps(
        {"frames": args.frames, "seeds": args.seeds, "results": summary}, indent=1))
    print(table)
    print(json.dumps({f"{key}_success": round(statistics.mean(v["success"]), 3)
                      for key, v in summary.items()}))


def _curve(points: list[dict]):
    import numpy as np

    # Updates in which no episode ended carry the last known rate forward.
    frames, values, last = [], [], 0.0
    for p in points:
        last = p.get("success_rate", last)
        frames.append(p["frames"])
        values.append(last)
    return np.asarray(frames), np.asarray(values)


def run_throughput(args: argparse.Namespace) -> None:
    """Frames per second of training (rollout + update), one process, one thread."""
    import torch

    from agents.exploration import BonusConfig
    from agents.train.ppo_grid import GridPPOConfig, GridTrainer

    torch.set_num_threads(1)
    env_id = f"coplay/grid-{args.tasks[0]}-v0"
    figures = {}
    for label, bonus in THROUGHPUT_BONUSES.items():
        config = GridPPOConfig(frames=2048 * (args.updates + 1))
        trainer = GridTrainer(env_id, {"contexts": None}, config, BonusConfig(**bonus))
        trainer.step()  # warm-up
        start = time.perf_counter()
        for _ in range(args.updates):
            trainer.step()
        figures[label] = 2048 * args.updates / (time.perf_counter() - start)
        print(f"{label:28s} {figures[label]:8.0f} frames/s "
              f"({figures[label] / figures['none'] - 1:+.0%} vs none)", flush=True)
    print(json.dumps({"env": env_id, "frames_per_second": figures}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--contexts", nargs="+", choices=CONTEXTS, default=list(CONTEXTS))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(STUDY_METHODS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=300_000, help="per run (the study: <= 1M)")
    parser.add_argument("--workers", type=int, default=2, help="runs trained at once")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/exploration"))
    parser.add_argument("--throughput", action="store_true",
                        help="measure frames/s per bonus on the first task instead")
    parser.add_argument("--updates", type=int, default=10, help="timed updates per bonus "
                        "(--throughput)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: dead ends, one "
                        "context, two methods, one seed, 8k frames, in a temporary folder")
    args = parser.parse_args()
    if args.quick:
        import tempfile

        args.out = Path(tempfile.mkdtemp(prefix="coplay-exploration-"))
        args.updates = 2
        if not args.throughput:
            args.tasks, args.contexts, args.methods = ["deadends"], ["1"], ["none", "product"]
            args.seeds, args.frames = 1, 8192
    if args.throughput:
        run_throughput(args)
    else:
        run_study(args)


if __name__ == "__main__":
    main()
