"""Scenario files and the runner: every bundled scenario loads through the one loader, bad
files and overrides fail with one line, simulations run, results are right for strategies whose
outcome is known, and seeds reproduce runs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import scenarios
from coplay.errors import ConfigError, ScenarioError
from memory import RunStore
from memory.handbook import Handbook
from scenarios import Override, loading
from scenarios.runner import jobs
from tests.conftest import TINY_SCENARIO, write
from tests.test_cli import coplay

BUNDLED = scenarios.bundled("simulation")


@pytest.mark.parametrize("path", scenarios.bundled(), ids=lambda p: p.stem)
def test_every_bundled_scenario_loads_through_the_one_loader_and_reports_its_kind(path) -> None:
    # Not built: some seat checkpoints that earlier bundled scenarios write.
    scenario = scenarios.load(path, build=False)
    assert scenario.kind in scenarios.KINDS
    assert loading.FOLDERS[scenario.kind] == path.parent
    assert type(scenario) is loading.model(scenario.kind)
    assert scenario.name


def test_each_kind_is_its_models_discriminator() -> None:
    for kind in scenarios.KINDS:
        assert loading.model(kind).model_fields["kind"].default == kind


def test_bundled_names_are_unique_and_resolve_across_folders() -> None:
    paths = scenarios.bundled()
    names = [p.stem for p in paths]
    assert len(names) == len(set(names))
    assert {p.parent for p in paths} == set(loading.FOLDERS.values())
    for path in paths:
        assert scenarios.resolve(path.stem) == path


def test_there_are_at_least_three_bundled_scenarios() -> None:
    assert len(BUNDLED) >= 3
    modes = {scenarios.load(p).matchups.mode for p in BUNDLED}
    assert modes == {"round_robin", "population", "solo"}


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.stem)
def test_every_bundled_scenario_loads_and_runs(path, db_url) -> None:
    scenario = scenarios.load(path)
    short = scenario.model_copy(update={"run": scenario.run.model_copy(update={"episodes": 6})})
    handbook = Handbook.open(db_url) if scenario.memory is not None else None
    result = scenarios.run(short, handbook=handbook)
    grid = scenario.env.is_grid
    horizon = scenario.env.model_extra["max_steps"] if grid else scenario.env.horizon
    per_job = {}
    for outcome in result.pairings:
        stats = outcome.stats
        per_job[stats.agents[0]] = per_job.get(stats.agents[0], 0) + stats.episodes
        assert 0 < stats.steps <= stats.episodes * horizon
        assert np.all(outcome.episodes.lengths <= horizon)
        if grid:
            assert 0 <= stats.metrics["successes"] <= stats.episodes
            continue
        for seat in (0, 1):
            assert 0.0 <= stats.cooperation_rate(seat) <= 1.0
        assert len(stats.cooperation_by_round) == outcome.episodes.lengths.max()
    assert sum(per_job.values()) == 6 * len(jobs(short))


def test_bundled_scenarios_resolve_by_name() -> None:
    assert scenarios.resolve("round_robin") == scenarios.BUNDLED_DIR / "round_robin.yaml"
    assert scenarios.load("round_robin").name == "round-robin"


def test_round_robin_meets_every_distinct_pair_once(tiny_scenario) -> None:
    pairs = [(j.seat_0, j.seat_1) for j in jobs(tiny_scenario)]
    assert pairs == [("tft", ("alld",)), ("tft", ("tabular",)), ("alld", ("tabular",))]
    with_self = tiny_scenario.model_copy(update={
        "matchups": tiny_scenario.matchups.model_copy(update={"self_play": True})})
    assert len(jobs(with_self)) == 6


def test_known_outcomes_of_deterministic_strategies(tiny_scenario) -> None:
    result = scenarios.run(tiny_scenario)
    tft_vs_alld = next(o.stats for o in result.pairings if o.stats.agents == ("tft", "alld"))
    # Tit for tat is exploited once (S=-1, T=2) and then both defect (P=0) for 9 rounds.
    assert tft_vs_alld.episodes == 7
    assert tft_vs_alld.steps == 70
    assert tft_vs_alld.return_per_step(0) == pytest.approx(-1 / 10)
    assert tft_vs_alld.return_per_step(1) == pytest.approx(2 / 10)
    assert tft_vs_alld.cooperation_rate(0) == pytest.approx(1 / 10)
    assert tft_vs_alld.cooperation_rate(1) == 0.0
    by_round = np.asarray(tft_vs_alld.cooperation_by_round)
    assert by_round[:, 0].tolist() == [1.0] + [0.0] * 9
    # Seen from tit for tat, round 1 ends CD and rounds 2-9 end DD, each followed by a
    # defection; seen from always-defect, DC then DD.
    assert tft_vs_alld.responses == [
        [[0, 0], [7, 0], [0, 0], [56, 0]],
        [[0, 0], [0, 0], [7, 0], [56, 0]],
    ]
    assert tft_vs_alld.cooperation_after(0, "CD") == 0.0
    assert tft_vs_alld.cooperation_after(0, "CC") is None


def test_responses_count_each_seats_next_move_after_each_joint_outcome(tiny_scenario) -> None:
    recorded = tiny_scenario.model_copy(update={
        "run": tiny_scenario.run.model_copy(update={"record_trajectories": True})})
    result = scenarios.run(recorded)
    outcome = next(o for o in result.pairings if o.stats.agents == ("tft", "tabular"))
    expected = [[[0, 0] for _ in range(4)] for _ in range(2)]
    for episode, length in zip(outcome.episodes.joint_actions, outcome.episodes.lengths, strict=True):
        moves = [(int(j) // 2, int(j) % 2) for j in episode[:length]]
        for (a0, a1), (n0, n1) in itertools.pairwise(moves):
            for seat, own, theirs, cooperates in ((0, a0, a1, n0 == 0), (1, a1, a0, n1 == 0)):
                counts = expected[seat][2 * own + theirs]
                counts[0] += 1
                counts[1] += cooperates
    assert outcome.stats.responses == expected
    # Tit for tat opens by cooperating, then cooperates exactly after rounds its co-player
    # cooperated in.
    assert outcome.stats.memory_one(0) == [1, 1, 0, 1, 0]


def test_tit_for_tat_mirrors_its_co_player_one_round_later(tiny_scenario) -> None:
    recorded = tiny_scenario.model_copy(update={
        "run": tiny_scenario.run.model_copy(update={"record_trajectories": True})})
    result = scenarios.run(recorded)
    outcome = next(o for o in result.pairings if o.stats.agents == ("tft", "tabular"))
    joint = outcome.episodes.joint_actions
    tft, tabular = joint // 2, joint % 2
    assert np.all(tft[:, 0] == 0)
    assert np.array_equal(tft[:, 1:], tabular[:, :-1])
    assert np.array_equal(outcome.episodes.cooperations[:, 0], (tft == 0).sum(axis=1))


def test_population_draws_co_players_by_weight() -> None:
    scenario = scenarios.parse("""
kind: simulation
name: pop
env: {id: coplay/ipd-v0, horizon: 5}
agents:
  tft: {kind: tit_for_tat}
  allc: {kind: always_cooperate}
  alld: {kind: always_defect}
matchups:
  mode: population
  focal: [tft]
  background: [{agent: allc, weight: 3}, {agent: alld, weight: 1}]
run: {episodes: 4000, seed: 1}
""")
    result = scenarios.run(scenario)
    counts = {o.stats.agents[1]: o.stats.episodes for o in result.pairings}
    assert sum(counts.values()) == 4000
    assert counts["allc"] / 4000 == pytest.approx(0.75, abs=0.03)
    roles = {o.stats.roles for o in result.pairings}
    assert roles == {("focal", "background")}
    allc = next(o.stats for o in result.pairings if o.stats.agents[1] == "allc")
    assert allc.return_per_step(0) == 1.0


def test_random_horizon_episodes_vary_in_length() -> None:
    scenario = scenarios.load("focal_vs_mixed")
    short = scenario.model_copy(update={"run": scenario.run.model_copy(update={"episodes": 200})})
    lengths = np.concatenate([o.episodes.lengths for o in scenarios.run(short).pairings])
    assert lengths.min() < lengths.max() <= scenario.env.horizon
    # Continuation 0.98 capped at 200 rounds: mean length (1 - 0.98**200) / 0.02 ~ 49.1.
    assert lengths.mean() == pytest.approx((1 - 0.98**200) / 0.02, rel=0.15)


def test_same_seed_same_results_other_seed_other_results(tiny_scenario) -> None:
    def summary(scenario):
        return [(o.stats, o.episodes.returns.tolist()) for o in scenarios.run(scenario).pairings]

    assert summary(tiny_scenario) == summary(tiny_scenario)
    reseeded = tiny_scenario.model_copy(update={
        "run": tiny_scenario.run.model_copy(update={"seed": 4})})
    assert summary(reseeded) != summary(tiny_scenario)


def test_scenario_round_trips_through_its_stored_json(tiny_scenario) -> None:
    result = scenarios.run(tiny_scenario)
    again = scenarios.Scenario.model_validate(result.scenario)
    assert again == tiny_scenario


BASE = """\
kind: simulation
name: t
env: {id: coplay/ipd-v0}
agents:
  a: {kind: tit_for_tat}
  b: {kind: always_defect}
matchups: {mode: round_robin, players: [a, b]}
"""

# Each bad input and the one line it must produce (after "FILE: ").
BAD_INPUTS = {
    "malformed YAML": (
        "name: t\nenv: {id: coplay/ipd-v0\nagents: [\n",
        "line 3: expected valid YAML, got expected ',' or '}', but got ':'.",
    ),
    "not a mapping": (
        "- a\n- b\n",
        "expected a mapping with kind, name, env and the sections of its kind, got list.",
    ),
    "missing kind": (
        BASE.removeprefix("kind: simulation\n"),
        "kind: expected one of ['simulation', 'training', 'exploration', 'reuse'], got nothing. "
        "Add a first line `kind: simulation` (or training, exploration, reuse) saying what the "
        "file describes.",
    ),
    "unknown kind": (
        BASE.replace("kind: simulation", "kind: tournament"),
        "kind: expected one of ['simulation', 'training', 'exploration', 'reuse'], got "
        "'tournament'.",
    ),
    "unknown env": (
        BASE.replace("coplay/ipd-v0", "coplay/nope-v0"),
        "env.id: expected one of ['coplay/chicken-v0', 'coplay/ipd-v0', 'coplay/stag-hunt-v0'], "
        "got 'coplay/nope-v0'. Run `coplay envs` to list the registered environments.",
    ),
    "unknown agent kind": (
        BASE.replace("kind: always_defect", "kind: nope"),
        "agents.b.kind: expected one of ['alternator', 'always_cooperate', 'always_defect', "
        "'checkpoint', 'cycler_ccd', 'extortionate_zd', 'generous_tit_for_tat', 'gradual', "
        "'grid_checkpoint', 'grim_trigger', 'handbook_follower', 'hard_majority', "
        "'hard_tit_for_tat', 'joss', 'macro_follower', 'memory_one', 'plugin', 'prober', "
        "'random', 'random_actions', 'soft_majority', 'suspicious_tit_for_tat', 'tit_for_tat', "
        "'tit_for_two_tats', 'two_tits_for_tat', 'win_stay_lose_shift'], got 'nope'. Run "
        "`coplay agents` to list agent kinds, or use kind: plugin.",
    ),
    "wrong payoff shape": (
        BASE.replace("{id: coplay/ipd-v0}", "{id: coplay/ipd-v0, payoffs: [1, 2, 3]}"),
        "env.payoffs: expected a 2x2 row-player table or a 2x2x2 table [a0][a1] = [r0, r1], "
        "got a table of shape (3,). Give 2 actions per player: cooperate first, then defect.",
    ),
    "payoff not a number": (
        BASE.replace("{id: coplay/ipd-v0}", "{id: coplay/ipd-v0, payoffs: {R: 1, S: x, T: 2, P: 0}}"),
        "env.payoffs.S: expected a finite number, got 'x'.",
    ),
    "probability above one": (
        BASE.replace("{kind: always_defect}", "{kind: memory_one, table: [1, 0.5, 1.5, 0, 0]}"),
        "agents.b.table: expected probabilities in [0, 1], got [1, 0.5, 1.5, 0, 0]. "
        "Each entry is the probability of cooperating (0 = always defect).",
    ),
    "probability below zero": (
        BASE.replace("{kind: always_defect}", "{kind: random, p_cooperate: -0.1}"),
        "agents.b.p_cooperate: expected probabilities in [0, 1], got [-0.1, -0.1, -0.1, -0.1, "
        "-0.1]. Each entry is the probability of cooperating (0 = always defect).",
    ),
    "unimportable plug-in": (
        BASE.replace("{kind: always_defect}", '{kind: plugin, factory: "no_such_mod:make"}'),
        "agents.b.factory: expected an importable module 'no_such_mod', got No module named "
        "'no_such_mod'. Install the package or add its folder to PYTHONPATH.",
    ),
    "unknown agent parameter": (
        BASE.replace("{kind: tit_for_tat}", "{kind: random, p: 0.3}"),
        "agents.a.params: expected parameters among ['p_cooperate'] for kind 'random', got ['p'].",
    ),
    "undefined player": (
        BASE.replace("players: [a, b]", "players: [a, c]"),
        "matchups.players: expected an agent defined under agents (['a', 'b']), got 'c'.",
    ),
    "unknown matchup mode": (
        BASE.replace("mode: round_robin", "mode: league"),
        "matchups.mode: expected one of 'round_robin', 'population', 'cross_play', 'solo', got 'league'.",
    ),
    "misspelt field": (
        BASE + "rnu: {episodes: 3}\n",
        "rnu: expected a known field, got unknown field 'rnu'. Check the spelling against the "
        "bundled scenarios (`coplay scenarios list`).",
    ),
    "missing section": (
        "kind: simulation\nname: t\nenv: {id: coplay/ipd-v0}\nagents: {a: {kind: tit_for_tat}}\n",
        "matchups: expected this field, got nothing.",
    ),
    "continuation probability of one": (
        BASE.replace("{id: coplay/ipd-v0}", "{id: coplay/ipd-v0, continuation_probability: 1}"),
        "env.continuation_probability: expected less than 1, got 1.",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_scenarios_fail_with_one_pinned_line(case: str) -> None:
    text, message = BAD_INPUTS[case]
    with pytest.raises(ScenarioError) as caught:
        scenarios.parse(text, source="bad.yaml")
    assert str(caught.value) == f"bad.yaml: {message}"
    assert "\n" not in str(caught.value)


PLUGIN_MODULE = '''
import numpy as np

class Alternator:
    """Cooperates on odd rounds, defects on even ones: a strategy coplay does not ship."""

    def __init__(self, start):
        self.start = start

    def reset(self, num_games, rng):
        self.round = np.zeros(num_games, dtype=np.int64)

    def act(self, observations, hints=None):
        actions = (self.round + self.start) % 2
        self.round += 1
        return actions

def make(context, start=0):
    assert context.env_id == "coplay/ipd-v0"
    return Alternator(start)
'''


def test_a_plug_in_named_in_a_scenario_plays(tmp_path, monkeypatch) -> None:
    (tmp_path / "my_strategies.py").write_text(PLUGIN_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    scenario = scenarios.parse("""
kind: simulation
name: plug
env: {id: coplay/ipd-v0, horizon: 6}
agents:
  alternator: {kind: plugin, factory: "my_strategies:make", params: {start: 1}}
  allc: {kind: always_cooperate}
matchups: {mode: round_robin, players: [alternator, allc]}
run: {episodes: 3, seed: 0}
""")
    (outcome,) = scenarios.run(scenario).pairings
    # start=1: defect, cooperate, defect, ... against an unconditional cooperator.
    assert outcome.stats.cooperation_rate(0) == 0.5
    assert outcome.stats.return_per_step(0) == pytest.approx((2 + 1) / 2)
    assert outcome.stats.return_per_step(1) == pytest.approx((-1 + 1) / 2)


# --- overrides: set in the file's mapping, then validated with it ---------------------------

def test_overrides_are_validated_with_the_file_and_later_ones_win() -> None:
    scenario = scenarios.parse(BASE, source="t.yaml", overrides=[
        Override.parse("run.seed=1"), Override.parse("run.seed=2"),
        Override.parse("matchups.self_play=true"),
        Override.parse("env.payoffs={R: 3, S: 0, T: 5, P: 1}"),
        Override("run.episodes", 5, option="--episodes"),
    ])
    assert (scenario.run.seed, scenario.run.episodes, scenario.run.batch_size) == (2, 5, 1024)
    assert scenario.matchups.self_play is True
    assert scenario.env.payoffs == {"R": 3, "S": 0, "T": 5, "P": 1}
    assert scenario.agents["b"].kind == "always_defect"  # the rest is the file's


BAD_OVERRIDES = {
    "unknown field": (
        "run.episdoes=3",
        "--set run.episdoes: expected a known field, got unknown field 'episdoes'. Check the "
        "spelling against the bundled scenarios (`coplay scenarios list`).",
    ),
    "unknown section": (
        "rnu.episodes=3",
        "--set rnu.episodes: expected a known field, got unknown field 'rnu'. Check the "
        "spelling against the bundled scenarios (`coplay scenarios list`).",
    ),
    "bad value": (
        "run.episodes=many",
        "run.episodes: expected a valid integer, unable to parse string as an integer, got 'many'.",
    ),
    "value a check rejects": (
        "matchups.players=[a, c]",
        "matchups.players: expected an agent defined under agents (['a', 'b']), got 'c'.",
    ),
    "field inside a value": (
        "env.id.version=1",
        "--set env.id.version: expected a mapping at env.id to set a field in, "
        "got 'coplay/ipd-v0'.",
    ),
    "unknown kind": (
        "kind=league",
        "kind: expected one of ['simulation', 'training', 'exploration', 'reuse'], got 'league'.",
    ),
}


@pytest.mark.parametrize("case", list(BAD_OVERRIDES), ids=list(BAD_OVERRIDES))
def test_bad_overrides_fail_like_the_files_own_fields(case: str) -> None:
    setting, message = BAD_OVERRIDES[case]
    with pytest.raises(ScenarioError) as caught:
        scenarios.parse(BASE, source="t.yaml", overrides=[Override.parse(setting)])
    assert str(caught.value) == f"t.yaml: {message}"


@pytest.mark.parametrize(("text", "message"), [
    ("run.episodes",
     "--set: expected KEY=VALUE with a dotted KEY, e.g. train.seed=3, got 'run.episodes'."),
    ("run..episodes=3",
     "--set: expected KEY=VALUE with a dotted KEY, e.g. train.seed=3, got 'run..episodes=3'."),
    ("run.episodes=[3",
     "--set run.episodes: expected a YAML value, got expected ',' or ']', but got '<stream end>'."),
])
def test_malformed_set_fails_naming_the_option(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Override.parse(text)
    assert str(caught.value) == message


# --- the commands take only their kinds, and --set -------------------------------------------

TRAINING_FILE = loading.FOLDERS["training"] / "mixed_pool.yaml"
SIMULATION_FILE = loading.FOLDERS["simulation"] / "round_robin.yaml"


@pytest.mark.parametrize(("args", "message"), [
    (["run", "mixed_pool"],
     (f"{TRAINING_FILE}: kind: expected 'simulation' for `coplay run`, got 'training'. "
      "Use `coplay train` for a training scenario.")),
    (["train", "round_robin"],
     (f"{SIMULATION_FILE}: kind: expected 'training' or 'exploration' for `coplay train`, "
      "got 'simulation'. Use `coplay run` for a simulation scenario.")),
    (["train", "mixed_pool", "--set", "train.gama=0.5"],
     (f"{TRAINING_FILE}: --set train.gama: expected a known field, got unknown field 'gama'. "
      "Check the spelling against the bundled scenarios (`coplay scenarios list`).")),
    (["train", "mixed_pool", "--set", "train.updates=-1"],
     f"{TRAINING_FILE}: train.updates: expected greater than or equal to 1, got -1."),
    (["run", "round_robin", "--set", "episodes=3"],
     (f"{SIMULATION_FILE}: --set episodes: expected a known field, got unknown field "
      "'episodes'. Check the spelling against the bundled scenarios (`coplay scenarios list`).")),
    (["run", "round_robin", "--set", "run.episodes"],
     "--set: expected KEY=VALUE with a dotted KEY, e.g. train.seed=3, got 'run.episodes'."),
])
def test_commands_refuse_other_kinds_and_bad_overrides_in_one_line(monkeypatch, capsys, tmp_path,
                                                                    args, message) -> None:
    code, stdout, stderr = coplay(monkeypatch, capsys, *args, "--db", f"sqlite:///{tmp_path}/s.db")
    assert code == 2
    assert stderr == f"coplay: error: {message}\n"
    assert "Traceback" not in stdout + stderr
    assert not (tmp_path / "s.db").exists()  # refused before the store is opened


def test_a_file_without_kind_is_refused_by_run_in_one_line(monkeypatch, capsys, tmp_path) -> None:
    path = write(tmp_path, "old.yaml", TINY_SCENARIO.removeprefix("kind: simulation\n"))
    code, _, stderr = coplay(monkeypatch, capsys, "run", str(path),
                             "--db", f"sqlite:///{tmp_path}/s.db")
    assert code == 2
    assert stderr == (f"coplay: error: {path}: kind: expected one of ['simulation', 'training', "
                      "'exploration', 'reuse'], got nothing. Add a first line `kind: simulation` "
                      "(or training, exploration, reuse) saying what the file describes.\n")


def test_run_applies_set_and_options_before_validating_once(monkeypatch, capsys, tmp_path, db_url):
    path = write(tmp_path, "tiny.yaml", TINY_SCENARIO)
    code, _, stderr = coplay(monkeypatch, capsys, "run", str(path), "--db", db_url, "--no-plots",
                             "--set", "env.horizon=4", "--set", "run.episodes=9", "--episodes", "2")
    assert code == 0, stderr
    store = RunStore(db_url)
    assert store.run(1).episodes == 3 * 2  # three pairings; --episodes wins over --set
    assert store.scenario(1)["env"]["horizon"] == 4


def test_loading_a_simulation_imports_no_training_model() -> None:
    # The training kinds' settings import torch; a `coplay run` should not pay for it.
    import subprocess
    import sys

    code = ("import sys, scenarios; scenarios.load('round_robin'); "
            "print(sorted(m for m in ('torch', 'scenarios.training', 'scenarios.exploration') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_set_value_with_a_repeated_key_is_refused() -> None:
    from scenarios.loading import Override

    with pytest.raises(ConfigError, match=r"--set train.policy: .*got key 'a' again"):
        Override.parse("train.policy={a: 1, a: 2}")
