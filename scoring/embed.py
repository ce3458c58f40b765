"""Embed the store's texts that the cache lacks, chunk by chunk, so a killed run resumes.

Before embedding, the cache is checked against the store: a cache made for another database is
rebuilt, and rows whose text fingerprint differs from the stored text's, or whose vector is not
finite or all zeros, are embedded again. The check reads ids, text keys and vectors in chunks.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from hnbooks.scoring.cache import KEY_DTYPE, NO_KEY, EmbeddingCache

EmbedProgress = Callable[[int, int], None]
"""Called with (texts embedded so far, texts to embed in all) after each chunk."""


class TextStore(Protocol):
    """What embedding needs from `hnbooks.store.db.Store`."""

    def max_item_id(self) -> int: ...

    def item_count(self) -> int: ...

    def database_id(self) -> str | None: ...

    def iter_item_text_keys(
        self, after_id: int = 0, chunk: int = 65536
    ) -> Iterator[tuple[list[int], list[str]]]: ...

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
    """Texts embedded, the ones embedded again included."""
    already_cached: int
    seconds: float
    texts_per_s: float
    pad_waste: float
    """Share of token positions that were padding, over every batch run (0..1)."""
    rebuilt: str | None = None
    """Why the whole cache was emptied first (it belonged to another database), if it was."""
    mismatched: int = 0
    """Rows embedded again because their vector was of another text."""
    invalid: int = 0
    """Rows embedded again because their vector was not finite or all zeros."""
    unusable_output: int = 0
    """Texts the encoder gave a non-finite or zero vector for: left out of the cache."""


HEX_VALUE = np.full(256, 255, dtype=np.uint8)
for digit, character in enumerate("0123456789abcdef"):
    HEX_VALUE[ord(character)] = HEX_VALUE[ord(character.upper())] = digit


def text_fingerprints(text_keys: Sequence[str]) -> np.ndarray:
    """int64 fingerprints (never `NO_KEY`) of the store's text keys: their first 64 bits.

    Text keys are SHA-1 hex digests, converted here without a Python loop; any other key is hashed.
    """
    count = len(text_keys)
    joined = "".join(key[:16] for key in text_keys)
    digits = np.frombuffer(joined.encode("utf-8"), dtype=np.uint8)
    if digits.size == 16 * count:
        values = HEX_VALUE[digits].reshape(count, 16)
        if count and not (values == 255).any():
            combined = np.zeros(count, dtype=np.uint64)
            for column in range(16):
                combined = (combined << np.uint64(4)) | values[:, column].astype(np.uint64)
            fingerprints = combined.view(KEY_DTYPE)
            fingerprints[fingerprints == NO_KEY] = 1
            return fingerprints
    fallback = np.fromiter(
        (
            int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big", signed=True)
            for key in text_keys
        ),
        dtype=KEY_DTYPE,
        count=count,
    )
    fallback[fallback == NO_KEY] = 1
    return fallback


class KeyedRows(Protocol):
    """What planning needs of a cache of per-item rows keyed by text fingerprints (the embedding
    cache, the word counts of `hnbooks.scoring.terms`)."""

    verified_through: int

    def bind(self, database_id: str | None) -> str | None: ...

    def stored_keys(self, item_ids: np.ndarray) -> np.ndarray: ...

    def unusable_rows(self, stop: int, start: int = 0) -> np.ndarray: ...


@dataclass(frozen=True)
class Plan:
    """What the cache must (re)embed: ids ascending, with the fingerprint each must be written with."""

    ids: np.ndarray
    keys: np.ndarray
    mismatched: int
    invalid: int


@dataclass(frozen=True)
class EmbeddingPass:
    """An embedding pass as it starts, whichever engine runs it: the plan, and what it leaves as is."""

    plan: Plan
    already_cached: int
    checked_through: int
    """The newest stored id when the pass began: every id up to it is checked once the pass ends."""
    rebuilt: str | None
    """Why the cache was emptied for this database first (None: it was not)."""

    def mark_checked(self, cache: KeyedRows) -> None:
        """Record that every id up to `checked_through` was compared (and embedded where needed)."""
        cache.verified_through = max(cache.verified_through, self.checked_through)


def begin_pass(store: TextStore, cache: KeyedRows) -> EmbeddingPass:
    """Bind the cache to this database and plan what the store holds that the cache lacks."""
    rebuilt = cache.bind(store.database_id())
    checked_through = store.max_item_id()
    stored_items = store.item_count()
    plan = plan_embedding(store, cache)
    return EmbeddingPass(plan, max(stored_items - int(plan.ids.size), 0), checked_through, rebuilt)


def plan_embedding(store: TextStore, cache: KeyedRows, chunk: int = 65536) -> Plan:
    """Compare the cache with the store, `chunk` items at a time.

    Ids up to `cache.verified_through` were checked and embedded by this process before (a text the
    encoder gave no usable vector for stays out until the next run); only later ones are read, so a
    watching scorer's check costs what is new.
    """
    ids_parts: list[np.ndarray] = []
    keys_parts: list[np.ndarray] = []
    mismatched = invalid = 0
    for chunk_ids, text_keys in store.iter_item_text_keys(
        after_id=cache.verified_through, chunk=chunk
    ):
        ids = np.asarray(chunk_ids, dtype=np.int64)
        fingerprints = text_fingerprints(text_keys)
        stored = cache.stored_keys(ids)
        filled = stored != NO_KEY
        wrong_text = filled & (stored != fingerprints)
        checked = filled & ~wrong_text
        unusable = np.zeros(ids.size, dtype=bool)
        if checked.any():
            first = int(ids[0])
            rows = cache.unusable_rows(int(ids[-1]) + 1, start=first)
            inside = ids - first < rows.size
            unusable[inside] = rows[ids[inside] - first]
            unusable &= checked
        # Rows filled without a fingerprint (NO_KEY) count as missing: their text is unknown.
        need = ~filled | wrong_text | unusable
        mismatched += int(np.count_nonzero(wrong_text))
        invalid += int(np.count_nonzero(unusable))
        ids_parts.append(ids[need])
        keys_parts.append(fingerprints[need])
    ids = np.concatenate(ids_parts) if ids_parts else np.empty(0, dtype=np.int64)
    keys = np.concatenate(keys_parts) if keys_parts else np.empty(0, dtype=KEY_DTYPE)
    return Plan(ids, keys, mismatched, invalid)


def usable(vectors: np.ndarray) -> np.ndarray:
    """bool per row: finite and not all zeros."""
    finite: np.ndarray = np.isfinite(vectors).all(axis=1)
    nonzero: np.ndarray = (vectors != 0).any(axis=1)
    result: np.ndarray = finite & nonzero
    return result


def embed_missing(
    store: TextStore,
    encoder: TextEncoder,
    cache: EmbeddingCache,
    *,
    chunk: int = 2048,
    progress: EmbedProgress | None = None,
) -> EmbedReport:
    """Embed every stored item without a usable cached vector of its text; written and flushed
    chunk by chunk (see the module's docstring for what is checked).

    Returns without touching the encoder (no model load) when everything is cached already.
    """
    if chunk < 1:
        raise ValueError("chunk must be at least 1")
    started = time.perf_counter()
    embedding = begin_pass(store, cache)
    plan = embedding.plan
    total = int(plan.ids.size)
    if total == 0:
        embedding.mark_checked(cache)
        return EmbedReport(
            0,
            embedding.already_cached,
            time.perf_counter() - started,
            0.0,
            0.0,
            rebuilt=embedding.rebuilt,
        )

    cache.reserve(int(plan.ids[-1]) + 1)
    done = 0
    left_out = 0
    padded_slots = 0.0
    token_slots = 0
    if progress is not None:
        progress(0, total)
    for chunk_ids, chunk_keys, texts in planned_chunks(store, plan, chunk):
        vectors = np.asarray(encoder.embed(texts))
        ids = np.asarray(chunk_ids, dtype=np.int64)
        keys = np.asarray(chunk_keys, dtype=KEY_DTYPE)
        good = usable(vectors)
        left_out += int(np.count_nonzero(~good))
        cache.write_keyed(ids[good], vectors[good], keys[good])
        slots = int(getattr(encoder, "last_token_slots", 0))
        token_slots += slots
        padded_slots += float(getattr(encoder, "last_pad_waste", 0.0)) * slots
        done += len(ids)
        if progress is not None:
            progress(done, total)
    cache.flush()
    embedding.mark_checked(cache)
    seconds = time.perf_counter() - started
    return EmbedReport(
        embedded=done - left_out,
        already_cached=embedding.already_cached,
        seconds=seconds,
        texts_per_s=done / seconds if seconds > 0 else 0.0,
        pad_waste=padded_slots / token_slots if token_slots else 0.0,
        rebuilt=embedding.rebuilt,
        mismatched=plan.mismatched,
        invalid=plan.invalid,
        unusable_output=left_out,
    )


def planned_chunks(
    store: TextStore, plan: Plan, chunk: int
) -> Iterator[tuple[list[int], list[int], list[str]]]:
    """(ids, fingerprints, texts) of the ids the plan names, in id order, `chunk` at a time.
    Reading starts at the first of them: a resumed run skips the texts done before."""
    wanted = plan.ids
    if wanted.size == 0:
        return
    ids: list[int] = []
    keys: list[int] = []
    texts: list[str] = []
    position = 0
    for item_id, text in store.iter_item_texts(after_id=int(wanted[0]) - 1, chunk=chunk):
        while position < wanted.size and wanted[position] < item_id:
            position += 1
        if position == wanted.size:
            break
        if wanted[position] == item_id:
            ids.append(item_id)
            keys.append(int(plan.keys[position]))
            texts.append(text)
            position += 1
            if len(ids) >= chunk:
                yield ids, keys, texts
                ids, keys, texts = [], [], []
    if ids:
        yield ids, keys, texts
