"""The in-memory retrieval index and the embedders: each ranking against a brute-force
reference, the IVF against exact search, filters, and the local sentence-transformers model."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from coplay.errors import ConfigError
from coplay.step import Context
from memory.behaviors import NewBehavior
from memory.embedding import HashingEmbedder, SentenceTransformerEmbedder, make_embedder, words
from memory.handbook import Handbook, HandbookSettings
from memory.index import BehaviorIndex, Filters, IndexEntry, IndexSettings
from memory.rankers import topk
from memory.rankers.ivf import train_ivf
from memory.rankers.lexical import BM25_B, BM25_K1

TOPICS = ["cooperate", "defect", "forgive", "punish", "probe", "mirror", "retaliate", "trust",
          "exploit", "signal", "repair", "test", "reward", "threat", "alternate", "reciprocate"]


def corpus(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(TOPICS, size=rng.integers(3, 9))) + f" item{i}" for i in range(n)]


def build(texts: list[str], settings: IndexSettings | None = None,
          tags: dict[int, set[str]] | None = None) -> BehaviorIndex:
    embedder = HashingEmbedder()
    index = BehaviorIndex(embedder.dimension, settings or IndexSettings())
    for i, (text, vector) in enumerate(zip(texts, embedder.embed(texts))):
        index.upsert(IndexEntry(i, vector, words(text), "text" if i % 2 else "response_rule",
                                frozenset((tags or {}).get(i, ())), valid_from=0.0))
    return index


def test_hashing_embedder_is_deterministic_unit_length_and_sees_shared_stems() -> None:
    embedder = HashingEmbedder(64)
    a, b, c, empty = embedder.embed(["cooperation pays", "cooperate to pay", "zebra crossing", ""])
    assert np.allclose(HashingEmbedder(64).embed(["cooperation pays"])[0], a)
    assert np.linalg.norm(a) == pytest.approx(1.0)
    assert a @ b > 0.4 > a @ c
    assert not empty.any()
    assert make_embedder("hashing:32").dimension == 32
    with pytest.raises(ConfigError, match="hashing:DIMENSION"):
        make_embedder("hashing:big")


@pytest.mark.parametrize("tied", [False, True], ids=["distinct", "tied"])
def test_sum_by_slot_adds_up_equal_slots_and_keeps_the_largest(tied: bool) -> None:
    rng = np.random.default_rng(1)
    slots = rng.integers(-1, 12, size=(5, 30))
    # Tied: weights of a few exact binary fractions, so that equal totals are common and
    # the lower slot must come first.
    weights = (rng.integers(1, 4, size=(5, 30)) / 4 if tied else rng.random((5, 30)))
    top, totals = topk.sum_by_slot(slots, weights.astype(np.float32), 4)
    for row in range(5):
        reference = Counter()
        for slot, weight in zip(slots[row], weights[row]):
            if slot >= 0:
                reference[int(slot)] += float(weight)
        best = sorted(reference.items(), key=lambda item: (-item[1], item[0]))[:4]
        assert [int(s) for s in top[row]] == [s for s, _ in best]
        assert totals[row] == pytest.approx([w for _, w in best], rel=1e-5)


@pytest.mark.parametrize("tied", [False, True], ids=["distinct", "tied"])
def test_top_of_a_wide_table_keeps_each_rows_largest_values(tied: bool) -> None:
    """Wide tables of similarities take a shortcut (a partition of values, then a sort of
    the few above each row's threshold); it must agree with a full sort, rows of -inf and
    ties included."""
    rng = np.random.default_rng(2)
    for trial in range(10):
        batch, width, k = rng.integers(1, 200), rng.integers(300, 1500), int(rng.integers(1, 30))
        table = (rng.integers(0, 4, size=(batch, width)) if tied
                 else rng.standard_normal((batch, width))).astype(np.float32)
        table[rng.random((batch, width)) < rng.random()] = -np.inf
        table[0] = -np.inf
        columns, values = topk.top(table, k, exact_ties=False)
        assert np.array_equal(values, -np.sort(-table, axis=1)[:, :k]), trial
        found = columns >= 0
        assert (found == np.isfinite(values)).all()
        assert np.array_equal(np.take_along_axis(table, np.maximum(columns, 0), 1)[found],
                              values[found])
        for row in columns:  # no column twice
            assert len(set(row[row >= 0])) == (row >= 0).sum()


def test_distinct_is_numpys_unique() -> None:
    rng = np.random.default_rng(4)
    for size in (0, 1, 2, 1000):
        values = rng.integers(-5, 50, size)
        assert np.array_equal(topk.distinct(values), np.unique(values))


def test_ivf_cells_hold_every_vector_once_and_crowded_cells_are_split() -> None:
    rng = np.random.default_rng(3)
    # A few dense blobs, so that plain k-means would leave some cells crowded.
    centres = rng.standard_normal((6, 32))
    vectors = centres[rng.integers(0, 6, 5000)] * 4 + rng.standard_normal((5000, 32))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    ivf = train_ivf(vectors)
    sizes = np.diff(ivf.starts)
    first_cells = int(math.sqrt(len(vectors)))
    assert len(sizes) > first_cells  # some were split
    assert sizes.max() <= math.ceil(len(vectors) / first_cells)
    # Split halves get their own centroids: nearly every vector's own centroid is among
    # the three nearest to it (about 4% would be, were the cells shuffled).
    similarity = ivf.vectors @ ivf.centroids.T
    own = similarity[np.arange(len(vectors)), np.repeat(np.arange(len(sizes)), sizes)]
    assert np.mean((similarity > own[:, None]).sum(axis=1) < 3) > 0.95
    assert sorted(ivf.slots.tolist()) == list(range(len(vectors)))
    assert np.array_equal(ivf.vectors, vectors[ivf.slots])


def test_an_ivf_over_fewer_vectors_than_its_minimum_cells_searches() -> None:
    texts = corpus(5)
    index = build(texts, IndexSettings(exact_limit=1))
    index._ensure_built()
    assert index._ivf is not None and len(index._ivf.centroids) == 5
    queries = HashingEmbedder().embed(texts)
    slots, _ = index._vector_top(queries, 1, index._mask(Filters()))
    assert slots[:, 0].tolist() == list(range(5))  # each text finds itself


def test_lexical_ranking_is_bm25_when_nothing_is_pruned() -> None:
    texts = corpus(60)
    index = build(texts, IndexSettings(query_terms=50, posting_limit=1000))
    index._ensure_built()
    documents = [words(t) for t in texts]
    average = sum(map(len, documents)) / len(documents)
    query = ["forgive", "signal", "item7"]
    scores = []
    for document in documents:
        counts = Counter(document)
        score = 0.0
        for term in query:
            df = sum(term in d for d in documents)
            if counts[term]:
                idf = math.log1p((len(documents) - df + 0.5) / (df + 0.5))
                tf = counts[term]
                length_norm = 1 - BM25_B + BM25_B * len(document) / average
                score += idf * tf * (BM25_K1 + 1) / (tf + BM25_K1 * length_norm)
        scores.append(score)
    slots, values = index._lexical_top([query], 10, index._mask(Filters()))
    expected = np.argsort(-np.array(scores), kind="stable")[:10]
    assert values[0] == pytest.approx(np.array(scores)[expected], rel=1e-5)
    assert set(slots[0]) == set(expected)


@pytest.mark.parametrize("filters", [Filters(), Filters(kinds=frozenset({"text"}))],
                         ids=["all", "texts only"])
def test_batched_lexical_and_graph_rankings_equal_one_query_at_a_time(filters) -> None:
    """The batch path (a sparse product) and the one-query path (gathered postings) are
    separate code; on a corpus of few words, full of ties, they must rank alike."""
    texts = corpus(400)
    index = build(texts, IndexSettings(posting_limit=16))
    for i in range(0, 400, 3):
        index.set_links(i, {f"coplayer:{TOPICS[i % 5]}": 1.0 + i % 4, "scenario:x": 0.5})
    index._ensure_built()
    bias = index._mask(filters)
    queries = [words(t) for t in corpus(40, seed=9)] + [["unknown"], []]
    entities = [[f"coplayer:{TOPICS[i % 7]}", "scenario:x"][: i % 3] for i in range(len(queries))]
    for top, per_query in ((index._lexical_top, queries), (index._graph_top, entities)):
        batch_slots, batch_values = top(per_query, 12, bias)
        for row, query in enumerate(per_query):
            slots, values = top([query], 12, bias)
            assert batch_slots[row].tolist() == slots[0].tolist()
            assert batch_values[row] == pytest.approx(values[0], rel=1e-5)


def test_ivf_search_finds_what_exact_search_finds() -> None:
    texts = corpus(3000)
    exact = build(texts, IndexSettings(exact_limit=10_000))
    approximate = build(texts, IndexSettings(exact_limit=500, probes=8))
    queries = HashingEmbedder().embed(corpus(200, seed=5))
    bias = exact._mask(Filters())
    exact._ensure_built()
    approximate._ensure_built()
    truth, _ = exact._vector_top(queries, 10, bias)
    batch, _ = approximate._vector_top(queries, 10, approximate._mask(Filters()))
    assert approximate._ivf is not None and exact._ivf is None
    recall = np.mean([len(set(t) & set(b)) / 10 for t, b in zip(truth, batch)])
    assert recall > 0.85
    single = np.stack([approximate._vector_top(q[None], 10, approximate._mask(Filters()))[0][0]
                       for q in queries[:20]])
    assert (single == batch[:20]).all()


def test_updates_and_filters_apply_inside_every_ranking() -> None:
    texts = corpus(40)
    index = build(texts, tags={3: {"gold"}, 5: {"gold", "silver"}})
    vectors = HashingEmbedder().embed([texts[3]])
    ids, _ = index.search(vectors, [words(texts[3])], [()], 3)
    assert ids[0, 0] == 3
    gold = index.search(vectors, [words(texts[3])], [()], 3, Filters(tags=frozenset({"gold", "silver"})))[0]
    assert list(gold[0]) == [5, -1, -1]
    rules = index.search(vectors, [words(texts[3])], [()], 40, Filters(kinds=frozenset({"text"})))[0]
    assert all(i % 2 == 1 for i in rules[0] if i >= 0)
    index.set_validity(3, 10.0)
    assert 3 not in index.search(vectors, [words(texts[3])], [()], 3)[0][0]
    assert 3 in index.search(vectors, [words(texts[3])], [()], 3, Filters(valid_at=5.0))[0][0]
    index.discard(5)
    assert 5 not in index.search(vectors, [words(texts[5])], [()], 40, Filters(include_invalid=True))[0][0]


def test_graph_ranking_prefers_stronger_links() -> None:
    index = build(corpus(10))
    index.set_links(2, {"coplayer:defector": 0.5})
    index.set_links(7, {"coplayer:defector": 2.0, "scenario:x": 1.0})
    index._ensure_built()
    slots, values = index._graph_top([["coplayer:defector", "scenario:x"]], 5, index._mask(Filters()))
    assert list(index._slots.ids[slots[0][:2]]) == [7, 2]
    assert values[0][:2] == pytest.approx([3.0, 0.5])


def tiny_sentence_transformer(folder) -> str:
    """A two-layer BERT with a 40-word vocabulary, saved as a sentence-transformers model: the
    real loading code runs, nothing is downloaded."""
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(" ".join(TOPICS).split())),
                  "the", "co", "player", "-", "once", "again", "always", "never", "round", "game"]
    (folder / "bert").mkdir()
    (folder / "bert" / "vocab.txt").write_text("\n".join(vocabulary))
    BertTokenizerFast(vocab_file=str(folder / "bert" / "vocab.txt")).save_pretrained(folder / "bert")
    config = BertConfig(vocab_size=len(vocabulary), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder / "bert")
    transformer = models.Transformer(str(folder / "bert"))
    pooling = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(folder / "st"))
    return str(folder / "st")


def test_a_local_sentence_transformers_model_embeds_for_the_handbook(tmp_path) -> None:
    path = tiny_sentence_transformer(tmp_path)
    embedder = make_embedder(path)
    assert isinstance(embedder, SentenceTransformerEmbedder) and embedder.dimension == 32
    vectors = embedder.embed(["always cooperate", "never defect"])
    assert vectors.shape == (2, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    # An untrained model finds every two sentences alike: merge exact duplicates only.
    settings = HandbookSettings(dedup_threshold=1.0)
    with Handbook.open(f"sqlite:///{tmp_path / 'h.db'}", embedder=embedder, settings=settings) as handbook:
        handbook.add(NewBehavior(name="Always cooperate", instruction="cooperate every round"))
        handbook.add(NewBehavior(name="Punish", instruction="defect after the co-player defects"))
        assert len(handbook) == 2
        found = handbook.retrieve([Context("cooperate every round")], k=1).ids
        assert found[0, 0] == 1
    # The same database opened with the built-in embedder re-embeds the texts in its space.
    with Handbook.open(f"sqlite:///{tmp_path / 'h.db'}") as handbook:
        assert handbook.search("punish defect", k=1)[0].behavior.id == 2


def test_a_missing_model_directory_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="embedder: expected a local sentence-transformers model"):
        make_embedder(str(tmp_path / "nothing"))
