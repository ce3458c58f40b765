"""The pool's vectors as the head, selection and seed channel see them: rows by item id, in chunks.

`ArrayPool` holds vectors in memory (simulation, tests); the scorer uses the embedding cache on disk
through the same interface, so memory stays flat however large the pool grows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from hnbooks.scoring.cache import npy_header

if TYPE_CHECKING:
    from hnbooks.scoring.cache import EmbeddingCache
    from hnbooks.scoring.terms import StoredRows, TermCache

IdArray = NDArray[np.int64]
Matrix = NDArray[np.float32]
SCORE_CHUNK_ROWS = 32_768
PRESENCE_BLOCK = 1 << 20
CONVERT_ROWS = 1024
"""Rows converted from float16 at a time: 1.5 MB of float32 at 384 dimensions stays in the CPU
cache while the head scores it, about twice as fast as converting a whole read chunk at once."""


class ItemCounter(Protocol):
    def max_item_id(self) -> int: ...


class PoolVectors(Protocol):
    dim: int

    def item_ids(self) -> IdArray:
        """Sorted ids of every item that has a vector."""
        ...

    def rows(self, item_ids: NDArray[np.integer]) -> Matrix:
        """float32 vectors of the given items, in the given order."""
        ...

    def chunks(self, rows: int = SCORE_CHUNK_ROWS) -> Iterator[tuple[IdArray, Matrix]]:
        """(ids, float32 vectors) for the whole pool, a bounded number of rows at a time."""
        ...


class ArrayPool:
    """Vectors in memory, row i belonging to `item_ids[i]`."""

    def __init__(self, item_ids: NDArray[np.integer], vectors: NDArray[np.floating]) -> None:
        order = np.argsort(item_ids)
        self._ids = np.asarray(item_ids, dtype=np.int64)[order]
        self._vectors = np.asarray(vectors)[order]
        self.dim = int(self._vectors.shape[1])
        self._row_of = np.full(
            int(self._ids.max()) + 1 if len(self._ids) else 1, -1, dtype=np.int64
        )
        self._row_of[self._ids] = np.arange(len(self._ids))

    def item_ids(self) -> IdArray:
        return self._ids

    def rows(self, item_ids: NDArray[np.integer]) -> Matrix:
        return np.asarray(
            self._vectors[self._row_of[np.asarray(item_ids, dtype=np.int64)]], dtype=np.float32
        )

    def chunks(self, rows: int = SCORE_CHUNK_ROWS) -> Iterator[tuple[IdArray, Matrix]]:
        for start in range(0, len(self._ids), rows):
            yield (
                self._ids[start : start + rows],
                np.asarray(self._vectors[start : start + rows], dtype=np.float32),
            )


def top_by_cosine(
    pool: PoolVectors, query: NDArray[np.floating], excluded: set[int], limit: int
) -> list[tuple[int, float]]:
    """The `limit` pool items closest (cosine) to a unit query vector, skipping `excluded` ids."""
    query = np.asarray(query, dtype=np.float32).ravel()
    pool = embeddings_of(pool)
    best_ids: list[NDArray[np.int64]] = []
    best_scores: list[NDArray[np.float32]] = []
    excluded_ids = np.fromiter(excluded, dtype=np.int64, count=len(excluded))
    for ids, vectors in pool.chunks():
        similarity = vectors @ query
        keep = ~np.isin(ids, excluded_ids)
        ids, similarity = ids[keep], similarity[keep]
        if len(ids) > limit:
            top = np.argpartition(-similarity, limit)[:limit]
            ids, similarity = ids[top], similarity[top]
        best_ids.append(ids)
        best_scores.append(similarity)
    if not best_ids:
        return []
    all_ids, all_scores = np.concatenate(best_ids), np.concatenate(best_scores)
    order = np.argsort(-all_scores, kind="stable")[:limit]
    return [(int(all_ids[i]), float(all_scores[i])) for i in order]


class CachedPool:
    """The embedding cache as a pool: rows read on demand, the whole pool streamed in chunks.

    Reads go to the file, so they see every vector `EmbeddingCache.write` has flushed (it flushes
    before it returns).

    Chunks are read with plain file reads into a reused buffer rather than through the memory map,
    so scoring a million rows leaves no mapped pages behind and peak memory does not grow with the
    pool.
    """

    def __init__(self, cache: EmbeddingCache, store: ItemCounter | None = None) -> None:
        self.cache = cache
        self.dim = cache.dim
        limit = store.max_item_id() if store is not None else None
        # One bit per id: 1.25 MB for 10M items, where an id array would take 80 MB.
        parts = []
        for start, filled in cache.filled_blocks(PRESENCE_BLOCK):
            if limit is not None and start + filled.size > limit + 1:
                filled = filled[: max(0, limit + 1 - start)]
            parts.append(np.packbits(filled))
            if limit is not None and start + filled.size > limit:
                break
        self._present = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint8)
        self._count = int(sum(int(np.unpackbits(p).sum()) for p in parts))
        self._largest = -1
        for byte in range(self._present.size - 1, -1, -1):
            if self._present[byte]:
                bits = np.unpackbits(self._present[byte : byte + 1])
                self._largest = byte * 8 + int(np.flatnonzero(bits)[-1])
                break

    def item_ids(self) -> IdArray:
        return np.flatnonzero(np.unpackbits(self._present)).astype(np.int64)

    def item_count(self) -> int:
        return self._count

    def largest_id(self) -> int:
        """The largest id with a vector (-1 when none)."""
        return self._largest

    def presence_mask(self) -> NDArray[np.bool_]:
        """bool (largest id + 1,): True where the id has a vector."""
        mask: NDArray[np.bool_] = np.unpackbits(self._present, count=self._largest + 1).view(bool)
        return mask

    def _ids_between(self, start: int, stop: int) -> IdArray:
        """The ids with a vector in [start, stop); `start` a multiple of 8."""
        stop = min(stop, self._largest + 1)
        if stop <= start:
            return np.empty(0, dtype=np.int64)
        bits = np.unpackbits(self._present[start // 8 : (stop + 7) // 8], count=stop - start)
        return np.flatnonzero(bits).astype(np.int64) + start

    def rows(self, item_ids: NDArray[np.integer]) -> Matrix:
        """Rows read one by one with pread: faulting them in through the memory map would pull in
        the kernel's read-around (megabytes per row) and grow memory with the pool."""
        ids = np.asarray(item_ids, dtype=np.int64).ravel()
        missing = self.cache.missing_ids(ids)
        if missing.size:
            raise KeyError(
                f"{missing.size} item(s) have no cached vector (e.g. {missing[:5].tolist()})"
            )
        _, dtype, offset = npy_header(self.cache.vectors_path)
        row_bytes = self.dim * dtype.itemsize
        out = np.empty((ids.size, self.dim), dtype=dtype)
        view = memoryview(out.data).cast("B")
        descriptor = os.open(self.cache.vectors_path, os.O_RDONLY)
        try:
            for n, item_id in enumerate(ids.tolist()):
                os.preadv(
                    descriptor,
                    [view[n * row_bytes : (n + 1) * row_bytes]],
                    offset + item_id * row_bytes,
                )
        finally:
            os.close(descriptor)
        return out.astype(np.float32)

    def chunks(self, rows: int = SCORE_CHUNK_ROWS) -> Iterator[tuple[IdArray, Matrix]]:
        """(ids, float32 vectors), read `rows` float16 rows at a time and converted and yielded
        `CONVERT_ROWS` at a time. Chunks share one pair of buffers: each yielded matrix is valid
        until the next is read."""
        _, dtype, offset = npy_header(self.cache.vectors_path)
        row_bytes = self.dim * dtype.itemsize
        stored = np.empty((rows, self.dim), dtype=dtype)
        converted = np.empty((min(rows, CONVERT_ROWS), self.dim), dtype=np.float32)
        rows -= rows % 8
        with self.cache.vectors_path.open("rb", buffering=0) as handle:
            for first_of_block in range(0, self._largest + 1, rows):
                ids = self._ids_between(first_of_block, first_of_block + rows)
                if ids.size == 0:
                    continue
                first = int(ids[0])
                span = int(ids[-1]) - first + 1
                handle.seek(offset + first * row_bytes)
                handle.readinto(memoryview(stored[:span].data).cast("B"))
                dense = span == len(ids)
                for part in range(0, len(ids), converted.shape[0]):
                    part_ids = ids[part : part + converted.shape[0]]
                    block = converted[: len(part_ids)]
                    if dense:
                        np.copyto(block, stored[part : part + len(part_ids)])
                    else:
                        np.copyto(block, stored[part_ids - first])
                    yield part_ids, block


WORD_WEIGHT = 1.5
"""The norm of a text's word TF-IDF row beside its unit embedding in what the head reads: under
the head's one L2 penalty it sets how much the words may say. Measured on the discovery suite's 20
Newsgroups tasks (40-48 runs each, docs/discovery.md): against 1, 2-5% more positives at 1.5 on every
task; at 2 the 18-kept task gains as much but the 4-kept one loses 8%."""


class WordRows:
    """A chunk of `WordPool` rows: hashed TF-IDF (CSR arrays over `HASHED_COLUMNS` columns) and
    the embeddings, side by side. Scoring asks only `features @ coef` of a chunk, which numpy
    answers from the arrays: a scipy matrix built per chunk would cost more than the product."""

    def __init__(
        self, words: StoredRows, tfidf: NDArray[np.float32], embeddings: Matrix, columns: int
    ) -> None:
        self.words = words
        self.tfidf = tfidf
        self.embeddings = embeddings
        self.word_columns = columns
        self.shape = (embeddings.shape[0], columns + embeddings.shape[1])

    def __matmul__(self, coef: NDArray[np.floating]) -> NDArray[np.float64]:
        dense_part = self.embeddings @ coef[self.word_columns :].astype(np.float32)
        return np.asarray(
            self.word_product(coef[: self.word_columns]) + dense_part, dtype=np.float64
        )

    def word_product(self, word_coef: NDArray[np.floating]) -> NDArray[np.float64]:
        """The words' part of `features @ coef` alone: a keyword search needs no embedding product."""
        words = self.words
        row_of_entry = np.repeat(np.arange(words.row_lengths.size), words.row_lengths)
        return np.asarray(
            np.bincount(
                row_of_entry,
                weights=self.tfidf * word_coef[words.columns],
                minlength=words.row_lengths.size,
            ),
            dtype=np.float64,
        )

    def as_matrix(self) -> Any:
        """scipy CSR of the words and embeddings side by side (what the head is trained on)."""
        from scipy import sparse

        words = self.words
        indptr = np.concatenate(([0], np.cumsum(words.row_lengths)))
        lexical = sparse.csr_matrix(
            (self.tfidf, words.columns, indptr),
            shape=(words.row_lengths.size, self.word_columns),
        )
        return sparse.hstack([lexical, sparse.csr_matrix(self.embeddings)], format="csr")


class WordPool:
    """The embedding pool with each item's hashed word TF-IDF (of norm `WORD_WEIGHT`) before its
    vector: what the head reads by default (see `hnbooks.scoring.terms`). Distances and the seed
    query still use the embeddings alone (`embeddings_of`)."""

    def __init__(self, embeddings: PoolVectors, terms: TermCache) -> None:
        from hnbooks.scoring.terms import HASHED_COLUMNS

        self.embeddings = embeddings
        self.terms = terms
        self.word_columns = HASHED_COLUMNS
        self.dim = HASHED_COLUMNS + embeddings.dim
        # One IDF for the whole round: the counts do not change while it runs.
        self._idf = terms.idf()

    def item_ids(self) -> IdArray:
        return self.embeddings.item_ids()

    def _word_rows(self, item_ids: NDArray[np.integer], vectors: Matrix) -> WordRows:
        words = self.terms.rows(item_ids)
        return WordRows(words, WORD_WEIGHT * words.tfidf(self._idf), vectors, self.word_columns)

    def rows(self, item_ids: NDArray[np.integer]) -> Any:
        """scipy CSR rows: words then embeddings."""
        ids = np.asarray(item_ids, dtype=np.int64)
        return self._word_rows(ids, self.embeddings.rows(ids)).as_matrix()

    def chunks(self, rows: int = SCORE_CHUNK_ROWS) -> Iterator[tuple[IdArray, Any]]:
        for ids, vectors in self.embeddings.chunks(rows):
            yield ids, self._word_rows(ids, vectors)

    def text_row(self, text: str, embedding: NDArray[np.floating]) -> Any:
        """A text outside the pool (the seed query) as the head reads a pool item: its words
        counted and weighted with the pool's IDF, then its embedding (scipy CSR, one row)."""
        from scipy import sparse

        from hnbooks.scoring.terms import hashed_counts, tfidf_matrix

        words = WORD_WEIGHT * tfidf_matrix(hashed_counts([text]), self._idf)
        vector = np.asarray(embedding, dtype=np.float32).reshape(1, -1)
        return sparse.hstack([words, sparse.csr_matrix(vector)], format="csr")


def embeddings_of(pool: PoolVectors) -> PoolVectors:
    """The unit vectors of a pool, which selection measures distance with and the seed query is
    compared to: a `WordPool`'s embeddings, any other pool itself."""
    return pool.embeddings if isinstance(pool, WordPool) else pool


def text_features(pool: PoolVectors, text: str, embedding: NDArray[np.floating]) -> Any:
    """`text` (with its unit `embedding`) as one row of the features a head trained on `pool`
    reads: what lets the label's description be trained on beside its answers."""
    if isinstance(pool, WordPool):
        return pool.text_row(text, embedding)
    return np.asarray(embedding, dtype=np.float32).reshape(1, -1)


def features_of(pool: PoolVectors) -> str:
    """What a head trained on `pool` reads, as round reports say it."""
    return "words + embeddings" if isinstance(pool, WordPool) else "embeddings"


def pool_size(pool: PoolVectors) -> tuple[int, int]:
    """(items with a vector, largest such id; -1 when none) without listing every id where the
    pool can say so."""
    pool = embeddings_of(pool)
    if isinstance(pool, CachedPool):
        return pool.item_count(), pool.largest_id()
    ids = pool.item_ids()
    return int(ids.size), int(ids.max()) if ids.size else -1


def presence_mask(pool: PoolVectors) -> NDArray[np.bool_]:
    """bool (largest id + 1,): True where the id has a vector."""
    pool = embeddings_of(pool)
    if isinstance(pool, CachedPool):
        return pool.presence_mask()
    ids = pool.item_ids()
    mask = np.zeros(int(ids.max()) + 1 if ids.size else 0, dtype=bool)
    mask[ids] = True
    return mask
