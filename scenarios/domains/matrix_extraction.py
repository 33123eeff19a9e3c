"""Distilling reusable behaviors from stored episodes of matrix games.

The memory-one extractor reads a run's trajectories and, for every co-player, takes the
agent that earned the most per step against it, measures that agent's empirical response
rule (its chance of cooperating after each previous joint action) and the co-player's
type, and writes the rule as an executable behavior: "against reciprocators, play like
tit-for-tat". Rules are rounded to tenths, so the same lesson learned in another run has
the same content and is merged into the existing behavior, adding its provenance.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from coplay.errors import StoreError
from memory.behaviors import RULE_KEYS, NewBehavior, Provenance
from memory.extraction import NEW_BEHAVIOR, Extracted
from memory.runs import EpisodeRecord
from scenarios.domains.matrix import COPLAYER_TYPES, coplayer_type

EXTRACTOR = "memory_one_v1"
# Named memory-one strategies: P(cooperate) at the start and after CC, CD, DC, DD.
CLASSICS = {
    "unconditional cooperation": (1, 1, 1, 1, 1),
    "unconditional defection": (0, 0, 0, 0, 0),
    "tit-for-tat": (1, 1, 0, 1, 0),
    "suspicious tit-for-tat": (0, 1, 0, 1, 0),
    "grim trigger": (1, 1, 0, 0, 0),
    "win-stay lose-shift": (1, 1, 0, 0, 1),
}


def memory_one_behaviors(
    episodes: Sequence[EpisodeRecord], *, run_id: int, scenario: str, env_id: str,
    min_episodes: int = 8,
) -> list[Extracted]:
    """One behavior per co-player met in at least ``min_episodes`` recorded episodes."""
    if not any(e.joint_actions for e in episodes):
        raise StoreError(
            "extract", expected=f"run {run_id} to have recorded trajectories",
            got="none", fix="Run the scenario with --record-trajectories or memory.extract: true.",
        )
    by_pair: dict[tuple[str, str], list[tuple[EpisodeRecord, int]]] = {}
    for episode in episodes:
        if not episode.joint_actions:
            continue
        for seat in (0, 1):
            by_pair.setdefault((episode.agents[seat], episode.agents[1 - seat]), []).append(
                (episode, seat))
    best: dict[str, tuple[float, str, list[tuple[EpisodeRecord, int]]]] = {}
    for (agent, coplayer), played in by_pair.items():
        if len(played) < min_episodes:
            continue
        steps = sum(e.length for e, _ in played)
        per_step = sum(e.returns[s] for e, s in played) / max(steps, 1)
        if coplayer not in best or per_step > best[coplayer][0]:
            best[coplayer] = (per_step, agent, played)
    extracted = []
    for coplayer, (per_step, agent, played) in sorted(best.items()):
        own, theirs = _actions(played)
        rule = _rule(own, theirs)
        kind = COPLAYER_TYPES[int(coplayer_type(
            (theirs == 0).sum(), (theirs[:, 1:] == own[:, :-1]).sum(), theirs.size,
        ))]
        label = min(CLASSICS, key=lambda name: np.abs(np.array(CLASSICS[name]) - rule).sum())
        table = {key: round(float(p), 1) for key, p in zip(RULE_KEYS, rule)}
        described = ", ".join(f"after {k} {round(100 * p)}%" for k, p in table.items() if k != "start")
        new = NewBehavior(
            name=f"Play like {label} against a {kind}",
            instruction=(
                f"When the co-player plays like a {kind}, respond like {label}: cooperate "
                f"{round(100 * table['start'])}% of the time at the start, then {described} "
                "(previous joint action, own move first)."
            ),
            kind="response_rule", payload={"cooperate": table},
            trigger={"coplayer": kind, "env": env_id},
            tags=("extracted", label.replace(" ", "-")),
            provenance=Provenance(
                extractor=EXTRACTOR, scenario=scenario, agent=agent, run_id=run_id,
                episodes=tuple(sorted({e.index for e, _ in played})),
            ),
        )
        edges = [(NEW_BEHAVIOR, "effective_against", f"coplayer:{kind}", max(per_step, 0.0)),
                 (NEW_BEHAVIOR, "effective_against", f"agent:{coplayer}", max(per_step, 0.0))]
        edges += [(NEW_BEHAVIOR, "derived_from", f"episode:{run_id}/{e.index}", 1.0) for e, _ in played[:3]]
        extracted.append(Extracted(new, tuple(e for e in edges if e[3] > 0)))
    return extracted


def _actions(played: list[tuple[EpisodeRecord, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Own and co-player actions (E, T) of the shortest common length, from the agent's seat."""
    length = min(e.length for e, _ in played)
    joint = np.stack([np.frombuffer(e.joint_actions, dtype=np.uint8)[:length] for e, _ in played])
    seats = np.array([s for _, s in played])[:, None]
    first, second = joint // 2, joint % 2
    return np.where(seats == 0, first, second), np.where(seats == 0, second, first)


def _rule(own: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """P(cooperate) at the start and after CC, CD, DC, DD (own move first); a state never
    visited gets the agent's overall cooperation rate."""
    cooperate = own == 0
    overall = cooperate.mean()
    rule = [cooperate[:, 0].mean()]
    state = 2 * own[:, :-1] + theirs[:, :-1]
    following = cooperate[:, 1:]
    for code in range(4):
        seen = state == code
        rule.append(following[seen].mean() if seen.any() else overall)
    return np.array(rule)

