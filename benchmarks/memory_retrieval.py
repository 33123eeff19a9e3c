"""Behavior-handbook speed: retrieval latency and throughput, memory's share of a simulation
step, and write throughput with dedup, all on the built-in hashing embedder and SQLite.

    python benchmarks/memory_retrieval.py            # 10k and 100k behaviors (a few minutes)
    python benchmarks/memory_retrieval.py --quick    # 2k behaviors

Figures (last line, JSON):
- single_p50_ms_<N>: one query, k=5, median latency with N behaviors (also p90, p99);
- batch_contexts_per_s_<N>: 1024 distinct contexts per call (median over 20 calls);
  batch_contexts_per_s_<N>_helper: the same with the vector ranking in a helper process
  (``IndexSettings(vector_helper=True)``, a second core), on a handbook freshly opened on
  the same database;
  batch_sim_contexts_per_s_<N>: 1024 contexts drawn from the 75 a simulation agent can be
  in (repeats are looked up once);
- recall_at_5_<N>: the approximate (IVF) vector search against exact search;
- step_ms_plain / step_ms_memory / memory_step_overhead: a 4096-game IPD round with a
  hint-following agent against tit-for-tat, without and with memory, side by side; the
  same with suffix _gru against a GRU sequence-model agent (hidden 64, untrained);
- insert_per_s: behaviors added per second with dedup (batches of 1000, SQLite file).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import scenarios
from coplay.step import Context
from memory.behaviors import RULE_KEYS, NewBehavior, Provenance
from memory.handbook import Handbook, HandbookSettings
from memory.index import Filters, IndexSettings
from scenarios.domains.matrix import contexts_for

HANDBOOK_WITH_HELPER = HandbookSettings(index=IndexSettings(vector_helper=True))
SITUATIONS = [
    "after mutual cooperation", "after the co-player defects", "after I defect",
    "at the start of the game", "near the end of the game", "when the co-player alternates",
    "when the co-player forgives", "after two defections in a row", "when rewards drop",
    "when the co-player retaliates", "while the co-player probes", "after a long truce",
]
ACTIONS = [
    "cooperate", "defect", "forgive once", "retaliate twice", "mirror the last move",
    "test with a defection", "return to cooperation", "probe with cooperation",
    "punish then forgive", "keep defecting", "signal with two cooperations", "alternate",
]
COPLAYER_TYPES = ["cooperator", "defector", "reciprocator", "mixed", "unknown"]


def vocabulary(rng: np.random.Generator, size: int) -> list[str]:
    """Pronounceable made-up words: topics that make behaviors distinct, Zipf-distributed."""
    consonants, vowels = "bcdfghklmnprstvz", "aeiou"
    found: set[str] = set()
    while len(found) < size:
        found.add("".join(rng.choice(list(consonants)) + rng.choice(list(vowels))
                          for _ in range(rng.integers(2, 4))))
    return sorted(found)


def behaviors(count: int, seed: int = 0) -> list[NewBehavior]:
    rng = np.random.default_rng(seed)
    topics = vocabulary(rng, 20000)
    frequency = 1.0 / np.arange(1, len(topics) + 1) ** 0.8  # Zipf-like word frequencies
    frequency /= frequency.sum()
    made = []
    for i in range(count):
        situation, action = rng.choice(SITUATIONS), rng.choice(ACTIONS)
        kind = COPLAYER_TYPES[i % 4]
        topic = rng.choice(topics, size=8, p=frequency)
        # One in four is a response rule, so that a hint-following agent has rules to play.
        rule = i % 4 == 3
        made.append(NewBehavior(
            name=f"{action} {situation}: {topic[0]} {topic[1]}",
            instruction=(f"Against a {kind}, {action} {situation}, then {topic[2]} {topic[3]} "
                         f"{topic[4]} until {topic[5]} {topic[6]} {topic[7]}."),
            tags=(kind, topic[0]), trigger={"coplayer": kind},
            kind="response_rule" if rule else "text",
            payload={"cooperate": {key: round(float(rng.random()), 2) for key in RULE_KEYS}}
            if rule else None,
            provenance=Provenance(extractor="benchmark"),
        ))
    return made


def distinct_contexts(count: int, seed: int = 1) -> list[Context]:
    rng = np.random.default_rng(seed)
    topics = vocabulary(np.random.default_rng(0), 20000)[:2000]  # the commoner words
    return [Context(
        f"round {rng.integers(100)}: {rng.choice(SITUATIONS)}, the co-player looks like a "
        f"{rng.choice(COPLAYER_TYPES)}; {rng.choice(topics)} {rng.choice(topics)}",
        (f"coplayer:{rng.choice(COPLAYER_TYPES)}",),
    ) for _ in range(count)]


def simulation_contexts(count: int, seed: int = 2) -> list[Context]:
    """What a simulation asks: the 75 contexts of each of a few agents, many times over."""
    pool = [c for agent in ("a", "b", "c", "d") for c in contexts_for(agent, "bench", "coplay/ipd-v0")]
    rng = np.random.default_rng(seed)
    return [pool[i] for i in rng.integers(len(pool), size=count)]


def fill(handbook: Handbook, made: list[NewBehavior], chunk: int = 5000) -> float:
    start = time.perf_counter()
    for i in range(0, len(made), chunk):
        handbook.add_many(made[i:i + chunk])
    return time.perf_counter() - start


def latencies(handbook: Handbook, contexts: list[Context], k: int = 5) -> np.ndarray:
    handbook.retrieve(contexts[:1], k=k)  # builds the index once
    handbook.clear_caches()  # every timed query is answered afresh
    times = []
    for context in contexts:
        start = time.perf_counter()
        handbook.retrieve([context], k=k)
        times.append(time.perf_counter() - start)
    return np.array(times) * 1e3


def throughput(handbook: Handbook, contexts: list[Context], k: int = 5, calls: int = 20) -> float:
    """Contexts per second of one batched call, the median over ``calls`` calls: on this
    VM single calls vary by 10-20% with what the host is doing."""
    handbook.retrieve(contexts, k=k)
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        handbook.clear_caches()  # every call embeds and ranks its contexts afresh
        handbook.retrieve(contexts, k=k)
        seconds.append(time.perf_counter() - start)
    return len(contexts) / float(np.median(seconds))


def recall(handbook: Handbook, contexts: list[Context], k: int = 5) -> float:
    """Vector-ranking recall@k of the index's IVF against exact search."""
    index = handbook._index
    index._ensure_built()
    if index._ivf is None:
        return 1.0
    vectors = handbook.embedder.embed([c.text for c in contexts])
    bias = index._mask(Filters())
    approximate, _ = index._vector_top(vectors, k, bias)
    exact = vectors @ index._slots.vectors[: index._slots.count].T + bias
    truth = np.argsort(-exact, axis=1)[:, :k]
    return float(np.mean([len(set(a) & set(t)) / k for a, t in zip(approximate, truth)]))


STEP_SCENARIO = """
kind: simulation
name: bench
env: {{id: coplay/ipd-v0, horizon: 100}}
agents:
  follower: {{kind: handbook_follower}}
  opponent: {opponent}
matchups: {{mode: round_robin, players: [follower, opponent]}}
run: {{episodes: 4096, batch_size: 4096, seed: 0}}
"""


def step_times(handbook: Handbook, opponent: str, repeats: int) -> tuple[float, float]:
    """ms per round of 4096 games of a hint-following agent against ``opponent`` (an agent
    section), without and with memory, alternating runs; medians."""
    text = STEP_SCENARIO.format(opponent=opponent)
    plain = scenarios.parse(text)
    with_memory = scenarios.parse(text + "memory: {k: 3}\n")
    times: dict[str, list[float]] = {"plain": [], "memory": []}
    for _ in range(repeats):
        for name, scenario, given in (("plain", plain, None), ("memory", with_memory, handbook)):
            start = time.perf_counter()
            scenarios.run(scenario, handbook=given)
            times[name].append((time.perf_counter() - start) / 100 * 1e3)
    return float(np.median(times["plain"])), float(np.median(times["memory"]))


def gru_checkpoint(folder: Path) -> Path:
    """An untrained GRU learner (hidden 64) as a checkpoint: a sequence-model co-player."""
    from dataclasses import asdict

    from agents.checkpoint import write_checkpoint
    from agents.sequence import SequencePolicyConfig, make_policy

    config = SequencePolicyConfig(backbone="gru", hidden_size=64)
    path = folder / "gru.pt"
    write_checkpoint(path, {"learners": {"gru": {
        "policy": asdict(config), "state_dict": make_policy(config).state_dict()}}})
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2k behaviors only")
    parser.add_argument("--sizes", type=int, nargs="+", help="behavior counts [10000 100000]")
    args = parser.parse_args()
    sizes = args.sizes or ([2000] if args.quick else [10_000, 100_000])
    figures: dict[str, float] = {}
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            url = f"sqlite:///{Path(folder) / f'h{size}.db'}"
            handbook = Handbook.open(url)
            made = behaviors(size)
            seconds = fill(handbook, made)
            stored = len(handbook)
            if size == sizes[0]:
                figures["insert_per_s"] = round(size / seconds)
            single = latencies(handbook, distinct_contexts(300 if args.quick else 2000))
            figures[f"single_p50_ms_{size}"] = round(float(np.percentile(single, 50)), 4)
            figures[f"single_p90_ms_{size}"] = round(float(np.percentile(single, 90)), 4)
            figures[f"single_p99_ms_{size}"] = round(float(np.percentile(single, 99)), 4)
            figures[f"batch_contexts_per_s_{size}"] = round(throughput(handbook, distinct_contexts(1024)))
            figures[f"batch_sim_contexts_per_s_{size}"] = round(
                throughput(handbook, simulation_contexts(1024)))
            with Handbook.open(url, settings=HANDBOOK_WITH_HELPER) as helped:
                figures[f"batch_contexts_per_s_{size}_helper"] = round(
                    throughput(helped, distinct_contexts(1024)))
            figures[f"recall_at_5_{size}"] = round(recall(handbook, distinct_contexts(200)), 3)
            rows.append((size, stored, seconds))
            if size == sizes[0]:
                repeats = 3 if args.quick else 9
                opponents = {
                    "": "{kind: tit_for_tat}",
                    "_gru": f"{{kind: checkpoint, path: '{gru_checkpoint(Path(folder))}'}}",
                }
                for suffix, opponent in opponents.items():
                    plain, memory = step_times(handbook, opponent, repeats)
                    figures[f"step_ms_plain{suffix}"] = round(plain, 4)
                    figures[f"step_ms_memory{suffix}"] = round(memory, 4)
                    figures[f"memory_step_overhead{suffix}"] = round((memory - plain) / plain, 3)
            handbook.close()
    print(f"machine: {platform.machine()}, {platform.platform()}, python {platform.python_version()}")
    for size, stored, seconds in rows:
        print(f"{size} behaviors offered, {stored} stored after dedup, in {seconds:.1f} s")
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"  {name:<{width}}  {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
