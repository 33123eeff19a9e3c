"""Experience for decentralized training: who plays whom, the batched rollout, advantages.

The update rules (``a2c.py``, ``ppo.py``, ``ppi.py``) consume what this module produces. Each
learner sees only its own seat: its observation tokens, its previous action and reward, never
who its co-player is (unless the identity ablation is on, which appends a description of the
co-player to every step's input). With memory on (``LearnerMemory``, built in ``scenarios``),
every learner gets its games' retrieved behaviors every round, and behavior-conditioned
learners read them (``agents.behavior_inputs``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np
import torch
from torch.nn import functional as F

import envs
from agents.base import Agent
from agents.behavior_inputs import BehaviorBank
from agents.sequence import (
    FOLLOW,
    NO_ACTION,
    BehaviorInput,
    PolicyOutputs,
    SequencePolicy,
    StepInputs,
)
from coplay.errors import ConfigError
from coplay.step import Hints

LEARNERS = "learners"  # the pool entry that stands for the other learning agents
# Identity ablation input: a memory-one co-player's five probabilities, then a learner flag.
IDENTITY_SIZE = 6


# From a policy, its outputs for this step, its state after it, the rounds left to play (this
# one included), in the identity ablation the co-players' identity vectors (B, IDENTITY_SIZE),
# and the learner's random stream: the action log-probabilities (B, 2) to play by, and those of
# the improved policy whose log-odds are logged (PPI's prior target; often the same tensor).
Acting = Callable[
    [SequencePolicy, PolicyOutputs, object, int, torch.Tensor | None, torch.Generator],
    tuple[torch.Tensor, torch.Tensor],
]


class BatchHints(Protocol):
    """Memory for one batch of training games: each round, every learner's hints for its
    games (in the order of its seats in ``owner``, as ``np.nonzero(owner == i)`` lists them),
    then which hint each game's learner followed; at the end, the returns, for the
    behaviors' usage statistics."""

    def hints(self) -> Sequence[Hints]: ...

    def record(self, hint_used: Sequence[np.ndarray]) -> None: ...

    def observe(self, joint_actions: np.ndarray, active: np.ndarray) -> None:
        """After a round: (G,) 2 * seat 0's action + seat 1's; the games still going on."""
        ...

    def finish(self, returns: np.ndarray) -> None:
        """(2, G): each seat's return in each game."""
        ...


class LearnerMemory(Protocol):
    """Memory as training uses it: one ``BatchHints`` per batch of games."""

    def batch(self, owner: np.ndarray, horizon: int) -> BatchHints: ...


class LearnerThreads:
    """Runs one piece of work per learner, on as many threads as torch may use at once.

    The learners' moves and updates are independent, and torch releases the GIL inside its
    operators, so two learners take about the time of one on two cores. Inside the ``with``
    block each thread runs its operators single-threaded: the products here are small, and
    gain more from running side by side than from being split."""

    def __init__(self, learners: int) -> None:
        self.learners = learners
        self.threads = min(torch.get_num_threads(), learners)
        self._pool: ThreadPoolExecutor | None = None
        self._cores = 1

    def __enter__(self) -> LearnerThreads:
        if self.threads > 1:
            self._cores = torch.get_num_threads()
            torch.set_num_threads(1)
            self._pool = ThreadPoolExecutor(self.threads)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
            torch.set_num_threads(self._cores)

    def map(self, work: Callable[[int], object]) -> list:
        """``[work(0), ..., work(learners - 1)]``, side by side inside the ``with`` block."""
        if self._pool is None:
            return [work(i) for i in range(self.learners)]
        return list(self._pool.map(work, range(self.learners)))


def coplayer_code(group: int) -> int:
    """``owner`` entries: learner i is i >= 0; background co-player group k is -1 - k."""
    return -1 - group


def seating(num_learners: int, episodes: int, pool: Mapping[str, float], groups: Sequence[str]) -> np.ndarray:
    """``owner[seat, game]``: who sits where in one batch of games.

    Every learner plays ``episodes`` games, split over the pool in proportion to its weights:
    the ``LEARNERS`` share against the other learners (learner i meets i+1 in seat 0 and i-1 in
    seat 1, itself when it is alone), each background group's share against that group, in
    seat 0 and seat 1 alternately so the learner learns both seats.
    """
    total = sum(pool.values())
    counts = {name: round(episodes * weight / total) for name, weight in pool.items()}
    # Rounding must not change the batch size: the largest share absorbs the difference.
    counts[max(counts, key=counts.get)] += episodes - sum(counts.values())
    blocks = []
    for i in range(num_learners):
        versus_learners = counts.get(LEARNERS, 0)
        blocks.append(np.full((2, versus_learners // 2), [[i], [(i + 1) % num_learners]]))
        for name, count in counts.items():
            if name == LEARNERS:
                continue
            block = np.full((2, count), [[i], [coplayer_code(groups.index(name))]])
            block[:, ::2] = block[::-1, ::2]
            blocks.append(block)
    return np.concatenate(blocks, axis=1)


@dataclass
class Rollout:
    """One learner's experience from one batch of episodes; step arrays are (T, S)."""

    inputs: StepInputs
    actions: torch.Tensor
    log_probs: torch.Tensor  # of the actions taken, under the acting policy
    rewards: torch.Tensor
    played: torch.Tensor  # the moves played: ``actions`` unless a learner followed a hint
    coplayer_actions: torch.Tensor
    coplayer: np.ndarray  # (S,) the owner code of each episode's co-player
    # (T, S) log pi(cooperate) - log pi(defect) under the improved policy (PPI's prior target),
    # which is the acting policy unless PPI's acting_beta says otherwise.
    log_odds: torch.Tensor

    @property
    def episodes(self) -> int:
        return self.actions.shape[1]

    def columns(self, index: torch.Tensor) -> Rollout:
        """The same experience restricted to some episodes (for minibatches)."""
        inputs = StepInputs(*(None if x is None else x[:, index] for x in self.inputs))
        return Rollout(
            inputs, self.actions[:, index], self.log_probs[:, index], self.rewards[:, index],
            self.played[:, index], self.coplayer_actions[:, index], self.coplayer[index.numpy()],
            self.log_odds[:, index],
        )


def identity_features(owner: np.ndarray, coplayers: Sequence[Agent]) -> np.ndarray:
    """(2, G, IDENTITY_SIZE): for each seat, a description of the co-player opposite it."""
    features = np.zeros((2, owner.shape[1], IDENTITY_SIZE), dtype=np.float32)
    opposite = owner[::-1]
    features[..., -1] = opposite >= 0
    for k, agent in enumerate(coplayers):
        seats, games = np.nonzero(owner == coplayer_code(k))
        tables = getattr(agent, "game_tables", None)
        if tables is None:
            raise ConfigError(
                "train.identity_vector", expected="memory-one co-players (they have a table to show)",
                got=type(agent).__name__,
            )
        # A co-player in seat s faces the learner in seat 1 - s.
        features[1 - seats, games, :5] = np.asarray(tables)
    return features


def collect(
    game_config: envs.MatrixGameConfig,
    policies: Sequence[SequencePolicy],
    owner: np.ndarray,
    coplayers: Sequence[Agent],
    rng: np.random.Generator,
    generators: Sequence[torch.Generator],
    *,
    identity: bool = False,
    acting: Acting | None = None,
    threads: LearnerThreads | None = None,
    memory: LearnerMemory | None = None,
) -> list[Rollout]:
    """Play one batch of episodes (fixed horizon) and return each learner's experience.

    Learners act by sampling their policy head, or, with ``acting``, from the action
    log-probabilities it returns (PPI acts by planning with the policy as a model); learner i
    draws from ``generators[i]``, on one of ``threads`` if given. With ``memory``, every
    learner gets its hints every round; a behavior-conditioned one reads them, and one that
    chooses ``FOLLOW`` plays its best response rule's move (``agents.behavior_inputs``)."""
    if game_config.continuation_probability is not None:
        raise ConfigError(
            "env.continuation_probability", expected="none while training (fixed-length episodes)",
            got=str(game_config.continuation_probability),
        )
    game = envs.MatrixGameBatch(game_config, batch_size=owner.shape[1])
    observations = game.reset(rng)
    learner_slots = [np.nonzero(owner == i) for i in range(len(policies))]
    coplayer_slots = [np.nonzero(owner == coplayer_code(k)) for k in range(len(coplayers))]
    for agent, slot in zip(coplayers, coplayer_slots):
        agent.reset(len(slot[0]), rng)
    observers = [getattr(agent, "observe", None) for agent in coplayers]
    identities = (
        [torch.from_numpy(identity_features(owner, coplayers)[slot]) for slot in learner_slots]
        if identity else [None] * len(policies)
    )

    T = game_config.horizon
    logs = [
        {name: torch.empty((T, len(slot[0])), dtype=dtype) for name, dtype in (
            ("obs", torch.long), ("prev_action", torch.long), ("prev_reward", torch.float32),
            ("action", torch.long), ("log_prob", torch.float32), ("reward", torch.float32),
            ("coplayer", torch.long), ("log_odds", torch.float32), ("played", torch.long),
            ("behavior_row", torch.long), ("can_follow", torch.bool),
        )}
        for slot in learner_slots
    ]
    batch_memory = None if memory is None else memory.batch(owner, T)
    banks = [BehaviorBank(p.config.behavior_size) for p in policies]
    step_hints: Sequence[Hints | None] = [None] * len(policies)
    hint_used = [np.full(len(slot[0]), -1, dtype=np.int64) for slot in learner_slots]
    states = [p.initial_state(len(s[0])) for p, s in zip(policies, learner_slots)]
    previous = [
        (torch.full((len(s[0]),), NO_ACTION), torch.zeros(len(s[0]))) for s in learner_slots
    ]
    actions = np.empty_like(owner)
    threads = threads or LearnerThreads(len(policies))

    @torch.no_grad()  # here, not around the loop: grad mode is per thread
    def act(i: int) -> None:
        """Learner i's move in round t, logged."""
        policy, slot, log = policies[i], learner_slots[i], logs[i]
        config = policy.config
        observation = torch.from_numpy(observations[slot])
        read = banks[i].step(step_hints[i], len(slot[0])) if config.conditioned else None
        inputs = StepInputs(
            observation, *previous[i], identities[i],
            behaviors=read.behaviors if config.behavior_size else None,
            can_follow=torch.from_numpy(read.can_follow) if config.follow_memory else None,
        )
        outputs, states[i] = policy.step(inputs, states[i])
        if acting is None:
            log_probs = improved = F.log_softmax(outputs.logits, -1)
        else:
            log_probs, improved = acting(policy, outputs, states[i], T - t, identities[i], generators[i])
        action = torch.multinomial(log_probs.exp(), 1, generator=generators[i])[:, 0]
        played = action
        if config.follow_memory:
            followed = (action == FOLLOW).numpy()
            p_rule = torch.from_numpy(read.cooperate[np.arange(len(followed)), observation.numpy()])
            draws = torch.rand(len(followed), generator=generators[i], dtype=torch.float64)
            played = torch.where(action == FOLLOW, (draws >= p_rule).long(), action)
            hint_used[i] = np.where(followed, read.position, -1)
            log["can_follow"][t] = inputs.can_follow
        if config.behavior_size:
            log["behavior_row"][t] = read.behaviors.rows
        actions[slot] = played.numpy()
        log["obs"][t], log["prev_action"][t] = inputs.observation, inputs.previous_action
        log["prev_reward"][t], log["action"][t] = inputs.previous_reward, action
        log["played"][t] = played
        log["log_prob"][t] = log_probs.gather(-1, action[:, None])[:, 0]
        log["log_odds"][t] = improved[:, 0] - improved[:, 1]

    returns = np.zeros(owner.shape)
    for t in range(T):
        if batch_memory is not None:
            step_hints = batch_memory.hints()
        threads.map(act)
        if batch_memory is not None:
            batch_memory.record(hint_used)
        for agent, slot in zip(coplayers, coplayer_slots):
            actions[slot] = agent.act(observations[slot])
        result = game.step(actions)
        if batch_memory is not None:
            returns += result.rewards
            batch_memory.observe((actions[0] * 2 + actions[1]).astype(np.uint8), result.active)
        for observe, slot in zip(observers, coplayer_slots):
            if observe is not None:
                observe(result.rewards[slot], result.active[slot[1]])
        for i, (slot, log) in enumerate(zip(learner_slots, logs)):
            reward = torch.from_numpy(result.rewards[slot]).float()
            log["reward"][t] = reward
            log["coplayer"][t] = torch.from_numpy(actions[1 - slot[0], slot[1]])
            previous[i] = (log["played"][t], reward)
        observations = result.observations
    if batch_memory is not None:
        batch_memory.finish(returns)
    return [
        Rollout(
            inputs=StepInputs(
                log["obs"], log["prev_action"], log["prev_reward"],
                None if ident is None else ident.expand(T, -1, -1),
                behaviors=(BehaviorInput(log["behavior_row"], bank.bank())
                           if policy.config.behavior_size else None),
                can_follow=log["can_follow"] if policy.config.follow_memory else None,
            ),
            actions=log["action"], log_probs=log["log_prob"], rewards=log["reward"],
            played=log["played"], coplayer_actions=log["coplayer"],
            coplayer=owner[1 - slot[0], slot[1]], log_odds=log["log_odds"],
        )
        for log, slot, ident, bank, policy in zip(logs, learner_slots, identities, banks, policies)
    ]


def advantages(
    rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over whole episodes of equal length (the last step has no successor)."""
    T = rewards.shape[0]
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(T)):
        next_value = values[t + 1] if t + 1 < T else torch.zeros_like(values[t])
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * lam * running
        adv[t] = running
    return adv, adv + values


def episode_metrics(data: Rollout, groups: Sequence[str]) -> dict[str, float]:
    """Cooperation rate and reward per step of one learner against each kind of co-player
    (and, for a learner that can follow hints, the share of its moves that followed one)."""
    cooperated = (data.played == 0).float()
    metrics = {}
    named = [(LEARNERS, data.coplayer >= 0)] + [
        (name, data.coplayer == coplayer_code(k)) for k, name in enumerate(groups)
    ]
    for name, mask in named:
        if mask.any():
            columns = torch.from_numpy(np.flatnonzero(mask))
            metrics[f"cooperation_vs_{name}"] = cooperated[:, columns].mean().item()
            metrics[f"reward_vs_{name}"] = data.rewards[:, columns].mean().item()
    if data.inputs.can_follow is not None:
        metrics["followed"] = (data.actions == FOLLOW).float().mean().item()
    return metrics


class Evaluation(NamedTuple):
    """The current policy's view of a rollout, recomputed from each episode's start."""

    log_probs: torch.Tensor  # (T, S) of the actions taken
    values: torch.Tensor  # (T, S)
    entropy: torch.Tensor  # mean over steps
    coplayer_loss: torch.Tensor  # cross-entropy of the co-player prediction head


def evaluate(policy: SequencePolicy, data: Rollout) -> Evaluation:
    outputs, _ = policy(data.inputs, policy.initial_state(data.episodes))
    log_probs = F.log_softmax(outputs.logits, -1)
    return Evaluation(
        log_probs=log_probs.gather(-1, data.actions.unsqueeze(-1)).squeeze(-1),
        values=outputs.value,
        entropy=-(log_probs.exp() * log_probs).sum(-1).mean(),
        coplayer_loss=F.cross_entropy(
            outputs.coplayer_logits.reshape(-1, 2), data.coplayer_actions.reshape(-1)
        ),
    )


def normalized(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean()) / (x.std() + 1e-8)


def apply_gradients(
    optimizer: torch.optim.Optimizer, loss: torch.Tensor, policy: torch.nn.Module, max_norm: float
) -> None:
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(policy.parameters(), max_norm)
    optimizer.step()
