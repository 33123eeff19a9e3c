"""coplay's one SQL database: the run store now; the behavior handbook and graph build on it."""

from memory.db import DEFAULT_URL, URL_ENV_VAR, default_url, open_engine
from memory.runs import (
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

__all__ = [
    "DEFAULT_URL", "URL_ENV_VAR", "EpisodeArrays", "EpisodeRecord", "NewRun", "PairingOutcome",
    "PairingStats", "RunInfo", "RunStore", "default_url", "get_episodes", "get_pairings",
    "get_run", "list_runs", "open_engine", "save_run",
]
