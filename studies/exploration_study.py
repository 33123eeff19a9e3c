"""The study of global and episodic bonuses (Henaff, Jiang, Raileanu 2023) at CPU scale.

For each task x context count x method x seed, train the bundled exploration scenario
``scenarios/data/explore/<task>_<contexts>_<method>.yaml`` for ``--frames`` frames, and report the
success rate (and task return) over the last 10% of its frames. Methods:

    none        no bonus
    global      1/sqrt(N(s)) over all of training
    episodic    1/sqrt(N_e(s)) within the episode
    product     episodic x global (the study's recommended combination)
    sum         episodic + global
    e3b_x_rnd   E3B x RND, the study's state of the art (learned bonuses)

Counts key a state by the egocentric view or by the agent's cell (``--count-over view
position``); each counting method is run once per choice, and the table gives one row per
task, context count and choice (``none`` and ``e3b_x_rnd`` count nothing, so their runs are
shared between the rows).

    python studies/exploration_study.py                      # the table, 3 seeds, 2 workers
    python studies/exploration_study.py --tasks deadends --frames 200000 --seeds 3
    python studies/exploration_study.py --count-over view position --methods none global
    python studies/exploration_study.py --quick              # about 1 min, temporary folder
    python studies/exploration_study.py --table-only --tasks multiroom keydoor

Each run's curve is written to ``--out/runs/<run>.json`` as soon as it finishes, and a run
whose file exists is not trained again, so an interrupted study resumes where it stopped.
Then ``study.md`` (the table), ``study.json`` and one PNG of learning curves per task and
context count are written to ``--out``. ``--table-only`` writes them from the runs already
there, without training; a cell whose runs are missing shows "–". Training speed per bonus
is a toolkit figure, measured by ``benchmarks/grid_train_throughput.py``.
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

STUDIES = Path(__file__).resolve().parent
sys.path.insert(0, str(STUDIES.parent))

from scenarios.exploration import CONTEXTS, METHODS, TASKS
from scenarios.exploration import bundled_name as scenario_name

STUDY_METHODS = ("none", "global", "episodic", "product", "sum")
COUNTING_METHODS = ("global", "episodic", "product", "sum")
COUNT_OVER = ("view", "position")
TAIL = 0.1  # the share of frames, at the end of training, that the table averages over


def run_name(task: str, contexts: str, method: str, count_over: str) -> str:
    """The bundled scenario's name, marked when its counts key by something else."""
    name = scenario_name(task, contexts, method)
    return name if count_over == "view" or method not in COUNTING_METHODS else f"{name}_by_{count_over}"


def train_one(task: str, contexts: str, method: str, count_over: str, frames: int, seed: int,
              out: Path) -> dict:
    """One run in a worker process; the curve goes to ``out`` and back to the caller."""
    import torch

    import scenarios
    from scenarios import Override

    torch.set_num_threads(1)
    name = run_name(task, contexts, method, count_over)
    overrides = [Override("train.frames", frames, option="--frames"),
                 Override("train.seed", seed, option="--seeds")]
    if method in COUNTING_METHODS:
        overrides.append(Override("bonus.count_over", count_over, option="--count-over"))
    scenario = scenarios.load(scenario_name(task, contexts, method), overrides=overrides)
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


def tail_mean(curve: list[dict], key: str, tail_share: float = TAIL) -> float:
    """Episode-weighted mean of ``key`` over the last ``tail_share`` of the frames (1.0: the
    whole run, which rewards learning early as well as well)."""
    last = curve[-1]["frames"]
    tail = [p for p in curve if p["frames"] > last * (1 - tail_share) and key in p]
    weight = sum(p["episodes"] for p in tail)
    return sum(p[key] * p["episodes"] for p in tail) / weight if weight else 0.0


def run_study(args: argparse.Namespace) -> None:
    runs_dir = args.out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    jobs = list(dict.fromkeys(  # methods that count nothing are run once for every --count-over
        (t, c, m, over if m in COUNTING_METHODS else "view", s) for over in args.count_over
        for t in args.tasks for c in args.contexts for m in args.methods for s in range(args.seeds)))
    records, todo = {}, []
    for job in jobs:
        name, seed = run_name(*job[:4]), job[4]
        path = runs_dir / f"{name}_seed{seed}.json"
        if path.exists() and json.loads(path.read_text())["frames"] == args.frames:
            records[(name, seed)] = json.loads(path.read_text())
        else:
            todo.append(job)
    if args.table_only:
        summarize(args, records)
        return
    print(f"{len(jobs)} runs, {len(records)} already done, {len(todo)} to train "
          f"({args.frames:,} frames each, {args.workers} workers)", flush=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with ProcessPoolExecutor(args.workers) as pool:
        futures = {pool.submit(train_one, *job[:4], args.frames, job[4], runs_dir):
                   (run_name(*job[:4]), job[4]) for job in todo}
        for done, future in enumerate(as_completed(futures), 1):
            record = future.result()
            records[futures[future]] = record
            print(f"[{done}/{len(todo)}] {record['scenario']} seed {record['seed']}: "
                  f"success {tail_mean(record['curve'], 'success_rate'):.2f} "
                  f"({record['seconds']:.0f} s)", flush=True)
    summarize(args, records)


def summarize(args: argparse.Namespace, records: dict) -> None:
    from cli.plots import method_curves

    summary = {}
    rows = [(t, c, over) for t in args.tasks for c in args.contexts for over in args.count_over]
    for task, contexts, over in rows:
        curves = {}
        for method in args.methods:
            key = run_name(task, contexts, method, over)
            mine = [records[(key, s)] for s in range(args.seeds) if (key, s) in records]
            if len(mine) < args.seeds:
                continue  # not (all) trained yet: left out of the table and the plot
            summary[key] = {"success": [tail_mean(r["curve"], "success_rate") for r in mine],
                            "return": [tail_mean(r["curve"], "return") for r in mine],
                            "success_over_training": [tail_mean(r["curve"], "success_rate", 1.0)
                                                      for r in mine]}
            curves[method] = [_curve(r["curve"]) for r in mine]
        if not curves:
            continue
        suffix = "" if over == "view" else f"_by_{over}"
        method_curves(curves, args.out / f"{task}_{contexts}{suffix}.png",
                      title=f"{task}, {contexts} context(s), counts over {over}: success rate "
                      f"({args.seeds} seeds)")
    lines = [
        f"Success rate (and task return) over the last {TAIL:.0%} of {args.frames:,} frames; "
        f"mean ± std over {args.seeds} seeds; best of each row in bold; – not run.", "",
        *_table(args, rows, summary, "success", with_return=True), "",
        "Success rate over the whole run (all episodes of training, so it also rewards "
        "learning early); mean ± std over seeds.", "",
        *_table(args, rows, summary, "success_over_training", with_return=False),
    ]
    table = "\n".join(lines)
    (args.out / "study.md").write_text(table + "\n")
    (args.out / "study.json").write_text(json.dumps(
        {"frames": args.frames, "seeds": args.seeds, "count_over": args.count_over,
         "results": summary}, indent=1))
    print(table)
    print(json.dumps({f"{key}_success": round(statistics.mean(v["success"]), 3)
                      for key, v in summary.items()}))


def _table(args: argparse.Namespace, rows: list[tuple], summary: dict, figure: str, *,
           with_return: bool) -> list[str]:
    lines = ["| task | contexts | counts over | " + " | ".join(args.methods) + " |",
             "|---|---|---|" + "---|" * len(args.methods)]
    for task, contexts, over in rows:
        cells = [summary.get(run_name(task, contexts, m, over)) for m in args.methods]
        if not any(cells):
            continue
        best = max(statistics.mean(c[figure]) for c in cells if c)
        row = []
        for c in cells:
            if c is None:
                row.append("–")
                continue
            mean = statistics.mean(c[figure])
            text = f"{mean:.2f} ± {statistics.pstdev(c[figure]):.2f}"
            if with_return:
                text += f" ({statistics.mean(c['return']):.2f})"
            row.append(f"**{text}**" if mean == best else text)
        lines.append(f"| {task} | {contexts} | {over} | " + " | ".join(row) + " |")
    return lines


def _curve(points: list[dict]):
    import numpy as np

    # Updates in which no episode ended carry the last known rate forward.
    frames, values, last = [], [], 0.0
    for p in points:
        last = p.get("success_rate", last)
        frames.append(p["frames"])
        values.append(last)
    return np.asarray(frames), np.asarray(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--contexts", nargs="+", choices=CONTEXTS, default=list(CONTEXTS))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(STUDY_METHODS))
    parser.add_argument("--count-over", nargs="+", choices=COUNT_OVER, default=["view"],
                        help="what count-based bonuses count: the egocentric view, the agent's "
                        "cell, or both (one table row each)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=300_000, help="per run (the study: <= 1M)")
    parser.add_argument("--workers", type=int, default=2, help="runs trained at once")
    parser.add_argument("--out", type=Path, default=STUDIES / "runs" / "exploration")
    parser.add_argument("--table-only", action="store_true",
                        help="write the table and plots from the runs already in --out/runs")
    parser.add_argument("--quick", action="store_true", help="a smoke run: dead ends, one "
                        "context, two methods, one seed, 8k frames, in a temporary folder")
    args = parser.parse_args()
    if args.quick:
        import tempfile

        args.out = Path(tempfile.mkdtemp(prefix="coplay-exploration-"))
        args.tasks, args.contexts, args.methods = ["deadends"], ["1"], ["none", "product"]
        args.seeds, args.frames = 1, 8192
    run_study(args)


if __name__ == "__main__":
    main()
