"""The vector ranking: cosine similarity to the context's embedding. Exact for the most
recently added behaviors; through the IVF cells (``memory.rankers.ivf``) for the rest once
there are more than ``exact_limit`` of them, probing the ``probes`` cells nearest each
query; large batches optionally in a helper process (``memory.vector_helper``)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from memory.rankers.ivf import Ivf, ivf_top, train_ivf
from memory.rankers.topk import pick, top
from memory.vector_helper import HELPER_SHARE, MIN_BATCH, VectorHelper

Ranking = tuple[np.ndarray, np.ndarray]  # slots (B, depth), -1 where fewer; their scores


class VectorRanker:
    """The IVF cells over the index's vectors (slots ``0..covered``), when they are due for
    retraining, and the helper process that may rank a batch's share of them."""

    def __init__(self, exact_limit: int, probes: int, use_helper: bool) -> None:
        self.exact_limit = exact_limit
        self.probes = probes
        self.use_helper = use_helper
        self.ivf: Ivf | None = None
        self.version = 0  # counts retrainings, so the helper knows when to take new cells
        self.helper: VectorHelper | None = None

    def needs_training(self, live: int, count: int, *, searching: bool) -> bool:
        """Whether to (re)train the cells, with ``live`` behaviors in ``count`` slots.
        Behaviors added since the cells were trained are scanned exactly; a search tolerates
        few of them, a dedup check during bulk writes (``searching`` false) many, so that
        writing 100k behaviors retrains the cells a few times rather than every thousand."""
        if live <= self.exact_limit:
            return False
        covered = self.ivf.covered if self.ivf else 0
        fresh = count - covered
        retired = count - live
        tolerated = max(512, covered // 16) if searching else max(self.exact_limit, covered // 4)
        return self.ivf is None or fresh > tolerated or retired > covered // 4

    def train(self, vectors: np.ndarray) -> None:
        """Cells over ``vectors``, the index's slots from the first, with no retired ones."""
        self.ivf = train_ivf(vectors)
        self.version += 1

    def start_top(self, vectors: np.ndarray, queries: np.ndarray, depth: int,
                  bias: np.ndarray) -> Callable[[], Ranking]:
        """The ranking as a call that returns it: with the helper on, a large batch's IVF
        part is ranked in the helper meanwhile."""
        ivf = self.ivf
        if not (self.use_helper and ivf is not None and len(queries) >= MIN_BATCH):
            return functools.partial(self.top, vectors, queries, depth, bias)
        if self.helper is None or not self.helper.alive:
            if self.helper is not None:
                self.helper.close()
            self.helper = VectorHelper()
        # The helper ranks most of the batch; this process, once its lexical and graph
        # rankings are done, the rest, so that both finish at about the same time.
        split = int(len(queries) * HELPER_SHARE)
        helper = self.helper
        ticket = helper.submit(ivf, self.version, queries[:split], depth, bias, self.probes)

        def finish() -> Ranking:
            here = ivf_top(ivf, queries[split:], depth, bias, self.probes)
            there = helper.result(ticket)
            ivf_part = (np.concatenate([there[0], here[0]]), np.concatenate([there[1], here[1]]))
            return self.top(vectors, queries, depth, bias, ivf_part=ivf_part)

        return finish

    def top(self, vectors: np.ndarray, queries: np.ndarray, depth: int, bias: np.ndarray, *,
            ivf_part: Ranking | None = None) -> Ranking:
        """Best ``depth`` slots per query: the IVF's cells (``ivf_part`` if already ranked)
        and, exactly, the ``vectors`` added since they were trained."""
        n = len(vectors)
        ivf = self.ivf
        covered = ivf.covered if ivf else 0
        parts = []
        if ivf is not None:
            parts.append(ivf_part if ivf_part is not None
                         else ivf_top(ivf, queries, depth, bias, self.probes))
        if n > covered:
            scores = queries @ vectors[covered:n].T + bias[covered:n]
            columns, values = top(scores, depth)
            parts.append((np.where(columns >= 0, columns + covered, -1), values))
        if len(parts) == 1:
            return parts[0]
        slots = np.concatenate([p[0] for p in parts], axis=1)
        columns, values = top(np.concatenate([p[1] for p in parts], axis=1), depth)
        return np.where(columns >= 0, pick(slots, np.maximum(columns, 0)), -1), values

    def close(self) -> None:
        """Stop the helper, if one was started."""
        if self.helper is not None:
            self.helper.close()
            self.helper = None
