"""The float16 embedding cache: round trips, growth, resets, damage, and kill -9 at any moment."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from hnbooks.scoring.cache import INITIAL_CAPACITY, EmbeddingCache, cache_paths
from tests.helpers import kill_writer

DIM = 8
HASH = "a" * 64


def expected_rows(item_ids: np.ndarray, dim: int = DIM) -> np.ndarray:
    """A deterministic, never-zero vector per id, exact in float16."""
    values = ((np.asarray(item_ids) % 997) + 1) / 1024
    return np.repeat(values[:, None], dim, axis=1).astype(np.float16)


def test_written_vectors_read_back(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    ids = np.array([3, 1, 7])
    rows = np.random.default_rng(0).standard_normal((3, DIM)).astype(np.float32)
    with EmbeddingCache.open(db, HASH, DIM, model_name="m") as cache:
        assert cache.reset_reason is None
        np.testing.assert_array_equal(
            cache.missing_ids(np.array([1, 2, 3, 99_999])), [1, 2, 3, 99_999]
        )
        cache.write(ids, rows)
        np.testing.assert_array_equal(cache.missing_ids(np.array([1, 2, 3, 99_999])), [2, 99_999])
        np.testing.assert_array_equal(cache.filled_ids(), [1, 3, 7])
        got = cache.vectors(np.array([7, 3]))
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, rows[[2, 0]], atol=2e-3)
        with pytest.raises(KeyError, match="no cached vector"):
            cache.vectors(np.array([2]))
        matrix = cache.matrix()
        assert matrix.dtype == np.float16 and matrix.shape == (INITIAL_CAPACITY, DIM)
        assert not matrix.flags.writeable
    with EmbeddingCache.open(db, HASH, DIM) as reopened:
        assert reopened.reset_reason is None
        assert reopened.filled_count == 3
        np.testing.assert_allclose(reopened.vectors(ids), rows, atol=2e-3)
    paths = cache_paths(db)
    assert [path.name for path in paths] == [
        "x.db.vectors.npy",
        "x.db.vectors.filled.npy",
        "x.db.vectors.json",
        "x.db.vectors.keys.npy",
    ]
    metadata = json.loads(paths[2].read_text())
    assert (
        metadata["model_hash"] == HASH and metadata["dim"] == DIM and metadata["model_name"] == "m"
    )


def test_capacity_grows_and_keeps_rows(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    with EmbeddingCache.open(db, HASH, DIM) as cache:
        first = np.arange(1, 101)
        cache.write(first, expected_rows(first))
        far = np.array([5000, 70_001])
        cache.write(far, expected_rows(far))
        assert cache.capacity >= 70_002
        assert not list(tmp_path.glob("*.tmp"))
    with EmbeddingCache.open(db, HASH, DIM) as cache:
        assert cache.reset_reason is None
        everything = np.concatenate([first, far])
        np.testing.assert_array_equal(cache.filled_ids(), everything)
        np.testing.assert_array_equal(
            cache.vectors(everything), expected_rows(everything).astype(np.float32)
        )
        assert json.loads(cache.metadata_path.read_text())["capacity"] == cache.capacity


def test_another_model_resets_the_cache(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    with EmbeddingCache.open(db, HASH, DIM, model_name="old") as cache:
        cache.write(np.array([1]), expected_rows(np.array([1])))
    with EmbeddingCache.open(db, "b" * 64, DIM, model_name="new") as cache:
        assert cache.reset_reason is not None and "model changed" in cache.reset_reason
        assert cache.filled_count == 0
    with EmbeddingCache.open(db, "b" * 64, DIM) as cache:
        assert cache.reset_reason is None


@pytest.mark.parametrize(
    "damage",
    [
        "truncated vectors",
        "missing mask",
        "garbage metadata",
        "mask longer than vectors",
        "wrong dtype",
        "stale capacity",
    ],
)
def test_damaged_files_are_rebuilt_with_a_reason(tmp_path: Path, damage: str) -> None:
    db = tmp_path / "x.db"
    with EmbeddingCache.open(db, HASH, DIM) as cache:
        cache.write(np.array([1, 2]), expected_rows(np.array([1, 2])))
    vectors_path, filled_path, metadata_path, _ = cache_paths(db)
    if damage == "truncated vectors":
        with vectors_path.open("r+b") as handle:
            handle.truncate(vectors_path.stat().st_size - 100)
    elif damage == "missing mask":
        filled_path.unlink()
    elif damage == "garbage metadata":
        metadata_path.write_text("{not json")
    elif damage == "mask longer than vectors":
        np.save(filled_path, np.ones(INITIAL_CAPACITY * 2, dtype=np.uint8))
    elif damage == "wrong dtype":
        np.save(vectors_path, np.zeros((INITIAL_CAPACITY, DIM), dtype=np.float32))
    elif damage == "stale capacity":
        metadata = json.loads(metadata_path.read_text())
        metadata["capacity"] = INITIAL_CAPACITY * 4
        metadata_path.write_text(json.dumps(metadata))
    with EmbeddingCache.open(db, HASH, DIM) as cache:
        assert cache.reset_reason
        assert cache.filled_count == 0
        cache.write(np.array([1]), expected_rows(np.array([1])))
    with EmbeddingCache.open(db, HASH, DIM) as cache:
        assert cache.reset_reason is None and cache.filled_count == 1


def test_growth_interrupted_between_the_two_files_is_finished_on_open(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    ids = np.array([1, 500])
    with EmbeddingCache.open(db, HASH, DIM) as cache:
        cache.write(ids, expected_rows(ids))
    vectors_path, filled_path, _, _ = cache_paths(db)
    # What a kill leaves after the grown vectors file replaced the old one, before the mask did.
    grown = np.zeros((INITIAL_CAPACITY * 2, DIM), dtype=np.float16)
    grown[:INITIAL_CAPACITY] = np.load(vectors_path)
    np.save(vectors_path, grown)
    (filled_path.parent / (filled_path.name + ".tmp")).write_bytes(b"half a mask")
    with EmbeddingCache.open(db, HASH, DIM) as cache:
        assert cache.reset_reason is None
        assert cache.capacity == INITIAL_CAPACITY * 2
        np.testing.assert_array_equal(cache.filled_ids(), ids)
        np.testing.assert_array_equal(cache.vectors(ids), expected_rows(ids).astype(np.float32))
    assert not list(tmp_path.glob("*.tmp"))


WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from hnbooks.scoring import cache as cache_module
    from hnbooks.scoring.cache import EmbeddingCache

    db, dim, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]

    def rows(ids):
        values = ((ids % 997) + 1) / 1024
        return np.repeat(values[:, None], dim, axis=1).astype(np.float16)

    cache = EmbeddingCache.open(db, "a" * 64, dim)
    cache.write(np.arange(1, 11), rows(np.arange(1, 11)))
    if mode == "before-mark":
        # Die the instant the vectors are on disk, before the mask marks them.
        def die(self, filled, ids):
            os.kill(os.getpid(), signal.SIGKILL)
        EmbeddingCache._mark_filled = die
        cache.write(np.arange(11, 21), rows(np.arange(11, 21)))
    chunk = 0
    while True:
        ids = np.arange(1 + 2000 * chunk, 1 + 2000 * (chunk + 1))
        cache.write(ids, rows(ids))
        print(chunk, flush=True)
        chunk += 1
    """
)


def run_writer(db: Path, mode: str, chunks_before_kill: int) -> int:
    """Start the writer, SIGKILL it after it reports `chunks_before_kill` chunks (or let it die)."""
    return kill_writer(WRITER, [str(db), "64", mode], chunks_before_kill)


def assert_mask_never_ahead_of_vectors(db: Path, dim: int = 64) -> np.ndarray:
    with EmbeddingCache.open(db, HASH, dim) as cache:
        assert cache.reset_reason is None
        filled = cache.filled_ids()
        np.testing.assert_array_equal(
            cache.vectors(filled), expected_rows(filled, dim).astype(np.float32)
        )
        return filled


def test_killed_after_vectors_before_mask_leaves_those_rows_unmarked(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    run_writer(db, "before-mark", chunks_before_kill=1)
    filled = assert_mask_never_ahead_of_vectors(db)
    np.testing.assert_array_equal(filled, np.arange(1, 11))


@pytest.mark.parametrize("chunks_before_kill", [1, 3, 7])
def test_sigkill_mid_write_never_leaves_the_mask_ahead(
    tmp_path: Path, chunks_before_kill: int
) -> None:
    db = tmp_path / "x.db"
    reported = run_writer(db, "loop", chunks_before_kill)
    filled = assert_mask_never_ahead_of_vectors(db)
    # Every reported chunk survived; what was in flight is either fully there or not marked.
    assert filled.size >= 2000 * reported
    with EmbeddingCache.open(db, HASH, 64) as cache:
        missing = cache.missing_ids(np.arange(1, 2000 * (reported + 2)))
        again = np.arange(1, 2000 * (reported + 2))
        cache.write(missing, expected_rows(missing, 64))
        np.testing.assert_array_equal(
            cache.vectors(again), expected_rows(again, 64).astype(np.float32)
        )


def test_growth_interrupted_after_the_keys_is_finished_on_open(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    ids = np.array([1, 500])
    with EmbeddingCache.open(db, HASH, DIM) as cache:
        cache.write_keyed(ids, expected_rows(ids), np.array([11, 22]))
    vectors_path, filled_path, _, keys_path = cache_paths(db)
    # A kill after the vectors and the keys were replaced by grown copies, before the mask was.
    for path in (vectors_path, keys_path):
        old = np.load(path)
        grown = np.zeros((INITIAL_CAPACITY * 2, *old.shape[1:]), dtype=old.dtype)
        grown[:INITIAL_CAPACITY] = old
        np.save(path, grown)
    with EmbeddingCache.open(db, HASH, DIM) as cache:
        assert cache.reset_reason is None
        assert cache.capacity == INITIAL_CAPACITY * 2
        np.testing.assert_array_equal(cache.stored_keys(np.array([1, 500, 2])), [11, 22, 0])
        np.testing.assert_array_equal(cache.vectors(ids), expected_rows(ids).astype(np.float32))


def test_a_row_written_again_is_unmarked_until_its_new_vector_is_on_disk(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    ids = np.array([3])
    with EmbeddingCache.open(db, HASH, DIM) as cache:
        cache.write_keyed(ids, expected_rows(ids), np.array([7]))

        def killed(item_ids: object, vectors: object) -> None:
            raise KeyboardInterrupt

        cache.write = killed  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt):
            cache.write_keyed(ids, expected_rows(ids) * 2, np.array([8]))
    with EmbeddingCache.open(db, HASH, DIM) as cache:
        assert cache.filled_count == 0
        np.testing.assert_array_equal(cache.stored_keys(ids), [0])


def test_a_cache_bound_to_another_database_is_emptied(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    ids = np.array([1, 2])
    with EmbeddingCache.open(db, HASH, DIM) as cache:
        assert cache.bind("first-database") is None
        cache.write_keyed(ids, expected_rows(ids), np.array([5, 6]))
    with EmbeddingCache.open(db, HASH, DIM) as cache:
        assert cache.database_id == "first-database"
        assert cache.bind("first-database") is None and cache.filled_count == 2
        reason = cache.bind("second-database")
        assert reason and "another database" in reason and cache.filled_count == 0
    with EmbeddingCache.open(db, HASH, DIM) as cache:
        assert cache.database_id == "second-database" and cache.reset_reason is None


def test_a_cache_of_the_previous_format_is_rebuilt(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    with EmbeddingCache.open(db, HASH, DIM) as cache:
        cache.write(np.array([1]), expected_rows(np.array([1])))
    vectors_path, filled_path, metadata_path, keys_path = cache_paths(db)
    keys_path.unlink()
    metadata = json.loads(metadata_path.read_text())
    metadata["format"] = 1
    del metadata["database_id"]
    metadata_path.write_text(json.dumps(metadata))
    with EmbeddingCache.open(db, HASH, DIM) as cache:
        assert cache.reset_reason and "format 1" in cache.reset_reason
        assert cache.filled_count == 0
    assert keys_path.exists()


def test_unusable_rows_are_found_chunk_by_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hnbooks.scoring import cache as cache_module

    monkeypatch.setattr(cache_module, "SCAN_CHUNK_ROWS", 7)
    db = tmp_path / "x.db"
    ids = np.arange(1, 40)
    rows = expected_rows(ids)
    rows[4] = np.nan
    rows[20, 3] = np.inf
    rows[30] = 0
    with EmbeddingCache.open(db, HASH, DIM) as cache:
        cache.write(ids, rows)
        unusable = cache.unusable_rows(40, start=1)
        assert np.flatnonzero(unusable).tolist() == [4, 20, 30]
        assert cache.unusable_rows(40, start=0)[0]  # row 0 was never written: zeros


def test_opening_for_another_database_empties_the_cache_and_says_why(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    with EmbeddingCache.open(db, HASH, DIM, database_id="one") as cache:
        cache.write_keyed(np.array([1]), expected_rows(np.array([1])), np.array([9]))
    with EmbeddingCache.open(db, HASH, DIM, database_id="one") as cache:
        assert cache.reset_reason is None and cache.filled_count == 1
    with EmbeddingCache.open(db, HASH, DIM, database_id="two") as cache:
        assert cache.reset_reason and "another database" in cache.reset_reason
        assert cache.filled_count == 0 and cache.database_id == "two"
