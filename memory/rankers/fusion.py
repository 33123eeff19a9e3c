"""Reciprocal-rank fusion (RRF): each ranking gives the candidate at rank r a share
``weight / (RRF_K + 1 + r)``; a behavior's score is the sum of its shares."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from memory.rankers.topk import sum_by_slot

RRF_K = 60.0


def fuse(rankings: Sequence[tuple[np.ndarray, np.ndarray]],
         channel_weights: tuple[float, float, float], k: int,
         ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of the rankings' candidates (each ranking: slots (B, depth), best
    first, -1 where fewer), weighted per ranking: behavior ids (B, k), ``ids`` giving each
    slot's, -1 where fewer, and fused scores (B, k), 0 there."""
    depth = rankings[0][0].shape[1]
    shares, share_lists = rank_shares(channel_weights, depth)
    if len(rankings[0][0]) == 1:
        return _fuse_one([slots[0].tolist() for slots, _ in rankings], share_lists, k, ids)
    candidates = np.concatenate([slots for slots, _ in rankings], axis=1)
    contributions = np.concatenate([
        np.where(slots >= 0, share, 0.0).astype(np.float32)
        for (slots, _), share in zip(rankings, shares)
    ], axis=1)
    slots, fused = sum_by_slot(candidates, contributions, k)
    found = slots >= 0
    return (np.where(found, ids[np.maximum(slots, 0)], -1),
            np.where(found, fused, 0.0).astype(np.float32))


def _fuse_one(rankings: list[list[int]], shares: list[list[float]], k: int, ids: np.ndarray):
    """The fusion for one query, in plain Python: a few dozen candidates, so dictionary
    arithmetic beats array calls. Same shares, same ties (lower slot first)."""
    totals: dict[int, float] = {}
    for slots, share in zip(rankings, shares):
        for rank, slot in enumerate(slots):
            if slot >= 0:
                totals[slot] = totals.get(slot, 0.0) + share[rank]
    best = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:k]
    found = np.full((1, k), -1, dtype=np.int64)
    scores = np.zeros((1, k), dtype=np.float32)
    for position, (slot, total) in enumerate(best):
        found[0, position] = ids[slot]
        scores[0, position] = total
    return found, scores


@functools.lru_cache(maxsize=16)
def rank_shares(channel_weights: tuple[float, float, float], depth: int):
    """Each ranking's reciprocal-rank share by rank: (3, depth) float32, and the same as
    lists (for the one-query fusion)."""
    ranks = np.arange(depth, dtype=np.float32)
    weights = np.asarray(channel_weights, dtype=np.float32)[:, None]
    shares = (weights / (np.float32(RRF_K + 1.0) + ranks)).astype(np.float32)
    shares.flags.writeable = False  # shared by every search with these settings
    return shares, shares.tolist()
