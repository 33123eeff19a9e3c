"""Sequence policies and decentralized training: shapes, the agreement of stepping with whole
sequences, advantages, seating, config checks, short runs that learn, checkpoints."""

from __future__ import annotations

import copy
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch.nn import functional as F

import agents
import envs
from agents.checkpoint import CheckpointRef, load_policy, write_checkpoint
from agents.coplayers import MemoryOneAgent
from agents.sequence import SequencePolicyConfig, StepInputs, make_policy
from agents.sequence_agent import SequenceAgent
from agents.train import planning, ppi
from agents.train.config import PPISettings, PPOSettings, TrainConfig
from agents.train.experience import (
    IDENTITY_SIZE,
    LEARNERS,
    advantages,
    coplayer_code,
    identity_features,
    seating,
)
from agents.train.recipes import make_trainer
from agents.train.trainer import LearnerSpec, Trainer, TrainingSetup
from coplay.errors import ConfigError

BACKBONES = [
    SequencePolicyConfig(hidden_size=16, embed_size=8),
    SequencePolicyConfig(backbone="transformer", hidden_size=16, embed_size=8, layers=1, heads=2,
                         context_length=32),
]


def random_inputs(T: int, B: int, seed: int = 0, identity: int = 0) -> StepInputs:
    g = torch.Generator().manual_seed(seed)
    return StepInputs(
        observation=torch.randint(0, 5, (T, B), generator=g),
        previous_action=torch.randint(0, 3, (T, B), generator=g),
        previous_reward=torch.randn(T, B, generator=g),
        identity=torch.rand(T, B, identity, generator=g) if identity else None,
    )


@pytest.mark.parametrize("config", BACKBONES, ids=["gru", "transformer"])
def test_policy_outputs_have_the_right_shapes(config) -> None:
    policy = make_policy(config)
    outputs, _ = policy(random_inputs(7, 3), policy.initial_state(3))
    assert outputs.logits.shape == (7, 3, 2)
    assert outputs.value.shape == (7, 3)
    assert outputs.coplayer_logits.shape == (7, 3, 2)


@pytest.mark.parametrize("config", BACKBONES, ids=["gru", "transformer"])
def test_stepping_equals_running_the_whole_sequence(config) -> None:
    # The rollout acts one step at a time (the transformer through its KV cache); the update
    # recomputes the episode in one call. If they disagreed, the gradient would be for
    # another policy than the one that acted.
    torch.manual_seed(0)
    policy = make_policy(config)
    inputs = random_inputs(9, 4)
    whole, _ = policy(inputs, policy.initial_state(4))
    state = policy.initial_state(4)
    for t in range(9):
        step, state = policy.step(StepInputs(*(x[t] for x in inputs[:3])), state)
        torch.testing.assert_close(step.logits, whole.logits[t], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(step.value, whole.value[t], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(step.coplayer_logits, whole.coplayer_logits[t], atol=1e-5, rtol=1e-4)


def test_transformer_refuses_episodes_longer_than_its_context() -> None:
    policy = make_policy(BACKBONES[1])
    with pytest.raises(ConfigError, match="context_length"):
        policy(random_inputs(33, 2), policy.initial_state(2))


def test_identity_policy_needs_the_identity_input() -> None:
    policy = make_policy(SequencePolicyConfig(hidden_size=8, embed_size=4, identity_size=6))
    outputs, _ = policy(random_inputs(3, 2, identity=6), policy.initial_state(2))
    assert outputs.logits.shape == (3, 2, 2)
    with pytest.raises(ConfigError, match="identity"):
        policy(random_inputs(3, 2), policy.initial_state(2))


def test_gae_with_lambda_one_is_discounted_return_minus_value() -> None:
    rewards = torch.tensor([[1.0], [0.0], [2.0]])
    values = torch.tensor([[0.5], [0.2], [0.1]])
    adv, returns = advantages(rewards, values, gamma=0.9, lam=1.0)
    expected_returns = torch.tensor([[1 + 0.9 * 0 + 0.81 * 2], [0 + 0.9 * 2], [2.0]])
    torch.testing.assert_close(returns, expected_returns)
    torch.testing.assert_close(adv, expected_returns - values)


def test_gae_with_lambda_zero_is_the_one_step_td_error() -> None:
    rewards = torch.tensor([[1.0], [0.0], [2.0]])
    values = torch.tensor([[0.5], [0.2], [0.1]])
    adv, _ = advantages(rewards, values, gamma=0.9, lam=0.0)
    torch.testing.assert_close(adv, torch.tensor([[1 + 0.9 * 0.2 - 0.5], [0.9 * 0.1 - 0.2], [2 - 0.1]]))


@pytest.mark.parametrize("learners", [1, 2, 3])
def test_seating_gives_each_learner_its_share_of_each_coplayer(learners) -> None:
    owner = seating(learners, 100, {LEARNERS: 0.5, "tabular": 0.3, "tft": 0.2}, ["tabular", "tft"])
    for i in range(learners):
        seats, games = np.nonzero(owner == i)
        coplayers = owner[1 - seats, games]
        assert len(games) == 100
        assert np.sum(coplayers >= 0) == 50
        assert np.sum(coplayers == coplayer_code(0)) == 30
        assert np.sum(coplayers == coplayer_code(1)) == 20
        # Both seats are played against the scripted co-players.
        assert set(seats[coplayers == coplayer_code(0)].tolist()) == {0, 1}
    assert not np.any((owner[0] < 0) & (owner[1] < 0))


def test_seating_keeps_the_batch_size_when_shares_round() -> None:
    owner = seating(1, 10, {"a": 1.0, "b": 1.0, "c": 1.0}, ["a", "b", "c"])
    assert owner.shape == (2, 10)


def test_identity_features_describe_the_coplayer_opposite() -> None:
    owner = np.array([[0, coplayer_code(0)], [1, 0]])  # game 0: learners 0 and 1
    tabular = MemoryOneAgent(None, sample_uniform=True)
    tabular.reset(1, np.random.default_rng(0))
    features = identity_features(owner, [tabular])
    assert features.shape == (2, 2, IDENTITY_SIZE)
    np.testing.assert_array_equal(features[0, 0], [0, 0, 0, 0, 0, 1])  # learner 0 faces learner 1
    np.testing.assert_array_equal(features[1, 0], [0, 0, 0, 0, 0, 1])
    np.testing.assert_allclose(features[1, 1, :5], tabular.game_tables[0])  # learner 0 in seat 1
    assert features[1, 1, 5] == 0
    with pytest.raises(ConfigError, match="memory-one"):
        identity_features(owner, [agents.build("grim_trigger", {}, CONTEXT, where="g")])


def test_config_rejects_inconsistent_settings() -> None:
    with pytest.raises(ValidationError, match="ppo: expected no PPO settings"):
        TrainConfig(algorithm="a2c", ppo=PPOSettings())
    with pytest.raises(ValidationError, match="ppo.minibatches: expected at most episodes_per_update"):
        TrainConfig(algorithm="ppo", episodes_per_update=4, ppo=PPOSettings(minibatches=8))
    with pytest.raises(ValidationError, match="gamma"):
        TrainConfig(gamma=1.5)
    with pytest.raises(ValidationError, match="backbone"):
        SequencePolicyConfig(backbone="lstm")
    with pytest.raises(ValidationError, match="ppi: expected no PPI settings"):
        TrainConfig(algorithm="ppo", ppi=PPISettings())
    with pytest.raises(ValidationError, match="gru with algorithm 'ppi'"):
        TrainConfig(algorithm="ppi", policy=BACKBONES[1])
    with pytest.raises(ValidationError, match="depth"):
        PPISettings(depth=0)
    with pytest.raises(ValidationError, match="depth"):
        PPISettings(depth="forever")
    with pytest.raises(ValidationError, match="bootstrap"):
        PPISettings(depth="end", bootstrap=True)
    with pytest.raises(ValidationError, match="recent_phases"):
        PPISettings(replay_phases=2, recent_phases=2)
    with pytest.raises(ValidationError, match="does not know the horizon"):
        PPISettings(depth="end", knows_horizon=False)
    with pytest.raises(ValidationError, match="knows_horizon"):
        PPISettings(knows_horizon="no")
    with pytest.raises(ValidationError, match="samples 'exact'"):
        PPISettings(samples="exact", depth=6)
    with pytest.raises(ValidationError, match="samples 'exact'"):
        PPISettings(samples="exact", depth="end", bootstrap=False)
    with pytest.raises(ValidationError, match="samples"):
        PPISettings(samples="many")
    with pytest.raises(ValidationError, match="prior_target"):
        PPISettings(prior_target="logits")
    with pytest.raises(ValidationError, match="log_odds_limit"):
        PPISettings(log_odds_limit=0)
    with pytest.raises(ValidationError, match="log_odds_after"):
        PPISettings(log_odds_after=5)  # prior_target: actions
    switching = PPISettings(prior_target="log_odds", log_odds_after=2)
    assert [switching.fits_log_odds(phase) for phase in range(5)] == [False, False, False, True, True]
    with pytest.raises(ValidationError, match="acting_beta"):
        PPISettings(acting_beta=0.5)  # prior_target: actions
    with pytest.raises(ValidationError, match="acting_beta"):
        PPISettings(prior_target="log_odds", acting_beta=-1.0)
    calmer = PPISettings(prior_target="log_odds", log_odds_after=2, beta=2.0, acting_beta=0.5)
    assert [calmer.acting_share(phase) for phase in (1, 2, 3, None)] == [1.0, 1.0, 0.25, 0.25]
    with pytest.raises(ValidationError, match="acting_temperature"):
        PPISettings(acting_temperature=0.5)  # prior_target: actions
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValidationError, match="acting_temperature"):
            PPISettings(prior_target="log_odds", acting_temperature=bad)
    surer = PPISettings(prior_target="log_odds", log_odds_after=2, acting_temperature=0.5)
    assert [surer.acting_temperature_in(phase) for phase in (1, 2, 3, None)] == [1.0, 1.0, 0.5, 0.5]
    with pytest.raises(ValidationError, match="multiple of heads"):
        SequencePolicyConfig(backbone="transformer", hidden_size=10, heads=4)
    assert TrainConfig(algorithm="ppo").ppo == PPOSettings()


GAME = envs.make_config("coplay/ipd-v0", horizon=20)
CONTEXT = agents.AgentContext(env_id="coplay/ipd-v0", payoffs=GAME.payoffs)
SMALL_POLICY = SequencePolicyConfig(hidden_size=32, embed_size=16)


def tft_or_alld_trainer(**overrides) -> Trainer:
    """One learner against tit-for-tat or always-defect, drawn per episode, never named."""
    config = TrainConfig(**{
        "updates": 60, "episodes_per_update": 128, "policy": SMALL_POLICY,
        "learning_rate": 3e-3, "gae_lambda": 0.95, "seed": 0, **overrides,
    })
    setup = TrainingSetup(
        game=GAME, learners=(LearnerSpec(name="learner", policy=config.policy),),
        pool={"tft": 0.5, "alld": 0.5}, config=config,
    )
    coplayers = {name: agents.build(kind, {}, CONTEXT, where=name)
                 for name, kind in (("tft", "tit_for_tat"), ("alld", "always_defect"))}
    return make_trainer(setup, coplayers)


SMALL_PPI = PPISettings(beta=1.0, depth=4, samples=2, pretrain_episodes=1024, pretrain_steps=40,
                        fit_steps=20, minibatch=64, recent_phases=3)
SHORT_RUNS = {
    "a2c": {},
    "ppo": {"ppo": PPOSettings(epochs=2, minibatches=2), "updates": 40},
    "ppi": {"ppi": SMALL_PPI, "updates": 30},
}


@pytest.mark.parametrize("algorithm", list(SHORT_RUNS))
def test_a_short_run_learns_the_in_context_best_response(algorithm) -> None:
    # The learner cannot see which co-player it faces. Cooperating with tit-for-tat and
    # defecting against always-defect therefore means inferring the co-player from the
    # episode so far: the in-context best response.
    trainer = tft_or_alld_trainer(algorithm=algorithm, **SHORT_RUNS[algorithm])
    history = []
    while not trainer.finished():
        history.append(trainer.step()[0])
    first, late = history[0], history[-5:]
    if algorithm == "ppi":
        # The first phase already plans, with a model of random memory-one co-players, and
        # against those defecting is best.
        assert first["cooperation_vs_tft"] < 0.4
    else:
        assert first["cooperation_vs_tft"] == pytest.approx(0.5, abs=0.15)
    assert np.mean([m["cooperation_vs_tft"] for m in late]) > 0.75
    assert np.mean([m["cooperation_vs_alld"] for m in late]) < 0.25
    assert np.mean([m["coplayer_loss"] for m in late]) < first["coplayer_loss"]


def test_bootstrapped_ppi_learns_its_values_and_the_best_response() -> None:
    trainer = tft_or_alld_trainer(algorithm="ppi", ppi=replace(SMALL_PPI, bootstrap=True), updates=30)
    history = [trainer.step()[0] for _ in range(30)]
    late = history[-5:]
    assert np.mean([m["value_loss"] for m in late]) < 0.5 * history[0]["value_loss"]
    assert np.mean([m["cooperation_vs_tft"] for m in late]) > 0.75
    assert np.mean([m["cooperation_vs_alld"] for m in late]) < 0.25


def test_ppi_with_log_odds_targets_learns_the_best_response() -> None:
    trainer = tft_or_alld_trainer(
        algorithm="ppi", ppi=replace(SMALL_PPI, prior_target="log_odds"), updates=30,
    )
    history = [trainer.step()[0] for _ in range(30)]
    late = history[-5:]
    assert np.mean([m["cooperation_vs_tft"] for m in late]) > 0.75
    assert np.mean([m["cooperation_vs_alld"] for m in late]) < 0.25
    # The pretraining games carry no log-odds; the phases played carry the planner's.
    parts = trainer.replays[0].parts
    assert torch.isnan(parts[0]["log_odds"]).all() and torch.isfinite(parts[-1]["log_odds"]).all()


def test_fitting_log_odds_averages_noisy_targets_where_fitting_actions_shrinks_them() -> None:
    # One history, many noisy estimates of the improved log-odds (mean 2, spread 4, as a few
    # rollouts give): fitted to the actions sampled from them, the prior's log-odds shrink
    # toward 0; fitted to the log-odds themselves, they land on the mean.
    g = torch.Generator().manual_seed(0)
    targets = 2.0 + 4.0 * torch.randn(20000, generator=g)
    actions = (torch.rand(20000, generator=g) >= torch.sigmoid(targets)).long()  # 0: cooperate
    fitted = {}
    for name in ("actions", "log_odds"):
        log_odds = torch.zeros(1, requires_grad=True)
        optimizer = torch.optim.Adam([log_odds], lr=0.05)
        for _ in range(400):
            log_prior = F.log_softmax(torch.stack([log_odds, -log_odds], -1) / 2, -1).expand(20000, 2)
            if name == "log_odds":
                loss = ppi.log_odds_loss(log_prior, actions, targets, limit=100.0)
            else:
                loss = F.nll_loss(log_prior, actions)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        fitted[name] = log_odds.item()
    assert fitted["log_odds"] == pytest.approx(targets.mean().item(), abs=0.05)
    assert fitted["actions"] < 0.6 * fitted["log_odds"]
    # Where no target is known (NaN), the loss is the action's negative log-likelihood.
    log_prior = F.log_softmax(torch.tensor([[1.0, 0.0]]), -1)
    nll = ppi.log_odds_loss(log_prior, torch.tensor([1]), torch.tensor([float("nan")]), limit=4.0)
    assert nll.item() == pytest.approx(-log_prior[0, 1].item())


def test_a_replay_restored_with_the_other_prior_target_keeps_its_episodes() -> None:
    tokens = torch.zeros((5, 3), dtype=torch.long)
    with_log_odds = ppi.Replay(log_odds=True)
    with_log_odds.add(tokens, tokens, tokens, tokens.float(), log_odds=torch.ones(5, 3))
    without = ppi.Replay()
    without.load_state_dict(with_log_odds.state_dict())
    assert "log_odds" not in without.parts[0] and without.episodes == 3
    again = ppi.Replay(log_odds=True)
    again.load_state_dict(without.state_dict())
    assert torch.isnan(again.parts[0]["log_odds"]).all()  # fitted to the actions played
    assert again.sample(2, np.random.default_rng(0))["log_odds"].shape == (5, 2)


def test_a_replay_window_keeps_only_the_newest_phases() -> None:
    window, everything = ppi.Replay(keep_phases=2), ppi.Replay()
    for phase, episodes in enumerate((8, 3, 4)):  # the pretraining games, then two phases
        tokens = torch.full((5, episodes), phase)
        for replay in (window, everything):
            replay.add(tokens, tokens, tokens, tokens.float())
    assert window.episodes == 3 + 4
    assert [int(part["observations"][0, 0]) for part in window.parts] == [1, 2]
    assert everything.episodes == 8 + 3 + 4


def test_ppi_without_pretraining_learns_only_from_its_own_phases() -> None:
    with pytest.raises(ValidationError, match="pretrain_episodes"):
        PPISettings(pretrain_episodes=-1)
    trainer = tft_or_alld_trainer(
        algorithm="ppi", ppi=replace(SMALL_PPI, pretrain_episodes=0), updates=2, episodes_per_update=16,
    )
    trainer.step()
    trainer.step()
    assert [part["actions"].shape[1] for part in trainer.replays[0].parts] == [16, 16]


@pytest.mark.parametrize("identity_size", [0, IDENTITY_SIZE])
def test_model_rounds_compute_what_stepping_the_policy_computes(identity_size: int) -> None:
    torch.manual_seed(0)
    policy = make_policy(replace(SMALL_POLICY, identity_size=identity_size))
    payoff = planning.own_payoffs(GAME.payoffs)
    own, theirs = torch.randint(0, 2, (50,)), torch.randint(0, 2, (50,))
    identity = torch.rand(50, identity_size) if identity_size else None
    state = 0.5 * torch.randn(1, 50, SMALL_POLICY.hidden_size)
    with torch.no_grad():
        expected, expected_state = policy.step(
            StepInputs(1 + 2 * own + theirs, own, payoff[own, theirs], identity), state
        )
        model = planning.ModelRounds(policy, payoff, identity)
        hidden, p_own, p_theirs, value = model(state[0], own, theirs)
    assert torch.allclose(hidden, expected_state[0], atol=1e-6)
    assert torch.allclose(p_own, torch.softmax(expected.logits, -1)[:, 0], atol=1e-6)
    assert torch.allclose(p_theirs, torch.softmax(expected.coplayer_logits, -1)[:, 0], atol=1e-6)
    assert torch.allclose(value, expected.value, atol=1e-6)


@pytest.mark.parametrize("bootstrap", [False, True])
@pytest.mark.parametrize("identity_size", [0, IDENTITY_SIZE])
def test_the_exact_search_is_what_many_sampled_rollouts_converge_to(identity_size: int,
                                                                   bootstrap: bool) -> None:
    torch.manual_seed(0)
    policy = make_policy(replace(SMALL_POLICY, identity_size=identity_size))
    payoff = planning.own_payoffs(GAME.payoffs)
    games = 3
    identity = torch.rand(games, identity_size) if identity_size else None
    hidden = 0.5 * torch.randn(games, SMALL_POLICY.hidden_size)
    p_theirs = torch.tensor([0.2, 0.5, 0.9])
    search = planning.RolloutSearch(model=planning.ModelRounds(policy, payoff, identity), payoff=payoff,
                               gamma=0.9, depth=3, bootstrap=bootstrap)
    with torch.no_grad():
        exact = search.exact(hidden, p_theirs)
        sampled = search.sampled(hidden, p_theirs, 100_000, torch.Generator().manual_seed(0))
    assert exact.shape == (games, 2)
    # 100,000 rollouts of 3 rounds: the sampling error is about 0.005.
    assert torch.allclose(exact, sampled, atol=0.03)
    # The candidates differ: in the first round alone defecting earns 1 more, whatever the reply.
    assert not torch.allclose(exact[:, 0], exact[:, 1], atol=0.1)


def test_rollouts_stop_at_the_end_of_the_episode() -> None:
    assert planning.rollout_depth(PPISettings(depth=10), rounds_left=3) == 3
    assert planning.rollout_depth(PPISettings(depth=10), rounds_left=None) == 10
    assert planning.rollout_depth(PPISettings(depth="end"), rounds_left=37) == 37
    with pytest.raises(ConfigError, match="unknown length"):
        planning.rollout_depth(PPISettings(depth="end"), rounds_left=None)


def first_round(games: int):
    """An untrained small policy, its outputs and state after the first round of ``games`` games."""
    policy = make_policy(SMALL_POLICY)
    with torch.no_grad():
        outputs, state = policy.step(
            StepInputs(torch.zeros(games, dtype=torch.long), torch.full((games,), 2), torch.zeros(games)),
            policy.initial_state(games),
        )
    return policy, outputs, state


def plan_first_round(policy, outputs, state, settings: PPISettings, *, rounds_left: int | None):
    return planning.plan(policy, outputs, state, settings=settings, gamma=0.99,
                    payoff=planning.own_payoffs(GAME.payoffs), generator=torch.Generator().manual_seed(1),
                    rounds_left=rounds_left)


def test_both_candidate_actions_are_rolled_out_with_the_same_random_numbers() -> None:
    # In the last round of the IPD, defecting earns exactly 1 more than cooperating whatever
    # the co-player does. With shared random numbers every sample sees that difference, so
    # the plan lowers cooperation's log-odds by exactly beta, with no sampling noise.
    n = 64
    policy, outputs, state = first_round(n)
    log_pi = plan_first_round(policy, outputs, state, PPISettings(beta=0.7, samples=3), rounds_left=1)
    prior = torch.log_softmax(outputs.logits, -1)
    shift = (log_pi[:, 0] - log_pi[:, 1]) - (prior[:, 0] - prior[:, 1])
    assert torch.allclose(shift, torch.full((n,), -0.7), atol=1e-5)


def test_acting_part_way_to_the_prior_is_planning_with_a_smaller_beta() -> None:
    # Same rollouts (same random stream), beta 2 moved a quarter of the way: beta 0.5.
    policy, outputs, state = first_round(64)
    improved = plan_first_round(policy, outputs, state, PPISettings(beta=2.0), rounds_left=None)
    smaller = plan_first_round(policy, outputs, state, PPISettings(beta=0.5), rounds_left=None)
    assert torch.allclose(planning.toward_prior(improved, outputs.logits, 0.25), smaller, atol=1e-5)
    assert torch.allclose(planning.toward_prior(improved, outputs.logits, 0.0),
                          torch.log_softmax(outputs.logits, -1))


def test_acting_temperature_scales_the_acted_log_odds_from_the_switch_on() -> None:
    policy, outputs, state = first_round(64)
    settings = PPISettings(beta=2.0, prior_target="log_odds", log_odds_after=1, acting_beta=0.5,
                           acting_temperature=0.5)
    improved = plan_first_round(policy, outputs, state, settings, rounds_left=None)
    calmer = planning.toward_prior(improved, outputs.logits, 0.25)
    surer = planning.acting_policy(improved, outputs.logits, settings, phase=2)
    log_odds = lambda log_pi: log_pi[:, 0] - log_pi[:, 1]  # noqa: E731
    assert torch.allclose(log_odds(surer), 2 * log_odds(calmer), atol=1e-5)
    assert torch.allclose(surer.exp().sum(-1), torch.ones(64), atol=1e-6)
    assert torch.equal(planning.acting_policy(improved, outputs.logits, settings, phase=1), improved)


def test_ppi_acting_beta_plays_the_prior_from_the_switch_on() -> None:
    settings = replace(SMALL_PPI, prior_target="log_odds", log_odds_after=1, acting_beta=0.0)
    trainer = tft_or_alld_trainer(algorithm="ppi", ppi=settings, updates=3)
    policy, outputs, state = first_round(64)

    def plan_in(phase: int):
        trainer.updates_done = phase - 1
        return trainer._plan(policy, outputs, state, 100, None, torch.Generator().manual_seed(0))

    acting, improved = plan_in(phase=1)  # fitted to actions: the acted policy is the target
    assert torch.equal(acting, improved)
    acting, improved = plan_in(phase=2)
    assert torch.allclose(acting, torch.log_softmax(outputs.logits, -1))
    assert (improved - acting).abs().max() > 1e-2


def test_ppi_replay_logs_the_improved_policy_not_the_one_played() -> None:
    # With acting_beta 0 the learner plays its prior; had the rollout logged the policy played,
    # the log-odds would be the prior's own, and fitting them would teach nothing.
    settings = replace(SMALL_PPI, prior_target="log_odds", acting_beta=0.0)
    trainer = tft_or_alld_trainer(algorithm="ppi", ppi=settings, updates=1)
    trainer._pretrain_models()
    acted_with = copy.deepcopy(trainer.policies[0])
    trainer.step()
    part = trainer.replays[0].parts[-1]
    with torch.no_grad():
        outputs, _ = acted_with(ppi.replay_inputs(part), acted_with.initial_state(part["actions"].shape[1]))
    prior_log_odds = outputs.logits[..., 0] - outputs.logits[..., 1]
    assert (part["log_odds"] - prior_log_odds).abs().mean() > 0.1


def test_a_planner_that_does_not_know_the_horizon_imagines_past_the_last_round() -> None:
    # In the last round, a planner that knows it is the last sees only that defecting earns 1
    # more; one that does not know plans as it would with rounds to come, whatever the round.
    policy, outputs, state = first_round(32)

    def log_pi(settings, rounds_left):
        return plan_first_round(policy, outputs, state, settings, rounds_left=rounds_left)

    blind = PPISettings(depth=4, knows_horizon=False)
    assert torch.equal(log_pi(blind, rounds_left=1), log_pi(blind, rounds_left=None))
    assert torch.equal(log_pi(blind, rounds_left=1), log_pi(PPISettings(depth=4), rounds_left=None))
    assert not torch.allclose(log_pi(blind, rounds_left=1), log_pi(PPISettings(depth=4), rounds_left=1))


def test_returns_to_go_discount_each_episode_separately() -> None:
    rewards = torch.tensor([[1.0, 0.0], [2.0, 1.0], [3.0, -1.0]])
    expected = torch.tensor([[1 + 0.5 * 2 + 0.25 * 3, 0.5 - 0.25], [2 + 0.5 * 3, 1 - 0.5], [3.0, -1.0]])
    assert torch.allclose(ppi.returns_to_go(rewards, 0.5), expected)


def test_training_is_deterministic_for_a_seed() -> None:
    def run(seed):
        trainer = tft_or_alld_trainer(updates=2, seed=seed)
        return [
            {k: v for k, v in trainer.step()[0].items() if "seconds" not in k} for _ in range(2)
        ]

    assert run(5) == run(5)
    assert run(5) != run(6)


@pytest.mark.parametrize("algorithm", list(SHORT_RUNS))
def test_resuming_from_a_checkpoint_continues_exactly(tmp_path, algorithm) -> None:
    # Concordia-style round trip: save the whole stateful trainer (for PPI, its replay too),
    # restore it into a fresh one, and the continuation must equal the run that never stopped.
    settings = {**SHORT_RUNS[algorithm], "algorithm": algorithm, "updates": 4}
    straight = tft_or_alld_trainer(**settings)
    for _ in range(4):
        straight.step()
    first = tft_or_alld_trainer(**settings)
    first.step()
    first.step()
    first.save(tmp_path / "checkpoint.pt")
    resumed = tft_or_alld_trainer(**settings)
    resumed.restore(tmp_path / "checkpoint.pt")
    assert resumed.updates_done == 2
    while not resumed.finished():
        resumed.step()

    def without_timing(history):
        return [[{k: v for k, v in m.items() if "seconds" not in k} for m in u] for u in history]

    assert without_timing(resumed.history) == without_timing(straight.history)
    for a, b in zip(straight.policies[0].state_dict().values(), resumed.policies[0].state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_restore_rejects_a_checkpoint_of_other_learners(tmp_path) -> None:
    trainer = tft_or_alld_trainer(updates=1)
    trainer.save(tmp_path / "c.pt")
    other = tft_or_alld_trainer(updates=1, policy=SequencePolicyConfig(hidden_size=8, embed_size=4))
    with pytest.raises(ConfigError, match="resume"):
        other.restore(tmp_path / "c.pt")


def test_a_trained_learner_plays_as_a_frozen_agent(tmp_path) -> None:
    trainer = tft_or_alld_trainer(updates=1)
    trainer.step()
    trainer.save(tmp_path / "c.pt")
    agent = agents.build("checkpoint", {"path": str(tmp_path / "c.pt")}, CONTEXT, where="a")
    assert isinstance(agent, SequenceAgent)
    agent.reset(3, np.random.default_rng(0))
    actions = agent.act(np.array([0, 0, 0]))
    assert actions.shape == (3,) and set(actions.tolist()) <= {0, 1}
    assert agent.belief.shape == (3,) and np.all((agent.belief > 0) & (agent.belief < 1))
    agent.observe(np.array([1.0, -1.0, 0.0]), np.ones(3, dtype=bool))
    # Same weights as the trainer's learner.
    loaded = load_policy(CheckpointRef(str(tmp_path / "c.pt")), where="x")
    for a, b in zip(loaded.state_dict().values(), trainer.policies[0].state_dict().values()):
        torch.testing.assert_close(a, b)


def test_checkpoints_of_earlier_versions_seat_their_learners(tmp_path) -> None:
    # The oldest checkpoints: A2C learners saved with an (empty) replay list, PPI learners
    # whose planning does not record the training horizon.
    policy = make_policy(SMALL_POLICY)
    entry = {"policy": asdict(SMALL_POLICY), "state_dict": policy.state_dict(), "optimizer": {}}
    payoff = planning.own_payoffs(GAME.payoffs).tolist()
    write_checkpoint(tmp_path / "old.pt", {
        "learners": {
            "reactive": {**entry, "planning": None},
            "planner": {**entry, "planning": {"ppi": asdict(SMALL_PPI), "gamma": 0.99, "payoff": payoff}},
        },
        "updates_done": 1, "history": [], "rng": {}, "replays": [[], []],
    })
    for name in ("reactive", "planner"):
        agent = agents.build("checkpoint", {"path": str(tmp_path / "old.pt"), "learner": name},
                             CONTEXT, where="a")
        agent.reset(4, np.random.default_rng(0))
        assert set(agent.act(np.zeros(4, dtype=np.int64)).tolist()) <= {0, 1}
        assert (agent.planning is None) == (name == "reactive")


@pytest.mark.parametrize(("params", "message"), [
    ({"path": "missing.pt"}, "path: expected an existing checkpoint file"),
    ({"path": "{tmp}/c.pt", "learner": "nobody"}, "learner: expected one of ['learner']"),
])
def test_checkpoint_agents_name_what_is_wrong(tmp_path, params, message) -> None:
    trainer = tft_or_alld_trainer(updates=1)
    trainer.save(tmp_path / "c.pt")
    params = {k: v.replace("{tmp}", str(tmp_path)) for k, v in params.items()}
    with pytest.raises(ConfigError) as error:
        agents.build("checkpoint", params, CONTEXT, where="agents.frozen")
    assert str(error.value).startswith(f"agents.frozen.{message}")


def test_learners_start_from_a_checkpoint_when_asked(tmp_path) -> None:
    trainer = tft_or_alld_trainer(updates=1)
    trainer.step()
    trainer.save(tmp_path / "c.pt")
    config = trainer.config
    setup = replace(trainer.setup, learners=(
        LearnerSpec(name="student", policy=config.policy, init=CheckpointRef(str(tmp_path / "c.pt"))),
    ))
    student = make_trainer(setup, {"tft": trainer.coplayers[0], "alld": trainer.coplayers[1]})
    for a, b in zip(student.policies[0].state_dict().values(), trainer.policies[0].state_dict().values()):
        torch.testing.assert_close(a, b)


def mixed_pool_trainer(config: TrainConfig, tabular: MemoryOneAgent) -> Trainer:
    """Learners a and b, half their games against each other, half against ``tabular``."""
    setup = TrainingSetup(
        game=GAME, learners=(LearnerSpec(name="a", policy=config.policy),
                             LearnerSpec(name="b", policy=config.policy)),
        pool={LEARNERS: 0.5, "tabular": 0.5}, config=config,
    )
    return make_trainer(setup, {"tabular": tabular})


@pytest.mark.parametrize("algorithm", list(SHORT_RUNS))
def test_learners_updating_on_two_threads_learn_what_they_learn_on_one(algorithm) -> None:
    config = TrainConfig(algorithm=algorithm, updates=2, episodes_per_update=16, policy=SMALL_POLICY,
                         seed=3, **{k: v for k, v in SHORT_RUNS[algorithm].items() if k != "updates"})
    cores = torch.get_num_threads()
    weights = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            trainer = mixed_pool_trainer(config, MemoryOneAgent(None, sample_uniform=True))
            trainer.step()
            trainer.step()
            assert torch.get_num_threads() == threads  # restored after the parallel updates
            weights.append([p.state_dict() for p in trainer.policies])
    finally:
        torch.set_num_threads(cores)
    for one, two in zip(*weights):
        assert one.keys() == two.keys()
        assert all(torch.equal(one[k], two[k]) for k in one)


def test_identity_ablation_and_transformer_learners_train(tmp_path) -> None:
    trainer = mixed_pool_trainer(TrainConfig(
        updates=2, episodes_per_update=8, policy=BACKBONES[1], identity_vector=True, seed=0,
    ), MemoryOneAgent(None, sample_uniform=True))
    assert trainer.policies[0].config.identity_size == IDENTITY_SIZE
    metrics = trainer.step()
    assert set(metrics[0]) >= {"cooperation_vs_learners", "cooperation_vs_tabular", "policy_loss"}
    assert all(np.isfinite(v) for m in metrics for v in m.values())


def test_ppi_in_the_identity_ablation_sees_each_coplayers_table() -> None:
    tabular = MemoryOneAgent(None, sample_uniform=True)
    trainer = mixed_pool_trainer(TrainConfig(
        algorithm="ppi", updates=1, episodes_per_update=8, policy=SMALL_POLICY,
        identity_vector=True, ppi=replace(SMALL_PPI, pretrain_episodes=16), seed=0,
    ), tabular)
    metrics = trainer.step()
    assert all(np.isfinite(v) for m in metrics for v in m.values())
    pretraining, phase = trainer.replays[0].parts
    assert pretraining["identity"].shape == (1, 16, IDENTITY_SIZE)
    assert not pretraining["identity"][0, :, 5].any()  # random memory-one co-players, not learners
    # In the phase, learner a's games against the tabular co-player carry that game's table.
    identity = phase["identity"][0]
    against_tabular = identity[:, 5] == 0
    assert against_tabular.any() and (~against_tabular).any()
    seen, tables = identity[against_tabular, :5].numpy(), np.asarray(tabular.game_tables)
    assert all(np.abs(tables - row).max(axis=1).min() < 1e-6 for row in seen)


def test_a_ppi_learner_plans_when_seated_as_an_agent(tmp_path) -> None:
    trainer = tft_or_alld_trainer(algorithm="ppi", ppi=SMALL_PPI, updates=1)
    trainer.step()
    trainer.save(tmp_path / "c.pt")
    agent = agents.build("checkpoint", {"path": str(tmp_path / "c.pt")}, CONTEXT, where="a")
    assert agent.planning is not None and agent.planning["ppi"]["depth"] == SMALL_PPI.depth

    def play(seed):
        agent.reset(64, np.random.default_rng(seed))
        return [agent.act(np.zeros(64, dtype=np.int64)).tolist() for _ in range(3)]

    assert play(1) == play(1)  # planning samples from a generator seeded at reset
    assert play(1) != play(2)


def test_ppi_needs_a_symmetric_game() -> None:
    with pytest.raises(ConfigError, match="symmetric"):
        planning.own_payoffs(envs.Payoffs(np.array([[[3, 3], [0, 5]], [[5, 0], [1, 2]]])))
