"""Distilling reusable behaviors from stored episodes of matrix games.

The memory-one extractor reads a run's trajectories and, for every co-player, takes the
agent that earned the most per step against it, measures that agent's empirical response
rule (its chance of cooperating after each previous joint action) and the type the
co-player showed that agent, and writes the rule as an executable behavior triggered by
that type:
"after the opening, once the co-player shows itself a defector, play like grim trigger".
The trigger is what the playing agent can know: retrieval offers the rule only once the
opening rounds have shown it the co-player, and its own view of the co-player has that
type. The agent that earned the least, when it fell far behind, becomes
a warning in words. Rules are rounded to quarters, so the same lesson learned in another
run has the same content and is merged into the existing behavior, adding its provenance;
a rule is named after a classic strategy only when it is one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from coplay.errors import StoreError
from memory.behaviors import RULE_KEYS, NewBehavior, Provenance
from memory.extraction import NEW_BEHAVIOR, Extracted
from memory.runs import EpisodeRecord
from scenarios.domains.matrix import AFTER_OPENING, COPLAYER_TYPES, coplayer_type

EXTRACTOR = "memory_one_v1"
CLASSIC_TOLERANCE = 0.2  # a rule is named after a classic only if no probability is further off
FAILURE_GAP = 0.5  # the worst response is a lesson when it earned this much less per round
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
    by_coplayer: dict[str, list[tuple[float, str, list[tuple[EpisodeRecord, int]]]]] = {}
    for (agent, coplayer), played in by_pair.items():
        if len(played) < min_episodes:
            continue
        steps = sum(e.length for e, _ in played)
        per_step = sum(e.returns[s] for e, s in played) / max(steps, 1)
        by_coplayer.setdefault(coplayer, []).append((per_step, agent, played))
    extracted = []
    for coplayer, results in sorted(by_coplayer.items()):
        results.sort(key=lambda result: -result[0])
        best = results[0]
        kind = _shown_type(best[2])
        extracted.append(_response(best, coplayer, kind, run_id=run_id, scenario=scenario,
                                   env_id=env_id))
        worst = results[-1]
        if len(results) > 1 and best[0] - worst[0] >= FAILURE_GAP:
            extracted.append(_failure(worst, best, kind, run_id=run_id, scenario=scenario,
                                      env_id=env_id))
    return extracted


def _shown_type(played: list[tuple[EpisodeRecord, int]]) -> str:
    """The type a co-player showed an agent over their episodes: how it answered that
    agent's cooperations and defections. A best response is triggered by the type the
    co-player showed the agent that played it, which is where it was seen to work. (The
    type a co-player shows everyone it met reads more of its answers, but made a worse
    trigger in the held-out study, studies/results/reuse: a prober's opening passes for a
    cooperator's, and a cooperator's best response then loses to it.)"""
    counts = np.zeros(4, dtype=np.int64)
    rounds = 0
    for episode, seat in played:
        own, theirs = _actions([(episode, seat)])
        before, answer = own[:, :-1], theirs[:, 1:] == 0
        counts += [(before == 0).sum(), (answer & (before == 0)).sum(),
                   (before == 1).sum(), (answer & (before == 1)).sum()]
        rounds += theirs.size
    return COPLAYER_TYPES[int(coplayer_type(*counts, rounds))]


def _response(result: tuple[float, str, list[tuple[EpisodeRecord, int]]], coplayer: str,
              kind: str, *, run_id: int, scenario: str, env_id: str) -> Extracted:
    """The best response measured against one co-player, as an executable rule triggered
    by the type that co-player showed it."""
    per_step, agent, played = result
    table, label = _measured(played)
    described = ", ".join(f"after {k} {round(100 * p)}%" for k, p in table.items() if k != "start")
    name = f"Play like {label} against a {kind}" if label else f"Answer a {kind} with a measured rule"
    new = NewBehavior(
        name=name,
        instruction=(
            f"After the opening, once the co-player has shown itself a {kind}, cooperate "
            f"{round(100 * table['start'])}% of the time at the start, then {described} "
            "(previous joint action, own move first)."
        ),
        kind="response_rule", payload={"cooperate": table},
        trigger={"coplayer": kind, "env": env_id, "phase": AFTER_OPENING},
        tags=("extracted", label.replace(" ", "-") if label else "measured-rule"),
        provenance=Provenance(
            extractor=EXTRACTOR, scenario=scenario, agent=agent, run_id=run_id,
            episodes=tuple(sorted({e.index for e, _ in played})),
        ),
    )
    edges = [(NEW_BEHAVIOR, "effective_against", f"coplayer:{kind}", max(per_step, 0.0)),
             (NEW_BEHAVIOR, "effective_against", f"agent:{coplayer}", max(per_step, 0.0))]
    edges += [(NEW_BEHAVIOR, "derived_from", f"episode:{run_id}/{e.index}", 1.0) for e, _ in played[:3]]
    return Extracted(new, tuple(e for e in edges if e[3] > 0))


def _failure(worst: tuple[float, str, list[tuple[EpisodeRecord, int]]],
             best: tuple[float, str, list[tuple[EpisodeRecord, int]]], kind: str, *,
             run_id: int, scenario: str, env_id: str) -> Extracted:
    """The worst response measured against one co-player, as a warning in words (nothing
    to execute: it says what not to do)."""
    per_step, agent, played = worst
    label = _measured(played)[1]
    best_label = _measured(best[2])[1]
    doing = label or "the rule it played"
    new = NewBehavior(
        name=f"Do not play like {label} against a {kind}" if label
        else f"Avoid a losing rule against a {kind}",
        instruction=(
            f"Against a co-player that shows itself a {kind}, {doing} earned {per_step:.2f} "
            f"per round where {best_label or 'the best rule seen'} earned {best[0]:.2f}."
        ),
        kind="text", trigger={"coplayer": kind, "env": env_id},
        tags=("extracted", "failure"),
        provenance=Provenance(
            extractor=EXTRACTOR, scenario=scenario, agent=agent, run_id=run_id,
            episodes=tuple(sorted({e.index for e, _ in played})),
        ),
    )
    edges = tuple((NEW_BEHAVIOR, "derived_from", f"episode:{run_id}/{e.index}", 1.0)
                  for e, _ in played[:3])
    return Extracted(new, edges)


def _measured(played: list[tuple[EpisodeRecord, int]]) -> tuple[dict[str, float], str | None]:
    """An agent's response rule against one co-player, in quarters (so that the same lesson
    learned again has the same content and merges), and the classic strategy it is, if
    any."""
    own, theirs = _actions(played)
    rule = _rule(own, theirs)
    quarters = np.round(rule * 4) / 4
    distances = {name: np.abs(np.array(table) - rule).max() for name, table in CLASSICS.items()}
    label = min(distances, key=distances.get)
    table = {key: float(p) for key, p in zip(RULE_KEYS, quarters)}
    return table, label if distances[label] <= CLASSIC_TOLERANCE else None


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

