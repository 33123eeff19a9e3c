"""Training settings, validated by pydantic as they are built, so a bad run fails before it starts.

Each constraint is written once, on its field or in the one cross-field validator of its
class. A cross-field error names its field relative to its class (``recent_phases: expected
...``); the scenario loader prefixes where the class sits in the file (``train.ppi.``).

Defaults are the A2C settings of the in-context co-player inference work (mixed pool, IPD),
except where this module says otherwise.
"""

from __future__ import annotations

from dataclasses import field
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, PlainValidator, StrictBool, model_validator
from pydantic.dataclasses import dataclass

from agents.sequence import SequencePolicyConfig

Algorithm = Literal["a2c", "ppo", "ppi"]
MAX_EXACT_DEPTH = 5

SETTINGS = ConfigDict(extra="forbid")
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Count = Annotated[int, Field(ge=0)]


def _positive_int_or(word: str) -> PlainValidator:
    """A field that is a positive integer or the one word ``word``."""

    def check(value: object) -> int | str:
        if value == word or (type(value) is int and value >= 1):
            return value
        raise ValueError(f"a positive integer or {word!r}")

    return PlainValidator(check)


@dataclass(frozen=True, kw_only=True, config=SETTINGS)
class PPOSettings:
    epochs: int = Field(default=4, ge=1)
    minibatches: int = Field(default=4, ge=1)  # per epoch, split over episodes (whole sequences)


@dataclass(frozen=True, kw_only=True, config=SETTINGS)
class PPISettings:
    """Predictive policy improvement (``agents/train/ppi.py``); one update is one phase."""

    beta: NonNegative = 1.0  # how far the improved policy moves from the prior, per unit of Q
    # Rounds simulated in each model rollout, never past the episode's end; "end": to the end.
    depth: Annotated[int | Literal["end"], _positive_int_or("end")] = 10
    # Rollouts per candidate action; "exact": the expectation over every joint outcome of
    # the ``depth`` rounds instead (4^depth leaves, no sampling noise; depth at most 5).
    samples: Annotated[int | Literal["exact"], _positive_int_or("exact")] = 4
    # Random memory-one games the model first learns from; 0: none, the first phase plans with
    # an untrained model (the strict no-tabular ablation).
    pretrain_episodes: Count = 16384
    pretrain_steps: Count = 200
    fit_steps: Count = 60  # gradient steps on the replay after each phase
    minibatch: int = Field(default=256, ge=1)  # episodes per gradient step
    recent_phases: Count = 0  # > 0: half of each minibatch from this many newest phases
    # > 0: the replay keeps only this many newest phases (the pretraining games count as one),
    # so the prior follows the latest improved policy; 0: every episode, as the paper.
    replay_phases: Count = 0
    bootstrap: StrictBool = False  # rollouts end with the value head's estimate of what follows
    # True: rollouts stop at the episode's end. False: the planner imagines past it, as an agent
    # whose inputs never tell it the round would, so a known last round cannot unravel play.
    knows_horizon: StrictBool = True
    # What the own-action prior is fitted to. "actions": the actions played, as the paper.
    # Planning noise then shrinks each phase's improvement toward 0.5 (the average of a
    # sigmoid over noisy log-odds is flatter than the sigmoid of their mean), which caps how
    # sure a learner can become. "log_odds": the improved policy's log-odds of cooperating at
    # each step played, which the fit averages without that shrinkage; each phase then moves
    # the prior by beta times the mean Q difference, within +-log_odds_limit.
    prior_target: Literal["actions", "log_odds"] = "actions"
    log_odds_limit: Positive = 4.0  # keeps every action's prior above sigmoid(-limit): exploration
    # With log_odds: the prior is fitted to actions for this many phases first. The flattening
    # is then the learners' exploration, which is what lets them first find each other.
    log_odds_after: Count = 0
    # With log_odds, from the switch on: the learners act by p(a | h) exp(acting_beta * Q(h, a))
    # while the prior is still fitted to the log-odds of the improved policy (beta). Below beta,
    # play carries less planning noise while each phase's improvement stays what it was.
    # None: act by the improved policy.
    acting_beta: NonNegative | None = None
    # With log_odds, from the switch on: the acted log-odds are divided by this. Below 1 a
    # learner plays its likelier action more surely (0.5: a 0.8 chance becomes 0.94), so fewer
    # stray defections reach its co-player and a retaliation it leans to is carried out; the
    # prior is still fitted to the improved policy's log-odds.
    acting_temperature: Positive = 1.0

    @model_validator(mode="after")
    def _consistent(self) -> PPISettings:
        if self.depth == "end" and self.bootstrap:
            raise ValueError("bootstrap: expected false with depth 'end' (no rounds follow a "
                             "rollout), got true")
        if self.depth == "end" and not self.knows_horizon:
            raise ValueError("depth: expected a number of rounds when the planner does not know "
                             "the horizon, got 'end'")
        if self.samples == "exact" and (self.depth == "end" or self.depth > MAX_EXACT_DEPTH):
            raise ValueError(f"depth: expected at most {MAX_EXACT_DEPTH} rounds with samples "
                             f"'exact' (the search grows fourfold per round), got {self.depth!r}")
        if self.replay_phases and self.recent_phases >= self.replay_phases:
            raise ValueError(f"recent_phases: expected fewer than replay_phases "
                             f"({self.replay_phases}), or 0, got {self.recent_phases}")
        if self.prior_target != "log_odds":
            # Fitted to actions, the prior follows the policy acted by: it would learn an
            # adjusted play and adjust it again every phase.
            if self.log_odds_after:
                raise ValueError(f"log_odds_after: expected 0 unless prior_target is 'log_odds', "
                                 f"got {self.log_odds_after}")
            if self.acting_beta is not None:
                raise ValueError(f"acting_beta: expected null unless prior_target is 'log_odds', "
                                 f"got {self.acting_beta}")
            if self.acting_temperature != 1.0:
                raise ValueError(f"acting_temperature: expected 1 unless prior_target is "
                                 f"'log_odds', got {self.acting_temperature}")
        if self.acting_beta is not None and self.beta == 0:
            raise ValueError("acting_beta: expected null with beta 0 (it acts at a share of "
                             f"beta), got {self.acting_beta}")
        return self

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


@dataclass(frozen=True, kw_only=True, config=SETTINGS)
class TrainConfig:
    algorithm: Algorithm = "a2c"
    updates: int = Field(default=500, ge=1)
    # Per learner; at least 2, as advantages are normalised over the batch.
    episodes_per_update: int = Field(default=4096, ge=2)
    policy: SequencePolicyConfig = field(default_factory=SequencePolicyConfig)
    learning_rate: Positive = 1e-3
    gamma: Fraction = 0.99
    gae_lambda: Fraction = 1.0
    reward_scale: Positive = 0.02
    normalize_advantages: StrictBool = True
    value_coef: NonNegative = 0.5
    entropy_coef: NonNegative = 0.01
    max_grad_norm: Positive = 1.0
    identity_vector: StrictBool = False  # the ablation: learners see their co-player's parameters
    ppo: PPOSettings | None = None  # with algorithm "ppo" only (defaults if omitted)
    ppi: PPISettings | None = None  # with algorithm "ppi" only (defaults if omitted)
    seed: Count = 0

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        for name, settings_type in (("ppo", PPOSettings), ("ppi", PPISettings)):
            if self.algorithm != name and getattr(self, name) is not None:
                raise ValueError(f"{name}: expected no {name.upper()} settings with algorithm "
                                 f"{self.algorithm!r}, got {getattr(self, name)}")
            if self.algorithm == name and getattr(self, name) is None:
                object.__setattr__(self, name, settings_type())
        if self.policy.identity_size:
            raise ValueError("policy.identity_size: expected 0 (the trainer sizes the identity "
                             f"input; set identity_vector instead), got {self.policy.identity_size}")
        if self.algorithm == "ppi" and self.policy.conditioned:
            raise ValueError("policy.behavior_size: expected 0 and follow_memory false with "
                             "algorithm 'ppi' (its model rollouts have no hints), got "
                             f"{self.policy.behavior_size} and {self.policy.follow_memory}")
        if self.algorithm == "ppi" and self.policy.backbone != "gru":
            raise ValueError(f"policy.backbone: expected gru with algorithm 'ppi', "
                             f"got {self.policy.backbone!r}")
        if self.ppo is not None and self.ppo.minibatches > self.episodes_per_update:
            raise ValueError(f"ppo.minibatches: expected at most episodes_per_update "
                             f"({self.episodes_per_update}), got {self.ppo.minibatches}")
        return self
