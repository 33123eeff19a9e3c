"""PNG plots of a run: heat maps over pairings and cooperation over the episode's rounds."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from memory import PairingStats  # noqa: E402

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


def plot_run(pairings: list[PairingStats], out_dir: Path, *, title: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        heat_maps(pairings, out_dir / "heatmap.png", title=title),
        cooperation_by_round(pairings, out_dir / "cooperation_by_round.png", title=title),
    ]
