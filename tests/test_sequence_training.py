"""The sequence policy and the A2C recipe: shapes, the consistency between acting step by step
and training on whole sequences, advantages, and a short run that learns a best response."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.sequence import GRUPolicy, SequencePolicyConfig, StepInputs
from agents.train.a2c import TABULAR, A2CConfig, advantages, game_layout, train
from coplay.errors import ConfigError


def random_inputs(T: int, B: int, seed: int = 0) -> StepInputs:
    g = torch.Generator().manual_seed(seed)
    return StepInputs(
        observation=torch.randint(0, 5, (T, B), generator=g),
        previous_action=torch.randint(0, 3, (T, B), generator=g),
        previous_reward=torch.randn(T, B, generator=g),
    )


def test_policy_outputs_have_the_right_shapes() -> None:
    policy = GRUPolicy(SequencePolicyConfig(hidden_size=16, embed_size=8))
    outputs, state = policy(random_inputs(7, 3), policy.initial_state(3))
    assert outputs.logits.shape == (7, 3, 2)
    assert outputs.value.shape == (7, 3)
    assert outputs.coplayer_logits.shape == (7, 3, 2)
    assert state.shape == (1, 3, 16)


def test_stepping_equals_running_the_whole_sequence() -> None:
    # The rollout acts one step at a time; the update recomputes the episode in one call.
    # If the two disagreed, the policy gradient would be computed for a different policy.
    policy = GRUPolicy(SequencePolicyConfig(hidden_size=16, embed_size=8))
    inputs = random_inputs(9, 4)
    whole, _ = policy(inputs, policy.initial_state(4))
    state = policy.initial_state(4)
    for t in range(9):
        step, state = policy.step(StepInputs(*(x[t] for x in inputs)), state)
        torch.testing.assert_close(step.logits, whole.logits[t])
        torch.testing.assert_close(step.value, whole.value[t])
        torch.testing.assert_close(step.coplayer_logits, whole.coplayer_logits[t])


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
def test_layout_gives_each_learner_its_share_against_learners_and_tabular(learners) -> None:
    config = A2CConfig(learners=learners, episodes_per_update=100, learner_fraction=0.5)
    owner = game_layout(config)
    for i in range(learners):
        seats, games = np.nonzero(owner == i)
        assert len(games) == 100
        coplayers = owner[1 - seats, games]
        assert np.sum(coplayers == TABULAR) == 50
        # Both seats are played against tabular co-players.
        assert set(seats[coplayers == TABULAR].tolist()) == {0, 1}
    assert not np.any((owner[0] == TABULAR) & (owner[1] == TABULAR))


def test_config_rejects_inconsistent_settings() -> None:
    with pytest.raises(ConfigError, match="learner_fraction"):
        A2CConfig(learner_fraction=1.5)
    with pytest.raises(ConfigError, match="learners"):
        A2CConfig(learners=0)
    with pytest.raises(ConfigError, match="hidden_size"):
        SequencePolicyConfig(hidden_size=0)


SMALL = dict(
    horizon=10, learners=1, learner_fraction=0.0, episodes_per_update=256,
    policy=SequencePolicyConfig(hidden_size=32, embed_size=16), learning_rate=3e-3,
)


def test_a_short_run_learns_to_defect_against_random_tabular_co_players() -> None:
    # Against a memory-one co-player drawn uniformly, defection is the best response on
    # average, so cooperation must fall from 0.5 (the untrained policy) well below it.
    history = []
    train(A2CConfig(**SMALL, updates=40, seed=1), lambda u, m: history.append(m[0]))
    assert history[0]["cooperation_vs_tabular"] == pytest.approx(0.5, abs=0.1)
    late = np.mean([m["cooperation_vs_tabular"] for m in history[-5:]])
    assert late < 0.2
    assert history[-1]["coplayer_loss"] < history[0]["coplayer_loss"]


def test_training_is_deterministic_for_a_seed() -> None:
    def metrics(seed):
        history = []
        train(A2CConfig(**SMALL, updates=2, seed=seed), lambda u, m: history.append(m))
        return [[{k: v for k, v in x.items() if k != "seconds"} for x in m] for m in history]

    assert metrics(5) == metrics(5)
    assert metrics(5) != metrics(6)
