"""The extraction API: what an env family's extractor hands the handbook, and how it lands.

Extractors live with their env family (``scenarios/domains``); they turn stored episodes
into ``Extracted`` items. ``store_extracted`` adds them (duplicates are merged) and writes
their graph edges once the behaviors have ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from memory.behaviors import AddResult, NewBehavior
from memory.handbook import Handbook
from memory.refs import behavior_ref

NEW_BEHAVIOR = "{id}"  # an edge's source that stands for the extracted behavior's own ref


@dataclass(frozen=True)
class Extracted:
    """A behavior to add and the graph edges to write once it has an id: (source, relation,
    target, weight), with ``NEW_BEHAVIOR`` as the source for the behavior itself."""

    behavior: NewBehavior
    edges: tuple[tuple[str, str, str, float], ...]


def store_extracted(handbook: Handbook, extracted: Sequence[Extracted]) -> list[AddResult]:
    """Add the behaviors (duplicates merged into what is there) and their edges."""
    results = handbook.add_many([item.behavior for item in extracted])
    edges = [
        (behavior_ref(result.behavior.id) if source == NEW_BEHAVIOR else source,
         relation, target, weight)
        for item, result in zip(extracted, results)
        for source, relation, target, weight in item.edges
    ]
    handbook.record_usage([], edges=edges)
    return results
