"""What the handbook stores and hands out: plain, frozen records, checked when built.

A behavior is a short name and an instruction (the "behavior handbook" of Metacognitive
Reuse, Didolkar et al. 2025), plus what a simulation needs: a kind with an optional typed
payload that an agent can execute, the context that triggers it, tags, where it came from,
how it has fared, its versions, and when it was valid.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from coplay.errors import ConfigError
from memory.refs import parse_ref

# Previous joint action (own action first) -> observation token of the matrix games.
RULE_KEYS = ("start", "CC", "CD", "DC", "DD")
KINDS = {
    "text": "a hint in words only",
    "response_rule": "P(cooperate) after each previous joint action: "
                     "{'cooperate': {'start': p, 'CC': p, 'CD': p, 'DC': p, 'DD': p}}",
    "action_macro": "a fixed sequence of actions played in order: {'actions': [0, 1, ...]}",
    "approach": "walk to the nearest object of a type in view, face it and act on it; never "
                "take the avoided actions: {'object': 'key', 'action': 'pickup', 'avoid': []} "
                "(object and action names of the env)",
}
MAX_NAME = 200
MAX_MACRO = 1000
# Actions are env action ids; stored trajectories keep them in one byte.
MAX_ACTION = 256


def check_payload(kind: str, payload: Mapping[str, Any] | None, *, where: str = "payload") -> None:
    """Reject a payload that does not fit its kind, naming what is wrong."""
    if kind not in KINDS:
        raise ConfigError("kind", expected=f"one of {sorted(KINDS)}", got=repr(kind))
    if kind == "text":
        if payload:
            raise ConfigError(where, expected="no payload for a text behavior", got=repr(payload))
        return
    if not isinstance(payload, Mapping):
        raise ConfigError(where, expected=KINDS[kind], got=repr(payload))
    if kind == "response_rule":
        table = payload.get("cooperate")
        if not isinstance(table, Mapping) or set(table) != set(RULE_KEYS) or set(payload) != {"cooperate"}:
            raise ConfigError(where, expected=KINDS[kind], got=repr(dict(payload)))
        for key, p in table.items():
            if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
                raise ConfigError(f"{where}.cooperate.{key}", expected="a probability in [0, 1]",
                                  got=repr(p))
    elif kind == "approach":
        names = [payload.get("object"), payload.get("action"), *(payload.get("avoid") or [])]
        if (set(payload) != {"object", "action", "avoid"} or not isinstance(payload["avoid"], list)
                or any(not isinstance(n, str) or not n.strip() for n in names)):
            raise ConfigError(where, expected=KINDS[kind], got=repr(dict(payload)))
    else:
        actions = payload.get("actions")
        if (set(payload) != {"actions"} or not isinstance(actions, list)
                or not 1 <= len(actions) <= MAX_MACRO
                or any(isinstance(a, bool) or not isinstance(a, int) or not 0 <= a < MAX_ACTION
                       for a in actions)):
            raise ConfigError(where, expected=f"{KINDS[kind]}, 1 to {MAX_MACRO} actions, each an "
                              f"integer in [0, {MAX_ACTION})", got=repr(dict(payload)))


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """Where a behavior came from: which extractor, from which scenario, agent, run and
    episodes (episode ids of the run store)."""

    extractor: str = "manual"
    scenario: str | None = None
    agent: str | None = None
    run_id: int | None = None
    episodes: tuple[int, ...] = ()
    created_at: datetime | None = None  # set by the handbook when stored


@dataclass(frozen=True, kw_only=True)
class NewBehavior:
    """A behavior to add. ``trigger`` maps entity types to keys, e.g.
    ``{"coplayer": "reciprocator", "env": "coplay/ipd-v0"}``: the behavior applies to those
    entities, and a context naming them retrieves it."""

    name: str
    instruction: str
    kind: str = "text"
    payload: Mapping[str, Any] | None = None
    trigger: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    provenance: Provenance = field(default_factory=Provenance)

    def __post_init__(self) -> None:
        if not self.name.strip() or len(self.name) > MAX_NAME:
            raise ConfigError("name", expected=f"1 to {MAX_NAME} characters", got=repr(self.name))
        if not self.instruction.strip():
            raise ConfigError("instruction", expected="a non-empty instruction", got=repr(self.instruction))
        check_payload(self.kind, self.payload)
        for kind, key in self.trigger.items():
            parse_ref(f"{kind}:{key}", where="trigger")
        if isinstance(self.tags, str) or any(not isinstance(t, str) or not t for t in self.tags):
            raise ConfigError("tags", expected="a list of non-empty strings", got=repr(self.tags))

    def content_hash(self) -> str:
        return content_hash(self.name, self.instruction, self.kind, self.payload)

    def content(self) -> str:
        return content_text(self.name, self.instruction)

    def text(self) -> str:
        return behavior_text(self.name, self.instruction, self.tags)


def content_hash(name: str, instruction: str, kind: str, payload: Mapping[str, Any] | None) -> str:
    """Equal for behaviors that say and do the same, whatever their tags or provenance."""
    canonical = json.dumps(
        [" ".join(name.lower().split()), " ".join(instruction.lower().split()), kind, payload],
        sort_keys=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def content_text(name: str, instruction: str) -> str:
    """What is embedded: what the behavior says, so that near-duplicates are near, whatever
    their tags."""
    return f"{name}. {instruction}"


def behavior_text(name: str, instruction: str, tags: tuple[str, ...] | list[str]) -> str:
    """What lexical search indexes: the content and the tags."""
    return " ".join([name, instruction, *tags])


@dataclass(frozen=True)
class BehaviorStats:
    """Episodes in which the behavior was shown, in which it was used, and the summed return
    per step of those episodes, split by whether it was used."""

    shown: int = 0
    uses: int = 0
    return_used: float = 0.0
    return_unused: float = 0.0

    @property
    def mean_return_used(self) -> float | None:
        return self.return_used / self.uses if self.uses else None

    @property
    def mean_return_unused(self) -> float | None:
        unused = self.shown - self.uses
        return self.return_unused / unused if unused > 0 else None

    @property
    def effect(self) -> float | None:
        """Mean return per step when used minus when shown but not used."""
        used, unused = self.mean_return_used, self.mean_return_unused
        return None if used is None or unused is None else used - unused


@dataclass(frozen=True)
class Behavior:
    id: int
    version: int
    name: str
    instruction: str
    kind: str
    payload: Mapping[str, Any] | None
    trigger: Mapping[str, str]
    tags: tuple[str, ...]
    created_at: datetime
    valid_from: datetime
    valid_to: datetime | None
    invalid_reason: str | None
    merged_into: int | None
    stats: BehaviorStats

    @property
    def valid(self) -> bool:
        return self.valid_to is None

    def content(self) -> str:
        return content_text(self.name, self.instruction)

    def text(self) -> str:
        return behavior_text(self.name, self.instruction, self.tags)


@dataclass(frozen=True)
class BehaviorVersion:
    version: int
    name: str
    instruction: str
    kind: str
    payload: Mapping[str, Any] | None
    trigger: Mapping[str, str]
    tags: tuple[str, ...]
    note: str
    valid_from: datetime
    valid_to: datetime | None


@dataclass(frozen=True)
class AddResult:
    """The stored behavior, and whether the new one was a duplicate merged into it."""

    behavior: Behavior
    merged: bool


@dataclass(frozen=True)
class Usage:
    """How one behavior fared in some episodes, for the handbook's statistics."""

    behavior_id: int
    shown: int
    uses: int
    return_used: float
    return_unused: float


@dataclass(frozen=True)
class Moments:
    """Episodes' returns per step as count, sum and sum of squares: they add up across runs
    and processes, and give a mean and a variance."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    def __add__(self, other: Moments) -> Moments:
        return Moments(self.n + other.n, self.total + other.total, self.total_sq + other.total_sq)

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        """The sample variance (None below two episodes)."""
        if self.n < 2:
            return None
        return max(self.total_sq - self.total * self.total / self.n, 0.0) / (self.n - 1)


@dataclass(frozen=True)
class EffectStats:
    """A behavior where it applied, for one credited entity (or all of them): the episodes
    in which it was a candidate and used, and those in which it was a candidate and not
    used. Its effect is the difference of their mean returns per step."""

    used: Moments = Moments()
    unused: Moments = Moments()

    def __add__(self, other: EffectStats) -> EffectStats:
        return EffectStats(self.used + other.used, self.unused + other.unused)

    @property
    def effect(self) -> float | None:
        used, unused = self.used.mean, self.unused.mean
        return None if used is None or unused is None else used - unused

    @property
    def stderr(self) -> float | None:
        """The effect's standard error (Welch), once both sides have two episodes."""
        used, unused = self.used.variance, self.unused.variance
        if used is None or unused is None:
            return None
        return (used / self.used.n + unused / self.unused.n) ** 0.5

    def interval(self, z: float = 1.96) -> tuple[float, float] | None:
        """The effect's normal confidence interval (95% by default)."""
        effect, stderr = self.effect, self.stderr
        if effect is None or stderr is None:
            return None
        return effect - z * stderr, effect + z * stderr

    @property
    def verdict(self) -> str:
        """"helps" or "hurts" when the 95% interval excludes 0, else "unclear"."""
        interval = self.interval()
        if interval is None or interval[0] <= 0.0 <= interval[1]:
            return "unclear"
        return "helps" if interval[0] > 0 else "hurts"


@dataclass(frozen=True)
class EffectUsage:
    """Episodes to add to a behavior's effect statistics for one credited entity."""

    behavior_id: int
    entity: str
    stats: EffectStats


Edge = tuple[str, str, str, float]  # (source ref, relation, target ref, weight)


@dataclass(frozen=True)
class MemoryUsage:
    """What a run did with memory, for ``Handbook.record_usage``: per-behavior usage, its
    split by credited entity (``effects``), edges whose weight is set
    (``effective_against``) and edges whose weight adds up (``used_in``)."""

    usages: tuple[Usage, ...]
    edges: tuple[Edge, ...] = ()
    accumulate_edges: tuple[Edge, ...] = ()
    effects: tuple[EffectUsage, ...] = ()

    @classmethod
    def merged(cls, parts: Sequence[MemoryUsage]) -> MemoryUsage:
        """Several recordings of one run's usage as one: usages and effects summed per
        behavior (and entity), set edges as last written, added edges summed."""
        usages: dict[int, Usage] = {}
        for usage in (u for part in parts for u in part.usages):
            before = usages.get(usage.behavior_id)
            usages[usage.behavior_id] = usage if before is None else Usage(
                usage.behavior_id, before.shown + usage.shown, before.uses + usage.uses,
                before.return_used + usage.return_used,
                before.return_unused + usage.return_unused)
        effects: dict[tuple[int, str], EffectStats] = {}
        for effect in (e for part in parts for e in part.effects):
            key = (effect.behavior_id, effect.entity)
            effects[key] = effects[key] + effect.stats if key in effects else effect.stats
        edges = {edge[:3]: edge for part in parts for edge in part.edges}
        added: dict[tuple[str, str, str], float] = {}
        for source, relation, target, weight in (e for p in parts for e in p.accumulate_edges):
            added[(source, relation, target)] = added.get((source, relation, target), 0.0) + weight
        return cls(tuple(usages[b] for b in sorted(usages)), tuple(edges.values()),
                   tuple((*key, weight) for key, weight in added.items()),
                   tuple(EffectUsage(b, e, stats) for (b, e), stats in sorted(effects.items())))

    @property
    def shown(self) -> int:
        return sum(1 for u in self.usages if u.shown)

    @property
    def used(self) -> int:
        return sum(1 for u in self.usages if u.uses)
