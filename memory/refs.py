"""Names of knowledge-graph entities and relations: ``type:key`` refs, checked."""

from __future__ import annotations

from coplay.errors import ConfigError

ENTITY_TYPES = (
    "behavior", "scenario", "env", "coplayer", "agent", "episode", "concept", "task", "subgoal",
    "phase",
)
RELATION_TYPES = (
    "applies_to",  # behavior -> the scenario, env, co-player type or concept it is for
    "derived_from",  # behavior -> the episode (or behavior) it was distilled from
    "merged_into",  # behavior -> the behavior that absorbed it
    "effective_against",  # behavior -> co-player type it scored well against
    "used_in",  # behavior -> scenario it was used in (weight: episodes)
    "generalizes",  # behavior -> a more specific behavior
    "related_to",
)


def parse_ref(ref: str, *, where: str = "entity") -> tuple[str, str]:
    """``type:key`` -> (type, key), with the type checked."""
    kind, sep, key = ref.partition(":")
    if not sep or not key or kind not in ENTITY_TYPES:
        raise ConfigError(
            where, expected=f"TYPE:KEY with TYPE one of {list(ENTITY_TYPES)}", got=repr(ref),
        )
    return kind, key


def behavior_ref(behavior_id: int) -> str:
    return f"behavior:{behavior_id}"


def check_relation(relation: str) -> None:
    if relation not in RELATION_TYPES:
        raise ConfigError("relation", expected=f"one of {list(RELATION_TYPES)}", got=repr(relation))
