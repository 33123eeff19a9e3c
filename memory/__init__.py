"""coplay's one SQL database: runs, training curves, and (in `memory.handbook`, `memory.graph`)
the behavior handbook and its knowledge graph."""

from memory.db import DEFAULT_URL, URL_ENV_VAR, default_url, open_engine
from memory.runs import (
    OUTCOMES,
    EpisodeArrays,
    EpisodeRecord,
    NewRun,
    PairingOutcome,
    PairingStats,
    RunInfo,
    RunStore,
    get_episodes,
    get_pairings,
    get_run,
    list_runs,
    save_run,
)
from memory.training import (
    LearningPoint,
    TrainingRunInfo,
    TrainingStore,
    add_learning_points,
    drop_points_after,
    get_learning_curve,
    get_training_run,
    list_training_runs,
    start_training_run,
)

__all__ = [
    "DEFAULT_URL",
    "OUTCOMES",
    "URL_ENV_VAR",
    "EpisodeArrays",
    "EpisodeRecord",
    "LearningPoint",
    "NewRun",
    "PairingOutcome",
    "PairingStats",
    "RunInfo",
    "RunStore",
    "TrainingRunInfo",
    "TrainingStore",
    "add_learning_points",
    "default_url",
    "drop_points_after",
    "get_episodes",
    "get_learning_curve",
    "get_pairings",
    "get_run",
    "get_training_run",
    "list_runs",
    "list_training_runs",
    "open_engine",
    "save_run",
    "start_training_run",
]
