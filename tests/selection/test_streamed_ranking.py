"""The streamed ranking (scores on disk, read in blocks) chooses exactly what sorting in memory does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hnbooks.scoring import streamed
from hnbooks.scoring.cache import EmbeddingCache
from hnbooks.scoring.job import RoundConfig, train_and_select
from hnbooks.scoring.pool import ArrayPool, CachedPool
from hnbooks.scoring.select import SortedRanking
from hnbooks.scoring.streamed import ScoreFile, StreamedRanking

DIM = 16


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 256 ids and a best-list refilled after 4 rows: every boundary is crossed."""
    monkeypatch.setattr(streamed, "SCAN_IDS", 256)
    monkeypatch.setattr(streamed, "FIRST_BEST", 4)


def tied_scores(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Rounded so that many rows share a score: ties must break by row in both rankings.
    scores = np.round(rng.beta(0.5, 3, size), 3).astype(np.float32)
    scores[rng.random(size) < 0.1] = np.nan
    eligible = rng.random(size) < 0.8
    return scores, eligible


def streamed_of(scores: np.ndarray, eligible: np.ndarray) -> StreamedRanking:
    score_file = ScoreFile(scores.size)
    present = np.flatnonzero(~np.isnan(scores))
    for start in range(0, present.size, 97):
        ids = present[start : start + 97]
        score_file.append(ids, scores[ids])
    score_file.finish()
    return StreamedRanking(score_file, eligible)


@pytest.mark.usefixtures("small_blocks")
def test_streamed_ranking_answers_like_the_sorted_one() -> None:
    scores, eligible = tied_scores(3000, seed=3)
    in_memory = SortedRanking(scores, eligible)
    on_disk = streamed_of(scores, eligible)

    assert on_disk.size == in_memory.size
    assert list(on_disk.best()) == in_memory.rows.tolist()
    for threshold, reach in ((0.5, 7), (0.05, 30), (0.0, 5), (2.0, 5)):
        assert on_disk.window_around(threshold, reach).tolist() == (
            in_memory.window_around(threshold, reach).tolist()
        )
    positions = np.array([0, 1, 17, 500, in_memory.size - 1])
    assert on_disk.rows_at(positions).tolist() == in_memory.rows_at(positions).tolist()
    # Every position at once: hundreds of bins in one read, as novel's sample of the best asks.
    everywhere = np.arange(in_memory.size)
    assert on_disk.rows_at(everywhere).tolist() == in_memory.rows.tolist()
    rows = in_memory.rows[[3, 999, 1500, 2]].tolist()
    assert on_disk.positions_of(rows) == in_memory.positions_of(rows)


def planted_pool(items: int, seed: int) -> tuple[ArrayPool, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=DIM)
    vectors = rng.normal(size=(items, DIM))
    positives = rng.choice(items, 40, replace=False)
    vectors[positives] += 3 * direction / np.linalg.norm(direction)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(1, items + 1) * 2  # gaps between ids, as deleted items leave
    return ArrayPool(ids, vectors.astype(np.float32)), ids, ids[positives]


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("seed", [0, 1])
def test_a_streamed_round_picks_the_same_batch_as_scoring_in_memory(seed: int) -> None:
    pool, ids, positive_ids = planted_pool(3000, seed)
    rng = np.random.default_rng(seed + 10)
    negatives = rng.choice(np.setdiff1d(ids, positive_ids), 60, replace=False)
    labelled = np.sort(np.concatenate([positive_ids[:15], negatives]))
    labels = np.isin(labelled, positive_ids)
    eligible_ids = np.setdiff1d(ids, labelled)
    eligible = np.zeros(int(ids.max()) + 1, dtype=bool)
    eligible[eligible_ids] = True
    config = RoundConfig(label="BOOK", batch_size=20, random_seed=seed, threshold=0.3)
    common = dict(
        random_positive=np.zeros(0, dtype=bool),
        random_probability=np.zeros(0),
        config=config,
    )
    in_memory = train_and_select(
        pool, labelled, labels, eligible_ids, labelled, rng=np.random.default_rng(seed), **common
    )
    on_disk = train_and_select(
        pool,
        labelled,
        labels,
        None,
        labelled,
        rng=np.random.default_rng(seed),
        streamed=True,
        eligible=eligible,
        **common,
    )
    assert len(in_memory.picks) == 20
    assert {pick.strategy for pick in in_memory.picks} >= {"top", "uncertain", "novel"}
    assert [(p.row, p.strategy, p.rank) for p in on_disk.picks] == [
        (p.row, p.strategy, p.rank) for p in in_memory.picks
    ]
    np.testing.assert_allclose(
        [p.score for p in on_disk.picks], [p.score for p in in_memory.picks], rtol=1e-6
    )
    np.testing.assert_allclose(
        on_disk.scores_of(ids[:50]), in_memory.scores_of(ids[:50]), rtol=1e-6
    )


def test_the_cached_pool_streams_every_vector_one_small_block_at_a_time(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    ids = np.sort(rng.choice(np.arange(1, 5000), 3000, replace=False))
    vectors = rng.normal(size=(ids.size, DIM)).astype(np.float32)
    cache = EmbeddingCache.open(tmp_path / "pool.db", "model", DIM)
    cache.write(ids, vectors)
    pool = CachedPool(cache)
    assert pool.item_ids().tolist() == ids.tolist()
    assert (pool.item_count(), pool.largest_id()) == (ids.size, int(ids[-1]))
    seen_ids, seen_rows = [], []
    for chunk_ids, rows in pool.chunks(rows=1000):
        assert rows.dtype == np.float32 and len(rows) <= 1000
        seen_ids.append(chunk_ids.copy())
        seen_rows.append(rows.copy())
    assert np.concatenate(seen_ids).tolist() == ids.tolist()
    np.testing.assert_array_equal(
        np.concatenate(seen_rows), vectors.astype(np.float16).astype(np.float32)
    )
    cache.close()
