"""Reproduce the in-context co-player inference experiment: conditions x seeds, then a table.

Each (condition, seed) is one `coplay train` of a bundled scenario with a wall-clock budget,
two at a time with one CPU thread each (or, with ``--parallel 1 --threads 2``, one at a time
with both cores). The learning curves and evaluations land in one SQLite
store; this script then writes, to --out:

- ``results.md``: per condition, mean ± std over seeds of learner-vs-learner cooperation in the
  last 10% of training, cooperation and reward per step against random tabular co-players,
  wall-clock to first reach cooperation >= 0.9, and the paper's figures beside them;
- ``figure1.png``: learner-vs-learner cooperation over training, per condition (the paper's
  Figure 1), and ``in_episode.png``: cooperation by round against tit-for-tat,
  always-cooperate and always-defect (the paper's in-context best response).

    python studies/paper_reproduction.py --seeds 0 1 2 \
        --minutes 15 ablation_no_tabular=5 ablation_identity=5

Re-running with --report-only rebuilds the report from the store without training (with
--include, together with the runs of other output directories); --quick
trains each condition for a few seconds on small batches (a check that the pipeline works).
The last line is one JSON object of the headline figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

STUDIES = Path(__file__).resolve().parent
ROOT = STUDIES.parent
sys.path.insert(0, str(ROOT))

from memory import RunStore, TrainingStore

PAPER = {  # Weis, Wołczyk et al. (2026), A2C, Figure 1 and section 3
    "mixed_pool": "learner-vs-learner cooperation 0.9-0.95; vs tabular: cooperation 0.05-0.1, reward ~1.0",
    "mixed_pool_ppi": "PPI converges to cooperation (Figure 1; trained for 30 phases)",
    "ablation_no_tabular": "collapse to defection (cooperation ~0-0.15)",
    "ablation_identity": "collapse to defection (cooperation ~0-0.15)",
    "ablation_no_tabular_ppi": "collapse to defection (cooperation ~0-0.15)",
    "ablation_identity_ppi": "collapse to defection (cooperation ~0-0.15)",
}
COOPERATION_GOAL = 0.9


def train_all(args: argparse.Namespace, db: str) -> None:
    budget = dict.fromkeys(args.conditions, args.default_minutes) | args.minutes
    # Longest first, so the two workers finish close together.
    jobs = sorted(((c, seed) for c in args.conditions for seed in args.seeds), key=lambda j: -budget[j[0]])
    threads = str(args.threads)
    # The trainings run `python -m cli` of this checkout, wherever the script is started from.
    python_path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PYTHONPATH": python_path}

    def one(job: tuple[str, int]) -> int:
        condition, seed = job
        command = [
            sys.executable, "-m", "cli", "train", condition, "--seed", str(seed),
            "--out", str(args.out / f"{condition}-seed{seed}"), "--db", db,
            "--minutes", str(budget[condition]), "--no-plots",
            *(["--updates", str(args.max_updates)] if args.max_updates is not None else []),
            *[f"--set={s}" for s in args.set],
        ]
        log = (args.out / f"{condition}-seed{seed}.log").open("w")
        print("started", " ".join(command[2:]), flush=True)
        code = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
        print(f"finished {condition} seed {seed}: exit {code}", flush=True)
        return code

    with ThreadPoolExecutor(args.parallel) as pool:
        codes = list(pool.map(one, jobs))
    if any(codes):
        raise SystemExit(f"some trainings failed: {codes}; see the logs in {args.out}")


def summarize(dbs: list[str], out: Path, context: str, threads: int | None) -> None:
    rows: dict[str, list[dict]] = {}
    curves: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    by_round: dict[str, dict[str, list[np.ndarray]]] = {}
    for db in dbs:
        store = TrainingStore(db)
        _collect(store, rows, curves)
        _in_episode(RunStore(engine=store.engine), by_round)
    evaluations = {
        condition: {name: np.mean(runs, axis=0).round(4).tolist() for name, runs in by.items()}
        for condition, by in by_round.items()
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"runs": rows, "in_episode": evaluations}, indent=1))
    (out / "results.md").write_text(context + "\n\n" + _table(rows, evaluations))
    _plot(curves, evaluations, out, threads)
    print((out / "results.md").read_text())
    figures = {}
    for condition, runs in rows.items():
        learners = float(np.mean([r["coop_learners"] for r in runs]))
        figures[f"{condition}_coop_learners_last10"] = round(learners, 4)
        tabular = [r["coop_tabular"] for r in runs if np.isfinite(r["coop_tabular"])]
        if tabular:  # conditions without tabular co-players have no such figure
            figures[f"{condition}_coop_tabular_last10"] = round(float(np.mean(tabular)), 4)
        figures[f"{condition}_seeds_reaching_goal"] = sum(r["minutes_to_goal"] is not None for r in runs)
    print(json.dumps(figures))


def _collect(store: TrainingStore, rows: dict, curves: dict) -> None:
    """Each training run's row of the table and its cooperation curve, by condition."""
    for info in sorted(store.list(limit=1000), key=lambda r: r.id):
        points = store.curve(info.id)
        updates = sorted({p.update for p in points})
        if not updates:
            continue
        by_update = {u: [p.metrics for p in points if p.update == u] for u in updates}
        tail = updates[-max(1, len(updates) // 10):]

        def mean_of(name: str, chosen: list[int], by_update=by_update) -> float:
            values = [m[name] for u in chosen for m in by_update[u] if name in m]
            return float(np.mean(values)) if values else float("nan")

        seconds = np.cumsum([np.mean([m["seconds"] for m in by_update[u]]) for u in updates])
        coop = np.array([mean_of("cooperation_vs_learners", [u]) for u in updates])
        reached = np.flatnonzero(_running_mean(coop) >= COOPERATION_GOAL)
        rows.setdefault(info.scenario_name, []).append({
            "seed": info.seed, "updates": updates[-1], "minutes": seconds[-1] / 60,
            "coop_learners": mean_of("cooperation_vs_learners", tail),
            "coop_tabular": mean_of("cooperation_vs_tabular", tail),
            "reward_tabular": mean_of("reward_vs_tabular", tail),
            "minutes_to_goal": float(seconds[reached[0]] / 60) if len(reached) else None,
            # Each learner's reward per step with the others: apart when one exploits another.
            "reward_learners": {
                learner: float(np.mean(values)) for learner in sorted({q.learner for q in points})
                if (values := [q.metrics["reward_vs_learners"] for q in points if q.learner == learner
                               and q.update in tail and "reward_vs_learners" in q.metrics])
            },
        })
        curves.setdefault(info.scenario_name, []).append((np.array(updates), seconds, coop))


def _running_mean(values: np.ndarray, window: int = 10) -> np.ndarray:
    if len(values) < window:
        return values
    return np.convolve(values, np.ones(window) / window, mode="valid")


def _in_episode(runs: RunStore, found: dict[str, dict[str, list[np.ndarray]]]) -> None:
    """Adds, per training scenario and co-player, each seed's cooperation by round in its
    latest evaluation (a training resumed with --resume is evaluated again when it ends)."""
    latest = {}
    for info in runs.list(limit=1000):
        if info.scenario_name.endswith("(evaluation)"):
            key = (info.scenario_name.removesuffix(" (evaluation)"), info.seed)
            if key not in latest or info.id > latest[key].id:
                latest[key] = info
    for (condition, _), info in latest.items():
        for p in runs.pairings(info.id):
            found.setdefault(condition, {}).setdefault(p.agents[1], []).append(
                np.asarray(p.cooperation_by_round)[:, 0]
            )


def _fmt(values: list[float | None]) -> str:
    present = [v for v in values if v is not None and np.isfinite(v)]
    if not present:
        return "-"
    return f"{np.mean(present):.3f} ± {np.std(present):.3f}"


def _one(value: float | None) -> str:
    """One seed's figure; "-" where it does not exist (no tabular co-players, say)."""
    return "-" if value is None or not np.isfinite(value) else f"{value:.3f}"


def _table(rows: dict[str, list[dict]], evaluations: dict) -> str:
    lines = [
        "| condition | seeds | updates | minutes | learner-vs-learner coop (last 10%) | "
        "coop vs tabular | reward/step vs tabular | seeds reaching coop ≥ 0.9 (minutes) | paper |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for condition, runs in rows.items():
        reached = [r["minutes_to_goal"] for r in runs if r["minutes_to_goal"] is not None]
        lines.append(
            f"| {condition} | {', '.join(str(r['seed']) for r in runs)} "
            f"| {_fmt([r['updates'] for r in runs])} | {_fmt([r['minutes'] for r in runs])} "
            f"| {_fmt([r['coop_learners'] for r in runs])} | {_fmt([r['coop_tabular'] for r in runs])} "
            f"| {_fmt([r['reward_tabular'] for r in runs])} "
            f"| {len(reached)}/{len(runs)} ({_fmt(reached)}) | {PAPER.get(condition, '')} |"
        )
    lines += ["", "Per seed, over the last 10% of training (each learner's reward per step with the "
              "others: far apart when one learner exploits another):", "",
              "| condition | seed | updates | learner-vs-learner coop | reward/step with each other "
              "| coop vs tabular |", "|---|---|---|---|---|---|"]
    for condition, runs in rows.items():
        for r in runs:
            rewards = " / ".join(f"{name} {value:.2f}" for name, value in r["reward_learners"].items())
            lines.append(f"| {condition} | {r['seed']} | {r['updates']} | {_one(r['coop_learners'])} "
                         f"| {rewards or '-'} | {_one(r['coop_tabular'])} |")
    lines += ["", "In-episode cooperation of the trained learners (rounds 1-10 / 51-100):", ""]
    for condition, by in evaluations.items():
        for name, curve in by.items():
            curve = np.asarray(curve)
            lines.append(f"- {condition} vs {name}: {curve[:10].mean():.3f} / {curve[50:].mean():.3f}")
    return "\n".join(lines) + "\n"


def _plot(curves: dict, evaluations: dict, out: Path, threads: int | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(8, 4.5), constrained_layout=True)
    for condition, runs in curves.items():
        for k, (_, seconds, coop) in enumerate(runs):
            ax.plot(seconds / 60, coop, alpha=0.8, linewidth=1,
                    color=f"C{list(curves).index(condition)}", label=condition if k == 0 else None)
    ax.axhline(COOPERATION_GOAL, color="0.5", linestyle=":", linewidth=1)
    # Runs given with --include were made elsewhere: their thread counts are not known here.
    ax.set_xlabel("wall-clock minutes" if threads is None
                  else f"wall-clock minutes ({threads} CPU thread{'s' if threads > 1 else ''} per run)")
    ax.set_ylabel("learner-vs-learner cooperation")
    ax.set_ylim(-0.03, 1.03)
    ax.legend()
    figure.savefig(out / "figure1.png", dpi=110)
    plt.close(figure)
    if evaluations:
        figure, axes = plt.subplots(1, len(evaluations), figsize=(5 * len(evaluations), 3.8),
                                    squeeze=False, constrained_layout=True)
        for ax, (condition, by) in zip(axes[0], evaluations.items()):
            for name, curve in by.items():
                ax.plot(np.arange(1, len(curve) + 1), curve, label=name)
            ax.set_title(condition)
            ax.set_xlabel("round")
            ax.set_ylabel("learner cooperation")
            ax.set_ylim(-0.03, 1.03)
            ax.legend(fontsize=7)
        figure.savefig(out / "in_episode.png", dpi=110)
        plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conditions", nargs="+",
                        default=["mixed_pool", "ablation_no_tabular", "ablation_identity"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--minutes", nargs="+", default=["15"], metavar="[CONDITION=]MINUTES",
                        help="wall-clock budget per run: a number for all conditions, and/or "
                             "CONDITION=MINUTES for one")
    parser.add_argument("--max-updates", type=int, default=None,
                        help="stop each run after this many updates instead of its scenario's own "
                             "train.updates (runs sharing the cores can then be matched, phase for "
                             "phase, to runs that had them alone)")
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads per run (two learners act and update side by side on two)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="passed to every `coplay train` (e.g. train.episodes_per_update=1024)")
    parser.add_argument("--out", type=Path, default=STUDIES / "runs" / "paper")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--include", nargs="+", type=Path, default=[], metavar="DIR",
                        help="also report the runs stored in DIR/results.db (seeds trained by "
                             "another invocation, e.g. on another machine)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.max_updates is not None and args.max_updates < 1:
        parser.error(f"--max-updates: expected a positive number of updates, got {args.max_updates}")
    if args.quick:
        args.minutes, args.seeds = ["0.05"], args.seeds[:1]
        args.set += ["train.episodes_per_update=64", "evaluate.episodes=16"]
        if args.out == parser.get_default("out"):  # never mix a check into the real results
            args.out = Path(tempfile.mkdtemp(prefix="coplay-paper-quick-"))
    given = [m.partition("=") for m in args.minutes]
    args.default_minutes = next((float(m) for m, sep, _ in given if not sep), 15.0)
    args.minutes = {c: float(m) for c, sep, m in given if sep}
    missing = [str(d) for d in args.include if not (d / "results.db").is_file()]
    if missing:  # checked before training, not after it
        raise SystemExit(f"--include: no results.db in {missing}")
    included = [f"sqlite:///{(d / 'results.db').resolve()}" for d in args.include]
    args.out.mkdir(parents=True, exist_ok=True)
    db = f"sqlite:///{(args.out / 'results.db').resolve()}"
    if not args.report_only:
        train_all(args, db)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}"
    budgets = (
        "Budgets (minutes): "
        + ", ".join(f"{c} {args.minutes.get(c, args.default_minutes):g}" for c in args.conditions)
        + ", or " + (f"{args.max_updates} updates" if args.max_updates is not None
                     else "the scenario's train.updates")
        + ", whichever comes first"
        + ". Learner-vs-learner cooperation reaching 0.9 is judged on a 10-update running mean."
    )
    if args.report_only:  # this invocation trained nothing, so it cannot vouch for how the runs were made
        context = (
            f"Reported {datetime.date.today()} on {machine}; torch {torch_version()}, from the stored "
            "runs given with --include (how they were trained is written beside this report). " + budgets
        )
    else:
        context = (
            f"Measured {datetime.date.today()} on {machine}; torch {torch_version()}. Each run: one "
            "`coplay train` of the bundled scenario with its own settings"
            + (f" overridden by {args.set}" if args.set else "")
            + f", {args.threads} CPU thread(s) per run, {args.parallel} run(s) at a time. " + budgets
        )
    summarize([db, *included], args.out, context, None if args.report_only else args.threads)


def torch_version() -> str:
    import torch

    return torch.__version__


if __name__ == "__main__":
    main()
