"""The registry of every env id, conformance of every env, and the iterated matrix games:
the batched core and the PettingZoo facade (grid tasks' own behaviour: tests/test_grid.py)."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import supersuit
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, render_test
from pettingzoo.utils.conversions import parallel_to_aec

import envs
from coplay.errors import ConfigError
from envs import MatrixGameBatch, MatrixGameConfig, Payoffs

IPD = "coplay/ipd-v0"
P0, P1 = envs.PLAYERS
C, D = envs.COOPERATE, envs.DEFECT
ALL_IDS = [s.env_id for s in envs.registered()]
ENV_IDS = [s.env_id for s in envs.registered("matrix")]
# A fixed horizon and a random one (mean length 5, capped at 30), for every registered game.
HORIZONS = {
    "fixed": {"horizon": 25},
    "random": {"horizon": 30, "continuation_probability": 0.8},
}
CLASSIC = {"R": 3, "S": 0, "T": 5, "P": 1}


def _play_facade(env, seed, actions):
    """Reset ``env`` with ``seed`` and play ``actions`` (T, 2) until it ends; returns the
    trajectory as a list of (obs0, obs1, r0, r1, terminated, truncated)."""
    obs, _ = env.reset(seed=seed)
    trajectory = [(obs[P0], obs[P1], 0.0, 0.0, False, False)]
    for a0, a1 in actions:
        obs, rew, term, trunc, _ = env.step({P0: int(a0), P1: int(a1)})
        assert term[P0] == term[P1] and trunc[P0] == trunc[P1]
        trajectory.append((obs[P0], obs[P1], rew[P0], rew[P1], term[P0], trunc[P0]))
        if term[P0] or trunc[P0]:
            assert env.agents == []
            break
    return trajectory


def _play_core_single(core, rng, actions):
    """The same trajectory from a batch-of-one core."""
    obs = core.reset(rng)
    trajectory = [(int(obs[0, 0]), int(obs[1, 0]), 0.0, 0.0, False, False)]
    for a0, a1 in actions:
        res = core.step(np.array([[a0], [a1]], dtype=np.int64))
        ended = bool(res.terminated[0] or res.truncated[0])
        trajectory.append((
            int(res.observations[0, 0]), int(res.observations[1, 0]),
            float(res.rewards[0, 0]), float(res.rewards[1, 0]),
            bool(res.terminated[0]), bool(res.truncated[0]),
        ))
        if ended:
            break
    return trajectory


# --- the registry -----------------------------------------------------------------------


def test_registry_lists_every_matrix_game_and_grid_task_as_typed_specs():
    specs = {s.env_id: s for s in envs.registered()}
    assert set(ENV_IDS) == {"coplay/ipd-v0", "coplay/stag-hunt-v0", "coplay/chicken-v0"}
    assert set(envs.GRID_TASK_IDS) == {
        "coplay/grid-multiroom-v0", "coplay/grid-keydoor-v0", "coplay/grid-deadends-v0"}
    assert set(specs) == set(ENV_IDS) | set(envs.GRID_TASK_IDS)
    for env_id, found in specs.items():
        assert envs.spec(env_id) is found and found.description
        if env_id in ENV_IDS:
            assert isinstance(found, envs.MatrixGameSpec) and found.family == "matrix"
            assert isinstance(envs.make(env_id), envs.MatrixGameEnv)
        else:
            assert isinstance(found, envs.GridTaskSpec) and found.family == "grid"
            assert {"contexts", "context_seed", "max_steps"} <= set(found.settings)
            assert isinstance(envs.make(env_id), gymnasium.Env)
    assert [s.env_id for s in envs.registered("grid")] == list(envs.GRID_TASK_IDS)


def test_make_passes_settings_to_either_family():
    game = envs.make("coplay/chicken-v0", horizon=7, payoffs=CLASSIC)
    assert game.config.horizon == 7 and game.config.payoffs == Payoffs.parse(CLASSIC)
    grid = envs.make("coplay/grid-deadends-v0", contexts=2, branches=2, branch_length=3)
    assert grid.contexts == 2 and (grid.inner.branches, grid.inner.branch_length) == (2, 3)
    assert envs.make("coplay/grid-keydoor-v0", render_mode="rgb_array").render_mode == "rgb_array"


def test_importing_envs_does_not_import_minigrid_until_a_grid_task_is_built():
    code = ("import sys, envs; assert 'minigrid' not in sys.modules; "
            "envs.registered(); envs.make('coplay/ipd-v0'); assert 'minigrid' not in sys.modules; "
            "envs.make('coplay/grid-keydoor-v0'); assert 'minigrid' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_gymnasium_make_still_builds_the_grid_tasks():
    for env_id in envs.GRID_TASK_IDS:
        env = gymnasium.make(env_id, contexts=None)
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)
        assert env.unwrapped.task.env_id == env_id


def test_unknown_setting_of_a_grid_task_names_the_id_and_its_settings():
    with pytest.raises(ConfigError) as error:
        envs.make("coplay/grid-keydoor-v0", rooms=3)
    message = str(error.value)
    assert "coplay/grid-keydoor-v0" in message and "rooms" in message
    for allowed in envs.spec("coplay/grid-keydoor-v0").settings:
        assert allowed in message


def test_the_batched_path_refuses_a_grid_task_and_names_the_matrix_games():
    for build in (envs.make_config, functools.partial(envs.make_batch, batch_size=4)):
        with pytest.raises(ConfigError) as error:
            build("coplay/grid-multiroom-v0")
        assert "'coplay/grid-multiroom-v0', a grid env" in str(error.value)
        assert all(env_id in str(error.value) for env_id in ENV_IDS)


def test_coplay_envs_lists_the_registry_and_prints_it_as_json(monkeypatch, capsys):
    from rich.console import Console

    from cli import app as cli

    def coplay(*args):
        monkeypatch.setattr(sys, "argv", ["coplay", "envs", *args])
        with pytest.raises(SystemExit) as exit_:
            cli.main()
        assert exit_.value.code == 0
        return capsys.readouterr().out

    listed = json.loads(coplay("--json"))
    assert listed == [s.as_dict() for s in envs.registered()]
    by_id = {entry["id"]: entry for entry in listed}
    assert by_id["coplay/ipd-v0"]["payoffs"] == {"R": 1.0, "S": -1.0, "T": 2.0, "P": 0.0}
    assert by_id["coplay/grid-keydoor-v0"]["family"] == "grid"
    assert "pickup" in by_id["coplay/grid-keydoor-v0"]["actions"]
    monkeypatch.setattr(cli, "console", Console(width=80))
    table = coplay()
    assert all(env_id in table for env_id in ALL_IDS)
    assert max(len(line) for line in table.splitlines()) <= 80


# --- PettingZoo and Gymnasium conformance ----------------------------------------------


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_every_registered_env_conforms(env_id):
    """Matrix games: PettingZoo's parallel, AEC (through ``parallel_to_aec``), seed and render
    tests and SuperSuit's vector-env conversion, with a fixed and a random horizon. Grid tasks:
    Gymnasium's env checker, built by ``envs.make`` and by ``gymnasium.make``."""
    family = envs.spec(env_id).family
    if family == "matrix":
        for settings in HORIZONS.values():
            _check_matrix_env(env_id, settings)
    else:
        assert family == "grid"
        for contexts in (1, 3, None):
            check_env(envs.make(env_id, contexts=contexts), skip_render_check=True)
        check_env(gymnasium.make(env_id, disable_env_checker=True).unwrapped,
                  skip_render_check=True)


def _check_matrix_env(env_id, settings):
    parallel_api_test(envs.make(env_id, **settings), num_cycles=200)
    api_test(parallel_to_aec(envs.make(env_id, **settings)), num_cycles=200)
    parallel_seed_test(functools.partial(envs.make, env_id, **settings), num_cycles=200)
    render_test(lambda render_mode: parallel_to_aec(
        envs.make(env_id, render_mode=render_mode, **settings)))
    _check_supersuit_vector_env(env_id, settings)


def _check_supersuit_vector_env(env_id, settings):
    copies, horizon = 3, 4
    vec = supersuit.concat_vec_envs_v1(
        supersuit.pettingzoo_env_to_vec_env_v1(
            envs.make(env_id, **{**settings, "horizon": horizon})),
        copies, num_cpus=0, base_class="gymnasium",
    )
    assert vec.num_envs == 2 * copies  # one slot per player of each copy
    obs, _ = vec.reset(seed=0)
    assert obs.tolist() == [envs.START] * 2 * copies
    table = envs.spec(env_id).default_payoffs.table
    ended = np.zeros(2 * copies, dtype=bool)
    for round_ in range(horizon + 2):
        actions = np.array([C, D] * copies)
        obs, rewards, terminated, truncated, _ = vec.step(actions)
        assert rewards.tolist() == table[C, D].tolist() * copies
        done = terminated.astype(bool) | truncated.astype(bool)
        # Both players of a copy end together; a copy that ended starts again at once.
        assert np.array_equal(done[0::2], done[1::2])
        assert obs[done].tolist() == [envs.START] * int(done.sum())
        assert obs[~done].tolist() == [2, 3] * int((~done).sum() // 2)
        ended |= done
        if round_ == horizon - 1 and "continuation_probability" not in settings:
            assert truncated.all()
    assert ended.all() or "continuation_probability" in settings
    vec.close()


def test_render_modes_follow_pettingzoo_conventions(capsys):
    ansi = envs.make(IPD, horizon=3, render_mode="ansi")
    ansi.reset(seed=0)
    assert ansi.render() == "coplay/ipd-v0 round 0 of 3: start"
    ansi.step({P0: C, P1: D})
    assert ansi.render() == "coplay/ipd-v0 round 1 of 3: player_0 C (-1), player_1 D (2)"
    human = envs.make(IPD, horizon=3, render_mode="human")
    human.reset(seed=0)
    human.step({P0: D, P1: D})
    assert human.render() is None
    printed = capsys.readouterr().out.splitlines()
    assert printed[-2:] == ["coplay/ipd-v0 round 1 of 3: player_0 D (0), player_1 D (0)"] * 2
    assert envs.make(IPD).render_mode is None
    with pytest.warns(UserWarning, match="render_mode"):
        assert envs.make(IPD).render() is None
    with pytest.raises(ConfigError, match="rgb_array"):
        envs.make(IPD, render_mode="rgb_array")


def test_facade_spaces_and_metadata():
    env = envs.make("coplay/stag-hunt-v0")
    assert env.metadata["name"] == "coplay/stag-hunt-v0"
    assert env.possible_agents == [P0, P1]
    for agent in env.possible_agents:
        assert env.observation_space(agent).n == envs.NUM_TOKENS == 5
        assert env.action_space(agent).n == 2


# --- facade and core agree --------------------------------------------------------------


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_batch_of_b_games_matches_b_facades_with_fixed_horizon(env_id):
    B, T = 6, 12
    actions = np.random.default_rng(7).integers(0, 2, size=(T, 2, B))
    core = envs.make_batch(env_id, B, horizon=T)
    obs = core.reset(np.random.default_rng(0))
    core_steps = [core.step(actions[t]) for t in range(T)]
    assert np.array_equal(obs, np.zeros((2, B)))
    for b in range(B):
        env = envs.make(env_id, horizon=T)
        trajectory = _play_facade(env, seed=100 + b, actions=actions[:, :, b])
        assert len(trajectory) == T + 1
        for t, res in enumerate(core_steps):
            o0, o1, r0, r1, term, trunc = trajectory[t + 1]
            assert (o0, o1) == tuple(res.observations[:, b])
            assert (r0, r1) == tuple(res.rewards[:, b])
            assert term == bool(res.terminated[b])
            assert trunc == bool(res.truncated[b])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_facade_matches_batch_of_one_core_with_random_horizon(env_id):
    settings = {"horizon": 40, "continuation_probability": 0.85}
    lengths = set()
    for seed in range(25):
        actions = np.random.default_rng(1000 + seed).integers(0, 2, size=(40, 2))
        facade = _play_facade(envs.make(env_id, **settings), seed, actions)
        core = envs.make_batch(env_id, 1, **settings)
        batch = _play_core_single(core, np.random.default_rng(seed), actions)
        assert facade == batch
        assert len(facade) - 1 == core.max_rounds
        lengths.add(len(facade))
    # The comparison means little unless the seeds gave games of different lengths.
    assert len(lengths) > 3


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_facade_matches_core_over_consecutive_episodes_without_reseeding(env_id):
    # The facade keeps one Generator across resets; the core must see the same stream.
    settings = {"horizon": 50, "continuation_probability": 0.7}
    env = envs.make(env_id, **settings)
    core = envs.make_batch(env_id, 1, **settings)
    rng = np.random.default_rng(3)
    actions = np.random.default_rng(4).integers(0, 2, size=(50, 2))
    env.reset(seed=3)
    core.reset(rng)
    lengths = []
    for episode in range(6):
        if episode:
            env.reset()
            core.reset(rng)
        facade_len = 0
        while env.agents:
            a0, a1 = actions[facade_len]
            obs, rew, term, trunc, _ = env.step({P0: int(a0), P1: int(a1)})
            res = core.step(np.array([[a0], [a1]]))
            assert (obs[P0], obs[P1]) == tuple(res.observations[:, 0])
            assert (rew[P0], rew[P1]) == tuple(res.rewards[:, 0])
            assert (term[P0], trunc[P0]) == (res.terminated[0], res.truncated[0])
            facade_len += 1
        assert facade_len == core.max_rounds
        lengths.append(facade_len)
    assert len(set(lengths)) > 1


def test_facade_observations_are_numpy_integers_of_the_space_dtype():
    env = envs.make(IPD, horizon=2)
    obs, _ = env.reset(seed=0)
    stepped = env.step({P0: np.int64(D), P1: C})[0]
    for observation in (*obs.values(), *stepped.values()):
        assert isinstance(observation, np.integer)
        assert observation.dtype == env.observation_space(P0).dtype


# --- observations and payoffs -----------------------------------------------------------


@pytest.mark.parametrize(
    ("joint", "tokens", "rewards"),
    [
        ((C, C), (1, 1), (1.0, 1.0)),
        ((C, D), (2, 3), (-1.0, 2.0)),
        ((D, C), (3, 2), (2.0, -1.0)),
        ((D, D), (4, 4), (0.0, 0.0)),
    ],
    ids=["CC", "CD", "DC", "DD"],
)
def test_first_person_tokens_and_default_ipd_rewards(joint, tokens, rewards):
    env = envs.make(IPD, horizon=3)
    obs, _ = env.reset(seed=0)
    assert obs == {P0: envs.START, P1: envs.START} == {P0: 0, P1: 0}
    obs, rew, _, _, _ = env.step({P0: joint[0], P1: joint[1]})
    assert (obs[P0], obs[P1]) == tokens
    assert (rew[P0], rew[P1]) == rewards
    assert envs.TOKEN_NAMES[obs[P0]] == ["CC", "CD", "DC", "DD"][2 * joint[0] + joint[1]]


def test_core_tokens_are_first_person_for_each_game_of_a_batch():
    core = envs.make_batch(IPD, 4, horizon=2)
    core.reset(np.random.default_rng(0))
    res = core.step(np.array([[C, C, D, D], [C, D, C, D]]))
    assert res.observations.tolist() == [[1, 2, 3, 4], [1, 3, 2, 4]]
    assert res.rewards.tolist() == [[1, -1, 2, 0], [1, 2, -1, 0]]


def test_classic_payoffs_are_equal_from_rstp_2x2_and_2x2x2():
    from_rstp = Payoffs.parse(CLASSIC)
    from_2x2 = Payoffs.parse([[3, 0], [5, 1]])
    from_2x2x2 = Payoffs.parse([[[3, 3], [0, 5]], [[5, 0], [1, 1]]])
    assert from_rstp == from_2x2 == from_2x2x2 == Payoffs.symmetric(R=3, S=0, T=5, P=1)
    assert hash(from_rstp) == hash(from_2x2x2)
    assert from_rstp.as_rstp() == {"R": 3.0, "S": 0.0, "T": 5.0, "P": 1.0}
    assert Payoffs.parse([[[3, 0], [0, 5]], [[5, 0], [1, 1]]]).as_rstp() is None
    assert from_rstp != Payoffs.parse([[3, 0], [5, 2]])


@pytest.mark.parametrize(
    "payoffs", [CLASSIC, [[3, 0], [5, 1]], [[[3, 3], [0, 5]], [[5, 0], [1, 1]]]],
    ids=["rstp", "2x2", "2x2x2"],
)
def test_classic_payoffs_reach_the_rewards(payoffs):
    core = envs.make_batch(IPD, 4, horizon=1, payoffs=payoffs)
    core.reset(np.random.default_rng(0))
    res = core.step(np.array([[C, C, D, D], [C, D, C, D]]))
    assert res.rewards.tolist() == [[3, 0, 5, 1], [3, 5, 0, 1]]


def test_asymmetric_2x2x2_table_gives_each_player_its_own_column():
    table = [[[1, 10], [2, 20]], [[3, 30], [4, 40]]]
    core = MatrixGameBatch(MatrixGameConfig(payoffs=table, horizon=1), batch_size=4)
    core.reset(np.random.default_rng(0))
    res = core.step(np.array([[C, C, D, D], [C, D, C, D]]))
    assert res.rewards.tolist() == [[1, 2, 3, 4], [10, 20, 30, 40]]


def test_payoff_table_is_read_only():
    payoffs = Payoffs.parse(CLASSIC)
    with pytest.raises(ValueError):
        payoffs.table[0, 0, 0] = 99.0


# --- episode ends -----------------------------------------------------------------------


def test_fixed_horizon_truncates_exactly_at_horizon():
    env = envs.make(IPD, horizon=7)
    env.reset(seed=0)
    for _ in range(6):
        _, _, term, trunc, _ = env.step({P0: C, P1: D})
        assert not any(term.values()) and not any(trunc.values())
        assert env.agents == [P0, P1]
    _, _, term, trunc, _ = env.step({P0: C, P1: D})
    assert trunc == {P0: True, P1: True}
    assert term == {P0: False, P1: False}
    assert env.agents == []
    with pytest.raises(ConfigError, match="reset"):
        env.step({P0: C, P1: C})


def test_fixed_horizon_core_truncates_every_game_at_horizon_then_refuses_to_step():
    core = envs.make_batch(IPD, 5, horizon=3)
    core.reset(np.random.default_rng(0))
    actions = np.zeros((2, 5), dtype=np.int64)
    flags = [core.step(actions) for _ in range(3)]
    assert [r.truncated.all() for r in flags] == [False, False, True]
    assert not any(r.truncated.any() or r.terminated.any() for r in flags[:2])
    assert all(r.active.all() and not r.terminated.any() for r in flags)
    with pytest.raises(ConfigError, match="reset"):
        core.step(actions)


def test_random_horizon_games_end_once_and_are_silent_afterwards():
    p, cap, B = 0.8, 8, 3000
    core = envs.make_batch(IPD, B, horizon=cap, continuation_probability=p)
    rng = np.random.default_rng(11)
    core.reset(rng)
    ended = np.zeros(B, dtype=bool)
    length = np.zeros(B, dtype=np.int64)
    terminated_any = np.zeros(B, dtype=bool)
    truncated_any = np.zeros(B, dtype=bool)
    for _ in range(core.max_rounds):
        actions = rng.integers(0, 2, size=(2, B))
        res = core.step(actions)
        # A game is active exactly until it has ended, and then pays nothing.
        assert np.array_equal(res.active, ~ended)
        payoff = core.config.payoffs.table[actions[0], actions[1]].T
        assert np.array_equal(res.rewards, np.where(res.active, payoff, 0.0))
        assert not np.any((res.terminated | res.truncated) & ended)
        assert not np.any(res.terminated & res.truncated)
        length += res.active
        terminated_any |= res.terminated
        truncated_any |= res.truncated
        ended |= res.terminated | res.truncated
    assert ended.all()
    assert np.array_equal(length, core.lengths)
    assert length.min() == 1 and length.max() == cap
    # Cut off at the cap means the game lasted the whole cap; chance ends come earlier too.
    assert np.all(length[truncated_any] == cap)
    assert truncated_any.any() and terminated_any.any()
    assert (length[terminated_any] < cap).any()
    with pytest.raises(ConfigError):
        core.step(np.zeros((2, B), dtype=np.int64))


def test_random_horizon_facade_reports_termination_by_chance():
    settings = {"horizon": 1000, "continuation_probability": 0.5}
    for seed in range(5):
        env = envs.make(IPD, **settings)
        trajectory = _play_facade(env, seed, np.zeros((1000, 2), dtype=np.int64))
        *_, term, trunc = trajectory[-1]
        assert term and not trunc
        assert not any(step[4] or step[5] for step in trajectory[:-1])


@pytest.mark.parametrize("p", [0.5, 0.9, 0.95])
def test_random_horizon_mean_length_is_one_over_one_minus_p(p):
    B = 20000
    core = envs.make_batch(IPD, B, horizon=10_000, continuation_probability=p)
    core.reset(np.random.default_rng(2024))
    expected = 1.0 / (1.0 - p)
    # Standard error of the mean of a geometric: sqrt(p) / (1 - p) / sqrt(B), < 1% here.
    std_error = np.sqrt(p) / (1.0 - p) / np.sqrt(B)
    assert abs(core.lengths.mean() - expected) < 5 * std_error
    assert core.lengths.min() >= 1


# --- determinism ------------------------------------------------------------------------


def test_same_seed_gives_the_same_trajectory():
    settings = {"horizon": 60, "continuation_probability": 0.9}
    actions = np.random.default_rng(5).integers(0, 2, size=(60, 2))
    first = _play_facade(envs.make(IPD, **settings), 42, actions)
    second = _play_facade(envs.make(IPD, **settings), 42, actions)
    assert first == second
    core_a = envs.make_batch(IPD, 50, **settings)
    core_b = envs.make_batch(IPD, 50, **settings)
    core_a.reset(np.random.default_rng(42))
    core_b.reset(np.random.default_rng(42))
    assert np.array_equal(core_a.lengths, core_b.lengths)


def test_different_seeds_give_different_lengths_with_random_horizon():
    settings = {"horizon": 200, "continuation_probability": 0.9}
    actions = np.zeros((200, 2), dtype=np.int64)
    lengths = {len(_play_facade(envs.make(IPD, **settings), s, actions)) for s in range(10)}
    assert len(lengths) > 3
    cores = [envs.make_batch(IPD, 20, **settings) for _ in range(2)]
    for seed, core in enumerate(cores):
        core.reset(np.random.default_rng(seed))
    assert not np.array_equal(cores[0].lengths, cores[1].lengths)


# --- configuration errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("payoffs", "message"),
    [
        ([[1, 2, 3]], "shape (1, 3)"),
        ([[[1, 2, 3], [1, 2, 3]], [[1, 2, 3], [1, 2, 3]]], "shape (2, 2, 3)"),
        ([1, 2, 3, 4], "shape (4,)"),
    ],
    ids=["1x3", "2x2x3", "flat4"],
)
def test_wrong_payoff_shape_is_a_config_error(payoffs, message):
    with pytest.raises(ConfigError) as error:
        envs.make(IPD, payoffs=payoffs)
    assert error.value.where == "payoffs"
    assert message in str(error.value)
    assert "2x2" in str(error.value)


@pytest.mark.parametrize(
    "payoffs",
    [
        [["a", "b"], ["c", "d"]],
        {"R": "three", "S": 0, "T": 5, "P": 1},
        {"R": 3, "S": None, "T": 5, "P": 1},
        {"R": 3, "S": 0, "T": True, "P": 1},
        {"R": 3, "S": 0, "T": 5, "P": float("inf")},
    ],
    ids=["strings-table", "string-R", "none-S", "bool-T", "inf-P"],
)
def test_non_numeric_payoffs_are_a_config_error(payoffs):
    with pytest.raises(ConfigError) as error:
        Payoffs.parse(payoffs)
    assert error.value.where.startswith("payoffs")
    assert "number" in str(error.value)


def test_non_numeric_rstp_error_names_the_key():
    with pytest.raises(ConfigError) as error:
        Payoffs.parse({"R": 3, "S": "x", "T": 5, "P": 1}, where="scenario.env.payoffs")
    assert error.value.where == "scenario.env.payoffs.S"
    assert "'x'" in str(error.value)


@pytest.mark.parametrize(
    "payoffs", [{"R": 3, "S": 0, "T": 5}, {"R": 3, "S": 0, "T": 5, "P": 1, "Q": 2}, {}],
    ids=["missing-P", "extra-Q", "empty"],
)
def test_rstp_keys_must_be_exactly_r_s_t_p(payoffs):
    with pytest.raises(ConfigError) as error:
        envs.make(IPD, payoffs=payoffs)
    assert "R, S, T, P" in str(error.value)
    assert str(sorted(payoffs)) in str(error.value)


@pytest.mark.parametrize("horizon", [0, -3, 2.5, True, "10"])
def test_bad_horizon_is_a_config_error(horizon):
    with pytest.raises(ConfigError) as error:
        envs.make(IPD, horizon=horizon)
    assert error.value.where == "env.horizon"
    assert ">= 1" in str(error.value) and repr(horizon) in str(error.value)


@pytest.mark.parametrize("p", [1.0, 0, 0.0, -0.1, 1.5, float("nan"), "0.5"])
def test_continuation_probability_outside_open_unit_interval_is_a_config_error(p):
    with pytest.raises(ConfigError) as error:
        envs.make(IPD, continuation_probability=p)
    assert error.value.where == "env.continuation_probability"
    assert "strictly between 0 and 1" in str(error.value)


def test_unknown_env_id_lists_the_known_ids():
    with pytest.raises(ConfigError) as error:
        envs.make("coplay/ipd-v9")
    message = str(error.value)
    assert "'coplay/ipd-v9'" in message
    for env_id in ALL_IDS:
        assert env_id in message
    # The batched path names the matrix games, the only ids it can build.
    with pytest.raises(ConfigError) as error:
        envs.make_batch("coplay/nope-v0", 4)
    assert str(error.value).startswith(f"env.id: expected one of {sorted(ENV_IDS)}")


def test_unknown_setting_to_make_is_a_config_error_naming_the_allowed_ones():
    with pytest.raises(ConfigError) as error:
        envs.make(IPD, horizn=10)
    message = str(error.value)
    assert "horizn" in message and IPD in message
    for allowed in ("payoffs", "horizon", "continuation_probability"):
        assert allowed in message


def test_registering_an_existing_id_again_is_a_config_error():
    with pytest.raises(ConfigError, match="again"):
        envs.register(envs.spec(IPD))


def test_batch_size_below_one_is_a_config_error():
    with pytest.raises(ConfigError) as error:
        envs.make_batch(IPD, 0)
    assert error.value.where == "batch_size"


def test_stepping_the_facade_without_reset_is_a_config_error():
    env = envs.make(IPD)
    with pytest.raises(ConfigError) as error:
        env.step({P0: C, P1: C})
    assert "reset()" in str(error.value)


@pytest.mark.parametrize("bad", [2, -1, None, "C"])
def test_invalid_action_value_is_a_config_error(bad):
    env = envs.make(IPD, horizon=1)
    env.reset(seed=0)
    with pytest.raises(ConfigError) as error:
        env.step({P0: C, P1: bad})
    assert "0 (cooperate) or 1 (defect)" in str(error.value)
    # A refused action must not use up the single round.
    _, _, _, trunc, _ = env.step({P0: C, P1: C})
    assert trunc == {P0: True, P1: True}


def test_missing_action_is_a_config_error_naming_the_player():
    env = envs.make(IPD)
    env.reset(seed=0)
    with pytest.raises(ConfigError, match="player_1"):
        env.step({P0: C})


def test_config_error_messages_follow_expected_got_format():
    with pytest.raises(ConfigError) as error:
        envs.make(IPD, horizon=0)
    assert str(error.value) == "env.horizon: expected a whole number of rounds >= 1, got 0."


# --- input errors found in review, kept as regression tests ----------------------------


def test_payoff_dict_with_non_string_key_is_reported_as_a_payoff_error():
    with pytest.raises(ConfigError) as error:
        Payoffs.parse({"R": 3, "S": 0, "T": 5, 1: 1})
    assert "R, S, T, P" in str(error.value)
    with pytest.raises(ConfigError) as error:
        envs.make(IPD, payoffs={"R": 3, "S": 0, "T": 5, 1: 1})
    assert error.value.where.startswith("payoffs")


def test_non_finite_payoff_table_error_says_what_is_wrong_and_where():
    with pytest.raises(ConfigError) as error:
        Payoffs.parse([[3, 0], [5, float("nan")]], where="scenario.env.payoffs")
    assert error.value.where == "scenario.env.payoffs"
    assert "nan" in str(error.value).lower()


def test_numpy_integer_horizon_is_accepted():
    env = envs.make(IPD, horizon=np.int64(5))
    assert env.config.horizon == 5
