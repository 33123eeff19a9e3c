"""Plug-ins the tests name by import path (``tests.plugins:...``)."""

from __future__ import annotations

import numpy as np

import agents


def retaliate_after_two_in_three(history: agents.History, rng: np.random.Generator) -> np.ndarray:
    """Defect while the co-player defected in at least two of the last three rounds."""
    return ((history.theirs[:, -3:] == 1).sum(axis=1) >= 2).astype(np.int64)


def make_two_in_three(context: agents.AgentContext) -> agents.HistoryAgent:
    return agents.HistoryAgent(retaliate_after_two_in_three, horizon=context.horizon)
