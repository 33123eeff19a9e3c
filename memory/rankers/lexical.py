"""The lexical ranking: BM25 over each behavior's name, instruction and tags. Each query keeps
its ``query_terms`` rarest words and each word its ``posting_limit`` highest-impact postings
(static pruning), which is exact for short, specific contexts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from memory.rankers.postings import Postings, build_postings, flatten, postings_top
from memory.rankers.topk import distinct

BM25_K1 = 1.2
BM25_B = 0.75


class LexicalRanker:
    """The vocabulary and document frequencies, kept as behaviors come and go, and the
    postings, rebuilt from the index's per-slot word counts after a change."""

    def __init__(self, query_terms: int, posting_limit: int) -> None:
        self.query_terms = query_terms
        self.posting_limit = posting_limit
        self._vocabulary: dict[str, int] = {}
        self._document_frequency = np.zeros(256, dtype=np.int64)  # per term id
        self._documents = 0
        self._length_total = 0.0
        self._postings: Postings | None = None
        self._idf_cache: np.ndarray | None = None
        self._rarity_cache: tuple[np.ndarray, np.ndarray] | None = None

    def count(self, words: Sequence[str]) -> dict[int, int]:
        """Take in one behavior's words (repeated as often as they occur): its term id ->
        count, which the index keeps for its slot."""
        counts: dict[int, int] = {}
        for word in words:
            term = self._vocabulary.setdefault(word, len(self._vocabulary))
            counts[term] = counts.get(term, 0) + 1
        while len(self._vocabulary) > len(self._document_frequency):
            self._document_frequency = np.concatenate(
                [self._document_frequency, np.zeros_like(self._document_frequency)]
            )
        self._document_frequency[list(counts)] += 1
        self._documents += 1
        self._length_total += len(words)
        self.changed()
        return counts

    def forget(self, counts: dict[int, int], length: float) -> None:
        """Let go of one behavior's words, as ``count`` returned them."""
        self._document_frequency[list(counts)] -= 1
        self._documents -= 1
        self._length_total -= length
        self.changed()

    def changed(self) -> None:
        """Postings and IDF are rebuilt on the next search."""
        self._postings = None
        self._idf_cache = None
        self._rarity_cache = None

    def moved(self) -> None:
        """Slots were renumbered: the postings are rebuilt, the IDF still holds."""
        self._postings = None

    @property
    def built(self) -> bool:
        return self._postings is not None

    def build(self, ids: np.ndarray, terms: Sequence[dict[int, int]], lengths: np.ndarray) -> None:
        """The postings over slots ``0..len(ids)``: ``ids`` -1 where a slot is retired,
        ``terms`` and ``lengths`` each slot's word counts and number of words."""
        live = np.flatnonzero(ids >= 0)
        average_length = max(self._length_total / max(len(live), 1), 1.0)
        term_ids, slot_ids, counts = [], [], []
        for slot in live:
            for term, count in terms[slot].items():
                term_ids.append(term)
                slot_ids.append(slot)
                counts.append(count)
        keys = np.asarray(term_ids, dtype=np.int64)
        owner = np.asarray(slot_ids, dtype=np.int64)
        tf = np.asarray(counts, dtype=np.float64)
        norm = BM25_K1 * (1 - BM25_B + BM25_B * lengths[owner] / average_length)
        impact = tf * (BM25_K1 + 1) / (tf + norm)
        self._postings = build_postings(keys, owner, impact, len(self._vocabulary), len(ids),
                                        self.posting_limit)

    def top(self, queries: Sequence[Sequence[str]], depth: int, bias: np.ndarray):
        """Per query (its words), the ``depth`` best allowed slots and their BM25 scores."""
        idf = self._idf()
        if len(queries) == 1:  # one query: choose its words without array bookkeeping
            known = sorted({self._vocabulary[w] for w in queries[0] if w in self._vocabulary})
            rarest = sorted(known, key=lambda term: -idf[term])[: self.query_terms]
            keys = np.asarray(rarest, dtype=np.int64)
            return postings_top(self._postings, np.zeros(len(keys), dtype=np.int64), keys, idf,
                                1, depth, bias)
        owner, terms = flatten(queries, self._vocabulary)
        # Each query keeps its rarest words: they carry the ranking, and common ones would
        # only lengthen the scan. One sort of (query, rarity) keys both drops repeated words
        # and puts each query's rarest first.
        size = max(len(self._vocabulary), 1)
        rarity, by_rarity = self._rarity()
        unique = distinct(owner * size + rarity[terms])
        owner, terms = unique // size, by_rarity[unique % size]
        rank = np.arange(len(owner)) - np.searchsorted(owner, owner)
        keep = rank < self.query_terms
        return postings_top(self._postings, owner[keep], terms[keep], idf, len(queries), depth,
                            bias)

    def _idf(self) -> np.ndarray:
        if self._idf_cache is None:
            df = self._document_frequency[: len(self._vocabulary)]
            n = self._documents
            self._idf_cache = np.log1p((n - df + 0.5) / (df + 0.5))
        return self._idf_cache

    def _rarity(self) -> tuple[np.ndarray, np.ndarray]:
        """Each term's position among all terms from rarest (highest IDF) to commonest, and
        the terms in that order."""
        if self._rarity_cache is None:
            by_rarity = np.argsort(-self._idf(), kind="stable")
            rarity = np.empty_like(by_rarity)
            rarity[by_rarity] = np.arange(len(by_rarity))
            self._rarity_cache = rarity, by_rarity
        return self._rarity_cache
