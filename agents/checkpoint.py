"""The checkpoint file: writing it whole, reading it back, and finding a learner in it.

A checkpoint of a decentralized run (written by ``agents.train.trainer.Trainer.save``) holds
under ``learners`` every learner's policy settings (``policy``), weights (``state_dict``),
optimizer state and, for a learner that plans, how it plans (``planning``); beside them what
resuming needs. A grid run's checkpoint (``agents.train.ppo_grid``) is marked
``recipe: ppo_grid``. The agent that seats a learner is ``agents.sequence_agent``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from agents.sequence import SequencePolicy, SequencePolicyConfig, make_policy
from coplay.errors import ConfigError

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
