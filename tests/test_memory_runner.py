"""Memory in the loop: the runner hands every hint-following agent its retrieved behaviors
each round, records what was shown and used, and a run can be distilled into behaviors that
the next run plays. Then the `coplay memory` and `coplay db` commands."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest
from sqlalchemy import create_engine

import scenarios
from coplay.errors import ConfigError
from memory import RunStore, migrations
from memory.behaviors import RULE_KEYS, NewBehavior
from memory.handbook import Handbook
from scenarios.domains import extract_run, run_memory
from scenarios.domains.matrix import CONTEXTS, COPLAYER_TYPES, LAST_ROUND, coplayer_type, phase_of
from scenarios.domains.matrix_fast import BatchMemory
from tests.test_cli import coplay

# A follower in the focal seat and in the background, beside tit-for-tat and a random
# memory-one table: every co-player type shows up.
FOLLOWER_AMONG_OTHERS = """\
agents:
  follower: {kind: handbook_follower, fallback: random}
  tft: {kind: tit_for_tat}
  tabular: {kind: memory_one, table: uniform}
matchups:
  mode: population
  focal: [follower]
  background: [{agent: follower}, {agent: tft}, {agent: tabular}]
"""
DEFECT_ALWAYS = NewBehavior(
    name="Defect no matter what", instruction="Defect in every round, whatever happened.",
    kind="response_rule", payload={"cooperate": dict.fromkeys(("start", "CC", "CD", "DC", "DD"), 0.0)},
    trigger={"env": "coplay/ipd-v0"},
)
OPEN_WITH_A_PROBE = NewBehavior(
    name="Probe, then cooperate", instruction="Defect once, then cooperate twice.",
    kind="action_macro", payload={"actions": [1, 0, 0]},
)
SCENARIO = """\
kind: simulation
name: memory-test
env: {id: coplay/ipd-v0, horizon: 12}
agents:
  follower: {kind: handbook_follower}
  allc: {kind: always_cooperate}
  tft: {kind: tit_for_tat}
matchups: {mode: round_robin, players: [follower, allc, tft]}
run: {episodes: 20, seed: 4, batch_size: 8}
"""


def memory_scenario(extra: str = "memory: {k: 2, ranking: relevance}\n") -> scenarios.Scenario:
    return scenarios.parse(SCENARIO + extra, source="memory-test.yaml")


def follower_cooperation(result, coplayer: str) -> float:
    for outcome in result.pairings:
        if outcome.stats.agents == ("follower", coplayer):
            return outcome.stats.cooperation_rate(0)
    raise AssertionError(coplayer)


def test_the_follower_plays_the_retrieved_rule_and_its_use_is_counted(db_url) -> None:
    handbook = Handbook.open(db_url)
    plain = scenarios.run(memory_scenario(extra=""))
    assert follower_cooperation(plain, "allc") == 1.0  # tit-for-tat, its fallback
    handbook.add(DEFECT_ALWAYS)
    result = scenarios.run(memory_scenario(), handbook=handbook)
    assert follower_cooperation(result, "allc") == 0.0
    usage = result.memory_usage
    # 20 episodes against each of allc and tft; only the follower's seat listens.
    assert [(u.behavior_id, u.shown, u.uses) for u in usage.usages] == [(1, 40, 40)]
    assert usage.accumulate_edges == (("behavior:1", "used_in", "scenario:memory-test", 40.0),)
    handbook.record(usage)
    assert handbook.get(1).stats.uses == 40


def test_a_batch_sees_what_was_written_since_the_last_batch(db_url) -> None:
    """Batches of a run reuse their hint tables while the handbook is unchanged, and only
    then; the next run finds the same."""
    handbook = Handbook.open(db_url)
    handbook.add(DEFECT_ALWAYS)
    memory = run_memory(handbook, memory_scenario().memory, scenario="memory-test",
                        env_id="coplay/ipd-v0", seed=0)
    seats, listening = ("follower", "allc"), (True, False)
    first = memory.batch(seats, listening, num_games=4, horizon=12)
    again = memory.batch(seats, listening, num_games=4, horizon=12)
    assert again._catalogue is first._catalogue
    next_run = run_memory(handbook, memory_scenario().memory, scenario="memory-test",
                          env_id="coplay/ipd-v0", seed=0)
    assert np.array_equal(next_run.batch(seats, listening, num_games=4, horizon=12)._tables[0].rows,
                          first._tables[0].rows)
    assert set(first._tables[0].candidates.ravel().tolist()) == {1, -1}
    Handbook.open(db_url).add(OPEN_WITH_A_PROBE)  # another writer
    after = memory.batch(seats, listening, num_games=4, horizon=12)
    assert after._catalogue is not first._catalogue
    assert set(after._tables[0].candidates.ravel().tolist()) - {-1} == {1, 2}


def test_scenario_filters_reach_retrieval_and_macros_are_played(db_url) -> None:
    handbook = Handbook.open(db_url)
    handbook.add_many([DEFECT_ALWAYS, OPEN_WITH_A_PROBE])
    only_macros = scenarios.run(
        memory_scenario("memory: {k: 2, kinds: [action_macro], ranking: relevance}\n"),
        handbook=handbook)
    # Probe, cooperate, cooperate, ...: a third of 12 rounds rounded up are defections.
    assert follower_cooperation(only_macros, "allc") == pytest.approx(8 / 12)
    nothing = scenarios.run(memory_scenario("memory: {k: 2, tags: [absent]}\n"), handbook=handbook)
    assert follower_cooperation(nothing, "allc") == 1.0
    assert nothing.memory_usage.usages == ()


def test_memory_runs_are_deterministic_and_need_a_handbook(db_url) -> None:
    handbook = Handbook.open(db_url)
    handbook.add(NewBehavior(
        name="Mostly cooperate", instruction="Cooperate most of the time.", kind="response_rule",
        payload={"cooperate": dict.fromkeys(("start", "CC", "CD", "DC", "DD"), 0.7)},
    ))
    first = scenarios.run(memory_scenario(), handbook=handbook)
    second = scenarios.run(memory_scenario(), handbook=handbook)
    for a, b in zip(first.pairings, second.pairings):
        assert np.array_equal(a.episodes.returns, b.episodes.returns)
    assert 0.5 < follower_cooperation(first, "allc") < 0.9
    with pytest.raises(ConfigError, match="memory: expected a handbook"):
        scenarios.run(memory_scenario())


def test_a_follower_in_a_background_population_gets_its_own_games_hints(db_url) -> None:
    handbook = Handbook.open(db_url)
    handbook.add(DEFECT_ALWAYS)
    scenario = scenarios.parse("""\
kind: simulation
name: population-memory
env: {id: coplay/ipd-v0, horizon: 10}
agents:
  allc: {kind: always_cooperate}
  follower: {kind: handbook_follower}
  tft: {kind: tit_for_tat}
matchups: {mode: population, focal: [allc], background: [{agent: follower}, {agent: tft}]}
run: {episodes: 40, seed: 1}
memory: {k: 1, ranking: relevance}
""")
    result = scenarios.run(scenario, handbook=handbook)
    by_coplayer = {o.stats.agents[1]: o.stats.cooperation_rate(1) for o in result.pairings}
    assert by_coplayer == {"follower": 0.0, "tft": 1.0}
    assert result.memory_usage.usages[0].uses == sum(
        o.stats.episodes for o in result.pairings if o.stats.agents[1] == "follower")


@pytest.mark.parametrize("env", [
    "{id: coplay/ipd-v0, horizon: 15, continuation_probability: 0.9}",
    "{id: coplay/ipd-v0, horizon: 15}",
])
def test_the_usage_tally_equals_a_count_over_every_game_and_round(db_url, monkeypatch, env) -> None:
    """The runner tallies shown and used behaviors as bitsets at the end of a batch; here
    the same tally is counted plainly from every round's contexts and hints, with games
    of different lengths and of one."""
    handbook = Handbook.open(db_url)
    handbook.add_many([
        DEFECT_ALWAYS, OPEN_WITH_A_PROBE,
        NewBehavior(name="Flip a coin", instruction="Cooperate half of the time against a mixed player.",
                    kind="response_rule", payload={"cooperate": dict.fromkeys(RULE_KEYS, 0.5)},
                    trigger={"coplayer": "mixed"}),
        NewBehavior(name="Reciprocate", instruction="Against a reciprocator, do what it did last round.",
                    kind="response_rule", payload={"cooperate": dict(zip(RULE_KEYS, (1, 1, 0, 1, 0)))}),
        NewBehavior(name="Be patient", instruction="In the opening of the game, wait and see."),
    ])
    scenario = scenarios.parse("""\
kind: simulation
name: tally-check
env: ENV
agents:
  follower: {kind: handbook_follower, fallback: random}
  allc: {kind: always_cooperate}
  alld: {kind: always_defect}
  tft: {kind: tit_for_tat}
matchups:
  mode: population
  focal: [alld, follower]
  background: [{agent: follower}, {agent: tft}, {agent: allc}]
run: {episodes: 48, seed: 3, batch_size: 16}
memory: {k: 3}
""".replace("ENV", env))
    rounds: dict[int, list] = {}  # BatchMemory id -> [(seat, codes, hint_used)]
    batches = []  # (memory, returns, lengths, co-player types per seat)
    hints, record, finish = BatchMemory.hints, BatchMemory.record, BatchMemory.finish
    shown_contexts = {}  # (BatchMemory id, seat) -> this round's contexts

    def logged_hints(self, seat):
        given = hints(self, seat)
        shown_contexts[id(self), seat] = given.contexts.copy()
        return given

    def logged_record(self, seat, hint_used):
        rounds.setdefault(id(self), []).append(
            (seat, shown_contexts[id(self), seat], hint_used.copy()))
        record(self, seat, hint_used)

    def logged_finish(self, returns, lengths):
        kinds = [self._final_kinds(seat, lengths) for seat in (0, 1)]
        batches.append((self, returns.copy(), lengths.copy(), kinds))
        finish(self, returns, lengths)

    monkeypatch.setattr(BatchMemory, "hints", logged_hints)
    monkeypatch.setattr(BatchMemory, "record", logged_record)
    monkeypatch.setattr(BatchMemory, "finish", logged_finish)
    result = scenarios.run(scenario, handbook=handbook)

    shown, uses = defaultdict(int), defaultdict(int)
    return_used, return_unused = defaultdict(float), defaultdict(float)
    by_type = defaultdict(lambda: np.zeros(6))
    for memory, returns, lengths, kinds in batches:
        per_step = returns / np.maximum(lengths, 1)[:, None]
        for seat in (0, 1):
            table = memory._tables[seat]
            for game in range(len(lengths)):
                seen_here, used_here = set(), set()
                for logged_seat, codes, hint_used in rounds[id(memory)]:
                    code = codes[game]
                    if logged_seat != seat or code >= len(table.candidates):  # the game had ended
                        continue
                    seen_here |= {int(b) for b in table.candidates[code] if b >= 0}
                    if hint_used[game] >= 0:
                        used_here.add(int(table.offered[code, hint_used[game]]))
                kind = COPLAYER_TYPES[kinds[seat][game]]
                for behavior in seen_here:
                    value = per_step[game, seat]
                    shown[behavior] += 1
                    was_used = behavior in used_here
                    uses[behavior] += was_used
                    # "Not used" counts only episodes in which no behavior was used at all.
                    alone = not used_here
                    if was_used:
                        return_used[behavior] += value
                    if alone:
                        return_unused[behavior] += value
                    by_type[(behavior, kind)] += (was_used, was_used * value, was_used * value ** 2,
                                                  alone, alone * value, alone * value ** 2)
    usages = {u.behavior_id: u for u in result.memory_usage.usages}
    assert len(usages) >= 4 and sum(uses.values()) > 0
    assert set(usages) == set(shown)
    for behavior, usage in usages.items():
        assert (usage.shown, usage.uses) == (shown[behavior], uses[behavior])
        assert usage.return_used == pytest.approx(return_used[behavior])
        assert usage.return_unused == pytest.approx(return_unused[behavior])
    expected_edges = sorted(
        (f"behavior:{b}", "effective_against", f"coplayer:{kind}",
         pytest.approx(used_sum / used_n - unused_sum / unused_n, rel=1e-5))
        for (b, kind), (used_n, used_sum, _, unused_n, unused_sum, _) in by_type.items()
        if used_n and unused_n and used_sum / used_n > unused_sum / unused_n
    )
    assert sorted(result.memory_usage.edges) == expected_edges
    effects = {(e.behavior_id, e.entity): e.stats for e in result.memory_usage.effects}
    assert set(effects) == {(b, f"coplayer:{kind}") for b, kind in by_type}
    for (b, kind), moments in by_type.items():
        stats = effects[(b, f"coplayer:{kind}")]
        found = (stats.used.n, stats.used.total, stats.used.total_sq,
                 stats.unused.n, stats.unused.total, stats.unused.total_sq)
        assert found == pytest.approx(tuple(moments), rel=1e-5, abs=1e-6)


def test_extraction_distils_best_responses_and_merges_repeats(db_url) -> None:
    handbook = Handbook.open(db_url)
    store = RunStore(engine=handbook.engine)
    scenario = memory_scenario("memory: {k: 2, extract: true}\n")
    first = store.save(scenarios.run(scenario, handbook=handbook))
    results = extract_run(handbook, first)
    # The same lesson against several co-players is one behavior with several provenances.
    new = {r.behavior.id for r in results if not r.merged}
    assert results and not results[0].merged
    assert {r.behavior.id for r in results if r.merged} <= new
    behavior = results[0].behavior
    assert behavior.kind == "response_rule" and "extracted" in behavior.tags
    provenance = handbook.provenance(behavior.id)[0]
    assert provenance.run_id == first and len(provenance.episodes) >= 8
    assert provenance.extractor == "memory_one_v1"
    second = store.save(scenarios.run(scenario, handbook=handbook))
    again = extract_run(handbook, second)
    assert all(r.merged for r in again)
    assert {p.run_id for p in handbook.provenance(behavior.id)} == {first, second}
    assert len(handbook) == len(new)
    refs = {(r.source, r.type) for r in handbook.graph.relations()}
    assert (f"behavior:{behavior.id}", "effective_against") in refs
    assert (f"behavior:{behavior.id}", "derived_from") in refs


@pytest.mark.parametrize("env", [
    "{id: coplay/ipd-v0, horizon: 12}",
    "{id: coplay/ipd-v0, horizon: 131, continuation_probability: 0.97}",
])
def test_each_round_s_context_is_what_the_seat_has_seen(db_url, monkeypatch, env) -> None:
    """The contexts the runner hands out, tracked as states from round to round, equal a
    plain reading of each game so far: co-player type, last round and phase."""
    handbook = Handbook.open(db_url)
    handbook.add(DEFECT_ALWAYS)
    scenario = scenarios.parse(f"""\
kind: simulation
name: context-check
env: {env}
{FOLLOWER_AMONG_OTHERS}run: {{episodes: 24, seed: 5, batch_size: 12}}
memory: {{k: 1}}
""")
    logs: dict[int, dict[str, list]] = defaultdict(lambda: {"codes": [], "joint": [], "active": []})
    hints, observe = BatchMemory.hints, BatchMemory.observe

    def logged_hints(self, seat):
        given = hints(self, seat)
        # Each game plays one variant of every context: rows are context * variants + variant.
        logs[id(self)]["codes"].append((self._round, seat, given.contexts // self._variants))
        return given

    def logged_observe(self, step, active):
        logs[id(self)]["joint"].append(step["joint_actions"].astype(int))
        logs[id(self)]["active"].append(active.copy())
        observe(self, step, active)

    monkeypatch.setattr(BatchMemory, "hints", logged_hints)
    monkeypatch.setattr(BatchMemory, "observe", logged_observe)
    scenarios.run(scenario, handbook=handbook)
    horizon = scenario.env.horizon
    checked = 0
    for log in logs.values():
        joint = np.array(log["joint"])  # (rounds, games)
        own_by_seat = [joint // 2, joint % 2]
        for t, seat, codes in log["codes"]:
            own, theirs = own_by_seat[seat], own_by_seat[1 - seat]
            for game in range(joint.shape[1]):
                if t and not log["active"][t - 1][game]:
                    assert codes[game] == CONTEXTS
                    continue
                # How the co-player answered each of the seat's moves so far.
                before, answer = own[: max(t - 1, 0), game], theirs[1:t, game] == 0
                counts = [np.sum(before == 0), np.sum(answer & (before == 0)),
                          np.sum(before == 1), np.sum(answer & (before == 1))]
                last = 1 + 2 * own[t - 1, game] + theirs[t - 1, game] if t else 0
                kind = coplayer_type(*map(np.array, counts), t)
                assert codes[game] == (kind * len(LAST_ROUND) + last) * 3 + phase_of(t, horizon)
                checked += 1
    assert checked >= 500 and len({seat for log in logs.values() for _, seat, _ in log["codes"]}) == 2


def test_coplayer_types_from_counts() -> None:
    # Rounds after the observer cooperated, co-player cooperations among them; the same
    # after the observer defected.
    cases = {
        (9, 9, 0, 0): "reciprocator",  # cooperated back, never tested: not yet a cooperator
        (6, 6, 3, 0): "reciprocator",  # answered a defection with defection
        (6, 6, 3, 3): "cooperator",  # cooperated on after being defected on
        (0, 0, 9, 9): "cooperator",
        (8, 8, 1, 1): "unresponsive",  # one defection forgiven is not yet a cooperator
        (5, 0, 4, 0): "defector",
        (5, 3, 4, 2): "unresponsive",  # cooperates about as often after either move
        (5, 3, 4, 1): "mixed",
        (0, 0, 0, 0): "unknown",
    }
    for counts, kind in cases.items():
        assert COPLAYER_TYPES[int(coplayer_type(*map(np.array, counts), 10))] == kind, counts
    assert coplayer_type(np.array(1), np.array(1), np.array(0), np.array(0), 1) == 0  # too soon


def test_run_command_updates_memory_and_memory_commands_inspect_it(
        monkeypatch, capsys, tmp_path, db_url) -> None:
    path = tmp_path / "memory.yaml"
    path.write_text(SCENARIO + "memory: {k: 2, extract: true}\n")
    code, out, err = coplay(monkeypatch, capsys, "run", str(path), "--db", db_url, "--no-plots")
    assert code == 0, err
    assert "memory: 0 behaviors shown, 0 used; extracted" in out
    code, out, err = coplay(monkeypatch, capsys, "run", str(path), "--db", db_url, "--no-plots")
    assert code == 0, err
    listed = json.loads(coplay(monkeypatch, capsys, "memory", "list", "--db", db_url, "--json")[1])
    assert listed and all(b["stats"]["shown"] > 0 for b in listed[:1])
    first = listed[0]["id"]
    shown = json.loads(coplay(monkeypatch, capsys, "memory", "show", str(first), "--db", db_url, "--json")[1])
    assert shown["versions"][0]["version"] == 1
    assert {p["run_id"] for p in shown["provenance"]} == {1, 2}
    hits = json.loads(coplay(monkeypatch, capsys, "memory", "search", "co-player cooperates",
                             "--entity", "coplayer:reciprocator", "--db", db_url, "--json")[1])
    assert hits and hits[0]["score"] > 0
    code, out, _ = coplay(monkeypatch, capsys, "memory", "graph", "--around", f"behavior:{first}",
                          "--png", str(tmp_path / "g.png"), "--db", db_url)
    assert code == 0 and (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    stats = json.loads(coplay(monkeypatch, capsys, "memory", "stats", "--db", db_url, "--json")[1])
    assert stats["behaviors"] == len(listed) and stats["uses"] > 0


def test_memory_commands_add_export_import_invalidate_prune(monkeypatch, capsys, tmp_path, db_url) -> None:
    code, out, err = coplay(monkeypatch, capsys, "memory", "add", "--db", db_url, "--name", "Probe",
                            "--instruction", "Defect once to test the co-player.", "--kind",
                            "action_macro", "--payload", '{"actions": [1, 0]}', "--trigger",
                            "coplayer:reciprocator", "--tag", "probe")
    assert (code, out.strip()) == (0, "added behavior 1: Probe"), err
    exported = tmp_path / "handbook.json"
    assert coplay(monkeypatch, capsys, "memory", "export", str(exported), "--db", db_url)[0] == 0
    other = f"sqlite:///{tmp_path / 'other.db'}"
    code, out, _ = coplay(monkeypatch, capsys, "memory", "import", str(exported), "--db", other)
    assert (code, out.strip()) == (0, f"imported 1 behaviors from {exported}")
    assert coplay(monkeypatch, capsys, "memory", "invalidate", "1", "--reason", "old", "--db", other)[0] == 0
    code, out, _ = coplay(monkeypatch, capsys, "memory", "prune", "--db", other)
    assert (code, out.strip()) == (0, "deleted 1 behaviors: [1]")
    code, out, err = coplay(monkeypatch, capsys, "memory", "show", "7", "--db", db_url)
    assert code == 2 and out == ""
    assert err == ("coplay: error: behavior: expected the id of a stored behavior, got 7. "
                   "Run `coplay memory list` to see them.\n")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    code, _, err = coplay(monkeypatch, capsys, "memory", "import", str(bad), "--db", db_url)
    assert code == 2 and err.startswith(f"coplay: error: {bad}: expected a coplay handbook export")
    code, _, err = coplay(monkeypatch, capsys, "memory", "add", "--db", db_url, "--name", "x",
                          "--instruction", "y", "--kind", "response_rule", "--payload", "{}")
    assert code == 2 and "payload: expected" in err


def test_db_commands_show_and_upgrade_an_old_schema(monkeypatch, capsys, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    migrations.upgrade(engine, "0001")
    engine.dispose()
    code, _, err = coplay(monkeypatch, capsys, "memory", "list", "--db", url)
    assert code == 2 and f"Back it up, then run: coplay db upgrade --db {url}" in err
    assert coplay(monkeypatch, capsys, "db", "current", "--db", url)[1].strip() == (
        f"schema revision 0001; newest {migrations.head()}")
    code, out, _ = coplay(monkeypatch, capsys, "db", "upgrade", "--db", url)
    assert (code, out.strip()) == (0, f"upgraded from revision 0001 to {migrations.head()}")
    assert coplay(monkeypatch, capsys, "memory", "list", "--db", url)[0] == 0


def test_a_hint_position_out_of_range_is_an_error_not_a_stray_write(db_url) -> None:
    handbook = Handbook.open(db_url)
    handbook.add(DEFECT_ALWAYS)
    memory = run_memory(handbook, memory_scenario().memory, scenario="memory-test",
                        env_id="coplay/ipd-v0", seed=0)
    batch = memory.batch(("follower", "allc"), (True, False), num_games=4, horizon=12)
    batch.hints(0)
    with pytest.raises(IndexError, match="hint_used must be -1"):
        batch.record(0, np.array([0, 1, 2, 0]))  # k is 2: positions 0 and 1
    batch.record(0, np.array([-1, 0, 1, 0]))
    assert batch._marks[0].sum() == 4


@pytest.mark.parametrize("env", [
    "{id: coplay/ipd-v0, horizon: 15, continuation_probability: 0.9}",
    "{id: coplay/stag-hunt-v0, horizon: 131}",
])
def test_the_matrix_fast_path_plays_and_tallies_as_the_general_path(db_url, env) -> None:
    """The step contract's general path (a tracker describes every game, one retrieval per
    step) and the matrix games' tabled fast path hand out the same hints: the same actions
    in every round of every game, and the same usage statistics."""
    handbook = Handbook.open(db_url)
    handbook.add_many([
        DEFECT_ALWAYS, OPEN_WITH_A_PROBE,
        NewBehavior(name="Reciprocate", instruction="Against a reciprocator, do what it did.",
                    kind="response_rule", payload={"cooperate": dict(zip(RULE_KEYS, (1, 1, 0, 1, 0)))},
                    trigger={"coplayer": "reciprocator"}),
        NewBehavior(name="Be patient", instruction="In the opening of the game, wait and see."),
    ])
    scenario = scenarios.parse(f"""\
kind: simulation
name: fast-and-general
env: {env}
{FOLLOWER_AMONG_OTHERS}run: {{episodes: 40, seed: 7, batch_size: 16, record_trajectories: true}}
memory: {{k: 3}}
""")
    # Twice: without evidence, then with the first run's effects steering the ranking.
    for _ in range(2):
        fast = scenarios.run(scenario, handbook=handbook)
        general = scenarios.run(scenario, handbook=handbook, general_memory=True)
        assert len(fast.pairings) == len(general.pairings) == 3
        for one, other in zip(fast.pairings, general.pairings):
            assert one.stats == other.stats
            assert np.array_equal(one.episodes.joint_actions, other.episodes.joint_actions)
        used = {u.behavior_id: u for u in general.memory_usage.usages}
        assert sum(u.uses for u in used.values()) > 0
        for usage in fast.memory_usage.usages:
            other = used.pop(usage.behavior_id)
            assert (usage.shown, usage.uses) == (other.shown, other.uses)
            assert usage.return_used == pytest.approx(other.return_used, rel=1e-5)
            assert usage.return_unused == pytest.approx(other.return_unused, rel=1e-5)
        assert not used
        assert ([e[:3] for e in fast.memory_usage.edges]
                == [e[:3] for e in general.memory_usage.edges])
        handbook.record(fast.memory_usage)
    assert handbook._mirror.effects


def test_the_general_path_hands_each_game_its_hints_best_first(db_url) -> None:
    handbook = Handbook.open(db_url)
    handbook.add_many([DEFECT_ALWAYS, OPEN_WITH_A_PROBE])
    # Without evidence or exploration, effect ranking keeps relevance's order.
    memory = run_memory(handbook, memory_scenario().memory,
                        scenario="memory-test", env_id="coplay/ipd-v0", seed=0, general=True)
    batch = memory.batch(("follower", "allc"), (True, False), num_games=3, horizon=12)
    hints = batch.hints(0)
    for game in range(3):
        hinted = hints.of_game(game)
        assert {h.behavior.name for h in hinted} == {DEFECT_ALWAYS.name, OPEN_WITH_A_PROBE.name}
        scores = [h.score for h in hinted]
        assert scores == sorted(scores, reverse=True) and scores[0] > 0
