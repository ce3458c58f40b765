"""Embed the store's texts that the cache lacks, chunk by chunk, so a killed run resumes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from hnbooks.scoring.cache import EmbeddingCache

EmbedProgress = Callable[[int, int], None]
"""Called with (texts embedded so far, texts to embed in all) after each chunk."""


class TextStore(Protocol):
    """What embedding needs from `hnbooks.store.db.Store`."""

    def item_ids(self) -> list[int]: ...

    def max_item_id(self) -> int: ...

    def iter_item_texts(
        self, after_id: int = 0, chunk: int = 2000
    ) -> Iterator[tuple[int, str]]: ...


class TextEncoder(Protocol):
    """What embedding needs from `hnbooks.scoring.encoder.Encoder` (pad statistics are optional)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class EmbedReport:
    """What one `embed_missing` call did."""

    embedded: int
    already_cached: int
    seconds: float
    texts_per_s: float
    pad_waste: float
    """Share of token positions that were padding, over every batch run (0..1)."""


def stored_item_ids(store: TextStore) -> np.ndarray:
    """Every item id in the store, ascending (int64), read without the texts."""
    ids = store.item_ids()
    return np.fromiter(ids, dtype=np.int64, count=len(ids))


def embed_missing(
    store: TextStore,
    encoder: TextEncoder,
    cache: EmbeddingCache,
    *,
    chunk: int = 2048,
    progress: EmbedProgress | None = None,
) -> EmbedReport:
    """Embed every stored item without a cached vector; written and flushed chunk by chunk.

    Returns without touching the encoder (no model load) when everything is cached already.
    """
    if chunk < 1:
        raise ValueError("chunk must be at least 1")
    started = time.perf_counter()
    item_ids = stored_item_ids(store)
    missing_ids = cache.missing_ids(item_ids)
    already_cached = int(item_ids.size - missing_ids.size)
    total = int(missing_ids.size)
    if total == 0:
        return EmbedReport(0, already_cached, time.perf_counter() - started, 0.0, 0.0)

    cache.reserve(int(item_ids[-1]) + 1)
    is_missing = np.zeros(int(item_ids[-1]) + 1, dtype=bool)
    is_missing[missing_ids] = True
    done = 0
    padded_slots = 0.0
    token_slots = 0
    pending_ids: list[int] = []
    pending_texts: list[str] = []

    def embed_pending() -> None:
        nonlocal done, padded_slots, token_slots
        vectors = encoder.embed(pending_texts)
        cache.write(np.asarray(pending_ids, dtype=np.int64), vectors)
        slots = int(getattr(encoder, "last_token_slots", 0))
        token_slots += slots
        padded_slots += float(getattr(encoder, "last_pad_waste", 0.0)) * slots
        done += len(pending_ids)
        pending_ids.clear()
        pending_texts.clear()
        if progress is not None:
            progress(done, total)

    if progress is not None:
        progress(0, total)
    # Reading starts at the first missing id: a resumed run skips the texts embedded before.
    for item_id, text in store.iter_item_texts(after_id=int(missing_ids.min()) - 1, chunk=chunk):
        if item_id < is_missing.size and is_missing[item_id]:
            pending_ids.append(item_id)
            pending_texts.append(text)
            if len(pending_ids) >= chunk:
                embed_pending()
    if pending_ids:
        embed_pending()
    cache.flush()
    seconds = time.perf_counter() - started
    return EmbedReport(
        embedded=done,
        already_cached=already_cached,
        seconds=seconds,
        texts_per_s=done / seconds if seconds > 0 else 0.0,
        pad_waste=padded_slots / token_slots if token_slots else 0.0,
    )
