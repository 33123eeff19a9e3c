"""Grid tasks under the one loop: simulated with any agent, with memory in the loop."""

from __future__ import annotations

import numpy as np
import pytest

import scenarios
from coplay.errors import ScenarioError
from memory.behaviors import NewBehavior
from memory.handbook import Handbook
from scenarios.domains.grid import decode_steps

TURN_AND_PICK_UP = NewBehavior(
    name="Turn and pick up", instruction="Turn right, then pick up what is ahead.",
    kind="action_macro", payload={"actions": [1, 3]},
    trigger={"subgoal": "keydoor/find the key"},
)


def grid_scenario(players: str = "[rand, follower]", extra: str = "") -> scenarios.Scenario:
    return scenarios.parse(grid_scenario_text(players, extra))


def grid_scenario_text(players: str = "[rand, follower]", extra: str = "") -> str:
    return f"""\
kind: simulation
name: grid-test
env: {{id: coplay/grid-keydoor-v0, contexts: 2, size: 5, max_steps: 40}}
agents:
  rand: {{kind: random_actions}}
  follower: {{kind: macro_follower}}
matchups: {{mode: solo, players: {players}}}
run: {{episodes: 6, seed: 4, batch_size: 4, record_trajectories: true}}
{extra}"""


def test_a_grid_simulation_is_deterministic_and_counts_successes() -> None:
    first = scenarios.run(grid_scenario())
    again = scenarios.run(grid_scenario())
    assert [p.stats for p in first.pairings] == [p.stats for p in again.pairings]
    rand = first.pairings[0]
    assert rand.stats.agents == ("rand", "keydoor") and rand.stats.episodes == 6
    lengths = rand.episodes.lengths
    assert lengths.max() <= 40 and rand.stats.steps == lengths.sum()
    assert 0 <= rand.stats.metrics["successes"] <= 6
    # A failed keydoor episode earns nothing; a success earns a positive reward.
    assert rand.stats.returns[0] == pytest.approx(rand.episodes.returns[:, 0].sum())
    assert (rand.stats.returns[0] > 0) == (rand.stats.metrics["successes"] > 0)


def test_the_macro_follower_plays_the_macro_retrieved_for_its_subgoal(db_url) -> None:
    handbook = Handbook.open(db_url)
    handbook.add(TURN_AND_PICK_UP)
    result = scenarios.run(grid_scenario("[follower]", "memory: {k: 2, ranking: relevance}\n"),
                           handbook=handbook)
    (pairing,) = result.pairings
    actions, _, _ = decode_steps(pairing.episodes.joint_actions)
    assert np.all(actions[:, :2] == [1, 3])  # every episode opens with the macro
    (usage,) = result.memory_usage.usages
    assert (usage.behavior_id, usage.shown, usage.uses) == (1, 6, 6)
    assert result.memory_usage.accumulate_edges == (
        ("behavior:1", "used_in", "scenario:grid-test", 6.0),)


def test_without_memory_the_follower_acts_at_random() -> None:
    (pairing,) = scenarios.run(grid_scenario("[follower]")).pairings
    actions, _, _ = decode_steps(pairing.episodes.joint_actions)
    assert not np.all(actions[:, :2] == [1, 3])


def test_grid_scenarios_need_solo_matchups_and_grid_settings() -> None:
    text = grid_scenario_text()
    with pytest.raises(ScenarioError, match="matchups.mode: expected solo"):
        scenarios.parse(text.replace("mode: solo", "mode: round_robin"))
    with pytest.raises(ScenarioError, match="env: expected settings of coplay/grid-keydoor-v0"):
        scenarios.parse(text.replace("size: 5", "rooms: 5"))


def test_a_trained_grid_policy_takes_a_seat(tmp_path) -> None:
    scenario = scenarios.parse("""\
kind: exploration
name: tiny-keydoor
env: {id: coplay/grid-keydoor-v0, contexts: 1, size: 5}
train: {frames: 256, envs: 4, steps: 64, minibatches: 1}
""")
    trainer = scenario.make_trainer()
    trainer.step()
    checkpoint = tmp_path / "grid.pt"
    trainer.save(checkpoint, extra={"scenario": scenario.model_dump(mode="json")})
    simulation = f"""\
kind: simulation
name: trained-on-grid
env: {{id: coplay/grid-keydoor-v0, contexts: 1, size: 5, max_steps: 30}}
agents:
  trained: {{kind: grid_checkpoint, path: {checkpoint}, greedy: true}}
matchups: {{mode: solo, players: [trained]}}
run: {{episodes: 3, seed: 0, record_trajectories: true}}
"""
    (pairing,) = scenarios.run(scenarios.parse(simulation)).pairings
    assert pairing.stats.episodes == 3 and decode_steps(pairing.episodes.joint_actions)[0].max() < 5
    # Trained with keydoor's five actions; deadends has three.
    other_task = simulation.replace("grid-keydoor-v0, contexts: 1, size: 5", "grid-deadends-v0")
    with pytest.raises(ScenarioError, match="a policy for 3 actions"):
        scenarios.parse(other_task)


def test_a_grid_run_is_stored_with_its_successes(db_url) -> None:
    from memory import RunStore

    store = RunStore(db_url)
    result = scenarios.run(grid_scenario())
    run_id = store.save(result)
    stored = store.pairings(run_id)
    assert stored == [p.stats for p in result.pairings]
    assert all(p.metrics is not None and "successes" in p.metrics for p in stored)


def test_coplay_run_plays_a_grid_scenario_and_shows_it_per_player(monkeypatch, capsys,
                                                                 tmp_path) -> None:
    from tests.test_cli import coplay

    url = f"sqlite:///{tmp_path / 'grid.db'}"
    code, out, err = coplay(monkeypatch, capsys, "run", "keydoor_macros", "--episodes", "4",
                            "--db", url, "--out", str(tmp_path / "plots"))
    assert code == 0, err
    rows = [line.split() for line in out.splitlines()]
    players = {row[0]: row for row in rows if row and row[0] in ("explorer", "follower")}
    assert set(players) == {"explorer", "follower"}
    assert all(row[1] == "keydoor" and row[2] == "4" for row in players.values())
    assert (tmp_path / "plots" / "results.png").exists()
    code, shown, _ = coplay(monkeypatch, capsys, "runs", "show", "1", "--db", url)
    assert code == 0 and "success" in shown and "cooperation" not in shown
