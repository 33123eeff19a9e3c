"""Environments: iterated matrix games as PettingZoo ParallelEnvs over a batched numpy core."""

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

__all__ = [
    "COOPERATE",
    "DEFECT",
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
