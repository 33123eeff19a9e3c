"""Reuse on grid tasks: recorded steps, the sub-goal skill extractor, and the agent that
carries the skills out on layouts it has never seen."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy.orm import Session

import envs
import scenarios
from agents.grid_skills import Approach, first_move
from coplay.errors import StoreError
from memory import RunStore
from memory.behaviors import NewBehavior
from memory.handbook import Handbook
from memory.runs import EpisodeRecord, get_episodes
from scenarios.domains import extract_run
from scenarios.domains.grid import (
    ACTION_BITS,
    FACED,
    OBJECTS,
    SUBGOAL_BITS,
    SUBGOALS,
    decode_steps,
    encode_steps,
)
from scenarios.domains.grid_extraction import subgoal_skills

KEYDOOR = "coplay/grid-keydoor-v0"
LEFT, RIGHT, FORWARD, PICKUP, TOGGLE = range(5)  # keydoor's actions


def collection(seed: int, episodes: int = 24) -> scenarios.Scenario:
    return scenarios.parse(f"""\
kind: simulation
name: keydoor-collect
env: {{id: {KEYDOOR}, contexts: 4, context_seed: 7, size: 5, max_steps: 200}}
agents:
  rand: {{kind: random_actions}}
matchups: {{mode: solo, players: [rand]}}
run: {{episodes: {episodes}, seed: {seed}, batch_size: 12, record_trajectories: true}}
""")


def test_recorded_steps_fit_one_byte_and_read_back() -> None:
    from minigrid.core.constants import OBJECT_TO_IDX

    assert tuple(sorted(OBJECT_TO_IDX, key=OBJECT_TO_IDX.get)) == OBJECTS
    for env_id in envs.GRID_TASK_IDS:
        assert len(envs.spec(env_id).actions) <= 1 << ACTION_BITS
        assert len(SUBGOALS[env_id][1]) <= 1 << SUBGOAL_BITS
    actions, subgoals, faced = np.array([4, 0, 2]), np.array([0, 2, 1]), np.array([7, 1, 3])
    codes = encode_steps(actions, subgoals, faced)
    assert codes.dtype == np.uint8
    assert [a.tolist() for a in decode_steps(codes.tobytes())] == [[4, 0, 2], [0, 2, 1], [7, 1, 3]]


def test_a_recorded_grid_run_says_which_step_reached_each_subgoal() -> None:
    (pairing,) = scenarios.run(collection(seed=1)).pairings
    episodes = pairing.episodes
    reached = 0
    for row, length in zip(episodes.joint_actions, episodes.lengths):
        actions, after, faced = decode_steps(row[:length])
        assert (faced > 0).all()  # the cell ahead is always in view
        for step in np.flatnonzero(np.diff(np.concatenate([[0], after])) > 0):
            reached += 1
            # The key is picked up facing it; the door is opened by toggling it.
            expected = {1: (PICKUP, "key"), 2: (TOGGLE, "door")}[int(after[step])]
            assert (int(actions[step]), FACED[faced[step]]) == expected
    assert reached > 0


def test_the_extractor_writes_one_named_skill_per_subgoal_and_merges_a_second_run(db_url) -> None:
    store, handbook = RunStore(db_url), Handbook.open(db_url)
    first = extract_run(handbook, store.save(scenarios.run(collection(seed=1))), min_episodes=2)
    by_goal = {r.behavior.trigger["subgoal"]: r.behavior for r in first}
    assert not any(r.merged for r in first)
    key = by_goal["keydoor/find the key"]
    assert key.name == "keydoor, find the key: go to the key and pick it up"
    assert key.kind == "approach" and key.payload == {"object": "key", "action": "pickup",
                                                      "avoid": []}
    assert key.trigger == {"subgoal": "keydoor/find the key", "env": KEYDOOR}
    assert {"extracted", "grid", "skill", "keydoor", "key"} <= set(key.tags)
    if "keydoor/open the door" in by_goal:
        assert by_goal["keydoor/open the door"].payload["object"] == "door"
    # Another run on the same task teaches the same lessons: merged, with both provenances.
    second = extract_run(handbook, store.save(scenarios.run(collection(seed=2))), min_episodes=2)
    merged = [r for r in second if r.merged]
    assert key.id in {r.behavior.id for r in merged}
    assert len(handbook.list()) == len({r.behavior.id for r in first + second})
    provenance = handbook.provenance(key.id)
    assert {p.run_id for p in provenance} == {1, 2}


def _episode(index: int, steps: list[tuple[int, int, str]], solved: bool) -> EpisodeRecord:
    """A recorded episode from (action, sub-goal after, what was faced) steps."""
    actions, after, faced = (np.array(column) for column in zip(*steps))
    codes = encode_steps(actions, after, np.array([FACED.index(f) for f in faced]))
    return EpisodeRecord(pairing=0, index=index, length=len(steps), agents=("p", "keydoor"),
                         returns=(0.9 if solved else 0.0, 0.0), cooperations=(0, 0),
                         joint_actions=codes.tobytes())


def test_failures_teach_what_to_avoid_and_skills_need_a_dominant_lesson() -> None:
    solved = [(PICKUP, 1, "key"), (TOGGLE, 2, "door"), (FORWARD, 2, "empty"),
              (FORWARD, 2, "goal")]
    # Toggling the open door shuts it: back to "open the door".
    set_back = [(PICKUP, 1, "key"), (TOGGLE, 2, "door"), (TOGGLE, 1, "door"), (LEFT, 1, "wall")]
    episodes = [_episode(0, solved, True), _episode(1, solved, True),
                _episode(2, set_back, False), _episode(3, set_back, False)]
    skills = {e.behavior.trigger["subgoal"]: e.behavior
              for e in subgoal_skills(episodes, run_id=1, scenario="s", env_id=KEYDOOR,
                                      min_episodes=2)}
    goal = skills["keydoor/reach the goal"]
    assert goal.payload == {"object": "goal", "action": "forward", "avoid": ["toggle"]}
    assert "Never toggle here" in goal.instruction
    # The door was opened in every episode; an action that also completes a sub-goal is never
    # avoided there.
    assert skills["keydoor/open the door"].payload["avoid"] == []
    assert goal.provenance.episodes == (0, 1)
    # Below min_episodes, nothing.
    assert subgoal_skills(episodes[:1], run_id=1, scenario="s", env_id=KEYDOOR,
                          min_episodes=2) == []


def _stored_run(store: RunStore, runs: list[tuple[list[tuple[int, int, str]], bool]]) -> int:
    """Store a grid run whose episodes are the given recorded steps."""
    from memory import EpisodeArrays, NewRun, PairingOutcome, PairingStats

    episodes = [_episode(i, steps, solved) for i, (steps, solved) in enumerate(runs)]
    lengths = np.array([e.length for e in episodes])
    codes = np.zeros((len(episodes), lengths.max()), dtype=np.uint8)
    for row, episode in enumerate(episodes):
        codes[row, : episode.length] = np.frombuffer(episode.joint_actions, dtype=np.uint8)
    returns = np.array([[e.returns[0], 0.0] for e in episodes])
    stats = PairingStats(agents=("p", "keydoor"), roles=("solo", "task"),
                         episodes=len(episodes), steps=int(lengths.sum()),
                         returns=(float(returns[:, 0].sum()), 0.0), cooperations=(0, 0),
                         cooperation_by_round=[])
    arrays = EpisodeArrays(lengths=lengths, returns=returns,
                           cooperations=np.zeros((len(episodes), 2), dtype=np.int64),
                           joint_actions=codes)
    return store.save(NewRun(scenario_name="s", env_id=KEYDOOR, seed=0, scenario={},
                             wall_seconds=0.0, pairings=[PairingOutcome(stats, arrays)]))


def test_a_later_run_that_teaches_an_action_to_avoid_rewrites_the_stored_skill(db_url) -> None:
    store, handbook = RunStore(db_url), Handbook.open(db_url)
    solved = [(PICKUP, 1, "key"), (TOGGLE, 2, "door"), (FORWARD, 2, "goal")]
    set_back = [(PICKUP, 1, "key"), (TOGGLE, 2, "door"), (TOGGLE, 1, "door")]
    first = extract_run(handbook, _stored_run(store, [(solved, True)] * 2), min_episodes=2)
    goal_id = next(r.behavior.id for r in first if r.behavior.payload["object"] == "goal")
    assert handbook.get(goal_id).payload["avoid"] == []
    second = extract_run(handbook, _stored_run(store, [(solved, True)] * 2 + [(set_back, False)] * 2),
                         min_episodes=2)
    assert all(r.merged for r in second)
    rewritten = handbook.get(goal_id)
    assert rewritten.payload["avoid"] == ["toggle"] and rewritten.version == 2
    assert len(handbook.list()) == 3
    # A third run without the failures keeps the lesson.
    third = extract_run(handbook, _stored_run(store, [(solved, True)] * 2), min_episodes=2)
    assert all(r.merged for r in third) and handbook.get(goal_id).payload["avoid"] == ["toggle"]


def test_a_run_recorded_with_actions_only_is_refused() -> None:
    old = EpisodeRecord(pairing=0, index=0, length=3, agents=("p", "keydoor"),
                        returns=(0.0, 0.0), cooperations=(0, 0), joint_actions=bytes([2, 3, 4]))
    with pytest.raises(StoreError, match="actions only"):
        subgoal_skills([old], run_id=1, scenario="s", env_id=KEYDOOR)


def test_the_planner_turns_walks_and_acts_in_the_agents_own_view() -> None:
    objects = np.full((7, 7), OBJECTS.index("empty"))
    states = np.zeros((7, 7), dtype=np.int64)
    key = OBJECTS.index("key")
    objects[3, 5] = key  # right ahead
    assert first_move(objects, states, key) == "act"
    objects[3, 5] = OBJECTS.index("empty")
    objects[4, 6] = key  # beside the agent, on its right
    assert first_move(objects, states, key) == "right"
    objects[4, 6] = OBJECTS.index("empty")
    objects[3, 2] = key  # three cells ahead
    assert first_move(objects, states, key) == "forward"
    objects[3, 2] = OBJECTS.index("empty")
    assert first_move(objects, states, key) is None


def test_an_approach_picks_up_the_key_on_a_real_layout() -> None:
    env = envs.make(KEYDOOR, contexts=None, size=6)
    approach = Approach.compile({"object": "key", "action": "pickup", "avoid": []},
                                envs.spec(KEYDOOR).actions)
    observation, _ = env.reset(seed=0)
    # Turn until the key is in view, as the agent's random search eventually would.
    for _ in range(4):
        if approach.step(observation) is not None:
            break
        observation, *_ = env.step(LEFT)
    for _ in range(20):
        action = approach.step(observation)
        assert action is not None
        observation, *_ = env.step(action)
        if action == PICKUP:
            break
    assert env.unwrapped.inner.carrying is not None and env.unwrapped.inner.carrying.type == "key"


SKILLS = [
    NewBehavior(name=f"keydoor, {goal}: go to the {target}", instruction=f"Go to the {target}.",
                kind="approach", payload={"object": target, "action": action, "avoid": []},
                trigger={"subgoal": f"keydoor/{goal}", "env": KEYDOOR})
    for goal, target, action in (("find the key", "key", "pickup"),
                                 ("open the door", "door", "toggle"),
                                 ("reach the goal", "goal", "forward"))
]


def test_the_follower_solves_unseen_layouts_with_the_skills_and_counts_their_use(db_url) -> None:
    handbook = Handbook.open(db_url)
    handbook.add_many(SKILLS)
    scenario = scenarios.parse(f"""\
kind: simulation
name: keydoor-unseen
env: {{id: {KEYDOOR}, contexts: null, size: 6, max_steps: 150}}
agents:
  follower: {{kind: macro_follower}}
matchups: {{mode: solo, players: [follower]}}
run: {{episodes: 8, seed: 5, batch_size: 8}}
memory: {{k: 3, ranking: relevance}}
""")
    result = scenarios.run(scenario, handbook=handbook)
    (pairing,) = result.pairings
    assert pairing.stats.metrics["successes"] == 8
    assert pairing.episodes.lengths.max() < 150
    usages = {u.behavior_id: u for u in result.memory_usage.usages}
    assert all(usages[b].uses == 8 for b in (1, 2, 3))


def test_coplay_memory_extract_distils_a_grid_run(monkeypatch, capsys, tmp_path) -> None:
    from tests.test_cli import coplay

    url = f"sqlite:///{tmp_path / 'grid.db'}"
    assert coplay(monkeypatch, capsys, "run", "keydoor_macros", "--episodes", "16", "--db", url,
                  "--no-plots", "--record-trajectories")[0] == 0
    code, out, err = coplay(monkeypatch, capsys, "memory", "extract", "1", "--db", url,
                            "--min-episodes", "2")
    assert code == 0, err
    assert "keydoor, find the key: go to the key and pick it up" in out
    code, out, _ = coplay(monkeypatch, capsys, "memory", "extract", "1", "--db", url,
                          "--min-episodes", "2")
    assert code == 0 and " 0 new" in out and "(merged)" in out
    with Session(Handbook.open(url).engine) as session:
        assert len(get_episodes(session, 1)) == 32


def test_a_grid_scenario_with_extract_distils_its_run_when_it_ends(monkeypatch, capsys,
                                                                   tmp_path) -> None:
    from tests.test_cli import coplay

    url = f"sqlite:///{tmp_path / 'grid.db'}"
    code, out, err = coplay(monkeypatch, capsys, "run", "keydoor_macros", "--episodes", "32",
                            "--db", url, "--no-plots", "--set", "memory.extract=true")
    assert code == 0, err
    assert "extracted" in out
    assert [b.kind for b in Handbook.open(url).list()][:1] == ["approach"]


@pytest.mark.parametrize("payload", [
    {"object": "key", "action": "pickup"},  # no avoid
    {"object": "key", "action": "", "avoid": []},
    {"object": "key", "action": "pickup", "avoid": "toggle"},
    {"object": "key", "action": "pickup", "avoid": [], "then": "run"},
])
def test_an_approach_payload_is_checked(payload) -> None:
    from coplay.errors import ConfigError

    with pytest.raises(ConfigError, match="payload: expected walk to the nearest object"):
        NewBehavior(name="n", instruction="i", kind="approach", payload=payload)
