"""A trained learner, frozen, playing one seat of a scenario (``kind: checkpoint``).

It acts as it did at the end of its training: by sampling its policy head, or, a PPI learner,
by planning with its model (``agents.train.planning``). A behavior-conditioned learner
(``ConditionedSequenceAgent``) reads the hints memory gives it each round and may follow one.
"""

from __future__ import annotations

import numpy as np
import torch

from agents.behavior_inputs import BehaviorBank, StepHints
from agents.sequence import FOLLOW, NO_ACTION, SequencePolicy, StepInputs
from agents.train.config import PPISettings
from agents.train.planning import acting_policy, plan
from coplay.errors import ConfigError
from coplay.step import Hints


class SequenceAgent:
    """A frozen sequence policy playing one seat of B games.

    Actions are sampled with the numpy generator given at reset, so runs are reproducible like
    any other agent's. ``belief`` is the policy's predicted probability, before each round,
    that the co-player cooperates in it. A PPI learner (``planning`` given) acts as it did in
    training: by planning with its model, for games of its training horizon (rollouts stop at
    that many rounds, or at one round ahead once a longer game has passed it).
    """

    def __init__(
        self, policy: SequencePolicy, *, greedy: bool = False, planning: dict | None = None
    ) -> None:
        if policy.config.identity_size:
            raise ConfigError(
                "checkpoint", expected="a policy trained without the identity vector",
                got=f"identity_size {policy.config.identity_size}",
                fix="Identity-ablation learners need their co-player's parameters; evaluate "
                    "them in training.",
            )
        self.policy = policy
        self.greedy = greedy
        self.planning = planning
        if planning is not None:  # read once: the plan runs every round
            self._settings = PPISettings(**planning["ppi"])
            self._payoff = torch.tensor(planning["payoff"])
            self._horizon = planning.get("horizon")  # absent from the oldest checkpoints
        self._generator = torch.Generator()
        self._rng = np.random.default_rng()
        self._state: object = None
        self._rounds_played = 0
        self._previous_action = torch.zeros(0, dtype=torch.long)
        self._previous_reward = torch.zeros(0)
        self.belief = np.zeros(0)
        self._bank = BehaviorBank(policy.config.behavior_size)
        self._hint_used = np.zeros(0, dtype=np.int64)

    def reset(self, num_games: int, rng: np.random.Generator) -> None:
        self._rng = rng
        self._generator.manual_seed(int(rng.integers(2**63)))
        self._state = self.policy.initial_state(num_games)
        self._rounds_played = 0
        self._previous_action = torch.full((num_games,), NO_ACTION)
        self._previous_reward = torch.zeros(num_games)
        self.belief = np.full(num_games, 0.5)
        self._bank.reset()
        self._hint_used = np.full(num_games, -1, dtype=np.int64)

    @torch.no_grad()
    def act(self, observations: np.ndarray, hints: Hints | None = None) -> np.ndarray:
        config = self.policy.config
        observations = np.asarray(observations, dtype=np.int64)
        read = self._bank.step(hints, len(observations)) if config.conditioned else None
        inputs = StepInputs(
            torch.from_numpy(observations), self._previous_action, self._previous_reward,
            behaviors=read.behaviors if config.behavior_size else None,
            can_follow=torch.from_numpy(read.can_follow) if config.follow_memory else None,
        )
        outputs, self._state = self.policy.step(inputs, self._state)
        self.belief = torch.softmax(outputs.coplayer_logits, -1)[:, 0].numpy()
        if config.follow_memory:
            actions = self._choose(torch.softmax(outputs.logits, -1).numpy(), observations, read)
        else:
            if self.planning is None:
                p_cooperate = torch.softmax(outputs.logits, -1)[:, 0].numpy()
            else:
                p_cooperate = self._plan(outputs)[:, 0].exp().numpy()
            if self.greedy:
                actions = (p_cooperate < 0.5).astype(np.int64)
            else:
                actions = (self._rng.random(len(p_cooperate)) >= p_cooperate).astype(np.int64)
        self._previous_action = torch.from_numpy(actions)
        self._rounds_played += 1
        return actions

    def _choose(self, choices: np.ndarray, observations: np.ndarray, read: StepHints) -> np.ndarray:
        """Cooperate, defect or follow (``choices`` (B, 3) their chances); a followed rule's
        move is drawn from its chance of cooperating after the observed token."""
        if self.greedy:
            choice = choices.argmax(axis=1)
        else:
            draws = self._rng.random(len(choices))
            choice = (draws >= choices[:, 0]).astype(np.int64) + (draws >= choices[:, :2].sum(1))
        # Rounding could put a draw past the first two; FOLLOW is never picked where masked.
        choice = np.where(read.can_follow, choice, np.minimum(choice, 1))
        p_rule = read.cooperate[np.arange(len(choice)), observations]
        rule_moves = (p_rule < 0.5 if self.greedy
                      else self._rng.random(len(choice)) >= p_rule).astype(np.int64)
        followed = choice == FOLLOW
        self._hint_used = np.where(followed, read.position, -1)
        return np.where(followed, rule_moves, choice)

    def _plan(self, outputs) -> torch.Tensor:
        """The trained learner acts as at the end of its training (``acting_beta`` and
        ``acting_temperature`` included)."""
        improved = plan(
            self.policy, outputs, self._state, settings=self._settings,
            gamma=self.planning["gamma"], payoff=self._payoff, generator=self._generator,
            rounds_left=None if self._horizon is None else max(self._horizon - self._rounds_played, 1),
        )
        return acting_policy(improved, outputs.logits, self._settings, None)

    def observe(self, rewards: np.ndarray, active: np.ndarray) -> None:
        self._previous_reward = torch.from_numpy(np.asarray(rewards, dtype=np.float32))


class ConditionedSequenceAgent(SequenceAgent):
    """A behavior-conditioned learner: it takes hints, so a scenario with memory hands it
    its retrieved behaviors every round, and it says which one it followed."""

    @property
    def hint_used(self) -> np.ndarray:
        return self._hint_used
