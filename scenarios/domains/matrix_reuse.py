"""Reuse figures that read a matrix game's recorded episodes: the return of the first rounds,
and how often memory's top behavior was one that measurably helps against the co-player
the subject really faced."""

from __future__ import annotations

import numpy as np

from memory.handbook import Handbook
from scenarios.domains import run_memory
from scenarios.domains.matrix import COPLAYER_TYPES, Answers, context_code, contexts_for, phase_of
from scenarios.schema import MemorySection, Scenario


def first_rounds_returns(joint_actions: np.ndarray, lengths: np.ndarray, table: np.ndarray,
                         rounds: int) -> np.ndarray:
    """Seat 0's return per step over each episode's first ``rounds`` rounds (or all of a
    shorter one): ``joint_actions`` (E, T) are 2 * seat 0's action + seat 1's, ``table`` the
    payoffs ``[a0, a1] -> (r0, r1)``."""
    played = np.minimum(lengths, rounds)
    head = joint_actions[:, :rounds].astype(np.int64)
    rewards = table[head // 2, head % 2, 0]
    inside = np.arange(head.shape[1])[None, :] < played[:, None]
    return (rewards * inside).sum(axis=1) / np.maximum(played, 1)


def precision(handbook: Handbook, section: MemorySection, *, scenario: Scenario,
              joint_actions: np.ndarray, lengths: np.ndarray) -> tuple[int, int]:
    """Over the rounds of seat 0's recorded episodes in which memory offered it a behavior
    (without exploration, so every game gets the same offer in the same context): how many
    were offered one whose measured effect, against the type the co-player showed over the
    whole episode, is positive; and how many rounds had an offer."""
    subject, env_id = scenario.matchups.focal[0], scenario.env.id
    memory = run_memory(handbook, section, scenario=scenario.name, env_id=env_id, seed=0)
    contexts = contexts_for(subject, scenario.name, env_id)
    _, _, offered = memory.candidates_and_offers(contexts, memory.ranking())
    top = offered[:, 0]
    horizon = scenario.env.horizon
    answers = Answers(len(lengths))
    codes = np.zeros(joint_actions.shape, dtype=np.int64)
    for t in range(joint_actions.shape[1]):
        codes[:, t] = context_code(answers.kind(t), answers.last_token, phase_of(t, horizon))
        answers.add(joint_actions[:, t], t < lengths, seat=0)
    true_type = answers.kind(answers.rounds)
    helps: dict[tuple[int, int], bool] = {}
    for behavior_id in {int(b) for b in top if b >= 0}:
        effects = handbook.effects(behavior_id)
        for kind, name in enumerate(COPLAYER_TYPES):
            stats = effects.get(f"coplayer:{name}")
            helps[(behavior_id, kind)] = bool(stats and stats.effect is not None and stats.effect > 0)
    found = total = 0
    for game in range(len(lengths)):
        offers = top[codes[game, : lengths[game]]]
        offers = offers[offers >= 0]
        total += len(offers)
        found += sum(helps[(int(b), int(true_type[game]))] for b in offers)
    return found, total
