"""Env families' step glue: each family's ``Domain`` says how a seat's situation is described
to memory (``coplay.step``), and may bring a fast path behind the same contract."""

from __future__ import annotations

from sqlalchemy.orm import Session

import envs
from memory.behaviors import AddResult
from memory.extraction import store_extracted
from memory.handbook import Handbook
from memory.runs import get_episodes, get_run
from scenarios.domains.grid import GridDomain
from scenarios.domains.grid_extraction import fold_known, subgoal_skills
from scenarios.domains.matrix import MatrixDomain
from scenarios.domains.matrix_extraction import memory_one_behaviors
from scenarios.domains.matrix_fast import MatrixFastPath
from scenarios.memory_step import RunMemory
from scenarios.schema import MemorySection


def run_memory(handbook: Handbook, section: MemorySection, *, scenario: str, env_id: str,
               seed: int, general: bool = False) -> RunMemory:
    """The memory of one run of ``scenario`` on ``env_id``, its exploration drawn from
    ``seed``; ``general`` turns a family's fast path off (the tests compare the two)."""
    if env_id in envs.GRID_TASK_IDS:
        return RunMemory(handbook, section, GridDomain(scenario=scenario, env_id=env_id),
                         scenario=scenario, seed=seed)
    envs.spec(env_id)  # names the registered envs if it is none of them
    return RunMemory(handbook, section, MatrixDomain(scenario=scenario, env_id=env_id),
                     scenario=scenario, seed=seed,
                     fast=None if general else MatrixFastPath(env_id))


def extract_run(handbook: Handbook, run_id: int, *, min_episodes: int = 8) -> list[AddResult]:
    """Distil a stored run's trajectories into the handbook with its env family's extractor;
    duplicates are merged."""
    with Session(handbook.engine) as session:
        info = get_run(session, run_id)
        episodes = get_episodes(session, run_id)
    if info.env_id not in envs.GRID_TASK_IDS:
        extracted = memory_one_behaviors(episodes, run_id=run_id, scenario=info.scenario_name,
                                         env_id=info.env_id, min_episodes=min_episodes)
        return store_extracted(handbook, extracted)
    skills = subgoal_skills(episodes, run_id=run_id, scenario=info.scenario_name,
                            env_id=info.env_id, min_episodes=min_episodes)
    folded, rewrites = fold_known(skills, handbook.list(kinds=["approach"]))
    for behavior_id, rewritten in rewrites:
        handbook.edit(behavior_id, name=rewritten.name, instruction=rewritten.instruction,
                      payload=rewritten.payload, note=f"run {run_id} taught actions to avoid")
    return store_extracted(handbook, folded)
