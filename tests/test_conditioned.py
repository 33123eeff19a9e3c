"""Behavior-conditioned learners: the pooled behavior input, following a hint, and training
with memory on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import agents
import envs
import scenarios
from agents.behavior_inputs import BehaviorBank
from agents.sequence import FOLLOW, BehaviorInput, SequencePolicyConfig, StepInputs, make_policy
from agents.sequence_agent import ConditionedSequenceAgent
from agents.train.experience import LEARNERS, LearnerThreads, collect, seating
from coplay.errors import ConfigError, ScenarioError
from coplay.step import HintedBehavior, Hints
from memory import TrainingStore
from memory.behaviors import NewBehavior
from memory.handbook import Handbook
from scenarios.domains import run_memory
from scenarios.schema import MemorySection
from scenarios.training_memory import TrainingMemory
from tests.test_cli import coplay
from tests.test_memory_runner import DEFECT_ALWAYS

SIZE = 8
BACKBONES = [
    SequencePolicyConfig(hidden_size=16, embed_size=8, behavior_size=SIZE, follow_memory=True),
    SequencePolicyConfig(backbone="transformer", hidden_size=16, embed_size=8, layers=1, heads=2,
                         context_length=32, behavior_size=SIZE, follow_memory=True),
]
ALWAYS_DEFECT = {"cooperate": dict.fromkeys(envs.TOKEN_NAMES, 0.0)}


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=SIZE).astype(np.float32)
    return vector / np.linalg.norm(vector)


def behavior(i: int, kind: str = "text", payload: dict | None = None) -> HintedBehavior:
    return HintedBehavior(i, f"b{i}", f"do {i}", kind, payload, unit(i))


def hints_for(contexts: list[int]) -> Hints:
    """Context 0: a text hint then a rule to always defect; context 1: nothing."""
    behaviors = (behavior(10), behavior(11, "response_rule", ALWAYS_DEFECT))
    table = np.array([[0, 1], [-1, -1]])
    scores = np.array([[3.0, 1.0], [0.0, 0.0]])
    return Hints(np.array(contexts), table, scores, behaviors)


def random_inputs(T: int, B: int, seed: int = 0) -> StepInputs:
    g = torch.Generator().manual_seed(seed)
    return StepInputs(
        observation=torch.randint(0, 5, (T, B), generator=g),
        previous_action=torch.randint(0, 3, (T, B), generator=g),
        previous_reward=torch.randn(T, B, generator=g),
        behaviors=BehaviorInput(torch.randint(0, 4, (T, B), generator=g),
                                torch.randn(4, SIZE, generator=g)),
        can_follow=torch.rand(T, B, generator=g) < 0.5,
    )


@pytest.mark.parametrize("config", BACKBONES, ids=["gru", "transformer"])
def test_a_conditioned_policy_steps_as_it_runs_whole_sequences(config) -> None:
    torch.manual_seed(0)
    policy = make_policy(config)
    inputs = random_inputs(9, 4)
    whole, _ = policy(inputs, policy.initial_state(4))
    assert whole.logits.shape == (9, 4, 3)
    state = policy.initial_state(4)
    for t in range(9):
        step, state = policy.step(StepInputs(*(None if x is None else x[t] for x in inputs)), state)
        torch.testing.assert_close(step.logits, whole.logits[t], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(step.value, whole.value[t], atol=1e-5, rtol=1e-4)
    # FOLLOW is never offered where there is no hint to follow.
    blocked = ~inputs.can_follow
    assert torch.all(torch.softmax(whole.logits, -1)[..., FOLLOW][blocked] == 0)


@pytest.mark.parametrize("config", BACKBONES, ids=["gru", "transformer"])
def test_the_retrieved_behaviors_change_what_the_policy_does(config) -> None:
    torch.manual_seed(0)
    policy = make_policy(config)
    inputs = random_inputs(5, 3)
    other = replace_bank(inputs, torch.randn(4, SIZE))
    first, _ = policy(inputs, policy.initial_state(3))
    second, _ = policy(other, policy.initial_state(3))
    assert not torch.allclose(first.logits, second.logits)
    with pytest.raises(ConfigError, match="behaviors"):
        policy(inputs._replace(behaviors=None), policy.initial_state(3))


def replace_bank(inputs: StepInputs, bank: torch.Tensor) -> StepInputs:
    return inputs._replace(behaviors=BehaviorInput(inputs.behaviors.rows, bank))


def test_the_pooled_vector_is_the_score_weighted_mean_computed_once_per_table() -> None:
    bank = BehaviorBank(SIZE)
    hints = hints_for([1, 0, 0])
    read = bank.step(hints, 3)
    vectors = bank.bank()[read.behaviors.rows].numpy()
    np.testing.assert_allclose(vectors[0], 0.0)  # a game without hints
    np.testing.assert_allclose(vectors[1], (3 * unit(10) + 1 * unit(11)) / 4, rtol=1e-6)
    np.testing.assert_array_equal(vectors[1], vectors[2])
    np.testing.assert_array_equal(read.position, [-1, 1, 1])  # the rule is the second hint
    assert bank.bank().shape == (1 + 2, SIZE)  # no hints, then one row per context
    again = bank.step(Hints(np.array([0, 1, 1]), hints.table, hints.scores, hints.behaviors), 3)
    assert bank.bank().shape == (3, SIZE)  # same table and behaviors: nothing recomputed
    np.testing.assert_array_equal(again.behaviors.rows.numpy(), read.behaviors.rows.numpy()[[1, 0, 0]])
    none = bank.step(None, 3)
    np.testing.assert_array_equal(none.behaviors.rows.numpy(), [0, 0, 0])
    assert not none.can_follow.any()


def test_the_bank_refuses_embeddings_of_another_size() -> None:
    with pytest.raises(ConfigError, match="behavior_size"):
        BehaviorBank(SIZE + 1).step(hints_for([0]), 1)


def following_agent(config: SequencePolicyConfig) -> ConditionedSequenceAgent:
    """A policy that cooperates unless it can follow a hint, which it then always does."""
    policy = make_policy(config)
    with torch.no_grad():
        policy.policy_head.weight.zero_()
        policy.policy_head.bias.copy_(torch.tensor([5.0, -5.0, 30.0]))
    return ConditionedSequenceAgent(policy)


def test_a_learner_follows_its_best_response_rule_and_says_so() -> None:
    agent = following_agent(BACKBONES[0])
    agent.reset(4, np.random.default_rng(0))
    observations = np.zeros(4, dtype=np.int64)
    actions = agent.act(observations, hints_for([0, 1, 0, 1]))
    # Games in context 0 follow the rule (always defect); the others have nothing to follow.
    np.testing.assert_array_equal(actions, [1, 0, 1, 0])
    np.testing.assert_array_equal(agent.hint_used, [1, -1, 1, -1])
    actions = agent.act(observations, None)
    np.testing.assert_array_equal(actions, [0, 0, 0, 0])
    np.testing.assert_array_equal(agent.hint_used, [-1, -1, -1, -1])


class FakeMemory:
    """Every learner game in context 0 (the rule to defect); records what it is told."""

    def __init__(self) -> None:
        self.used: list[np.ndarray] = []
        self.finished: np.ndarray | None = None
        self.rounds = 0

    def batch(self, owner: np.ndarray, horizon: int) -> FakeMemory:
        self.owner = owner
        return self

    def hints(self) -> list[Hints]:
        games = int(np.sum(self.owner == 0))
        return [hints_for([0] * games)]

    def record(self, hint_used) -> None:
        self.used.append(hint_used[0].copy())

    def observe(self, joint_actions: np.ndarray, active: np.ndarray) -> None:
        self.rounds += 1

    def finish(self, returns: np.ndarray) -> None:
        self.finished = returns


def test_collect_gives_learners_their_hints_and_tallies_what_they_followed() -> None:
    game = envs.make_config("coplay/ipd-v0", horizon=6)
    owner = seating(1, 8, {"tft": 1.0}, ["tft"])
    tft = agents.build("tit_for_tat", {}, agents.AgentContext("coplay/ipd-v0"), where="tft")
    memory = FakeMemory()
    policy = following_agent(BACKBONES[0]).policy
    [rollout] = collect(game, [policy], owner, [tft], np.random.default_rng(0),
                        [torch.Generator().manual_seed(0)], threads=LearnerThreads(1),
                        memory=memory)
    assert torch.all(rollout.actions == FOLLOW)
    assert torch.all(rollout.played == 1)  # the followed rule defects
    assert memory.rounds == 6 and len(memory.used) == 6
    assert all(np.all(used == 1) for used in memory.used)
    assert memory.finished.shape == (2, 8)
    # The update recomputes the same choices from what the rollout stored.
    outputs, _ = policy(rollout.inputs, policy.initial_state(rollout.episodes))
    assert torch.all(outputs.logits.argmax(-1) == FOLLOW)


TRAINING_WITH_MEMORY = """\
kind: training
name: tiny_conditioned
env: {id: coplay/ipd-v0, horizon: 8}
agents:
  tft: {kind: tit_for_tat}
  allc: {kind: always_cooperate}
learners: {a: {}}
pool: {tft: 0.5, allc: 0.5}
train:
  updates: 2
  episodes_per_update: 16
  policy: {hidden_size: 8, embed_size: 4, behavior_size: 128, follow_memory: true}
evaluate: {against: [tft], episodes: 4}
memory: {k: 2}
"""


def handbook_with_rules(db_url: str) -> Handbook:
    handbook = Handbook.open(db_url)
    handbook.add(DEFECT_ALWAYS)
    handbook.add(NewBehavior(
        name="Reciprocate", instruction="Cooperate first, then copy the co-player's last move.",
        kind="response_rule",
        payload={"cooperate": dict(zip(envs.TOKEN_NAMES, (1.0, 1.0, 0.0, 1.0, 0.0)))},
        trigger={"coplayer": "reciprocator"},
    ))
    return handbook


@pytest.mark.parametrize("learners", [1, 2])
def test_training_memory_hands_each_learner_its_seats_hints_as_the_fast_path_does(
        db_url, learners) -> None:
    # Every learner game in both seats gets hints; the general path (trackers, one retrieval
    # per step) and the matrix fast path give the learners the same inputs, so the same play
    # and the same tally.
    handbook = handbook_with_rules(db_url)
    pool = {LEARNERS: 0.5, "tft": 0.5} if learners == 2 else {"tft": 1.0}
    owner = seating(learners, 12, pool, ["tft"])
    game = envs.make_config("coplay/ipd-v0", horizon=7)
    config = SequencePolicyConfig(hidden_size=8, embed_size=4, behavior_size=128,
                                  follow_memory=True)
    torch.manual_seed(0)
    policies = [make_policy(config) for _ in range(learners)]
    section = MemorySection(k=2)
    played, usages = [], []
    for general in (False, True):
        run = run_memory(handbook, section, scenario="t", env_id="coplay/ipd-v0", seed=0,
                         general=general)
        tft = agents.build("tit_for_tat", {}, agents.AgentContext("coplay/ipd-v0"), where="tft")
        rollouts = collect(game, policies, owner, [tft], np.random.default_rng(1),
                           [torch.Generator().manual_seed(i) for i in range(learners)],
                           memory=TrainingMemory(run, agent="learners"))
        played.append([r.played for r in rollouts])
        usages.append(run.usage())
    for fast, general in zip(*played):
        torch.testing.assert_close(fast, general)
    fast, general = (np.array([(u.behavior_id, u.shown, u.uses, u.return_used, u.return_unused)
                               for u in usage.usages]) for usage in usages)
    np.testing.assert_allclose(fast, general, rtol=1e-5)  # the fast path sums in float32
    # Each learner episode shows its hints once, whichever seat it is in; co-players' none.
    shown = sum(u.shown for u in usages[0].usages)
    assert 12 * learners <= shown <= 2 * 12 * learners


def test_coplay_train_with_memory_feeds_the_learners_and_records_usage(
        monkeypatch, capsys, tmp_path, db_url) -> None:
    handbook_with_rules(db_url).close()
    path = tmp_path / "t.yaml"
    path.write_text(TRAINING_WITH_MEMORY)
    code, stdout, stderr = coplay(monkeypatch, capsys, "train", str(path), "--db", db_url,
                                  "--out", str(tmp_path / "out"), "--no-plots")
    assert code == 0, stderr
    assert "behaviors shown" in stdout and "used in training" in stdout
    handbook = Handbook.open(db_url)
    # Training's 2 x 16 learner episodes, then the evaluation's 4.
    assert sum(b.stats.shown for b in handbook) >= 2 * 16
    # Effects per co-player type too: recorded with every checkpoint, they steer the ranking.
    assert any(handbook.effects(b.id) for b in handbook)
    points = TrainingStore(db_url).curve(1)
    assert "followed" in points[0].metrics
    # The trained learner takes hints when it is seated in a scenario.
    from agents.trained import build_checkpoint

    seated = build_checkpoint(agents.AgentContext("coplay/ipd-v0"),
                              path=str(tmp_path / "out" / "checkpoint.pt"))
    assert isinstance(seated, ConditionedSequenceAgent)


@pytest.mark.parametrize(("replacement", "message"), [
    ("behavior_size: 128, follow_memory: true", "expected learners that take behaviors"),
    ("memory: {k: 2}", "memory.extract: expected false"),
])
def test_training_memory_settings_are_checked(replacement, message) -> None:
    text = TRAINING_WITH_MEMORY
    if replacement.startswith("behavior_size"):
        text = text.replace(", " + replacement, "")
    else:
        text = text.replace(replacement, "memory: {k: 2, extract: true}")
    with pytest.raises(ScenarioError, match=message):
        scenarios.parse(text, source="t.yaml")


def test_behavior_size_must_be_the_embedders_dimension(db_url) -> None:
    scenario = scenarios.parse(TRAINING_WITH_MEMORY.replace("behavior_size: 128", "behavior_size: 64"),
                               source="t.yaml")
    with pytest.raises(ConfigError, match="embedder's dimension"):
        scenario.training_memory(Handbook.open(db_url))
