"""Environments, all built by ``envs.make(id, **settings)`` from one registry
(``envs/registry.py``; ``envs.registered()`` lists the typed specs):

- matrix: iterated two-player matrix games as PettingZoo ParallelEnvs (``envs/matrix_env.py``)
  over one statement of the rules, the batched numpy core (``envs/matrix_core.py``);
- grid: single-agent contextual grid tasks on minigrid as Gymnasium envs (``envs/grid.py``),
  also registered with Gymnasium here so ``gymnasium.make(id)`` builds them. minigrid is
  imported only when a grid task is built.
"""

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
from envs.registry import (
    EnvSpec,
    GridTaskSpec,
    MatrixGameSpec,
    make,
    make_batch,
    make_config,
    register,
    registered,
    spec,
)

GRID_TASK_IDS = tuple(grid_spec.env_id for grid_spec in registered("grid"))
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
    "EnvSpec",
    "GridTaskSpec",
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
