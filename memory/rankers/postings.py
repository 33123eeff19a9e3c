"""Posting lists: for each key (a word, an entity), the slots it scores and how much, best
first and cut to a limit; ranked per query by the summed weight over the query's keys. The
lexical and the graph rankings are both such tables."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from memory.rankers.topk import nothing, sparse_rows_top, sum_by_slot


@dataclass
class Postings:
    """A compressed-row table: for key ``i``, ``slots[ptr[i]:ptr[i+1]]`` and their weights,
    best first, over ``width`` slots."""

    ptr: np.ndarray
    slots: np.ndarray
    weights: np.ndarray
    width: int
    _matrix: object = None  # the same table as a scipy CSR matrix, built for batches

    def matrix(self):
        if self._matrix is None:
            from scipy import sparse  # only here: batches need it, single queries do not

            self._matrix = sparse.csr_matrix((self.weights, self.slots, self.ptr),
                                             shape=(len(self.ptr) - 1, self.width))
        return self._matrix


def build_postings(keys, slots, weights, size: int, width: int, limit: int) -> Postings:
    """Group (key, slot, weight) triples by key, best weight first, at most ``limit`` each;
    ``size`` keys, ``width`` slots."""
    order = np.lexsort((-weights, keys))
    keys, slots, weights = keys[order], slots[order], weights[order]
    starts = np.searchsorted(keys, np.arange(size + 1))
    rank = np.arange(len(keys)) - starts[keys] if len(keys) else np.empty(0, dtype=np.int64)
    keep = rank < limit
    keys, slots, weights = keys[keep], slots[keep], weights[keep]
    return Postings(np.searchsorted(keys, np.arange(size + 1)), slots, weights.astype(np.float32),
                    width)


def flatten(queries: Sequence[Sequence[str]], ids: Mapping[str, int]):
    """(query, id) pairs for the names each query uses that ``ids`` knows, as two arrays."""
    names = list(itertools.chain.from_iterable(queries))
    flat = np.fromiter(map(ids.get, names, itertools.repeat(-1)), dtype=np.int64, count=len(names))
    owner = np.repeat(np.arange(len(queries)),
                      np.fromiter(map(len, queries), dtype=np.int64, count=len(queries)))
    known = flat >= 0
    return owner[known], flat[known]


def postings_top(postings: Postings, owner: np.ndarray, flat: np.ndarray,
                 key_weight: np.ndarray, batch: int, depth: int, bias: np.ndarray):
    """Per query, the allowed slots with the largest summed weight over the postings of its
    keys (``flat[i]`` belongs to query ``owner[i]``)."""
    if batch == 1:  # one query: gather its few posting lists directly
        if not len(flat):
            return nothing(1, depth)
        starts, ends = postings.ptr[flat], postings.ptr[flat + 1]
        slots = np.concatenate([postings.slots[a:b] for a, b in zip(starts, ends)])
        weights = np.concatenate([postings.weights[a:b] * np.float32(key_weight[key])
                                  for a, b, key in zip(starts, ends, flat)])
        allowed = bias[slots] == 0
        return sum_by_slot(slots[allowed][None], weights[allowed][None], depth)
    if not len(flat):
        return nothing(batch, depth)
    from scipy import sparse

    # Many queries: one sparse product adds up, per query, the weights of equal slots over
    # its keys' postings: (query x key) @ (key x slot). ``owner`` is sorted, so the query
    # rows are built as they are (a repeated key is added twice, as in a sum).
    query_keys = sparse.csr_matrix(
        (key_weight[flat].astype(np.float32), flat, np.searchsorted(owner, np.arange(batch + 1))),
        shape=(batch, len(postings.ptr) - 1))
    return sparse_rows_top(query_keys @ postings.matrix(), depth, bias)
