"""Play a scenario: every pairing's episodes in batches, on the matrix games' batched core
or, for single-agent tasks, on one env per game (``solo.py``).

A *job* is one seat-0 agent against one seat-1 agent or population, for ``run.episodes``
episodes. Each job, and each batch within it, draws from its own random stream spawned from
the run seed: the same scenario and seed give the same results, while changing
``run.batch_size`` changes which random numbers each episode sees.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

import agents
import envs
from coplay.errors import ConfigError
from memory import EpisodeArrays, NewRun, PairingOutcome, PairingStats
from memory.handbook import Handbook
from scenarios.domains import run_memory
from scenarios.memory_step import BatchMemory, RunMemory
from scenarios.schema import CrossPlay, FocalPopulation, RoundRobin, Scenario, Solo
from scenarios.solo import SOLO, TASK, play_solo_batch, solo_pairing

FOCAL = "focal"
BACKGROUND = "background"


@dataclass(frozen=True)
class Job:
    """Seat 0 is always one named agent; seat 1 is one agent or a background population."""

    seat_0: str
    seat_1: tuple[str, ...]
    weights: tuple[float, ...]
    roles: tuple[str, str]


@dataclass(frozen=True)
class BatchLog:
    lengths: np.ndarray  # (B,)
    returns: np.ndarray  # (B, 2)
    joint_actions: np.ndarray  # (T, B) uint8: 2 * action_0 + action_1
    coplayer: np.ndarray  # (B,) index into the job's seat_1 names
    # (2, T, B) float32: each seat's belief, NaN where it has none; None if neither seat's
    # agent reports beliefs (most scripted co-players), so no batch fills 2 * T * B NaNs.
    beliefs: np.ndarray | None


def jobs(scenario: Scenario) -> list[Job]:
    m = scenario.matchups
    if isinstance(m, Solo):
        return [Job(player, (), (), (SOLO, TASK)) for player in m.players]
    if isinstance(m, RoundRobin):
        players = m.players
        return [
            Job(players[i], (players[j],), (1.0,), (FOCAL, FOCAL))
            for i in range(len(players))
            for j in range(i if m.self_play else i + 1, len(players))
        ]
    if isinstance(m, CrossPlay):
        return [Job(focal, (other,), (1.0,), (FOCAL, BACKGROUND)) for focal in m.focal for other in m.against]
    assert isinstance(m, FocalPopulation)
    names = tuple(e.agent for e in m.background)
    weights = tuple(e.weight for e in m.background)
    return [Job(focal, names, weights, (FOCAL, BACKGROUND)) for focal in m.focal]


def total_episodes(scenario: Scenario) -> int:
    return len(jobs(scenario)) * scenario.run.episodes


def play_batch(
    config: envs.MatrixGameConfig,
    seat_0: agents.Agent,
    seat_1: agents.Agent | agents.Population,
    num_games: int,
    rng: np.random.Generator,
    memory: BatchMemory | None = None,
) -> BatchLog:
    """Play ``num_games`` episodes side by side until the longest ends; with ``memory``,
    every agent that can follow hints gets its retrieved behaviors every round."""
    env_rng, rng_0, rng_1 = rng.spawn(3)
    game = envs.MatrixGameBatch(config, batch_size=num_games)
    observations = game.reset(env_rng)
    seats = (seat_0, seat_1)
    seat_0.reset(num_games, rng_0)
    seat_1.reset(num_games, rng_1)
    observers = [getattr(a, "observe", None) for a in seats]
    # Sequence agents expose ``belief``: their predicted chance that the co-player cooperates.
    believers = [hasattr(a, "belief") for a in seats]
    rounds = game.max_rounds
    joint_actions = np.empty((rounds, num_games), dtype=np.uint8)
    beliefs = np.full((2, rounds, num_games), np.nan, dtype=np.float32) if any(believers) else None
    returns = np.zeros((2, num_games))
    actions = np.empty((2, num_games), dtype=np.int64)
    for t in range(rounds):
        for seat, agent in enumerate(seats):
            if memory is not None and memory.listening[seat]:
                actions[seat] = agent.act(observations[seat], memory.hints(seat))
                memory.record(seat, agent.hint_used)
            else:
                actions[seat] = agent.act(observations[seat])
            if believers[seat]:
                beliefs[seat, t] = agent.belief
        result = game.step(actions)
        returns += result.rewards
        joint_actions[t] = actions[0] * 2 + actions[1]
        if memory is not None:
            # Memory is told which games go on after this round: an ended game gets no
            # hints and its co-player's later (padding) moves are not counted.
            going_on = result.active
            if config.continuation_probability is not None:
                going_on = result.active & ~result.terminated & ~result.truncated
            memory.observe({"joint_actions": joint_actions[t]}, going_on)
        for seat, observe in enumerate(observers):
            if observe is not None:
                observe(result.rewards[seat], result.active)
        observations = result.observations
    coplayer = (
        seat_1.assignment if isinstance(seat_1, agents.Population)
        else np.zeros(num_games, dtype=np.int64)
    )
    if memory is not None:
        memory.finish(returns.T, game.lengths)
    return BatchLog(game.lengths.copy(), returns.T.copy(), joint_actions, coplayer, beliefs)


def play_job(
    scenario: Scenario, job: Job, rng: np.random.Generator,
    on_episodes: Callable[[int], None] = lambda n: None,
    memory: RunMemory | None = None,
) -> list[PairingOutcome]:
    """All episodes of one job, split into one pairing per co-player met."""
    if not job.seat_1:
        return [play_solo_job(scenario, job, rng, on_episodes, memory)]
    config = envs.make_config(scenario.env.id, **scenario.env.settings())
    seat_0 = scenario.build_agent(job.seat_0)
    if len(job.seat_1) == 1:
        seat_1: agents.Agent | agents.Population = scenario.build_agent(job.seat_1[0])
    else:
        seat_1 = agents.Population([
            agents.Member(name, scenario.build_agent(name), weight)
            for name, weight in zip(job.seat_1, job.weights)
        ])
    logs = []
    # In a population seat, which member plays differs by game: its memory context is the
    # population's.
    seat_agents = (job.seat_0, job.seat_1[0] if len(job.seat_1) == 1 else BACKGROUND)
    listening = (follows_hints(seat_0), follows_hints(seat_1))
    for size, batch_rng in batches(scenario, rng):
        batch_memory = (
            memory.batch(seat_agents, listening, size, config.horizon) if memory else None
        )
        logs.append(play_batch(config, seat_0, seat_1, size, batch_rng, batch_memory))
        on_episodes(size)
    merged = _merge(logs)
    return [
        _pairing(job, index, merged, keep_trajectories(scenario))
        for index in range(len(job.seat_1))
        if np.any(merged.coplayer == index)
    ]


def play_solo_job(
    scenario: Scenario, job: Job, rng: np.random.Generator,
    on_episodes: Callable[[int], None], memory: RunMemory | None,
) -> PairingOutcome:
    """All episodes of one player on a single-agent task."""
    player = scenario.build_agent(job.seat_0)
    listening = (follows_hints(player),)
    logs = []
    for size, batch_rng in batches(scenario, rng):
        batch_memory = memory.batch((job.seat_0,), listening, size, None) if memory else None
        logs.append(play_solo_batch(scenario.env, player, size, batch_rng, batch_memory,
                                    record=keep_trajectories(scenario)))
        on_episodes(size)
    return solo_pairing(job.seat_0, scenario.env, logs, keep_trajectories(scenario))


def batches(scenario: Scenario, rng: np.random.Generator) -> Iterator[tuple[int, np.random.Generator]]:
    """A job's ``run.episodes`` in batches of at most ``run.batch_size``: each batch's size
    and its own random stream."""
    remaining = scenario.run.episodes
    for batch_rng in rng.spawn(-(-remaining // scenario.run.batch_size)):
        size = min(remaining, scenario.run.batch_size)
        yield size, batch_rng
        remaining -= size


def keep_trajectories(scenario: Scenario) -> bool:
    return scenario.run.record_trajectories or bool(scenario.memory and scenario.memory.extract)


def run(
    scenario: Scenario, *, handbook: Handbook | None = None,
    on_episodes: Callable[[int], None] = lambda n: None, general_memory: bool = False,
) -> NewRun:
    """Play every job of the scenario; the result is ready for ``memory.RunStore.save``
    (and, for a scenario with memory, its ``memory_usage`` for ``handbook.record_usage``).
    ``general_memory`` turns off the env family's memory fast path."""
    if scenario.memory is not None and handbook is None:
        raise ConfigError("memory", expected="a handbook for a scenario with memory",
                          got="none", fix="Pass handbook=Handbook.open(URL) to run().")
    memory = (
        run_memory(handbook, scenario.memory, scenario=scenario.name, env_id=scenario.env.id,
                   seed=scenario.run.seed, general=general_memory)
        if scenario.memory is not None and handbook is not None else None
    )
    start = time.perf_counter()
    all_jobs = jobs(scenario)
    job_rngs = np.random.default_rng(scenario.run.seed).spawn(len(all_jobs))
    pairings = [
        pairing
        for job, job_rng in zip(all_jobs, job_rngs)
        for pairing in play_job(scenario, job, job_rng, on_episodes, memory)
    ]
    return NewRun(
        scenario_name=scenario.name, env_id=scenario.env.id, seed=scenario.run.seed,
        scenario=scenario.model_dump(mode="json"),
        wall_seconds=time.perf_counter() - start, pairings=pairings,
        memory_usage=memory.usage() if memory else None,
    )


def follows_hints(agent: agents.Agent | agents.Population) -> bool:
    """Whether an agent reports which hints it follows (``hint_used``)."""
    if isinstance(agent, agents.Population):
        return any(follows_hints(member.agent) for member in agent.members)
    return hasattr(agent, "hint_used")


def _merge(logs: list[BatchLog]) -> BatchLog:
    rounds = max(log.joint_actions.shape[0] for log in logs)
    padded = [
        np.pad(log.joint_actions, ((0, rounds - log.joint_actions.shape[0]), (0, 0)))
        for log in logs
    ]
    return BatchLog(
        lengths=np.concatenate([log.lengths for log in logs]),
        returns=np.concatenate([log.returns for log in logs]),
        joint_actions=np.concatenate(padded, axis=1),
        coplayer=np.concatenate([log.coplayer for log in logs]),
        beliefs=None if all(log.beliefs is None for log in logs) else np.concatenate([
            np.full((2, rounds, len(log.lengths)), np.nan, dtype=np.float32) if log.beliefs is None
            else np.pad(log.beliefs, ((0, 0), (0, rounds - log.beliefs.shape[1]), (0, 0)),
                        constant_values=np.nan)
            for log in logs
        ], axis=2),
    )


def responses(joint: np.ndarray, running: np.ndarray) -> list[list[list[int]]]:
    """Each seat's answers to the round before, as ``PairingStats.responses`` counts them, from
    joint actions (T, E) and which games were running at each round (T, E)."""
    followed = running[1:]  # a game running at round t + 1 was running at round t
    before, after = joint[:-1][followed], joint[1:][followed]
    counts = []
    for seat in (0, 1):
        own, theirs = (before // 2, before % 2) if seat == 0 else (before % 2, before // 2)
        outcome = 2 * own + theirs  # the index in OUTCOMES: CC, CD, DC, DD
        cooperated = after < 2 if seat == 0 else after % 2 == 0
        totals = np.bincount(outcome, minlength=4)
        cooperations = np.bincount(outcome, weights=cooperated, minlength=4)
        counts.append([[int(n), int(c)] for n, c in zip(totals, cooperations, strict=True)])
    return counts


def _pairing(job: Job, coplayer: int, log: BatchLog, with_trajectories: bool) -> PairingOutcome:
    games = np.flatnonzero(log.coplayer == coplayer)
    lengths = log.lengths[games]
    joint = log.joint_actions[: lengths.max(), games]
    running = np.arange(joint.shape[0])[:, None] < lengths[None, :]
    # Joint action 2 * a0 + a1: seat 0 cooperated if it is 0 or 1, seat 1 if it is even.
    cooperated = np.stack([(joint < 2) & running, (joint % 2 == 0) & running])  # (2, T, E)
    per_episode = cooperated.sum(axis=1).T  # (E, 2)
    games_running = np.maximum(running.sum(axis=1), 1)
    by_round = (cooperated.sum(axis=2) / games_running).T  # (T, 2)
    returns = log.returns[games]
    beliefs = None if log.beliefs is None else log.beliefs[:, : joint.shape[0], games]  # (2, T, E)
    has_belief = [beliefs is not None and not np.isnan(beliefs[seat]).all() for seat in (0, 1)]
    belief_by_round = None
    if any(has_belief):
        with np.errstate(invalid="ignore"):
            means = np.where(running, beliefs, 0.0).sum(axis=2) / games_running  # (2, T)
        belief_by_round = [
            [round(float(means[seat, t]), 6) if has_belief[seat] else None for seat in (0, 1)]
            for t in range(joint.shape[0])
        ]
    stats = PairingStats(
        agents=(job.seat_0, job.seat_1[coplayer]),
        roles=job.roles,
        episodes=len(games),
        steps=int(lengths.sum()),
        returns=(float(returns[:, 0].sum()), float(returns[:, 1].sum())),
        cooperations=(int(per_episode[:, 0].sum()), int(per_episode[:, 1].sum())),
        cooperation_by_round=np.round(by_round, 6).tolist(),
        belief_by_round=belief_by_round,
        responses=responses(joint, running),
    )
    arrays = EpisodeArrays(
        lengths=lengths, returns=returns, cooperations=per_episode,
        joint_actions=joint.T.copy() if with_trajectories else None,
        beliefs=beliefs.transpose(2, 0, 1).copy() if with_trajectories and any(has_belief) else None,
    )
    return PairingOutcome(stats, arrays)
