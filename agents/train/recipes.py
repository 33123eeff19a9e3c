"""The decentralized recipes by the name a training scenario gives in ``train.algorithm``."""

from __future__ import annotations

from collections.abc import Mapping

from agents.base import Agent
from agents.train.a2c import A2C
from agents.train.experience import LearnerMemory
from agents.train.ppi import PPI
from agents.train.ppo import PPO
from agents.train.trainer import Trainer, TrainingSetup

RECIPES: dict[str, type[Trainer]] = {"a2c": A2C, "ppo": PPO, "ppi": PPI}


def make_trainer(setup: TrainingSetup, coplayers: Mapping[str, Agent], *,
                 memory: LearnerMemory | None = None) -> Trainer:
    return RECIPES[setup.config.algorithm](setup, coplayers, memory=memory)
