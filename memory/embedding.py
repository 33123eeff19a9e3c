"""Text embedders for the behavior handbook. The handbook takes one as an argument.

``HashingEmbedder`` is the built-in default: it needs no model and no download, and embeds a
word as the signed hash of the word and of its character trigrams, so that words sharing a
stem ("cooperate", "cooperation") land near each other. ``SentenceTransformerEmbedder`` loads
a sentence-transformers model from a local directory, never from a hub.
"""

from __future__ import annotations

import itertools
import re
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from coplay.errors import ConfigError

WORD = re.compile(r"[a-z0-9_]+")


def words(text: str) -> list[str]:
    """Lower-case alphanumeric words: the one tokenizer of lexical and hashed matching."""
    return WORD.findall(text.lower())


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 rows of a fixed width."""

    @property
    def name(self) -> str:
        """Identifies the embedding space: vectors from embedders of different names are
        never compared (the handbook re-embeds when they differ)."""
        ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class WordEmbedder(Embedder, Protocol):
    """An embedder that reads a text as its ``words``: given them already split, it need
    not split again (the handbook splits each query once, for lexical and vector ranking)."""

    def embed_words(self, word_lists: Sequence[Sequence[str]]) -> np.ndarray: ...


class HashingEmbedder:
    """Feature hashing of words and character trigrams into ``dimension`` signed buckets.

    Each word's vector is computed once and cached, so embedding a batch costs a dictionary
    lookup per word and one scatter-add. Stable across processes and machines (CRC32, not
    Python's salted ``hash``).
    """

    def __init__(self, dimension: int = 128) -> None:
        if dimension < 8:
            raise ConfigError("dimension", expected="at least 8", got=str(dimension))
        self._dimension = dimension
        self._rows: dict[str, int] = {}
        self._vectors = np.zeros((256, dimension), dtype=np.float32)

    @property
    def name(self) -> str:
        return f"hashing-v1-{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_words([words(text) for text in texts])

    def embed_words(self, word_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """``embed`` of texts already split by ``words`` (the handbook splits a query once
        for its lexical and its vector ranking)."""
        from scipy import sparse  # only here: it costs a tenth of a second to import

        flat = list(itertools.chain.from_iterable(word_lists))
        # Known words in one pass of C (map over dict.get); a new word gets its row made.
        rows = np.fromiter(map(self._rows.get, flat, itertools.repeat(-1)), dtype=np.int64,
                           count=len(flat))
        if len(rows) and rows.min() < 0:
            rows = np.fromiter(map(self._row, flat), dtype=np.int64, count=len(flat))
        if len(word_lists) == 1:  # one text: adding its few rows beats building a matrix
            out = self._vectors[rows].sum(axis=0, keepdims=True)
            return out / max(float(np.linalg.norm(out)), 1e-12)
        counts = np.fromiter(map(len, word_lists), dtype=np.int64, count=len(word_lists))
        # Each text's vector is the sum of its words' rows: one sparse-by-dense product.
        pointers = np.concatenate([[0], np.cumsum(counts)])
        membership = sparse.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), rows, pointers),
            shape=(len(word_lists), len(self._vectors)))
        out = np.asarray(membership @ self._vectors, dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def _row(self, word: str) -> int:
        row = self._rows.get(word)
        if row is None:
            row = len(self._rows)
            if row == len(self._vectors):
                self._vectors = np.concatenate([self._vectors, np.zeros_like(self._vectors)])
            self._vectors[row] = self._word_vector(word)
            self._rows[word] = row
        return row

    def _word_vector(self, word: str) -> np.ndarray:
        vector = np.zeros(self._dimension, dtype=np.float32)
        padded = f"#{word}#"
        trigrams = [padded[i:i + 3] for i in range(len(padded) - 2)]
        # The word and its trigrams weigh the same (equal norms), so words sharing a stem
        # ("cooperate", "cooperation") are similar but never equal.
        features = [(word, 1.0)] + [(gram, len(trigrams) ** -0.5) for gram in trigrams]
        for feature, weight in features:
            code = zlib.crc32(feature.encode())
            sign = 1.0 if code & 1 else -1.0
            vector[(code >> 1) % self._dimension] += sign * weight
        return vector


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local directory (``pip install
    'coplay[embeddings]'``); it never downloads."""

    def __init__(self, model_dir: str | Path, *, device: str = "cpu") -> None:
        path = Path(model_dir)
        if not path.is_dir():
            raise ConfigError(
                "embedder", expected="a local sentence-transformers model directory",
                got=f"{str(path)!r}, which is not a directory",
                fix="Save a model with SentenceTransformer.save(DIR) and pass DIR.",
            )
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ConfigError(
                "embedder", expected="the sentence-transformers package",
                got="it is not installed", fix="pip install 'coplay[embeddings]'",
            ) from None
        try:
            self._model = SentenceTransformer(str(path), device=device, local_files_only=True)
        except (OSError, ValueError) as error:
            raise ConfigError(
                "embedder", expected=f"a sentence-transformers model in {str(path)!r}",
                got=str(error).splitlines()[0],
            ) from None
        self._name = f"sentence-transformers:{path.resolve().name}"
        measure = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension)
        dimension = measure()
        if dimension is None:
            dimension = int(self._model.encode(["probe"]).shape[1])
        self._dimension = int(dimension)

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        vectors = self._model.encode(
            list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def make_embedder(spec: str | None) -> Embedder:
    """``None`` or ``hashing`` (optionally ``hashing:DIM``): the built-in embedder; anything
    else: a local sentence-transformers model directory."""
    if spec is None or spec == "hashing":
        return HashingEmbedder()
    if spec.startswith("hashing:"):
        size = spec.partition(":")[2]
        if not size.isdigit():
            raise ConfigError("embedder", expected="hashing:DIMENSION, e.g. hashing:128", got=repr(spec))
        return HashingEmbedder(int(size))
    return SentenceTransformerEmbedder(spec)
