"""The literature's strategies that reuse studies hold out play as their definitions say."""

from __future__ import annotations

import pytest

import scenarios

EXPECTED = {  # (strategy, co-player): its moves, then the co-player's, over 12 rounds
    ("gradual", "always_defect"): ("CDCCDDDDCCDD", "DDDDDDDDDDDD"),  # n defections, then calm
    ("prober", "tit_for_tat"): ("DCCCCCCCCCCC", "CDCCCCCCCCCC"),  # retaliated: tit-for-tat
    ("prober", "always_cooperate"): ("DCCDDDDDDDDD", "CCCCCCCCCCCC"),  # did not: exploited
    ("alternator", "always_cooperate"): ("CDCDCDCDCDCD", "CCCCCCCCCCCC"),
    ("cycler_ccd", "always_defect"): ("CCDCCDCCDCCD", "DDDDDDDDDDDD"),
    ("two_tits_for_tat", "alternator"): ("CCDDDDDDDDDD", "CDCDCDCDCDCD"),
    ("hard_tit_for_tat", "cycler_ccd"): ("CCCDDDDDDDDD", "CCDCCDCCDCCD"),
    ("hard_majority", "always_cooperate"): ("DCCCCCCCCCCC", "CCCCCCCCCCCC"),
    ("soft_majority", "alternator"): ("CCCCCCCCCCCC", "CDCDCDCDCDCD"),
    ("suspicious_tit_for_tat", "tit_for_tat"): ("DCDCDCDCDCDC", "CDCDCDCDCDCD"),
}


@pytest.mark.parametrize(("strategy", "coplayer"), sorted(EXPECTED))
def test_classic_strategies_play_their_definitions(strategy, coplayer) -> None:
    scenario = scenarios.parse(f"""\
kind: simulation
name: classics
env: {{id: coplay/ipd-v0, horizon: 12}}
agents: {{me: {{kind: {strategy}}}, them: {{kind: {coplayer}}}}}
matchups: {{mode: cross_play, focal: [me], against: [them]}}
run: {{episodes: 3, seed: 0, record_trajectories: true}}
""")
    (outcome,) = scenarios.run(scenario).pairings
    for joint in outcome.episodes.joint_actions:
        moves = ("".join("CD"[a // 2] for a in joint), "".join("CD"[a % 2] for a in joint))
        assert moves == EXPECTED[(strategy, coplayer)]


def test_joss_defects_now_and_then_where_tit_for_tat_would_cooperate() -> None:
    scenario = scenarios.parse("""\
kind: simulation
name: joss
env: {id: coplay/ipd-v0, horizon: 50}
agents: {me: {kind: joss}, them: {kind: always_cooperate}}
matchups: {mode: cross_play, focal: [me], against: [them]}
run: {episodes: 40, seed: 0}
""")
    (outcome,) = scenarios.run(scenario).pairings
    assert 0.85 < outcome.stats.cooperation_rate(0) < 0.95
