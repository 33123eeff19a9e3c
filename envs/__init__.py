"""Environments: iterated matrix games as PettingZoo ParallelEnvs over a batched numpy core,
and contextual grid tasks on minigrid as Gymnasium envs (``envs/grid.py``)."""

import gymnasium

from envs.matrix_core import (
    COOPERATE,
    DEFECT,
    NUM_TOKENS,
    START,
    TOKEN_NAMES,
    MatrixGameBatch,
    MatrixGameConfig,
    Payoffs,
    RoundResult,
    token_of,
)
from envs.matrix_env import PLAYERS, MatrixGameEnv
from envs.registry import MatrixGameSpec, make, make_batch, make_config, register, registered, spec

# Registered here, loaded on first make: minigrid is imported only by those who use it.
GRID_TASK_IDS = ("coplay/grid-multiroom-v0", "coplay/grid-keydoor-v0", "coplay/grid-deadends-v0")
for _env_id in GRID_TASK_IDS:
    if _env_id not in gymnasium.registry:
        gymnasium.register(_env_id, entry_point="envs.grid:ContextualGridEnv",
                           kwargs={"task_id": _env_id})

__all__ = [
    "COOPERATE",
    "DEFECT",
    "GRID_TASK_IDS",
    "NUM_TOKENS",
    "PLAYERS",
    "START",
    "TOKEN_NAMES",
    "MatrixGameBatch",
    "MatrixGameConfig",
    "MatrixGameEnv",
    "MatrixGameSpec",
    "Payoffs",
    "RoundResult",
    "make",
    "make_batch",
    "make_config",
    "register",
    "registered",
    "spec",
    "token_of",
]
