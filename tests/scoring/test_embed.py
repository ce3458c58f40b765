"""Embedding the store's missing texts: only what the cache lacks, chunk by chunk, resumable."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from hnbooks.scoring.cache import EmbeddingCache
from hnbooks.scoring.embed import embed_missing
from hnbooks.scoring.encoder import Encoder
from tests.helpers import store_with_texts

DIM = 16


class HashingEncoder:
    """Deterministic fake: a unit vector seeded by the text; records every call."""

    def __init__(self, fail_after_calls: int | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail_after_calls = fail_after_calls
        self.last_pad_waste = 0.25
        self.last_token_slots = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.fail_after_calls is not None and len(self.calls) >= self.fail_after_calls:
            raise KeyboardInterrupt
        self.calls.append(list(texts))
        self.last_token_slots = 100 * len(texts)
        return (
            np.stack([vector_of(text) for text in texts])
            if texts
            else np.empty((0, DIM), np.float32)
        )


def vector_of(text: str) -> np.ndarray:
    vector = (
        np.random.default_rng(zlib.crc32(text.encode())).standard_normal(DIM).astype(np.float32)
    )
    return vector / np.linalg.norm(vector)


def texts(count: int) -> list[str]:
    return [f"comment number {n} about book {n % 7}" for n in range(count)]


def test_embeds_every_item_once(tmp_path: Path) -> None:
    store, item_ids = store_with_texts(tmp_path / "x.db", texts(25))
    encoder = HashingEncoder()
    progress: list[tuple[int, int]] = []
    with EmbeddingCache.open(store.path, "h", DIM) as cache:
        report = embed_missing(
            store,
            encoder,
            cache,
            chunk=10,
            progress=lambda done, total: progress.append((done, total)),
        )
        assert (report.embedded, report.already_cached) == (25, 0)
        assert [len(call) for call in encoder.calls] == [10, 10, 5]
        assert progress == [(0, 25), (10, 25), (20, 25), (25, 25)]
        assert report.pad_waste == pytest.approx(0.25)
        assert report.texts_per_s > 0
        expected = np.stack([vector_of(text) for text in texts(25)])
        np.testing.assert_allclose(cache.vectors(np.array(item_ids)), expected, atol=2e-3)
    store.close()


def test_a_second_run_embeds_nothing_and_never_calls_the_encoder(tmp_path: Path) -> None:
    store, _ = store_with_texts(tmp_path / "x.db", texts(12))
    with EmbeddingCache.open(store.path, "h", DIM) as cache:
        embed_missing(store, HashingEncoder(), cache)
    encoder = HashingEncoder()
    with EmbeddingCache.open(store.path, "h", DIM) as cache:
        report = embed_missing(store, encoder, cache)
    assert (report.embedded, report.already_cached, encoder.calls) == (0, 12, [])
    store.close()


def test_a_killed_run_keeps_its_finished_chunks_and_the_rerun_does_the_rest(tmp_path: Path) -> None:
    store, item_ids = store_with_texts(tmp_path / "x.db", texts(30))
    with EmbeddingCache.open(store.path, "h", DIM) as cache, pytest.raises(KeyboardInterrupt):
        embed_missing(store, HashingEncoder(fail_after_calls=2), cache, chunk=8)
    encoder = HashingEncoder()
    with EmbeddingCache.open(store.path, "h", DIM) as cache:
        assert cache.filled_count == 16
        report = embed_missing(store, encoder, cache, chunk=8)
        assert (report.embedded, report.already_cached) == (14, 16)
        assert sum(encoder.calls, []) == texts(30)[16:]
        np.testing.assert_array_equal(cache.filled_ids(), item_ids)
    store.close()


def test_new_items_alone_are_embedded(tmp_path: Path) -> None:
    from hnbooks.importing import import_file
    from tests.helpers import write_jsonl

    store, _ = store_with_texts(tmp_path / "x.db", texts(5))
    with EmbeddingCache.open(store.path, "h", DIM) as cache:
        embed_missing(store, HashingEncoder(), cache)
        import_file(
            store,
            write_jsonl(tmp_path / "more.jsonl", [{"text": "a brand new comment"}]),
            fmt="jsonl",
        )
        encoder = HashingEncoder()
        report = embed_missing(store, encoder, cache)
    assert encoder.calls == [["a brand new comment"]]
    assert (report.embedded, report.already_cached) == (1, 5)
    store.close()


def test_with_the_onnx_encoder(tmp_path: Path, tiny_model_dir: Path) -> None:
    store, item_ids = store_with_texts(tmp_path / "x.db", texts(40))
    encoder = Encoder(tiny_model_dir, variant="fp32")
    with EmbeddingCache.open(store.path, encoder.model_hash, encoder.dimension) as cache:
        report = embed_missing(store, encoder, cache, chunk=16)
        assert report.embedded == 40
        assert 0 <= report.pad_waste < 0.2
        direct = encoder.embed(texts(40))
        np.testing.assert_allclose(cache.vectors(np.array(item_ids)), direct, atol=2e-3)
    fresh = Encoder(tiny_model_dir, variant="fp32")
    with EmbeddingCache.open(store.path, encoder.model_hash, encoder.dimension) as cache:
        assert embed_missing(store, fresh, cache).embedded == 0
    assert not fresh.loaded
    store.close()


def remove_database(db_path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)


def assert_vectors_match_texts(store: object, cache: EmbeddingCache) -> None:
    pairs = list(store.iter_item_texts())  # type: ignore[attr-defined]
    ids = np.array([item_id for item_id, _ in pairs])
    expected = np.stack([vector_of(text) for _, text in pairs])
    np.testing.assert_allclose(cache.vectors(ids), expected, atol=2e-3)


def test_a_database_recreated_beside_its_old_cache_is_embedded_afresh(tmp_path: Path) -> None:
    db_path = tmp_path / "x.db"
    first, _ = store_with_texts(db_path, texts(20))
    with EmbeddingCache.open(db_path, "h", DIM) as cache:
        embed_missing(first, HashingEncoder(), cache)
    first.close()
    remove_database(db_path)
    # The same texts in another order: every id now names another text.
    second, _ = store_with_texts(db_path, texts(20)[::-1])
    encoder = HashingEncoder()
    with EmbeddingCache.open(db_path, "h", DIM) as cache:
        report = embed_missing(second, encoder, cache)
        assert (report.embedded, report.already_cached) == (20, 0)
        assert report.rebuilt is not None and "another database" in report.rebuilt
        assert_vectors_match_texts(second, cache)
    with EmbeddingCache.open(db_path, "h", DIM) as cache:
        again = embed_missing(second, HashingEncoder(), cache)
        assert (again.embedded, again.rebuilt) == (0, None)
    second.close()


def test_rows_whose_text_changed_are_embedded_again(tmp_path: Path) -> None:
    import shutil

    from hnbooks.importing import import_file
    from hnbooks.scoring.cache import cache_paths
    from hnbooks.store.db import Store
    from tests.helpers import write_jsonl

    # Two databases with one identity (one copied from the other) that then diverge.
    original, _ = store_with_texts(tmp_path / "a.db", texts(10))
    original.close()
    shutil.copy(tmp_path / "a.db", tmp_path / "b.db")
    stores = {}
    for name, extra in (("a", ["only in a", "also only in a"]), ("b", ["b one", "b two"])):
        stores[name] = Store(tmp_path / f"{name}.db")
        import_file(
            stores[name],
            write_jsonl(tmp_path / f"{name}.jsonl", [{"text": t} for t in extra]),
            fmt="jsonl",
        )
    assert stores["a"].database_id() == stores["b"].database_id()
    with EmbeddingCache.open(tmp_path / "a.db", "h", DIM) as cache:
        embed_missing(stores["a"], HashingEncoder(), cache)
    for source, target in zip(
        cache_paths(tmp_path / "a.db"), cache_paths(tmp_path / "b.db"), strict=True
    ):
        shutil.copy(source, target)
    encoder = HashingEncoder()
    with EmbeddingCache.open(tmp_path / "b.db", "h", DIM) as cache:
        report = embed_missing(stores["b"], encoder, cache)
        assert sum(encoder.calls, []) == ["b one", "b two"]
        assert (report.embedded, report.mismatched, report.already_cached) == (2, 2, 10)
        assert_vectors_match_texts(stores["b"], cache)
    for store in stores.values():
        store.close()


@pytest.mark.parametrize("poison", [np.nan, np.inf, 0.0])
def test_a_poisoned_cache_is_embedded_again(tmp_path: Path, poison: float) -> None:
    from hnbooks.scoring.cache import cache_paths

    store, item_ids = store_with_texts(tmp_path / "x.db", texts(30))
    with EmbeddingCache.open(store.path, "h", DIM) as cache:
        embed_missing(store, HashingEncoder(), cache)
    vectors_path = cache_paths(store.path)[0]
    stored = np.load(vectors_path, mmap_mode="r+")
    stored[item_ids[3]] = poison
    stored[item_ids[17], 5] = poison if poison != 0.0 else stored[item_ids[17], 5]
    stored.flush()
    del stored
    poisoned = 2 if poison != 0.0 else 1
    encoder = HashingEncoder()
    with EmbeddingCache.open(store.path, "h", DIM, model_name="m") as cache:
        report = embed_missing(store, encoder, cache, chunk=7)
        assert (report.embedded, report.invalid) == (poisoned, poisoned)
        assert_vectors_match_texts(store, cache)
    store.close()


def test_a_cache_of_zeros_or_nan_is_embedded_again_whole(tmp_path: Path) -> None:
    from hnbooks.scoring.cache import cache_paths

    store, _ = store_with_texts(tmp_path / "x.db", texts(25))
    for poison in (0.0, np.nan):
        with EmbeddingCache.open(store.path, "h", DIM) as cache:
            embed_missing(store, HashingEncoder(), cache)
        stored = np.load(cache_paths(store.path)[0], mmap_mode="r+")
        stored[:] = poison
        stored.flush()
        del stored
        with EmbeddingCache.open(store.path, "h", DIM) as cache:
            report = embed_missing(store, HashingEncoder(), cache)
            assert (report.embedded, report.invalid) == (25, 25)
            assert_vectors_match_texts(store, cache)
    store.close()


def test_the_scorer_says_what_it_embedded_again(tmp_path: Path) -> None:
    from hnbooks.console import err_console
    from hnbooks.scoring.prepare import LoadedEncoder, embed_new_texts

    db_path = tmp_path / "x.db"
    first, _ = store_with_texts(db_path, texts(8))
    with EmbeddingCache.open(db_path, "h", DIM) as cache:
        embed_missing(first, HashingEncoder(), cache)
    first.close()
    remove_database(db_path)
    second, _ = store_with_texts(db_path, texts(8)[::-1])
    with EmbeddingCache.open(db_path, "h", DIM) as cache:
        loaded = LoadedEncoder(HashingEncoder(), cache, "m", "CPU")  # type: ignore[arg-type]
        with err_console.capture() as captured:
            report = embed_new_texts(second, loaded, bar=False)
    said = " ".join(captured.get().split())
    assert "embedding cache rebuilt" in said and "another database" in said
    assert "embedded 8 new texts" in said
    assert report.embedded == 8
    second.close()
