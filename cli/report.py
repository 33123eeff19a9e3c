"""Tables of results: a run's per pairing, per role (Melting Pot's focal per-capita view) and
a round robin's standings, and a training run's learning curve."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.table import Table

from cli.output import compact_table

if TYPE_CHECKING:
    from memory import LearningPoint, PairingStats, RunInfo, TrainingRunInfo


@dataclass(frozen=True)
class Pooled:
    """Figures pooled over every seat a role (or a player) held."""

    episodes: int
    steps: int
    total_return: float
    cooperations: int

    @property
    def return_per_step(self) -> float:
        return self.total_return / self.steps if self.steps else 0.0

    @property
    def cooperation_rate(self) -> float:
        return self.cooperations / self.steps if self.steps else 0.0


def _pool(pairings: list[PairingStats], *, by_role: bool) -> dict[str, Pooled]:
    """Per role, or per player, the totals of every seat it held."""
    totals: dict[str, list[float]] = {}
    for p in pairings:
        names = p.roles if by_role else p.agents
        for seat in (0, 1):
            t = totals.setdefault(names[seat], [0, 0, 0.0, 0])
            t[0] += p.episodes
            t[1] += p.steps
            t[2] += p.returns[seat]
            t[3] += p.cooperations[seat]
    return {name: Pooled(int(e), int(s), float(r), int(c))
            for name, (e, s, r, c) in totals.items()}


@dataclass(frozen=True, kw_only=True)
class RoleStats(Pooled):
    role: str


def role_stats(pairings: list[PairingStats]) -> list[RoleStats]:
    """Per-capita figures of each role, pooled over every seat that role held."""
    return [RoleStats(role=role, **vars(pooled))
            for role, pooled in _pool(pairings, by_role=True).items()]


@dataclass(frozen=True, kw_only=True)
class Standing(Pooled):
    """One player of a round robin, pooled over every game it played in either seat."""

    rank: int
    player: str

    def record(self) -> dict[str, float | int | str]:
        return {"rank": self.rank, "player": self.player, "episodes": self.episodes,
                "steps": self.steps, "total_return": self.total_return,
                "return_per_step": self.return_per_step, "cooperations": self.cooperations,
                "cooperation_rate": self.cooperation_rate}


def standings(pairings: list[PairingStats]) -> list[Standing]:
    """The players ranked by mean return per step, best first; equal means share a rank."""
    unranked = sorted(_pool(pairings, by_role=False).items(),
                      key=lambda item: (-item[1].return_per_step, item[0]))
    ranked: list[Standing] = []
    for position, (player, pooled) in enumerate(unranked):
        tied = ranked and ranked[-1].return_per_step == pooled.return_per_step
        rank = ranked[-1].rank if tied else position + 1
        ranked.append(Standing(rank=rank, player=player, **vars(pooled)))
    return ranked


def standings_table(pairings: list[PairingStats]) -> Table:
    table = compact_table("standings (by mean return per step)")
    table.add_column("rank", justify="right", no_wrap=True)
    table.add_column("player", no_wrap=True)
    for header in ("total return", "return/step", "cooperation"):
        table.add_column(header, justify="right", no_wrap=True)
    for s in standings(pairings):
        table.add_row(str(s.rank), s.player, f"{s.total_return:,.1f}", f"{s.return_per_step:.3f}",
                      f"{s.cooperation_rate:.3f}")
    return table


def pairing_table(pairings: list[PairingStats], *, title: str) -> Table:
    table = compact_table(title, caption="figures: agent / co-player")
    # Names never truncate: a summary that hides who played is useless.
    for header in ("agent", "co-player"):
        table.add_column(header, no_wrap=True)
    for header in ("episodes", "return/step", "cooperation"):
        table.add_column(header, justify="right", no_wrap=True)
    for p in pairings:
        table.add_row(
            p.agents[0], p.agents[1], str(p.episodes),
            f"{p.return_per_step(0):.3f} / {p.return_per_step(1):.3f}",
            f"{p.cooperation_rate(0):.3f} / {p.cooperation_rate(1):.3f}",
        )
    return table


def is_solo(pairings: list[PairingStats]) -> bool:
    """A run of single-agent tasks: each pairing is a player (role ``solo``) and its task."""
    return bool(pairings) and all(p.roles[0] == "solo" for p in pairings)


def solo_table(pairings: list[PairingStats], *, title: str) -> Table:
    """Each player on its task: return and length per episode, and how often it succeeded."""
    table = compact_table(title)
    for header in ("player", "task"):
        table.add_column(header, no_wrap=True)
    for header in ("episodes", "return/episode", "steps/episode", "success"):
        table.add_column(header, justify="right", no_wrap=True)
    for p in pairings:
        successes = (p.metrics or {}).get("successes")
        table.add_row(
            p.agents[0], p.agents[1], str(p.episodes), f"{p.returns[0] / p.episodes:.3f}",
            f"{p.steps / p.episodes:.1f}",
            "-" if successes is None else f"{successes / p.episodes:.3f}",
        )
    return table


def response_table(pairings: list[PairingStats], *, title: str = "responses") -> Table | None:
    """Each player's play in each pairing as a memory-one strategy: its cooperation in round 1,
    then after each joint outcome of the round before, seen from it (own move first). None if
    no pairing has responses stored (runs stored before they were)."""
    from memory import OUTCOMES

    shown = [p for p in pairings if p.responses is not None]
    if not shown:
        return None
    table = compact_table(
        title, caption="cooperation in round 1, then after each joint outcome of the round "
                       "before, own move first (CD: the player cooperated, its co-player "
                       "defected); - never happened")
    for header in ("player", "against"):
        table.add_column(header, overflow="fold")  # names wrap in a narrow terminal, never hide
    for header in ("round 1", *OUTCOMES):
        table.add_column(header, justify="right", no_wrap=True, min_width=4)
    for p in shown:
        for seat in (0, 1):
            table.add_row(p.agents[seat], p.agents[1 - seat],
                          *("-" if r is None else f"{r:.2f}" for r in p.memory_one(seat)))
    return table


def role_table(pairings: list[PairingStats]) -> Table:
    table = compact_table("per role (per capita)")
    for header in ("role", "seat-episodes", "return/step", "cooperation"):
        table.add_column(header, justify="left" if header == "role" else "right")
    for r in role_stats(pairings):
        table.add_row(r.role, str(r.episodes), f"{r.return_per_step:.3f}",
                      f"{r.cooperation_rate:.3f}")
    return table


def runs_table(runs: list[RunInfo]) -> Table:
    # Few columns, so that names stay whole in 80 columns; --json has every field.
    table = compact_table("stored runs")
    for header in ("id", "scenario", "env", "seed", "episodes", "created (UTC)"):
        numeric = header in ("id", "seed", "episodes")
        table.add_column(header, justify="right" if numeric else "left")
    for r in runs:
        table.add_row(str(r.id), r.scenario_name, r.env_id, str(r.seed), str(r.episodes),
                      r.created_at.strftime("%Y-%m-%d %H:%M"))
    return table


def training_runs_table(runs: list[TrainingRunInfo]) -> Table:
    """Stored training runs (their checkpoints: `coplay training show ID`)."""
    table = compact_table("stored training runs")
    table.add_column("id", justify="right")
    table.add_column("scenario", no_wrap=True)
    table.add_column("seed", justify="right")
    table.add_column("status", no_wrap=True)
    table.add_column("updates", justify="right")
    table.add_column("created (UTC)", no_wrap=True)
    for r in runs:
        table.add_row(str(r.id), r.scenario_name, str(r.seed), r.status or "-",
                      "-" if r.last_update is None else str(r.last_update),
                      r.created_at.strftime("%Y-%m-%d %H:%M"))
    return table


# An exploration run's learning curve, in table order.
EXPLORATION_COLUMNS = ("frames", "success_rate", "return", "episode_length", "bonus", "entropy")


def _metric(name: str, metrics: dict[str, float]) -> str:
    if name not in metrics:
        return "-"
    return f"{metrics[name]:,.0f}" if name == "frames" else f"{metrics[name]:.3f}"


def learning_table(
    points: list[LearningPoint], *, rows: int = 10, columns: Sequence[str] | None = None
) -> Table:
    """Per learner, at about ``rows`` evenly spaced updates (the last one always included):
    ``columns`` of its metrics, by default cooperation and reward per step against each kind
    of co-player."""
    table = compact_table("learning curve")
    metrics = list(columns) if columns is not None else sorted(
        {k for p in points for k in p.metrics if k.startswith(("cooperation_vs_", "reward_vs_"))})
    for header in ("update", "learner", *metrics):
        label = header.replace("cooperation_vs_", "coop vs ").replace("reward_vs_", "reward vs ")
        table.add_column(label, justify="left" if header == "learner" else "right")
    updates = sorted({p.update for p in points})
    if not updates:
        return table
    step = max(1, len(updates) // rows)
    shown = set(updates[step - 1 :: step]) | {updates[-1]}
    for p in points:
        if p.update in shown:
            table.add_row(str(p.update), p.learner,
                          *(_metric(m, p.metrics) for m in metrics))
    return table
