"""Effect-aware retrieval: triggers gate what a context can be offered, effects are stored
per behavior and credited entity, and the ranking demotes what measurably hurts, keeps what
helps, tries what is unknown, and keeps a control; with memory, an agent does not end up
worse than without it."""

from __future__ import annotations

import numpy as np
import pytest

import scenarios
from coplay.step import Context
from memory.behaviors import EffectStats, EffectUsage, Moments, NewBehavior, Usage
from memory.effects import VARIANTS, EffectRanking, posterior
from memory.handbook import Handbook

RULE_KEYS = ("start", "CC", "CD", "DC", "DD")


def moments(values) -> Moments:
    values = np.asarray(values, dtype=float)
    return Moments(len(values), float(values.sum()), float((values ** 2).sum()))


def test_effect_statistics_are_the_difference_of_means_with_a_welch_interval() -> None:
    used, unused = [1.0, 1.2, 0.8, 1.0], [0.0, 0.2, -0.2]
    stats = EffectStats(moments(used), moments(unused))
    assert stats.effect == pytest.approx(1.0)
    stderr = np.sqrt(np.var(used, ddof=1) / 4 + np.var(unused, ddof=1) / 3)
    assert stats.stderr == pytest.approx(stderr)
    assert stats.interval() == pytest.approx((1.0 - 1.96 * stderr, 1.0 + 1.96 * stderr))
    assert stats.verdict == "helps"
    assert EffectStats(moments(unused), moments(used)).verdict == "hurts"
    assert EffectStats(moments([1.0]), moments([0.0])).verdict == "unclear"  # too few to say
    assert (stats + stats).used.n == 8


def test_the_posterior_starts_at_no_effect_and_follows_the_evidence() -> None:
    mean, spread = posterior(EffectStats())
    assert mean == 0.0 and spread > 0.5
    strong = EffectStats(moments(np.full(200, 1.0) + np.linspace(-0.1, 0.1, 200)),
                         moments(np.linspace(-0.1, 0.1, 200)))
    mean, spread = posterior(strong)
    assert mean == pytest.approx(1.0, abs=0.02) and spread < 0.05


HELPS, HURTS, UNKNOWN = 1, 2, 3
CONTEXT = Context("the co-player looks like a defector", ("coplayer:defector",))


def ranking(*, explore: bool, seed: int = 0) -> EffectRanking:
    good = EffectStats(moments(np.linspace(0.9, 1.1, 100)), moments(np.linspace(-0.1, 0.1, 100)))
    bad = EffectStats(moments(np.linspace(-1.1, -0.9, 100)), moments(np.linspace(-0.1, 0.1, 100)))
    return EffectRanking({HELPS: {"coplayer:defector": good}, HURTS: {"coplayer:defector": bad}},
                         explore=explore, seed=seed)


def test_ranking_keeps_what_helps_demotes_what_hurts_tries_the_unknown_and_keeps_a_control() -> None:
    candidates = np.array([[HURTS, UNKNOWN, HELPS, -1]])
    offered = ranking(explore=True).rank(candidates, [CONTEXT], k=3)
    assert offered.shape == (VARIANTS, 3)
    assert np.all(offered[0] == -1)  # the control variant offers nothing
    rest = offered[1:]
    assert np.all((rest == HELPS).any(axis=1))  # a measured help is always offered,
    assert np.sum(rest[:, 0] == HELPS) >= len(rest) // 2  # and first in most variants
    assert not np.any(rest == HURTS)  # a measured harm is never offered
    assert 0 < np.sum(rest == UNKNOWN) < VARIANTS - 1  # the unknown is tried, not always
    # Without exploration: only what is known to help; no control, no harm, no unknown.
    greedy = ranking(explore=False).rank(candidates, [CONTEXT], k=3)
    assert greedy.tolist() == [[HELPS, -1, -1]]


def test_a_context_s_draws_do_not_depend_on_the_other_contexts_ranked_with_it() -> None:
    other = Context("the co-player looks like a cooperator", ("coplayer:cooperator",))
    candidates = np.array([[UNKNOWN, HELPS, HURTS]] * 2)
    together = ranking(explore=True, seed=7).rank(candidates, [other, CONTEXT], k=2)
    alone = ranking(explore=True, seed=7).rank(candidates[:1], [CONTEXT], k=2)
    assert np.array_equal(together[VARIANTS:], alone)
    assert not np.array_equal(ranking(explore=True, seed=8).rank(candidates[:1], [CONTEXT], k=2),
                              alone)


def test_triggers_gate_retrieval_where_the_context_names_their_type(backend_url) -> None:
    with Handbook.open(backend_url) as handbook:
        against_defectors, general = (b.behavior.id for b in handbook.add_many([
            NewBehavior(name="Defect against defectors", instruction="Defect every round.",
                        trigger={"coplayer": "defector"}),
            NewBehavior(name="Cooperate first", instruction="Defect only once defected on."),
        ]))
        contexts = [Context("defect", ("coplayer:unknown",)), Context("defect", ("coplayer:defector",)),
                    Context("defect", ())]
        found = handbook.retrieve(contexts, k=2).ids
        assert found[0].tolist() == [general, -1]  # a defector's rule waits until one is seen
        assert set(found[1].tolist()) == {against_defectors, general}
        assert set(found[2].tolist()) == {against_defectors, general}  # free text: no gate
        assert handbook.applies(against_defectors, ["coplayer:defector"])
        assert not handbook.applies(against_defectors, ["coplayer:reciprocator"])


def test_effects_add_up_across_writers_and_reach_other_processes_handbooks(backend_url) -> None:
    with Handbook.open(backend_url) as writer, Handbook.open(backend_url) as reader:
        behavior = writer.add(NewBehavior(name="Probe", instruction="Defect once.")).behavior.id
        reader.sync()
        half = EffectStats(moments([1.0, 2.0]), moments([0.0]))
        for _ in range(2):
            writer.record_usage([Usage(behavior, 3, 2, 3.0, 0.0)],
                                effects=[EffectUsage(behavior, "coplayer:mixed", half)])
        stored = writer.effects(behavior)["coplayer:mixed"]
        assert (stored.used.n, stored.used.total, stored.used.total_sq) == (4, 6.0, 10.0)
        assert stored.unused.n == 2
        reader.sync()
        assert reader._mirror.effects[behavior]["coplayer:mixed"] == stored
        writer.invalidate(behavior, "superseded")
        assert writer.prune() == [behavior]
        assert writer.effects(behavior) == {}


SAFETY = """\
kind: simulation
name: safe-reuse
env: {id: coplay/ipd-v0, horizon: 20}
agents:
  follower: {kind: handbook_follower}
  alld: {kind: always_defect}
  allc: {kind: always_cooperate}
  tft: {kind: tit_for_tat}
matchups: {mode: cross_play, focal: [follower], against: [alld, allc, tft]}
run: {episodes: 96, seed: SEED}
MEMORY
"""


def play(handbook: Handbook | None, seed: int, memory: str):
    text = SAFETY.replace("SEED", str(seed)).replace("MEMORY", memory if handbook else "")
    return scenarios.run(scenarios.parse(text), handbook=handbook)


def test_with_memory_an_agent_ends_no_worse_than_without_it_against_any_co_player(db_url) -> None:
    """A handbook that holds a harmful behavior (cooperate whatever happens, offered against
    every co-player) and a helpful one: after a few runs of exploring, the follower does at
    least as well as without memory against each co-player, and better against one."""
    with Handbook.open(db_url) as handbook:
        handbook.add_many([
            NewBehavior(name="Cooperate whatever happens", instruction="Never defect.",
                        kind="response_rule", payload={"cooperate": dict.fromkeys(RULE_KEYS, 1.0)},
                        trigger={"env": "coplay/ipd-v0"}),
            NewBehavior(name="Exploit a cooperator", instruction="Defect every round.",
                        kind="response_rule", payload={"cooperate": dict.fromkeys(RULE_KEYS, 0.0)},
                        trigger={"coplayer": "cooperator"}),
        ])
        for seed in range(4):
            handbook.record(play(handbook, seed, "memory: {k: 2}").memory_usage)
        with_memory = play(handbook, 99, "memory: {k: 2, explore: false}")
        without = play(None, 99, "")
    for mine, plain in zip(with_memory.pairings, without.pairings):
        assert mine.stats.agents == plain.stats.agents
        gain = (mine.episodes.returns[:, 0] - plain.episodes.returns[:, 0]) / 20
        stderr = gain.std(ddof=1) / np.sqrt(len(gain)) if gain.std() else 0.0
        assert gain.mean() + 2 * stderr >= 0.0, mine.stats.agents
    by_coplayer = {p.stats.agents[1]: p.stats.return_per_step(0) for p in with_memory.pairings}
    assert by_coplayer["alld"] >= -0.05  # cooperating whatever happens would earn -1
