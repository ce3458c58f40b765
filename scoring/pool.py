"""The pool's vectors as the head, selection and seed channel see them: rows by item id, in chunks.

`ArrayPool` holds vectors in memory (simulation, tests); the scorer uses the embedding cache on disk
through the same interface, so memory stays flat however large the pool grows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

IdArray = NDArray[np.int64]
Matrix = NDArray[np.float32]
SCORE_CHUNK_ROWS = 65_536


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
        self._row_of = np.full(int(self._ids.max()) + 1 if len(self._ids) else 1, -1, dtype=np.int64)
        self._row_of[self._ids] = np.arange(len(self._ids))

    def item_ids(self) -> IdArray:
        return self._ids

    def rows(self, item_ids: NDArray[np.integer]) -> Matrix:
        return np.asarray(self._vectors[self._row_of[np.asarray(item_ids, dtype=np.int64)]], dtype=np.float32)

    def chunks(self, rows: int = SCORE_CHUNK_ROWS) -> Iterator[tuple[IdArray, Matrix]]:
        for start in range(0, len(self._ids), rows):
            yield self._ids[start : start + rows], np.asarray(self._vectors[start : start + rows], dtype=np.float32)


def top_by_cosine(
    pool: PoolVectors, query: NDArray[np.floating], excluded: set[int], limit: int
) -> list[tuple[int, float]]:
    """The `limit` pool items closest (cosine) to a unit query vector, skipping `excluded` ids."""
    query = np.asarray(query, dtype=np.float32).ravel()
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
