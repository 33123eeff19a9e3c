"""Training as a user runs it: `coplay train`, `eval`, `training`, checkpoint agents in
`coplay run`, training-scenario errors, and every bundled training scenario."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

import envs
import scenarios
from memory import RunStore, TrainingStore
from scenarios import evaluation
from scenarios.runner import play_batch
from scenarios.schema import AgentSection, EnvSection, build_agent
from tests.conftest import write
from tests.test_cli import coplay

TINY_TRAINING = """\
kind: training
name: tiny_training
env: {id: coplay/ipd-v0, horizon: 10}
agents:
  tft: {kind: tit_for_tat}
  tabular: {kind: memory_one, table: uniform}
learners: {a: {}, b: {}}
pool: {learners: 0.5, tabular: 0.5}
train: {updates: 3, episodes_per_update: 8, policy: {hidden_size: 8, embed_size: 4}, seed: 0}
evaluate: {against: [tft, tabular], episodes: 4}
"""
PNG = b"\x89PNG\r\n\x1a\n"


def without_timing(points):
    return [(p.update, p.learner, {k: v for k, v in p.metrics.items() if "seconds" not in k})
            for p in points]


def test_train_checkpoints_stores_curves_evaluates_and_plots(monkeypatch, capsys, tmp_path, db_url):
    scenario = write(tmp_path, "t.yaml", TINY_TRAINING)
    out = tmp_path / "out"
    code, stdout, stderr = coplay(monkeypatch, capsys, "train", str(scenario), "--db", db_url,
                                  "--out", str(out))
    assert code == 0, stderr
    assert (out / "checkpoint.pt").is_file()
    assert "learning curve" in stdout and "evaluation (run 1)" in stdout
    assert "tft" in stdout and "tabular" in stdout
    for png in ("learning_curves.png", "evaluation/heatmap.png", "evaluation/beliefs_by_round.png"):
        assert (out / png).read_bytes()[:8] == PNG
    points = TrainingStore(db_url).curve(1)
    assert [(p.update, p.learner) for p in points] == [(u, n) for u in (1, 2, 3) for n in ("a", "b")]
    assert {"cooperation_vs_learners", "reward_vs_tabular", "entropy"} <= set(points[0].metrics)
    evaluation = RunStore(db_url).pairings(1)
    assert [p.agents for p in evaluation] == [("a", "tft"), ("a", "tabular"), ("b", "tft"), ("b", "tabular")]
    # The learners' beliefs about their co-players are stored per round; scripted ones have none.
    assert all(len(p.belief_by_round) == 10 and p.belief_by_round[0][1] is None for p in evaluation)
    code, stdout, _ = coplay(monkeypatch, capsys, "training", "list", "--db", db_url)
    assert code == 0 and "tiny_training" in stdout
    code, stdout, _ = coplay(monkeypatch, capsys, "training", "show", "1", "--db", db_url,
                             "--plots", str(tmp_path / "again"))
    assert code == 0 and "learning curve" in stdout
    assert (tmp_path / "again" / "learning_curves.png").read_bytes()[:8] == PNG


def test_resumed_training_stores_the_same_curve_as_one_run(monkeypatch, capsys, tmp_path, db_url):
    scenario = write(tmp_path, "t.yaml", TINY_TRAINING)
    args = ["train", str(scenario), "--db", db_url, "--no-plots", "--checkpoint-every", "1"]
    assert coplay(monkeypatch, capsys, *args, "--out", str(tmp_path / "straight"), "--updates", "4")[0] == 0
    assert coplay(monkeypatch, capsys, *args, "--out", str(tmp_path / "split"), "--updates", "2")[0] == 0
    code, _, stderr = coplay(monkeypatch, capsys, *args, "--out", str(tmp_path / "split"), "--updates", "4")
    assert code == 2 and "Pass --resume" in stderr
    code, _, stderr = coplay(monkeypatch, capsys, *args, "--out", str(tmp_path / "split"),
                             "--updates", "4", "--resume")
    assert code == 0, stderr
    store = TrainingStore(db_url)
    assert without_timing(store.curve(2)) == without_timing(store.curve(1))
    assert len(store.list()) == 2  # the resumed run continued its own record


def test_train_time_limit_and_overrides(monkeypatch, capsys, tmp_path, db_url):
    scenario = write(tmp_path, "t.yaml", TINY_TRAINING)
    code, _, stderr = coplay(monkeypatch, capsys, "train", str(scenario), "--db", db_url,
                             "--out", str(tmp_path / "o"), "--no-plots", "--minutes", "0",
                             "--set", "train.algorithm=ppo")
    assert code == 0, stderr
    assert TrainingStore(db_url).curve(1) == []  # a zero budget trains nothing, still saves
    assert TrainingStore(db_url).run(1).scenario_name == "tiny_training"
    code, _, stderr = coplay(monkeypatch, capsys, "train", str(scenario), "--db", db_url,
                             "--out", str(tmp_path / "p"), "--set", "train.gamma=2")
    assert code == 2
    assert stderr == f"coplay: error: {scenario}: train.gamma: expected less than or equal to 1, got 2.\n"


@pytest.fixture
def trained(monkeypatch, capsys, tmp_path, db_url):
    scenario = write(tmp_path, "t.yaml", TINY_TRAINING)
    code, _, stderr = coplay(monkeypatch, capsys, "train", str(scenario), "--db", db_url,
                             "--out", str(tmp_path / "out"), "--no-plots")
    assert code == 0, stderr
    return tmp_path / "out" / "checkpoint.pt"


def test_eval_against_kinds_populations_and_plugins(monkeypatch, capsys, tmp_path, db_url, trained):
    name = "coplay_test_defector"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent("""
        import numpy as np
        class Defector:
            def reset(self, num_games, rng): pass
            def act(self, observations, hints=None):
                return np.ones(observations.shape[0], dtype=np.int64)
        def make(context):
            return Defector()
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        code, stdout, stderr = coplay(
            monkeypatch, capsys, "eval", str(trained), "--learner", "a", "--against", "tit_for_tat",
            "--against", f"{name}:make", "--against", "classics", "--episodes", "5",
            "--db", db_url, "--out", str(tmp_path / "eval"), "--record-trajectories")
    finally:
        sys.modules.pop(name, None)
    assert code == 0, stderr
    pairings = RunStore(db_url).pairings(2)
    against = [p.agents[1] for p in pairings]
    assert against[:2] == ["tit_for_tat", "make"] and "random_tabular" in against
    assert all(p.agents[0] == "a" for p in pairings)
    make = pairings[1]
    assert make.cooperations[1] == 0 and make.episodes == 5
    episodes = RunStore(db_url).episodes(2)
    assert all(e.beliefs[0] is not None and len(e.beliefs[0]) == e.length for e in episodes)
    assert all(e.beliefs[1] is None for e in episodes)
    assert (tmp_path / "eval" / "beliefs_by_round.png").read_bytes()[:8] == PNG
    assert "stored run 2" in stdout


def test_eval_greedy_learners_play_the_same_game_every_time(monkeypatch, capsys, tmp_path, db_url, trained):
    # Tit-for-tat and a learner taking its likelier action are both deterministic; sampled,
    # the barely trained learner's games differ.
    runs = []
    for greedy in (True, False):
        code, stdout, stderr = coplay(
            monkeypatch, capsys, "eval", str(trained), "--learner", "a", "--against", "tit_for_tat",
            "--episodes", "6", "--db", db_url, "--no-plots", "--record-trajectories",
            *(["--greedy"] if greedy else []))
        assert code == 0, stderr
        assert ("(greedy)" in stdout) == greedy
        runs.append(int(stdout.rpartition("stored run ")[2].split()[0]))
    store = RunStore(db_url)
    greedy_games, sampled_games = ({e.joint_actions for e in store.episodes(run)} for run in runs)
    assert len(greedy_games) == 1 and len(sampled_games) > 1


@pytest.mark.parametrize("path", evaluation.bundled_populations(), ids=lambda path: path.stem)
def test_every_bundled_population_loads_and_plays_against_a_defector(path):
    env = EnvSection(id="coplay/ipd-v0")
    config = envs.make_config(env.id, **env.settings())
    defector = build_agent(env, AgentSection(kind="always_defect"), "defector")
    for name, section in evaluation.population_agents(path.stem).items():
        log = play_batch(config, build_agent(env, section, name), defector, 4, np.random.default_rng(0))
        assert (log.lengths == config.horizon).all(), name
        assert log.returns.shape == (4, 2) and np.isfinite(log.returns).all(), name


@pytest.mark.parametrize(("args", "message"), [
    (["--against", "no_such_thing"], "--against: expected a population file, a bundled population"),
    (["--learner", "zed"], "--learner: expected one of ['a', 'b'], got 'zed'."),
    (["--against", "memory_one"], "--against: agents.memory_one.params: expected parameters"),
])
def test_eval_errors_name_the_option(monkeypatch, capsys, db_url, trained, args, message):
    code, _, stderr = coplay(monkeypatch, capsys, "eval", str(trained), "--db", db_url, *args)
    assert code == 2
    assert stderr.startswith(f"coplay: error: {message}")


def test_run_seats_a_checkpoint_agent(monkeypatch, capsys, tmp_path, db_url, trained):
    scenario = write(tmp_path, "s.yaml", f"""\
kind: simulation
name: with_learner
env: {{id: coplay/ipd-v0, horizon: 10}}
agents:
  learner: {{kind: checkpoint, path: {trained}, learner: b, greedy: true}}
  tft: {{kind: tit_for_tat}}
matchups: {{mode: round_robin, players: [learner, tft]}}
run: {{episodes: 6}}
""")
    code, stdout, stderr = coplay(monkeypatch, capsys, "run", str(scenario), "--db", db_url, "--no-plots")
    assert code == 0, stderr
    assert "learner" in stdout and "tft" in stdout


BAD = [
    ("pool: {learners: 0.5, ghost: 0.5}",
     "pool.ghost: expected 'learners' or an agent defined under agents (['tabular', 'tft']), got 'ghost'."),
    ("learners: {tft: {}}",
     "learners.tft: expected a name not used under agents nor 'learners', got 'tft'."),
    ("train: {algorithm: sarsa}", "train.algorithm: expected 'a2c', 'ppo' or 'ppi', got 'sarsa'."),
    ("train: {algorithm: a2c, ppo: {epochs: 2}}", "train.ppo: expected no PPO settings with algorithm 'a2c'"),
    ("learners: {a: {init: {path: nowhere.pt}}}",
     "learners.a.init.path: expected an existing checkpoint file, got 'nowhere.pt'."),
    ("train: {policy: {backbone: transformer, hidden_size: 6, heads: 4}}",
     "train.policy.hidden_size: expected a multiple of heads (4), got 6."),
    ("train: {algorithm: ppi, ppi: {replay_phases: 2, recent_phases: 2}}",
     "train.ppi.recent_phases: expected fewer than replay_phases (2), or 0, got 2."),
    ("train: {algorithm: ppi, ppi: {depth: 0}}",
     "train.ppi.depth: expected a positive integer or 'end', got 0."),
    ("train: {adam_eps: 0.1}", "train.adam_eps: expected a known field, got unknown field 'adam_eps'."),
]


@pytest.mark.parametrize(("replacement", "message"), BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_bad_training_scenarios_fail_with_one_line(monkeypatch, capsys, tmp_path, replacement, message):
    key = replacement.split(":")[0]
    lines = [line for line in TINY_TRAINING.splitlines() if not line.startswith(f"{key}:")]
    scenario = write(tmp_path, "bad.yaml", "\n".join([*lines, replacement]) + "\n")
    code, _, stderr = coplay(monkeypatch, capsys, "scenarios", "validate", str(scenario))
    assert code == 2
    assert stderr.startswith(f"coplay: error: {scenario}: {message}"), stderr


TINY_OVERRIDES = [
    "--set", "train.episodes_per_update=8", "--set", "train.updates=1", "--set", "env.horizon=6",
    "--set", "train.policy={hidden_size: 8, embed_size: 4, backbone: gru}",
    "--set", "evaluate.episodes=2", "--no-plots",
]


@pytest.mark.parametrize("path", scenarios.bundled("training"), ids=lambda p: p.stem)
def test_every_bundled_training_scenario_loads(path):
    scenario = scenarios.load(path, build=False)
    assert scenario.name == path.stem
    assert scenario.description


@pytest.mark.parametrize("name", [p.stem for p in scenarios.bundled("training")
                                  if not p.stem.startswith("mechanism")])
def test_every_bundled_training_scenario_trains(monkeypatch, capsys, tmp_path, db_url, name):
    monkeypatch.chdir(tmp_path)
    overrides = list(TINY_OVERRIDES)
    if scenarios.load(name, build=False).train.algorithm == "ppi":
        overrides += ["--set", "train.ppi={pretrain_episodes: 16, pretrain_steps: 1, fit_steps: 1, "
                               "minibatch: 4, depth: 2, samples: 1}"]
    code, _, stderr = coplay(monkeypatch, capsys, "train", name, "--db", db_url, *overrides)
    assert code == 0, stderr
    assert (tmp_path / "coplay-train" / name / "checkpoint.pt").is_file()


def test_mechanism_steps_run_in_order(monkeypatch, capsys, tmp_path, db_url):
    # Each step seats or starts from the previous step's checkpoint, by its default path.
    monkeypatch.chdir(tmp_path)
    code, _, stderr = coplay(monkeypatch, capsys, "train", "mechanism_2_extortion", "--db", db_url)
    assert code == 2 and "mechanism_1_in_context_learner/checkpoint.pt" in stderr
    for step in ("mechanism_1_in_context_learner", "mechanism_2_extortion", "mechanism_3_mutual_extortion"):
        code, _, stderr = coplay(monkeypatch, capsys, "train", step, "--db", db_url, *TINY_OVERRIDES)
        assert code == 0, f"{step}: {stderr}"
    assert len(TrainingStore(db_url).list()) == 3
