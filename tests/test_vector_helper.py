"""The vector helper process (``IndexSettings(vector_helper=True)``): the same answers as
ranking in process, before and after the IVF cells are retrained; only large batches use it;
closing stops it; an answer left unread never reaches a later batch; a helper that dies is
named in the error, and the next batch starts another."""

from __future__ import annotations

import numpy as np
import pytest

from coplay.errors import StoreError
from coplay.step import Context
from memory.behaviors import NewBehavior
from memory.handbook import Handbook, HandbookSettings
from memory.index import NO_FILTERS, IndexSettings
from memory.rankers.ivf import ivf_top
from memory.vector_helper import MIN_BATCH, VectorHelper
from tests.test_retrieval import TOPICS, corpus


def behaviors(n: int, seed: int) -> list[NewBehavior]:
    return [NewBehavior(name=f"behavior {seed}-{i}", instruction=text)
            for i, text in enumerate(corpus(n, seed))]


def contexts(n: int) -> list[Context]:
    rng = np.random.default_rng(7)
    return [Context(" ".join(rng.choice(TOPICS, size=4)) + f" case{i}") for i in range(n)]


def open_handbook(url: str, helper: bool) -> Handbook:
    # A small exact limit, so that a few hundred behaviors already have IVF cells.
    index = IndexSettings(exact_limit=64, vector_helper=helper)
    return Handbook.open(url, settings=HandbookSettings(index=index))


def test_the_helper_ranks_as_the_index_would(db_url) -> None:
    writer = Handbook.open(db_url)
    writer.add_many(behaviors(400, seed=0))
    plain, helped = open_handbook(db_url, helper=False), open_handbook(db_url, helper=True)
    asked = contexts(MIN_BATCH)
    try:
        helped.retrieve(asked[: MIN_BATCH - 1], k=5)
        assert helped._index._helper is None  # a small batch ranks in process
        for round_ in range(2):
            helped.clear_caches()  # every context is ranked afresh, in one batch
            expected, found = plain.retrieve(asked, k=5), helped.retrieve(asked, k=5)
            assert helped._index._helper is not None and helped._index._helper.alive
            np.testing.assert_array_equal(found.ids, expected.ids)
            np.testing.assert_allclose(found.scores, expected.scores, rtol=1e-6)
            assert helped._index._ivf_version == round_ + 1
            # Enough new behaviors that the next batch retrains the cells, which the helper
            # must then be sent.
            writer.add_many(behaviors(600, seed=1 + round_))
            plain.sync()
            helped.sync()
    finally:
        helper = helped._index._helper
        helped.close()
        plain.close()
        writer.close()
    assert not helper.alive


def test_a_helper_that_dies_is_named_and_the_next_batch_starts_another(db_url) -> None:
    writer = Handbook.open(db_url)
    writer.add_many(behaviors(300, seed=0))
    handbook = open_handbook(db_url, helper=True)
    asked = contexts(MIN_BATCH)
    try:
        expected = handbook.retrieve(asked, k=3).ids
        index = handbook._index
        first = index._helper
        first._process.kill()
        first._process.join()
        handbook.clear_caches()
        np.testing.assert_array_equal(handbook.retrieve(asked, k=3).ids, expected)
        assert index._helper is not first and index._helper.alive
    finally:
        handbook.close()
        writer.close()


def test_a_helper_answers_each_ticket_and_its_death_is_a_store_error(db_url) -> None:
    writer = Handbook.open(db_url)
    writer.add_many(behaviors(300, seed=0))
    handbook = open_handbook(db_url, helper=False)
    handbook.retrieve(contexts(1), k=3)
    index = handbook._index
    queries = handbook.embedder.embed([c.text for c in contexts(MIN_BATCH)])
    bias = index._mask(NO_FILTERS)
    helper = VectorHelper()
    try:
        unread = helper.submit(index._ivf, 1, queries, 20, bias, index.settings.probes)
        ticket = helper.submit(index._ivf, 1, queries[:10], 20, bias, index.settings.probes)
        assert ticket != unread
        slots, scores = helper.result(ticket)  # the unread answer is skipped
        expected = ivf_top(index._ivf, queries[:10], 20, bias, index.settings.probes)
        np.testing.assert_array_equal(slots, expected[0])
        np.testing.assert_array_equal(scores, expected[1])
        helper._process.kill()
        helper._process.join()
        with pytest.raises(StoreError, match="vector helper: expected a running helper process"):
            helper.result(helper.submit(index._ivf, 1, queries, 20, bias, index.settings.probes))
    finally:
        helper.close()
        handbook.close()
        writer.close()
