"""Training settings, checked when built so an inconsistent run fails before it starts.

Defaults are the A2C settings of the in-context co-player inference work (mixed pool, IPD),
except where this module says otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from agents.sequence import SequencePolicyConfig
from coplay.errors import ConfigError

Algorithm = Literal["a2c", "ppo", "ppi"]
MAX_EXACT_DEPTH = 5


@dataclass(frozen=True, kw_only=True)
class PPOSettings:
    epochs: int = 4
    minibatches: int = 4  # per epoch, split over episodes (whole sequences)
    clip: float = 0.2

    def __post_init__(self) -> None:
        for name in ("epochs", "minibatches"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"train.ppo.{name}", expected="a positive integer", got=repr(value))
        if not 0.0 < self.clip < 1.0:
            raise ConfigError("train.ppo.clip", expected="a number in (0, 1)", got=repr(self.clip))


@dataclass(frozen=True, kw_only=True)
class PPISettings:
    """Predictive policy improvement (``agents/train/ppi.py``); one update is one phase."""

    beta: float = 1.0  # how far the improved policy moves from the prior, per unit of Q
    # Rounds simulated in each model rollout, never past the episode's end; "end": to the end.
    depth: int | Literal["end"] = 10
    # Rollouts per candidate action; "exact": the expectation over every joint outcome of
    # the ``depth`` rounds instead (4^depth leaves, no sampling noise; depth at most 5).
    samples: int | Literal["exact"] = 4
    # Random memory-one games the model first learns from; 0: none, the first phase plans with
    # an untrained model (the strict no-tabular ablation).
    pretrain_episodes: int = 16384
    pretrain_steps: int = 200
    fit_steps: int = 60  # gradient steps on the replay after each phase
    minibatch: int = 256  # episodes per gradient step
    recent_phases: int = 0  # > 0: half of each minibatch from this many newest phases
    # > 0: the replay keeps only this many newest phases (the pretraining games count as one),
    # so the prior follows the latest improved policy; 0: every episode, as the paper.
    replay_phases: int = 0
    bootstrap: bool = False  # rollouts end with the value head's estimate of what follows
    # True: rollouts stop at the episode's end. False: the planner imagines past it, as an agent
    # whose inputs never tell it the round would, so a known last round cannot unravel play.
    knows_horizon: bool = True
    # What the own-action prior is fitted to. "actions": the actions played, as the paper.
    # Planning noise then shrinks each phase's improvement toward 0.5 (the average of a
    # sigmoid over noisy log-odds is flatter than the sigmoid of their mean), which caps how
    # sure a learner can become. "log_odds": the improved policy's log-odds of cooperating at
    # each step played, which the fit averages without that shrinkage; each phase then moves
    # the prior by beta times the mean Q difference, within +-log_odds_limit.
    prior_target: Literal["actions", "log_odds"] = "actions"
    log_odds_limit: float = 4.0  # keeps every action's prior above sigmoid(-limit): exploration
    # With log_odds: the prior is fitted to actions for this many phases first. The flattening
    # is then the learners' exploration, which is what lets them first find each other.
    log_odds_after: int = 0
    # With log_odds, from the switch on: the learners act by p(a | h) exp(acting_beta * Q(h, a))
    # while the prior is still fitted to the log-odds of the improved policy (beta). Below beta,
    # play carries less planning noise and each phase's improvement stays what it was. None: act
    # by the improved policy.
    acting_beta: float | None = None
    # With log_odds, from the switch on: the acted log-odds are divided by this. Below 1 a
    # learner plays its likelier action more surely (0.5: a 0.8 chance becomes 0.94), so fewer
    # stray defections reach its co-player and a retaliation it leans to is carried out; the
    # prior is still fitted to the improved policy's log-odds.
    acting_temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.depth != "end" and (not isinstance(self.depth, int) or self.depth < 1):
            raise ConfigError("train.ppi.depth", expected="a positive integer or 'end'", got=repr(self.depth))
        if self.depth == "end" and self.bootstrap:
            raise ConfigError(
                "train.ppi.bootstrap", expected="false with depth 'end' (no rounds follow a rollout)",
                got="true",
            )
        if self.samples == "exact":
            if self.depth == "end" or self.depth > MAX_EXACT_DEPTH:
                raise ConfigError(
                    "train.ppi.depth", expected=f"at most {MAX_EXACT_DEPTH} rounds with samples 'exact' "
                    "(the search grows fourfold per round)", got=repr(self.depth),
                )
        elif not isinstance(self.samples, int) or self.samples < 1:
            raise ConfigError("train.ppi.samples", expected="a positive integer or 'exact'", got=repr(self.samples))
        if not isinstance(self.minibatch, int) or self.minibatch < 1:
            raise ConfigError("train.ppi.minibatch", expected="a positive integer", got=repr(self.minibatch))
        for name in ("pretrain_episodes", "pretrain_steps", "fit_steps", "recent_phases", "replay_phases",
                     "log_odds_after"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"train.ppi.{name}", expected="a non-negative integer", got=repr(value))
        if self.replay_phases and self.recent_phases >= self.replay_phases:
            raise ConfigError(
                "train.ppi.recent_phases",
                expected=f"fewer than replay_phases ({self.replay_phases}), or 0",
                got=repr(self.recent_phases),
            )
        for name in ("bootstrap", "knows_horizon"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"train.ppi.{name}", expected="true or false", got=repr(getattr(self, name)))
        if self.depth == "end" and not self.knows_horizon:
            raise ConfigError(
                "train.ppi.depth", expected="a number of rounds when the planner does not know the horizon",
                got="'end'",
            )
        if self.prior_target not in ("actions", "log_odds"):
            raise ConfigError(
                "train.ppi.prior_target", expected="'actions' or 'log_odds'", got=repr(self.prior_target),
            )
        if not (isinstance(self.log_odds_limit, (int, float)) and math.isfinite(self.log_odds_limit)
                and self.log_odds_limit > 0):
            raise ConfigError(
                "train.ppi.log_odds_limit", expected="a positive number", got=repr(self.log_odds_limit),
            )
        if self.log_odds_after and self.prior_target != "log_odds":
            raise ConfigError(
                "train.ppi.log_odds_after", expected="0 unless prior_target is 'log_odds'",
                got=repr(self.log_odds_after),
            )
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise ConfigError("train.ppi.beta", expected="a non-negative number", got=repr(self.beta))
        if self.acting_beta is not None:
            if self.prior_target != "log_odds":
                raise ConfigError(
                    "train.ppi.acting_beta", expected="null unless prior_target is 'log_odds' (fitted to "
                    "actions, the prior follows the policy acted by, so acting_beta would just be beta)",
                    got=repr(self.acting_beta),
                )
            if not (isinstance(self.acting_beta, (int, float)) and math.isfinite(self.acting_beta)
                    and 0 <= self.acting_beta and self.beta > 0):
                raise ConfigError(
                    "train.ppi.acting_beta", expected="a non-negative number, with beta positive",
                    got=f"acting_beta {self.acting_beta!r}, beta {self.beta!r}",
                )

        if not (isinstance(self.acting_temperature, (int, float)) and math.isfinite(self.acting_temperature)
                and self.acting_temperature > 0):
            raise ConfigError(
                "train.ppi.acting_temperature", expected="a positive number",
                got=repr(self.acting_temperature),
            )
        if self.acting_temperature != 1.0 and self.prior_target != "log_odds":
            raise ConfigError(
                "train.ppi.acting_temperature", expected="1 unless prior_target is 'log_odds' (fitted "
                "to actions, the prior would learn the sharpened play and sharpen again every phase)",
                got=repr(self.acting_temperature),
            )

    def fits_log_odds(self, phase: int) -> bool:
        """Whether the fit after ``phase`` phases (0: pretraining) targets log-odds."""
        return self.prior_target == "log_odds" and phase > self.log_odds_after

    def adjusts_acting(self, phase: int | None) -> bool:
        """Whether ``acting_beta`` and ``acting_temperature`` apply in ``phase`` (None: after
        training): from the switch to log-odds on, as before it the prior learns the play."""
        return phase is None or self.fits_log_odds(phase)

    def acting_share(self, phase: int | None) -> float:
        """How far toward the improved policy a learner acts in ``phase`` (None: after training),
        as acting_beta / beta: 1 acts by the improved policy, 0 by the prior."""
        if self.acting_beta is None or not self.adjusts_acting(phase):
            return 1.0
        return self.acting_beta / self.beta

    def acting_temperature_in(self, phase: int | None) -> float:
        """The temperature a learner acts with in ``phase`` (None: after training)."""
        return self.acting_temperature if self.adjusts_acting(phase) else 1.0


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    algorithm: Algorithm = "a2c"
    updates: int = 500
    episodes_per_update: int = 4096  # per learner
    policy: SequencePolicyConfig = field(default_factory=SequencePolicyConfig)
    learning_rate: float = 1e-3
    adam_eps: float = 1e-5
    gamma: float = 0.99
    gae_lambda: float = 1.0
    reward_scale: float = 0.02
    normalize_advantages: bool = True
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    coplayer_coef: float = 1.0
    max_grad_norm: float = 1.0
    identity_vector: bool = False  # the ablation: learners see their co-player's parameters
    ppo: PPOSettings | None = None  # with algorithm "ppo" only (defaults if omitted)
    ppi: PPISettings | None = None  # with algorithm "ppi" only (defaults if omitted)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.algorithm not in ("a2c", "ppo", "ppi"):
            raise ConfigError(
                "train.algorithm", expected="'a2c', 'ppo' or 'ppi'", got=repr(self.algorithm)
            )
        for name, settings_type in (("ppo", PPOSettings), ("ppi", PPISettings)):
            if self.algorithm == name and getattr(self, name) is None:
                object.__setattr__(self, name, settings_type())
            if self.algorithm != name and getattr(self, name) is not None:
                raise ConfigError(
                    f"train.{name}", expected=f"no {name.upper()} settings with algorithm "
                    f"{self.algorithm!r}", got=str(getattr(self, name)),
                    fix=f"Set algorithm: {name}, or remove the {name} section.",
                )
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError("train.seed", expected="a non-negative integer", got=repr(self.seed))
        if self.policy.identity_size:
            raise ConfigError(
                "train.policy.identity_size", expected="0 (the trainer sizes the identity input)",
                got=str(self.policy.identity_size), fix="Set train.identity_vector: true instead.",
            )
        if self.algorithm == "ppi" and self.policy.backbone != "gru":
            raise ConfigError(
                "train.policy.backbone", expected="gru with algorithm 'ppi'",
                got=repr(self.policy.backbone),
            )
        for name in ("updates", "episodes_per_update"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"train.{name}", expected="a positive integer", got=repr(value))
        if self.episodes_per_update < 2:
            raise ConfigError(
                "train.episodes_per_update", expected="at least 2 (advantages are normalised)",
                got=str(self.episodes_per_update),
            )
        if self.ppo is not None and self.ppo.minibatches > self.episodes_per_update:
            raise ConfigError(
                "train.ppo.minibatches", expected=f"at most episodes_per_update ({self.episodes_per_update})",
                got=str(self.ppo.minibatches),
            )
        for name in ("learning_rate", "adam_eps", "reward_scale", "max_grad_norm"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"train.{name}", expected="a positive number", got=repr(value))
        for name in ("gamma", "gae_lambda"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"train.{name}", expected="a number in [0, 1]", got=repr(value))
        for name in ("value_coef", "entropy_coef", "coplayer_coef"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"train.{name}", expected="a non-negative number", got=repr(value))
