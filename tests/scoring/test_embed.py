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
