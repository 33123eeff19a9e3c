"""Exploration bonuses and the grid PPO recipe: the bonus arithmetic, episode boundaries under
next-step autoreset, state round trips, and short runs that learn."""

from __future__ import annotations

import copy
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import scenarios
from agents.exploration import (
    E3B,
    BonusConfig,
    EpisodicCounts,
    GlobalCounts,
    IntrinsicNormalizer,
    Transitions,
    make_bonus,
)
from agents.grid_policy import GridPolicy, GridPolicyConfig
from agents.train.ppo_grid import GridPPOConfig, GridTrainer, Rollout, advantages
from coplay.errors import ScenarioError
from scenarios import exploration

VIEW = 7


def views(*codes: int) -> np.ndarray:
    """One distinct (7, 7, 3) observation per code."""
    out = np.zeros((len(codes), VIEW, VIEW, 3), dtype=np.uint8)
    for i, code in enumerate(codes):
        out[i, code % VIEW, code // VIEW % VIEW, 0] = 1 + code % 10
    return out


def cells(*codes: int) -> np.ndarray:
    """One distinct agent position (x, y) per code."""
    return np.array([[code, 1] for code in codes], dtype=np.int16)


def seen(*codes: int) -> tuple[np.ndarray, np.ndarray]:
    """The views and the positions of ``codes``: what ``begin`` and ``reward`` take."""
    return views(*codes), cells(*codes)


ALL = np.array([True, True])


def test_global_counts_pay_one_over_root_n_across_episodes() -> None:
    bonus = GlobalCounts(over="view")
    assert bonus.reward(*seen(1, 1), ALL).tolist() == pytest.approx([1.0, 2 ** -0.5])
    bonus.begin(ALL, *seen(5, 6))  # a new episode does not reset global counts
    assert bonus.reward(*seen(1, 2), ALL).tolist() == pytest.approx([3 ** -0.5, 1.0])


def test_episodic_counts_reset_at_each_start_and_skip_envs_that_did_not_arrive() -> None:
    bonus = EpisodicCounts(2, first_visit=False, over="view")
    bonus.begin(ALL, *seen(1, 2))
    assert bonus.reward(*seen(1, 3), ALL).tolist() == pytest.approx([2 ** -0.5, 1.0])
    assert bonus.reward(*seen(1, 3), np.array([True, False])).tolist() == pytest.approx(
        [3 ** -0.5, 0.0])
    bonus.begin(np.array([True, False]), *seen(9, 9))
    assert bonus.reward(*seen(1, 3), ALL).tolist() == pytest.approx([1.0, 2 ** -0.5])
    first = EpisodicCounts(1, first_visit=True, over="view")
    first.begin(np.array([True]), *seen(1))
    assert [first.reward(*seen(c), np.array([True]))[0] for c in (2, 2, 1, 3)] == [1, 0, 0, 1]


def test_position_counts_key_by_the_cell_not_the_view() -> None:
    global_ = GlobalCounts(over="position")
    same_view = views(1, 1)
    assert global_.reward(same_view, cells(4, 5), ALL).tolist() == [1.0, 1.0]
    assert global_.reward(views(2, 3), cells(4, 4), ALL).tolist() == pytest.approx(
        [2 ** -0.5, 3 ** -0.5])
    episodic = EpisodicCounts(2, first_visit=False, over="position")
    episodic.begin(ALL, same_view, cells(4, 5))
    assert episodic.reward(views(7, 8), cells(4, 6), ALL).tolist() == pytest.approx(
        [2 ** -0.5, 1.0])


def test_e3b_rank_one_updates_equal_the_explicit_inverse() -> None:
    bonus = E3B(num_envs=2, num_actions=3, view_size=VIEW, size=8, ridge=0.1,
                learning_rate=1e-3, seed=0)
    episode = [views(c, c + 20) for c in range(6)]
    bonus.begin(ALL, episode[0], cells(0, 0))
    for step, obs in enumerate(episode[1:], 1):
        got = bonus.reward(obs, cells(0, 0), ALL)
        for env in range(2):
            seen = np.stack([e[env] for e in episode[:step]])
            phi = bonus._embed(seen).double()
            covariance = 0.1 * torch.eye(8, dtype=torch.float64) + phi.T @ phi
            x = bonus._embed(obs[env:env + 1]).double()[0]
            expected = float(x @ torch.linalg.solve(covariance, x))
            assert got[env] == pytest.approx(expected, rel=1e-3)
    # A repeated embedding earns less than a new one; a new episode starts afresh.
    again = bonus.reward(episode[-1], cells(0, 0), ALL)
    assert (again < got).all()
    bonus.begin(np.array([False, True]), episode[0], cells(0, 0))
    assert bonus.inverse_covariance[1].trace() > bonus.inverse_covariance[0].trace()


def test_e3b_embedding_learns_inverse_dynamics() -> None:
    env = gym.make("coplay/grid-keydoor-v0", contexts=None, disable_env_checker=True)
    rng = np.random.default_rng(0)
    before, after, actions = [], [], []
    obs, _ = env.reset(seed=0)
    for _ in range(600):
        action = int(rng.integers(3))  # turns and forward: visible in the next view
        nxt, _, term, trunc, _ = env.step(action)
        before.append(obs), after.append(nxt), actions.append(action)
        obs = env.reset()[0] if term or trunc else nxt
    batch = Transitions(torch.from_numpy(np.stack(before)), torch.from_numpy(np.stack(after)),
                        torch.tensor(actions))
    bonus = E3B(num_envs=1, num_actions=5, view_size=VIEW, size=16, ridge=0.1,
                learning_rate=3e-3, seed=0)
    losses = [bonus.fit(batch)["inverse_dynamics_loss"] for _ in range(150)]
    assert losses[-1] < 0.5 * losses[0]


def test_product_and_sum_combine_the_two_terms() -> None:
    def make(combine):
        return make_bonus(BonusConfig(global_term="counts", episodic_term="counts", combine=combine,
                                      global_weight=2.0),
                          num_envs=2, num_actions=3, view_size=VIEW, seed=0)

    product, total = make("product"), make("sum")
    for bonus in (product, total):
        bonus.begin(ALL, *seen(1, 2))
        bonus.reward(*seen(3, 3), ALL)
    # Env 0 reaches 3 a second time in its episode; globally it is the third arrival.
    episodic, global_ = 2 ** -0.5, 3 ** -0.5
    assert product.reward(*seen(3, 4), ALL)[0] == pytest.approx(episodic * global_)
    assert total.reward(*seen(3, 4), ALL)[0] == pytest.approx(episodic + 2.0 * global_)


def test_no_bonus_is_none_and_labels_name_the_terms() -> None:
    assert make_bonus(BonusConfig(), num_envs=1, num_actions=3, view_size=VIEW, seed=0) is None
    assert BonusConfig().label == "none"
    assert BonusConfig(global_term="rnd", episodic_term="e3b").label == "episodic e3b x global rnd"
    assert BonusConfig(global_term="counts", episodic_term="counts", combine="sum").label == (
        "episodic counts + global counts")
    assert BonusConfig(global_term="counts", count_over="position").label == (
        "global counts (counts over position)")


@pytest.mark.parametrize("settings, where", [
    ({"global_term": "icm"}, "bonus.global_term"),
    ({"episodic_term": "rnd"}, "bonus.episodic_term"),
    ({"combine": "max"}, "bonus.combine"),
    ({"coef": -1.0}, "bonus.coef"),
    ({"ridge": 0.0}, "bonus.ridge"),
    ({"count_over": "room"}, "bonus.count_over"),
    ({"global_term": "rnd", "episodic_term": "e3b", "count_over": "position"}, "bonus.count_over"),
])
def test_bad_bonus_settings_are_rejected_when_loaded(settings, where) -> None:
    text = ("kind: exploration\nname: bad-bonus\nenv: {id: coplay/grid-keydoor-v0}\n"
            f"bonus: {json.dumps(settings)}\n")
    with pytest.raises(ScenarioError) as caught:
        scenarios.parse(text, source="bad.yaml")
    assert caught.value.where == f"bad.yaml: {where}"


def test_intrinsic_normalizer_divides_by_the_std_of_discounted_returns() -> None:
    normalizer = IntrinsicNormalizer(4, gamma=0.0)  # with gamma 0 the "returns" are the rewards
    rng = np.random.default_rng(0)
    everything = [rng.normal(0, 5.0, 4) for _ in range(200)]
    for rewards in everything:
        normalizer(rewards, np.ones(4, dtype=bool))
    assert np.sqrt(normalizer.m2 / normalizer.count) == pytest.approx(np.std(everything))
    known = np.array([10.0, 0.0, -10.0, 5.0])
    out = normalizer(known, np.array([True, True, True, False]))
    # Envs that did not arrive keep their return and add nothing to the statistics.
    std = np.std([*np.ravel(everything), 10.0, 0.0, -10.0])
    assert out[:3] == pytest.approx(known[:3] / std, rel=1e-5)


# --- episode boundaries --------------------------------------------------------------------


class Corridor(gym.Env):
    """Observation = steps taken; the episode terminates after ``length`` steps (reward 1),
    or is truncated after ``length`` steps when ``truncate`` is set (reward 0)."""

    observation_space = gym.spaces.Box(0, 255, (VIEW, VIEW, 3), np.uint8)
    action_space = gym.spaces.Discrete(3)

    def __init__(self, length: int, truncate: bool = False) -> None:
        self.length, self.truncate, self.t = length, truncate, 0

    def _obs(self):
        return views(self.t)[0]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {"position": cells(self.t)[0]}

    def step(self, action):
        self.t += 1
        end = self.t >= self.length
        info = {"position": cells(self.t)[0]}
        if end:  # as the grid envs report it
            info["success"] = not self.truncate
        return (self._obs(), 0.0 if self.truncate else float(end), end and not self.truncate,
                end and self.truncate, info)


def corridor_trainer(monkeypatch, lengths, *, truncate=False, bonus=None, steps=8):
    from agents.train import ppo_grid

    def make_envs(env_id, env_settings, count):
        return gym.vector.SyncVectorEnv(
            [lambda n=n: Corridor(n, truncate) for n in lengths],
            autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)

    monkeypatch.setattr(ppo_grid, "make_envs", make_envs)
    config = GridPPOConfig(frames=10_000, envs=len(lengths), steps=steps, minibatches=1,
                           policy=GridPolicyConfig(hidden_size=8))
    return GridTrainer("coplay/grid-deadends-v0", {}, config, bonus or BonusConfig())


def test_rollout_marks_the_autoreset_step_invalid_and_the_next_observation_a_start(monkeypatch) -> None:
    trainer = corridor_trainer(monkeypatch, [3, 2], bonus=BonusConfig(episodic_term="counts",
                                                                      normalize=False, coef=1.0))
    rollout, stats = trainer.collect()
    # Env 0 (length 3): steps 0-2 real, step 3 is the dummy, step 4 starts again.
    assert rollout.valid[:, 0].tolist() == [True, True, True, False, True, True, True, False]
    assert rollout.ended[:, 0].tolist() == [False, False, True, False, False, False, True, False]
    assert rollout.starts[:, 0].tolist() == [True, False, False, False, True, False, False, False, True]
    # The dummy row holds the true last observation; the row after it the new first one.
    assert rollout.observations[3, 0].equal(torch.from_numpy(views(3)[0]))
    assert rollout.observations[4, 0].equal(torch.from_numpy(views(0)[0]))
    assert rollout.valid[:, 1].tolist() == [True, True, False, True, True, False, True, True]
    # Task reward 1 at the end, plus a first-visit-like episodic bonus of 1 per new cell;
    # nothing at all on the dummy steps.
    assert rollout.rewards[:, 0].tolist() == [1.0, 1.0, 2.0, 0.0, 1.0, 1.0, 2.0, 0.0]
    assert stats["episodes"] == 2 + 3 and stats["success_rate"] == 1.0


def test_advantages_bootstrap_truncation_but_not_termination_and_never_cross_episodes() -> None:
    T = 4
    valid = torch.tensor([[True], [True], [False], [True]])
    ended = torch.tensor([[False], [True], [False], [False]])
    values = torch.tensor([[1.0], [2.0], [5.0], [3.0], [4.0]])  # row 2: true last observation
    rewards = torch.tensor([[0.0], [1.0], [0.0], [0.5]])

    def run(terminated_at_1: bool):
        data = Rollout(
            observations=torch.zeros(T + 1, 1, VIEW, VIEW, 3, dtype=torch.uint8),
            starts=torch.zeros(T + 1, 1, dtype=torch.bool), actions=torch.zeros(T, 1, dtype=torch.long),
            log_probs=torch.zeros(T, 1), values=values, rewards=rewards,
            terminated=torch.tensor([[False], [terminated_at_1], [False], [False]]), ended=ended,
            valid=valid, initial_state=torch.zeros(1, 0),
        )
        return advantages(data, gamma=0.5, lam=1.0)[0][:, 0].tolist()

    # Terminated at step 1: delta_1 = 1 - 2; step 0 = 0 + 0.5 * 2 - 1 + 0.5 * delta_1.
    assert run(True) == pytest.approx([-0.5, -1.0, 0.0, 0.5 + 0.5 * 4 - 3])
    # Truncated at step 1: bootstrap from the true last observation's value, 5.
    assert run(False) == pytest.approx([0.75, 1.5, 0.0, 0.5 + 0.5 * 4 - 3])


def test_a_recurrent_policy_replays_its_rollout_with_the_same_resets(monkeypatch) -> None:
    trainer = corridor_trainer(monkeypatch, [3, 2])
    trainer.policy = GridPolicy(GridPolicyConfig(hidden_size=8, recurrent=True), view_size=VIEW,
                                num_actions=3)
    trainer.state = trainer.policy.initial_state(2)
    rollout, _ = trainer.collect()
    with torch.no_grad():
        logits, values = trainer.policy.replay(rollout.observations[:-1], rollout.initial_state,
                                               rollout.starts[:-1])
        log_probs = torch.log_softmax(logits, -1).gather(-1, rollout.actions.unsqueeze(-1))[..., 0]
    assert values == pytest.approx(rollout.values[:-1], abs=1e-5)
    assert log_probs == pytest.approx(rollout.log_probs, abs=1e-5)


# --- training ------------------------------------------------------------------------------


def short_run(bonus: BonusConfig, *, frames=6144, recurrent=False, **env) -> GridTrainer:
    config = GridPPOConfig(frames=frames, envs=8, steps=64, minibatches=2,
                           policy=GridPolicyConfig(hidden_size=32, recurrent=recurrent))
    return GridTrainer("coplay/grid-deadends-v0", {"contexts": 1, **env}, config, bonus)


BONUSES = [
    BonusConfig(),
    BonusConfig(global_term="counts", episodic_term="counts", combine="sum"),
    BonusConfig(global_term="rnd", episodic_term="e3b"),
    BonusConfig(global_term="noveld", episodic_term="first_visit"),
    BonusConfig(global_term="counts", episodic_term="counts", count_over="position"),
]


@pytest.mark.parametrize("config", BONUSES[1:], ids=lambda b: b.label)
def test_every_bonus_restores_its_state_exactly(config) -> None:
    """Concordia's rule for stateful components: restore, then behave identically."""
    def build(seed):
        return make_bonus(config, num_envs=2, num_actions=3, view_size=VIEW, seed=seed)

    rng = np.random.default_rng(0)

    def play(bonus, steps):
        out = []
        for _ in range(steps):
            out.append(bonus.reward(*seen(*rng.integers(0, 12, 2)), ALL))
        batch = Transitions(torch.from_numpy(views(1, 2, 3)), torch.from_numpy(views(2, 3, 4)),
                            torch.tensor([0, 1, 2]))
        bonus.fit(batch)
        return np.stack(out)

    original = build(seed=0)
    original.begin(ALL, *seen(0, 1))
    play(original, 6)
    restored = build(seed=1)
    restored.load_state_dict(copy.deepcopy(original.state_dict()))
    rng_state = rng.bit_generator.state
    expected = play(original, 4)
    rng.bit_generator.state = rng_state
    assert play(restored, 4) == pytest.approx(expected)


@pytest.mark.parametrize("bonus", [BONUSES[0], BONUSES[2]], ids=lambda b: b.label)
def test_a_restored_trainer_has_the_saved_learning_state(bonus, tmp_path) -> None:
    trainer = short_run(bonus, frames=8 * 64 * 4, recurrent=True)
    trainer.step(), trainer.step()
    trainer.save(tmp_path / "run.pt")
    restored = short_run(bonus, frames=8 * 64 * 4, recurrent=True)
    restored.restore(tmp_path / "run.pt")
    assert restored.updates_done == 2 and restored.frames_done == trainer.frames_done
    for a, b in zip(trainer.policy.state_dict().values(), restored.policy.state_dict().values()):
        assert torch.equal(a, b)
    assert restored.optimizer.state_dict()["state"][0]["exp_avg"].equal(
        trainer.optimizer.state_dict()["state"][0]["exp_avg"])
    assert restored.normalizer.state_dict()["m2"] == trainer.normalizer.state_dict()["m2"]
    assert torch.equal(restored.generator.get_state(), trainer.generator.get_state())
    restored.step()  # and it trains on, from fresh episodes
    assert restored.updates_done == 3


def test_training_is_deterministic_for_a_seed() -> None:
    first = short_run(BonusConfig(global_term="rnd", episodic_term="e3b"), frames=1024)
    second = short_run(BonusConfig(global_term="rnd", episodic_term="e3b"), frames=1024)
    a, b = first.step()[0], second.step()[0]
    assert {k: v for k, v in a.items() if k != "frames_per_second"} == {
        k: v for k, v in b.items() if k != "frames_per_second"}


def test_ppo_learns_a_small_singleton_task() -> None:
    """Two branches of length 2: from a random walk (~25% success, ~50 steps) to the goal in
    about the 6 steps it takes."""
    trainer = short_run(BonusConfig(), frames=8 * 64 * 36, branches=2, branch_length=2)
    first = trainer.step()[0]
    while not trainer.finished():
        last = trainer.step()[0]
    assert first["success_rate"] < 0.5 and first["episode_length"] > 40
    assert last["success_rate"] > 0.95 and last["episode_length"] < 10


def test_every_bundled_exploration_scenario_loads() -> None:
    paths = scenarios.bundled("exploration")
    assert paths, "no bundled exploration scenarios"
    names = {p.stem for p in paths}
    for path in paths:
        scenario = scenarios.load(path)
        assert scenario.name == path.stem
        task, contexts, _method = path.stem.split("_", 2)
        assert scenario.env.id == f"coplay/grid-{task}-v0"
        assert scenario.contexts_label == contexts
    # Every task x context count has every method of the study.
    assert names == {exploration.bundled_name(t, c, m) for t in exploration.TASKS
                     for c in exploration.CONTEXTS for m in exploration.METHODS}


def test_a_bundled_exploration_scenario_trains_briefly() -> None:
    small = {"frames": 512, "envs": 4, "steps": 128, "minibatches": 2}
    scenario = scenarios.load("deadends_unlimited_product", overrides=[
        scenarios.Override(f"train.{key}", value, option=key) for key, value in small.items()])
    trainer = scenario.make_trainer()
    point = trainer.step()[0]
    assert point["frames"] == 512 and point["bonus"] > 0 and trainer.finished()


# --- the command line ----------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n"


def test_coplay_train_runs_a_bundled_exploration_scenario_and_resumes(monkeypatch, capsys,
                                                                      tmp_path, db_url) -> None:
    from memory import TrainingStore
    from tests.test_cli import coplay

    out = tmp_path / "out"
    args = ("train", "deadends_1_product", "--db", db_url, "--out", str(out),
            "--set", "train.envs=4", "--set", "train.steps=64", "--set", "train.minibatches=2")
    code, stdout, stderr = coplay(monkeypatch, capsys, *args, "--set", "train.frames=512")
    assert code == 0, stderr
    assert "learning curve" in stdout and "success" in stdout
    assert (out / "checkpoint.pt").is_file()
    assert (out / "learning_curves.png").read_bytes()[:8] == PNG
    points = TrainingStore(db_url).curve(1)
    assert [(p.update, p.learner) for p in points] == [(1, "agent"), (2, "agent")]
    assert points[-1].metrics["frames"] == 512 and points[-1].metrics["bonus"] > 0
    code, _, stderr = coplay(monkeypatch, capsys, *args, "--set", "train.frames=1024", "--resume")
    assert code == 0, stderr
    assert [p.update for p in TrainingStore(db_url).curve(1)] == [1, 2, 3, 4]


@pytest.mark.parametrize("args, message", [
    (("--updates", "3"), "--updates: expected a known field, got unknown field 'updates'. An "
                         "exploration scenario's budget is in frames: use --set train.frames=N."),
    (("--set", "bonus.global_term=count"), "bonus.global_term: expected"),
    (("--set", "env.contexts=0"), "env.contexts"),
    (("--set", "env.doors=2"), "layout settings of coplay/grid-deadends-v0"),
    (("--set", "train.minibatches=32"), "train.minibatches: expected at most train.envs"),
])
def test_coplay_train_rejects_bad_exploration_settings_in_one_line(monkeypatch, capsys, tmp_path,
                                                                    db_url, args, message) -> None:
    from tests.test_cli import coplay

    code, _, stderr = coplay(monkeypatch, capsys, "train", "deadends_1_none", "--db", db_url,
                             "--out", str(tmp_path / "o"), *args)
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1
