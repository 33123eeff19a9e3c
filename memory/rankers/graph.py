"""The graph ranking: behaviors linked to a context's entities (its scenario, env, inferred
co-player type...), ranked by the summed weight of those links."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from memory.rankers.postings import Postings, build_postings, flatten, postings_top


class GraphRanker:
    """Each behavior's weighted links to entities, and postings from entity to slot, rebuilt
    after a change."""

    def __init__(self, posting_limit: int) -> None:
        self.posting_limit = posting_limit
        self._links: dict[int, dict[str, float]] = {}  # behavior id -> entity -> weight
        self._entities: dict[str, int] = {}
        self._postings: Postings | None = None

    def set_links(self, behavior_id: int, links: Mapping[str, float]) -> None:
        """The behavior's graph neighbours (entity keys such as ``coplayer:tit_for_tat``)."""
        for entity in links:
            self._entities.setdefault(entity, len(self._entities))
        self._links[behavior_id] = dict(links)
        self._postings = None

    def discard(self, behavior_id: int) -> None:
        self._links.pop(behavior_id, None)
        self._postings = None

    def changed(self) -> None:
        """Slots were added, retired or renumbered: the postings are rebuilt."""
        self._postings = None

    @property
    def built(self) -> bool:
        return self._postings is not None

    def build(self, slot_of: Mapping[int, int], width: int) -> None:
        """The postings over ``width`` slots, ``slot_of`` giving each behavior's."""
        entity_ids, slot_ids, weights = [], [], []
        for behavior_id, links in self._links.items():
            slot = slot_of.get(behavior_id)
            if slot is None:
                continue
            for entity, weight in links.items():
                entity_ids.append(self._entities[entity])
                slot_ids.append(slot)
                weights.append(weight)
        self._postings = build_postings(
            np.asarray(entity_ids, dtype=np.int64), np.asarray(slot_ids, dtype=np.int64),
            np.asarray(weights, dtype=np.float64), len(self._entities), width,
            self.posting_limit,
        )

    def top(self, queries: Sequence[Sequence[str]], depth: int, bias: np.ndarray):
        """Per query (its entities), the ``depth`` best allowed slots and their summed link
        weights."""
        # A batch names few distinct entity sets (a scenario, a few co-player types), so
        # each is ranked once.
        distinct: dict[tuple[str, ...], int] = {}
        inverse = np.fromiter((distinct.setdefault(tuple(q), len(distinct)) for q in queries),
                              dtype=np.int64, count=len(queries))
        owner, keys = flatten(list(distinct), self._entities)
        slots, totals = postings_top(
            self._postings, owner, keys, np.ones(len(self._entities)), len(distinct), depth, bias
        )
        return slots[inverse], totals[inverse]
