"""Play single-agent tasks (the contextual grid tasks): each player's episodes in batches.

The same loop as the matrix games' (``runner.play_batch``): each step, memory describes
every game and hands the player its hints, the player acts, every running env steps, and
memory observes the sub-goals reached. A player's episodes are stored as one pairing whose
second seat is the task; a recorded step holds the action and the task's answer
(``domains.grid.encode_steps``).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium
import numpy as np

import agents
from memory import EpisodeArrays, PairingOutcome, PairingStats
from scenarios.domains.grid import SUBGOALS, SubgoalReader, encode_steps, faced
from scenarios.memory_step import BatchMemory
from scenarios.schema import EnvSection

SOLO = "solo"
TASK = "task"


@dataclass(frozen=True)
class SoloLog:
    lengths: np.ndarray  # (B,)
    returns: np.ndarray  # (B,)
    successes: np.ndarray  # (B,) bool
    steps: np.ndarray  # (T, B) recorded steps (``encode_steps``), zero after a game ended;
    # (0, B) unless recorded


def play_solo_batch(env: EnvSection, player: agents.Agent, num_games: int,
                    rng: np.random.Generator, memory: BatchMemory | None = None,
                    record: bool = False) -> SoloLog:
    """Play ``num_games`` episodes side by side until the last one ends; with ``record`` every
    step is kept (``encode_steps``)."""
    env_rng, agent_rng = rng.spawn(2)
    games = [gymnasium.make(env.id, disable_env_checker=True, **env.settings()).unwrapped
             for _ in range(num_games)]
    seeds = env_rng.integers(2**31, size=num_games).tolist()
    observations = np.stack([game.reset(seed=seed)[0] for game, seed in zip(games, seeds)])
    player.reset(num_games, agent_rng)
    # Only memory and recorded steps read sub-goals.
    readers = ([SubgoalReader(game) for game in games]
               if memory is not None or record else None)
    running = np.ones(num_games, dtype=bool)
    lengths = np.zeros(num_games, dtype=np.int64)
    returns = np.zeros(num_games)
    successes = np.zeros(num_games, dtype=bool)
    subgoals = np.zeros(num_games, dtype=np.int64)
    steps = []
    listening = memory is not None and memory.listening[0]
    while running.any():
        if listening:
            actions = player.act(observations, memory.hints(0))
            memory.record(0, player.hint_used)
        else:
            actions = player.act(observations)
        actions = np.where(running, actions, 0)
        facing = faced(observations) if record else None
        ran = running.copy()
        for game in np.flatnonzero(running).tolist():
            observation, reward, terminated, truncated, info = games[game].step(int(actions[game]))
            observations[game] = observation
            returns[game] += reward
            lengths[game] += 1
            if readers is not None:
                subgoals[game] = readers[game]()
            if terminated or truncated:
                running[game] = False
                successes[game] = info.get("success", False)
        if record:
            steps.append(np.where(ran, encode_steps(actions, subgoals, facing), 0))
        if memory is not None:
            memory.observe({"subgoal": subgoals.copy()}, running.copy())
    for game in games:
        game.close()
    if memory is not None:
        memory.finish(returns[:, None], lengths)
    return SoloLog(lengths, returns, successes,
                   np.array(steps, dtype=np.uint8).reshape(len(steps), num_games))


def solo_pairing(player: str, env: EnvSection, logs: list[SoloLog],
                 keep_trajectories: bool) -> PairingOutcome:
    """One player's batches as a pairing: seat 0 the player, seat 1 the task (no return)."""
    lengths = np.concatenate([log.lengths for log in logs])
    returns = np.concatenate([log.returns for log in logs])
    successes = np.concatenate([log.successes for log in logs])
    recorded = None
    if keep_trajectories:
        recorded = np.zeros((len(lengths), int(lengths.max())), dtype=np.uint8)
        start = 0
        for log in logs:
            recorded[start: start + len(log.lengths), : log.steps.shape[0]] = log.steps.T
            start += len(log.lengths)
    stats = PairingStats(
        agents=(player, SUBGOALS[env.id][0]),
        roles=(SOLO, TASK),
        episodes=len(lengths),
        steps=int(lengths.sum()),
        returns=(float(returns.sum()), 0.0),
        cooperations=(0, 0),
        cooperation_by_round=[],
        metrics={"successes": float(successes.sum())},
    )
    arrays = EpisodeArrays(
        lengths=lengths, returns=np.stack([returns, np.zeros_like(returns)], axis=1),
        cooperations=np.zeros((len(lengths), 2), dtype=np.int64),
        joint_actions=recorded,
    )
    return PairingOutcome(stats, arrays)
