"""Row-wise top-k selection over arrays of scores, as every ranking and the fusion need it:
ties go to the lower column or slot, and -1 (or -inf) pads rows with fewer candidates."""

from __future__ import annotations

import numpy as np

_SLOT_CEILING = np.int64(2**31 - 1)  # slots stay below it: they are packed into 32 bits


def top(scores: np.ndarray, k: int, *, exact_ties: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise ``k`` largest finite scores, best first: columns (B, k), -1 past the last
    finite one, and values (-inf there). Ties go to the lower column; ``exact_ties=False``
    skips that for similarities, whose ties are coincidences."""
    batch, width = scores.shape
    if width == 0:
        return np.full((batch, k), -1, dtype=np.int64), np.full((batch, k), -np.inf, np.float32)
    take = min(k, width)
    if batch == 1 and width <= 512:  # one short row: a stable sort keeps ties in order
        row = scores[0]
        columns = np.argsort(-row, kind="stable")[:take]
        return _finish_top(columns[None], row[columns][None], take, k)
    if not exact_ties and take < width:
        return _finish_top(*_top_by_threshold(scores, take), take, k)
    # A tiny penalty per column makes every method break ties the same way.
    key = scores.astype(np.float64) - np.arange(width) * 1e-12 if exact_ties else scores
    if take < width:
        columns = np.argpartition(-key, take - 1, axis=1)[:, :take]
        columns = pick(columns, np.argsort(-pick(key, columns), axis=1))
    else:
        columns = np.argsort(-key, axis=1)
    return _finish_top(columns, pick(scores, columns), take, k)


def _top_by_threshold(scores: np.ndarray, take: int) -> tuple[np.ndarray, np.ndarray]:
    """``top`` of a wide table, ties in no set order: each row's ``take``-th largest value
    (a partition of values, without indices, is several times cheaper than an argpartition)
    picks out a few candidates per row, and only those are sorted."""
    batch, width = scores.shape
    threshold = np.partition(scores, width - take, axis=1)[:, width - take]
    flat = np.flatnonzero(scores >= threshold[:, None])
    values = scores.ravel()[flat]
    if len(flat) == batch * take and threshold.min() > -np.inf:
        # The common case, no ties at any threshold: ``take`` candidates per row, in row
        # order, so a row-wise sort of a (batch, take) table finishes the job.
        values = values.reshape(batch, take)
        order = np.argsort(-values, axis=1)
        return pick(flat.reshape(batch, take) % width, order), pick(values, order)
    finite = values > -np.inf
    flat, values = flat[finite], values[finite]
    rows = flat // width
    # Best first within each row: one sort of (row, descending value) keys. A float's bits,
    # with the sign bit set for non-negatives and every bit flipped for negatives, order
    # like the float.
    bits = values.view(np.uint32)
    ascending = np.where(bits >> 31, ~bits, bits | np.uint32(0x80000000))
    order = np.argsort((rows << 32) | (np.uint32(0xFFFFFFFF) - ascending))
    flat, values, rows = flat[order], values[order], rows[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
    kept = rank < take
    columns = np.full((batch, take), -1, dtype=np.int64)
    best = np.full((batch, take), -np.inf, dtype=np.float32)
    columns[rows[kept], rank[kept]] = flat[kept] % width
    best[rows[kept], rank[kept]] = values[kept]
    return columns, best


def _finish_top(columns: np.ndarray, values: np.ndarray, take: int, k: int):
    columns = np.where(np.isfinite(values), columns, -1)
    if take < k:
        columns = np.pad(columns, ((0, 0), (0, k - take)), constant_values=-1)
        values = np.pad(values, ((0, 0), (0, k - take)), constant_values=-np.inf)
    return columns, values


def sum_by_slot(slots: np.ndarray, weights: np.ndarray, k: int):
    """Row-wise: add up the (positive) weights of equal slots, -1 being padding, and keep the
    ``k`` largest totals, best first (ties: lower slot first): slots (B, k), -1 where a row
    has fewer, and the totals."""
    batch, width = slots.shape
    if batch == 1:  # one query: fewer, cheaper calls
        row = slots[0]
        present = row >= 0
        unique, inverse = np.unique(row[present], return_inverse=True)
        totals = np.bincount(inverse, weights=weights[0][present].astype(np.float64),
                             minlength=len(unique)).astype(np.float32)
        columns, values = top(totals[None], k)
        found = unique[np.maximum(columns, 0)] if len(unique) else -1
        return np.where(columns >= 0, found, -1), values
    # Sort each row by slot, carrying the weight in the low 32 bits of one integer: numpy's
    # vectorised integer sort is several times faster than an argsort and a gather.
    packed = (slots.astype(np.int64) << 32) | weights.astype(np.float32).view(np.uint32)
    packed.sort(axis=1)
    ordered = packed >> 32
    carried = (packed & 0xFFFFFFFF).astype(np.uint32).view(np.float32)
    # A slot occurs at most once per ranking, so a run of equal slots is short: add each
    # run's later weights onto its first, one shift at a time (reduceat is slow on many
    # tiny runs). Left to right, as a plain sum would.
    totals = carried.astype(np.float64)
    real = ordered >= 0  # padding (-1) holds no slot and sorts first
    for shift in range(1, width):
        same = (ordered[:, shift:] == ordered[:, :-shift]) & real[:, :-shift]
        if not same.any():
            break
        totals[:, :-shift] += np.where(same, carried[:, shift:], 0.0)
    first = np.ones((batch, width), dtype=bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    first &= real
    padded = np.zeros((batch, width), dtype=np.int64)
    padded[first] = _pack(totals[first], ordered[first])
    return _best_packed(padded, k)


def sparse_rows_top(scores, depth: int, bias: np.ndarray):
    """Row-wise ``depth`` best allowed slots of a CSR matrix of positive (query, slot)
    totals, ties to the lower slot: slots (B, depth), -1 where a row has fewer, and their
    totals."""
    batch = scores.shape[0]
    lengths = np.diff(scores.indptr)
    slots = scores.indices.astype(np.int64)
    row = np.repeat(np.arange(batch), lengths)
    column = np.arange(len(slots)) - np.repeat(scores.indptr[:-1], lengths)
    totals = scores.data
    if bias.any():  # some slots are filtered out (or retired): drop their entries
        allowed = bias[slots] == 0
        row, column, totals, slots = row[allowed], column[allowed], totals[allowed], slots[allowed]
    padded = np.zeros((batch, int(lengths.max()) if batch else 0), dtype=np.int64)
    padded[row, column] = _pack(totals, slots)
    return _best_packed(padded, depth)


def _pack(totals: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """One sortable integer per positive total: a positive float's bits order like the float,
    so the total goes above and the slot below, reversed so that the lower slot wins a tie.
    Zero is never a packed value: it pads."""
    packed = totals.astype(np.float32, copy=False).view(np.int32).astype(np.int64)
    packed <<= 32
    packed |= _SLOT_CEILING - slots
    return packed


def _best_packed(packed: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise ``k`` largest packed values (zero: padding), best first: their slots (B, k),
    -1 where a row has fewer, and their totals (-inf there)."""
    width = packed.shape[1]
    if width > k:
        packed = np.partition(packed, width - k, axis=1)[:, width - k:]
    elif width < k:
        packed = np.pad(packed, ((0, 0), (0, k - width)))
    packed = -np.sort(-packed, axis=1)
    found = packed > 0
    slots = np.where(found, _SLOT_CEILING - (packed & 0xFFFFFFFF), -1)
    totals = (packed >> 32).astype(np.int32).view(np.float32)
    return slots, np.where(found, totals, np.float32(-np.inf))


def distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values, as ``np.unique`` gives them: on the arrays of a batch
    (thousands of integers) this sort is over ten times faster than it, with numpy 2.4."""
    ordered = np.sort(values)
    first = np.ones(len(ordered), dtype=bool)
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return ordered[first]


def pick(table: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``table[b, columns[b, j]]`` for every row b: take_along_axis without its checks."""
    return table[np.arange(len(table))[:, None], columns]


def nothing(batch: int, depth: int):
    return np.full((batch, depth), -1, dtype=np.int64), np.full((batch, depth), -np.inf, np.float32)
