"""The inverted-file (IVF) index of the vector ranking: k-means cells of the behaviors'
vectors, and the ranking of queries against the members of their nearest cells. No cell
holds more than the mean of the first k-means (crowded cells are halved), because a batch
pads every probed cell to the largest. The vector helper process runs ``ivf_top`` too."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from memory.rankers.topk import pick, top


@dataclass
class Ivf:
    centroids: np.ndarray  # (cells, d)
    starts: np.ndarray  # (cells + 1,) into the cell-sorted arrays
    slots: np.ndarray  # (covered,) slot of each cell-sorted row
    vectors: np.ndarray  # (covered, d) cell-sorted
    covered: int  # slots [0, covered) are in the IVF; later ones are scanned exactly


def train_ivf(vectors: np.ndarray, iterations: int = 8, chunk: int = 16384) -> Ivf:
    """Spherical k-means into about sqrt(n) cells, seeded for reproducibility, then every
    cell larger than the mean halved until none is: a batched search pads every probed cell
    to the largest one, and a crowded region of the space is better served by finer cells
    than by pushing its members out into their neighbours'."""
    import torch

    data = torch.from_numpy(vectors)
    n = len(data)
    cells = min(n, max(8, int(math.sqrt(n))))  # never more cells than vectors
    generator = torch.Generator().manual_seed(0)
    centroids = data[torch.randperm(n, generator=generator)[:cells]].clone()

    def assign() -> torch.Tensor:
        return torch.cat([(data[i:i + chunk] @ centroids.T).argmax(1) for i in range(0, n, chunk)])

    for _ in range(iterations):
        cell = assign()
        sums = torch.zeros_like(centroids).index_add_(0, cell, data)
        empty = torch.bincount(cell, minlength=cells) == 0
        sums[empty] = data[torch.randint(n, (int(empty.sum()),), generator=generator)]
        centroids = sums / sums.norm(dim=1, keepdim=True).clamp(min=1e-12)
    centroids, cell = _split_large_cells(vectors, centroids.numpy(), assign().numpy(),
                                         capacity=math.ceil(n / cells))
    order = np.argsort(cell, kind="stable")
    starts = np.searchsorted(cell[order], np.arange(len(centroids) + 1))
    return Ivf(centroids, starts, order, vectors[order], covered=n)


def _split_large_cells(vectors: np.ndarray, centroids: np.ndarray, cell: np.ndarray,
                       capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """Halve each cell of more than ``capacity`` members at the median of their principal
    direction, each half getting its own centroid, until no cell is over: centroids and
    each vector's cell."""
    centroids = list(centroids)
    cell = cell.copy()
    members = np.argsort(cell, kind="stable")
    starts = np.searchsorted(cell[members], np.arange(len(centroids) + 1))
    pending = [members[a:b] for a, b in itertools.pairwise(starts) if b - a > capacity]
    while pending:
        group = pending.pop()
        centred = vectors[group] - vectors[group].mean(axis=0)
        direction = centred[np.argmax(np.einsum("ij,ij->i", centred, centred))]
        for _ in range(10):  # power iteration: the direction of greatest spread
            direction = _unit(centred.T @ (centred @ direction))
        order = np.argsort(centred @ direction, kind="stable")
        low, high = group[order[: len(group) // 2]], group[order[len(group) // 2:]]
        home = cell[group[0]]
        centroids[home] = _unit(vectors[low].sum(axis=0))
        cell[high] = len(centroids)
        centroids.append(_unit(vectors[high].sum(axis=0)))
        pending.extend(half for half in (low, high) if len(half) > capacity)
    return np.asarray(centroids, dtype=np.float32), cell


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def ivf_top(ivf: Ivf, queries: np.ndarray, depth: int, bias: np.ndarray, probes: int):
    """The best ``depth`` slots per query among the members of its ``probes`` nearest cells."""
    cells = len(ivf.centroids)
    probes = min(probes, cells)
    # The order of a query's probes does not matter, nor do ties between centroids.
    probe, _ = top(queries @ ivf.centroids.T, probes, exact_ties=False)
    starts = ivf.starts
    if len(queries) == 1:  # score each probed cell's contiguous block in place
        blocks = [(starts[c], starts[c + 1]) for c in probe[0]]
        slots = np.concatenate([ivf.slots[a:b] for a, b in blocks])
        scores = np.concatenate([ivf.vectors[a:b] @ queries[0] for a, b in blocks]) + bias[slots]
        columns, values = top(scores[None], depth)
        return np.where(columns >= 0, slots[np.maximum(columns, 0)], -1), values
    # Many queries: visit each probed cell once with all the queries that probe it, writing
    # scores into one padded table (query, probe, member) that a single top-k then reads.
    # Cells are balanced, so the padding is small.
    flat = probe.ravel()
    pair_order = np.argsort(flat, kind="stable")
    bounds = np.searchsorted(flat[pair_order], np.arange(cells + 1))
    widest = int(np.diff(starts).max())
    table = np.full((len(flat), widest), -np.inf, dtype=np.float32)
    pair_queries = queries[pair_order // probes]  # the query of each pair, in cell order
    member_bias = bias[ivf.slots]
    for cell in np.flatnonzero(np.diff(bounds)):
        lo, hi = starts[cell], starts[cell + 1]
        first, last = bounds[cell], bounds[cell + 1]
        table[pair_order[first:last], : hi - lo] = (
            pair_queries[first:last] @ ivf.vectors[lo:hi].T + member_bias[lo:hi]
        )
    columns, values = top(table.reshape(len(queries), probes * widest), depth, exact_ties=False)
    # Column c of a query's row is member c % widest of the cell it probed (c // widest)-th.
    safe = np.maximum(columns, 0)
    cell_of = pick(probe, safe // widest)
    rows = np.minimum(starts[cell_of] + safe % widest, len(ivf.slots) - 1)
    return np.where(columns >= 0, ivf.slots[rows], -1), values
