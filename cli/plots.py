"""PNG plots: a run's heat maps, cooperation and beliefs over the episode's rounds, and a
training run's learning curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from memory import OUTCOMES, LearningPoint, PairingStats

# Beyond this many pairings one line each is unreadable; lines are pooled per agent instead.
MAX_LINES = 12


def heat_maps(pairings: list[PairingStats], path: Path, *, title: str) -> Path:
    """Row agent's return per step and cooperation rate against each column co-player."""
    rows = list(dict.fromkeys(p.agents[0] for p in pairings))
    columns = list(dict.fromkeys(p.agents[1] for p in pairings))
    round_robin = all(role == "focal" for p in pairings for role in p.roles)
    if round_robin:
        rows = columns = list(dict.fromkeys(rows + columns))
    sums = np.zeros((2, len(rows), len(columns)))
    steps = np.zeros((len(rows), len(columns)))
    for p in pairings:
        seats = [(0, p.agents[0], p.agents[1])]
        if round_robin:
            seats.append((1, p.agents[1], p.agents[0]))
        for seat, me, other in seats:
            i, j = rows.index(me), columns.index(other)
            sums[0, i, j] += p.returns[seat]
            sums[1, i, j] += p.cooperations[seat]
            steps[i, j] += p.steps
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / steps
    size = (max(6.0, 0.7 * len(columns) + 3) * 2, max(3.5, 0.55 * len(rows) + 2))
    figure, axes = plt.subplots(1, 2, figsize=size, constrained_layout=True)
    for ax, values, label, cmap in (
        (axes[0], means[0], "return per step", "viridis"),
        (axes[1], means[1], "cooperation rate", "RdYlGn"),
    ):
        image = ax.imshow(values, cmap=cmap, vmin=0 if label.startswith("coop") else None,
                          vmax=1 if label.startswith("coop") else None)
        ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel("co-player")
        ax.set_ylabel("agent")
        ax.set_title(label)
        for (i, j), value in np.ndenumerate(values):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if label.startswith("return") else "black")
        figure.colorbar(image, ax=ax, shrink=0.8)
    figure.suptitle(title)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def cooperation_by_round(pairings: list[PairingStats], path: Path, *, title: str) -> Path:
    """Seat 0's cooperation rate at each round, per pairing (or per agent when many)."""
    figure, ax = plt.subplots(figsize=(9, 5), constrained_layout=True)
    if len(pairings) <= MAX_LINES:
        for p in pairings:
            curve = np.asarray(p.cooperation_by_round)[:, 0]
            ax.plot(np.arange(1, len(curve) + 1), curve, label=f"{p.agents[0]} vs {p.agents[1]}")
    else:
        pooled: dict[str, list[np.ndarray]] = {}
        for p in pairings:
            curves = np.asarray(p.cooperation_by_round)
            for seat in (0, 1):
                if p.roles[seat] == "focal":
                    pooled.setdefault(p.agents[seat], []).append(curves[:, seat])
        for agent, curves in pooled.items():
            width = max(len(c) for c in curves)
            stacked = np.full((len(curves), width), np.nan)
            for k, c in enumerate(curves):
                stacked[k, : len(c)] = c
            ax.plot(np.arange(1, width + 1), np.nanmean(stacked, axis=0),
                    label=f"{agent} (mean over co-players)")
    ax.set_xlabel("round")
    ax.set_ylabel("cooperation rate")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _panel_grid(panels: int) -> tuple[plt.Figure, np.ndarray]:
    """A figure with one small panel per pairing, four to a row, the spare cells hidden."""
    columns = min(4, panels)
    rows = -(-panels // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(3.6 * columns, 2.8 * rows), squeeze=False, constrained_layout=True
    )
    for ax in axes.flat[panels:]:
        ax.set_visible(False)
    return figure, axes


def beliefs_by_round(pairings: list[PairingStats], path: Path, *, title: str) -> Path:
    """Per pairing: seat 0's belief that its co-player cooperates, beside how often it did.

    This is the in-context inference made visible: a learner that has identified its
    co-player predicts it well within a few rounds.
    """
    shown = [p for p in pairings if p.belief_by_round is not None][:MAX_LINES]
    figure, axes = _panel_grid(len(shown))
    for ax, p in zip(axes.flat, shown):
        rounds = np.arange(1, len(p.cooperation_by_round) + 1)
        seat = 0 if p.belief_by_round[0][0] is not None else 1
        belief = np.array([b[seat] for b in p.belief_by_round], dtype=float)
        actual = np.asarray(p.cooperation_by_round)[:, 1 - seat]
        ax.plot(rounds, actual, color="0.3", label="co-player cooperated")
        ax.plot(rounds, belief, color="tab:blue", linestyle="--", label="belief it cooperates")
        ax.plot(rounds, np.asarray(p.cooperation_by_round)[:, seat], color="tab:green",
                alpha=0.7, label="own cooperation")
        ax.set_title(f"{p.agents[seat]} vs {p.agents[1 - seat]}", fontsize=8)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("round", fontsize=7)
    axes.flat[0].legend(fontsize=6)
    figure.suptitle(title)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def responses(pairings: list[PairingStats], path: Path, *, title: str) -> Path:
    """Per pairing, each player's memory-one strategy: how often it cooperated in round 1 and
    after each joint outcome of the round before (own action first); "n/a" marks an outcome
    that never happened. Tit-for-tat shows as 1, 1, 0, 1, 0; exploiting a forgiving co-player shows as
    its defecting after CC while the co-player cooperates after CD."""
    shown = [p for p in pairings if p.responses is not None][:MAX_LINES]
    figure, axes = _panel_grid(len(shown))
    labels = ["round 1", *(f"after {o}" for o in OUTCOMES)]
    x = np.arange(len(labels))
    for ax, p in zip(axes.flat, shown):
        for seat, offset, color in ((0, -0.2, "tab:green"), (1, 0.2, "0.5")):
            heights = np.array([np.nan if r is None else r for r in p.memory_one(seat)], dtype=float)
            ax.bar(x + offset, heights, width=0.4, color=color, label=p.agents[seat])
            for position in (x + offset)[np.isnan(heights)]:  # tell "never happened" from 0
                ax.text(position, 0.02, "n/a", ha="center", fontsize=5, rotation=90, color=color)
        ax.set_xticks(x, labels, fontsize=6, rotation=30)
        ax.set_ylim(0, 1.03)
        ax.set_title(f"{p.agents[0]} vs {p.agents[1]}", fontsize=8)
        ax.legend(fontsize=6)
    axes.flat[0].set_ylabel("cooperation rate")
    figure.suptitle(title)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def solo_results(pairings: list[PairingStats], path: Path, *, title: str) -> Path:
    """Single-agent tasks: each player's success rate and return per episode, side by side."""
    players = [f"{p.agents[0]}\n({p.agents[1]})" for p in pairings]
    success = [(p.metrics or {}).get("successes", np.nan) / p.episodes for p in pairings]
    returns = [p.returns[0] / p.episodes for p in pairings]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    left.bar(players, success, color="tab:green")
    left.set(ylim=(0, 1.03), ylabel="success rate")
    right.bar(players, returns, color="tab:blue")
    right.set(ylabel="return per episode")
    figure.suptitle(title)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_run(pairings: list[PairingStats], out_dir: Path, *, title: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    if pairings and all(p.roles[0] == "solo" for p in pairings):
        return [solo_results(pairings, out_dir / "results.png", title=title)]
    written = [
        heat_maps(pairings, out_dir / "heatmap.png", title=title),
        cooperation_by_round(pairings, out_dir / "cooperation_by_round.png", title=title),
    ]
    if any(p.belief_by_round is not None for p in pairings):
        written.append(beliefs_by_round(pairings, out_dir / "beliefs_by_round.png", title=title))
    if any(p.responses is not None for p in pairings):
        written.append(responses(pairings, out_dir / "responses.png", title=title))
    return written


CURVE_PANELS = (
    ("cooperation_vs_", "cooperation rate", (-0.03, 1.03)),
    ("reward_vs_", "reward per step", None),
    ("entropy", "policy entropy (nats)", None),
    ("coplayer_loss", "co-player prediction loss", None),
)


def learning_curves(points: list[LearningPoint], path: Path, *, title: str) -> Path:
    """Per learner, per update: cooperation and reward against each kind of co-player, the
    policy's entropy and the co-player prediction loss (the paper's Figure 1, from a run)."""
    learners = list(dict.fromkeys(p.learner for p in points))
    figure, axes = plt.subplots(2, 2, figsize=(12, 7), constrained_layout=True)
    for ax, (prefix, label, limits) in zip(axes.flat, CURVE_PANELS):
        names = sorted({k for p in points for k in p.metrics if k.startswith(prefix)})
        for learner in learners:
            mine = [p for p in points if p.learner == learner]
            updates = [p.update for p in mine]
            for name in names:
                values = [p.metrics.get(name, np.nan) for p in mine]
                suffix = name.removeprefix(prefix)
                line = f"{learner} vs {suffix}" if suffix and suffix != name else learner
                ax.plot(updates, _smooth(values), label=line, linewidth=1.2)
        ax.set_xlabel("update")
        ax.set_ylabel(label)
        if limits:
            ax.set_ylim(*limits)
        ax.legend(fontsize=7)
    figure.suptitle(title)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


EXPLORATION_PANELS = (
    ("success_rate", "success rate", (-0.02, 1.02)),
    ("return", "return per episode (task reward)", None),
    ("bonus", "raw bonus per step", None),
    ("entropy", "policy entropy", None),
)


def exploration_curves(points: list[LearningPoint], path: Path, *, title: str) -> Path:
    """An exploration run against frames: success rate, return, bonus and entropy."""
    figure, axes = plt.subplots(2, 2, figsize=(11, 7), constrained_layout=True)
    for ax, (name, label, limits) in zip(axes.flat, EXPLORATION_PANELS):
        # Updates in which no episode ended have no success rate or return: skip them.
        shown = [p for p in points if name in p.metrics]
        ax.plot([p.metrics["frames"] for p in shown], _smooth([p.metrics[name] for p in shown]),
                linewidth=1.2)
        ax.set_xlabel("frames")
        ax.set_ylabel(label)
        if limits:
            ax.set_ylim(*limits)
    figure.suptitle(title)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def method_curves(
    curves: dict[str, list[tuple[np.ndarray, np.ndarray]]], path: Path, *, title: str,
    ylabel: str = "success rate",
) -> Path:
    """One line per method: the mean over its seeds' curves (each ``(frames, values)``),
    with the range between the seeds shaded."""
    figure, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    for method, runs in curves.items():
        grid = np.linspace(0, min(r[0][-1] for r in runs), 100)
        values = np.stack([np.interp(grid, f, _smooth(list(v))) for f, v in runs])
        line, = ax.plot(grid, values.mean(0), label=method, linewidth=1.4)
        ax.fill_between(grid, values.min(0), values.max(0), color=line.get_color(), alpha=0.15)
    ax.set_xlabel("frames")
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    ax.set_title(title)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _smooth(values: list[float], window: int = 9) -> np.ndarray:
    """A centred running mean: single updates are noisy, the trend is what the plot is for."""
    values = np.asarray(values, dtype=float)
    if len(values) < window:
        return values
    kernel = np.ones(window) / window
    padded = np.pad(values, window // 2, mode="edge")
    return np.convolve(padded, kernel, mode="valid")


ENTITY_COLOURS = {
    "behavior": "tab:orange", "scenario": "tab:blue", "env": "tab:cyan",
    "coplayer": "tab:red", "agent": "tab:green", "episode": "tab:gray", "concept": "tab:purple",
}


def knowledge_graph(graph, path: Path, *, title: str, labels: dict[str, str] | None = None) -> Path:
    """The entities (coloured by type) and relations (labelled by type) of a networkx graph,
    e.g. the neighbourhood of a behavior."""
    import networkx as nx

    labels = labels or {}
    size = max(6.0, min(18.0, 1.2 * graph.number_of_nodes() ** 0.5 + 5))
    fig, ax = plt.subplots(figsize=(size, size * 0.75))
    layout = nx.spring_layout(graph, seed=0, k=1.5 / max(graph.number_of_nodes(), 1) ** 0.5)
    colours = [ENTITY_COLOURS.get(data.get("type"), "tab:gray") for _, data in graph.nodes(data=True)]
    nx.draw_networkx_nodes(graph, layout, node_color=colours, node_size=500, alpha=0.85, ax=ax)
    nx.draw_networkx_labels(
        graph, layout, labels={n: _wrap(labels.get(n, n)) for n in graph.nodes}, font_size=7, ax=ax,
    )
    nx.draw_networkx_edges(graph, layout, ax=ax, arrows=True, alpha=0.5,
                           connectionstyle="arc3,rad=0.08")
    edge_labels = {(a, b): data["type"] for a, b, data in graph.edges(data=True)}
    nx.draw_networkx_edge_labels(graph, layout, edge_labels=edge_labels, font_size=6, ax=ax)
    for kind, colour in ENTITY_COLOURS.items():
        ax.scatter([], [], color=colour, label=kind)
    ax.legend(loc="lower left", fontsize=7, frameon=False)
    ax.set_title(title)
    ax.axis("off")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _wrap(text: str, width: int = 22) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line][:3])


def plot_reuse(figures: dict, out_dir: Path, *, title: str) -> list[Path]:
    """A reuse comparison: per held-out unit (co-player, or a task's unseen layouts) and on
    average, each memory condition's difference from no memory in each measure, with its
    bootstrap interval."""
    out_dir.mkdir(parents=True, exist_ok=True)
    conditions = [c for c in figures["conditions"] if c != "none"]
    units = [*figures["units"], "mean"]
    measures = figures["measures"]
    figure, axes = plt.subplots(1, len(measures), figsize=(6 * len(measures), 0.45 * len(units) + 1.8),
                                sharey=True, constrained_layout=True, squeeze=False)
    height = 0.8 / len(conditions)
    for ax, measure in zip(axes[0], measures):
        key = f"{measure['key']}_gain"
        for index, condition in enumerate(conditions):
            gains = [figures["units"][u][key][condition] for u in units[:-1]]
            gains.append(figures[key][condition])
            means = np.array([g["mean"] for g in gains])
            errors = np.array([[g["mean"] - g["low"] for g in gains],
                               [g["high"] - g["mean"] for g in gains]])
            rows = np.arange(len(units)) + index * height
            ax.barh(rows, means, height=height, xerr=errors, capsize=2, label=condition)
        ax.axvline(0.0, color="black", linewidth=0.8)
        better = "higher" if measure["higher_is_better"] else "lower"
        label = measure["label"].replace("first rounds", f"first {figures['first_rounds']} rounds")
        ax.set_xlabel(f"{label}, minus no memory ({better} is better)")
        ax.set_yticks(np.arange(len(units)) + height * (len(conditions) - 1) / 2, units)
    axes[0][0].invert_yaxis()  # the axes share it: the first unit on top, the mean last
    axes[0][0].legend(loc="lower right")
    figure.suptitle(f"{title}: memory on what it never met, minus no memory (95% intervals)")
    path = out_dir / "reuse.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return [path]
