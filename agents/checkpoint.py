"""Checkpoint files, and trained learners as agents that take a seat in any scenario.

A checkpoint (written by ``agents.train.trainer.Trainer.save``) holds every learner of a
training run: its policy settings and weights, plus what resuming needs. ``kind: checkpoint``
seats one of those learners, frozen, wherever a scenario names an agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from agents.sequence import NO_ACTION, SequencePolicy, SequencePolicyConfig, StepInputs, make_policy
from agents.train import ppi
from agents.train.config import PPISettings
from coplay.errors import ConfigError
from coplay.step import Hints

FORMAT = "coplay-checkpoint-v1"


@dataclass(frozen=True)
class CheckpointRef:
    """One learner in a checkpoint file; ``learner`` may be omitted when it holds only one."""

    path: str
    learner: str | None = None


def write_checkpoint(path: str | Path, content: Mapping[str, object]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so an interrupted save never leaves a half-written checkpoint.
    partial = path.with_name(path.name + ".partial")
    torch.save({"format": FORMAT, **content}, partial)
    partial.replace(path)


def load_checkpoint(path: str | Path, *, where: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            where, expected="an existing checkpoint file", got=f"{str(path)!r} (not found)",
            fix="Train one with `coplay train SCENARIO`; it prints where the checkpoint is saved.",
        )
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a file that is not a checkpoint
        raise ConfigError(
            where, expected="a coplay checkpoint", got=f"{str(path)!r} ({type(error).__name__})"
        ) from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ConfigError(where, expected=f"a {FORMAT} file", got=repr(str(path)))
    return saved


def load_policy(ref: CheckpointRef, *, where: str) -> SequencePolicy:
    return load_learner(ref, where=where)[0]


def load_learner(ref: CheckpointRef, *, where: str) -> tuple[SequencePolicy, dict | None]:
    """A learner's policy, and how it acts if it plans (PPI learners), else None."""
    saved = load_checkpoint(ref.path, where=_field(where, "path"))
    learners = saved["learners"]
    name = ref.learner
    if name is None:
        if len(learners) != 1:
            raise ConfigError(
                _field(where, "learner"),
                expected=f"one of {sorted(learners)} (the checkpoint holds several)",
                got="none",
            )
        name = next(iter(learners))
    if name not in learners:
        raise ConfigError(
            _field(where, "learner"), expected=f"one of {sorted(learners)}", got=repr(name)
        )
    policy = make_policy(SequencePolicyConfig(**learners[name]["policy"]))
    policy.load_state_dict(learners[name]["state_dict"])
    policy.eval()
    return policy, learners[name].get("planning")


def _field(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


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
                fix="Identity-ablation learners need their co-player's parameters; evaluate them in training.",
            )
        self.policy = policy
        self.greedy = greedy
        self.planning = planning
        if planning is not None:  # read once: the plan runs every round
            self._settings = PPISettings(**planning["ppi"])
            self._payoff = torch.tensor(planning["payoff"])
            self._horizon = planning.get("horizon")  # absent from checkpoints before 2026-11-21
        self._generator = torch.Generator()
        self._rng = np.random.default_rng()
        self._state: object = None
        self._rounds_played = 0
        self._previous_action = torch.zeros(0, dtype=torch.long)
        self._previous_reward = torch.zeros(0)
        self.belief = np.zeros(0)

    def reset(self, num_games: int, rng: np.random.Generator) -> None:
        self._rng = rng
        self._generator.manual_seed(int(rng.integers(2**63)))
        self._state = self.policy.initial_state(num_games)
        self._rounds_played = 0
        self._previous_action = torch.full((num_games,), NO_ACTION)
        self._previous_reward = torch.zeros(num_games)
        self.belief = np.full(num_games, 0.5)

    @torch.no_grad()
    def act(self, observations: np.ndarray, hints: Hints | None = None) -> np.ndarray:
        inputs = StepInputs(
            torch.from_numpy(np.asarray(observations, dtype=np.int64)),
            self._previous_action, self._previous_reward,
        )
        outputs, self._state = self.policy.step(inputs, self._state)
        self.belief = torch.softmax(outputs.coplayer_logits, -1)[:, 0].numpy()
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

    def _plan(self, outputs) -> torch.Tensor:
        """The trained learner acts as at the end of its training (``acting_beta`` and
        ``acting_temperature`` included)."""
        improved = ppi.plan(
            self.policy, outputs, self._state, settings=self._settings,
            gamma=self.planning["gamma"], payoff=self._payoff, generator=self._generator,
            rounds_left=None if self._horizon is None else max(self._horizon - self._rounds_played, 1),
        )
        return ppi.acting_policy(improved, outputs.logits, self._settings, None)

    def observe(self, rewards: np.ndarray, active: np.ndarray) -> None:
        self._previous_reward = torch.from_numpy(np.asarray(rewards, dtype=np.float32))
