"""Hashed word counts of every text, kept beside the embedding cache: the head's word features.

Words find what embeddings blur: a rare name, a template's fixed phrase. In the discovery suite,
hashed TF-IDF read beside the embeddings found 5-25% more positives than embeddings alone
(docs/discovery.md). Words are hashed into `HASHED_COLUMNS` columns, so there is no vocabulary to
hold at any pool size, and the IDF comes from document counts kept with the counts: memory does not
grow with the pool, and a round reads the counts a chunk at a time, as it reads the vectors.

For a database `X.db` the cache is four files:
- `X.db.terms.entries`: uint32 per distinct word of each text, `column << COUNT_BITS | count`;
- `X.db.terms.index`: int64 triples per item id (first entry, entries, fingerprint of the text; a
  fingerprint of 0 means none), at byte 24 x id; ids past its end have none;
- `X.db.terms.commit.npy`: int64 (entries written, texts counted, then the document count of every
  column), replaced atomically: what it does not count is not there;
- `X.db.terms.json`: format, columns and the database the ids belong to.

A write appends entries and index rows past what the commit file counts, flushes them, then replaces
the commit file. An index row pointing past the committed entries is not there. A killed write
leaves a marker file, and the next open clears the rows it wrote, so their ids are counted again
and no later write can make them point at another text's words.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hnbooks.scoring.cache import write_json_durably
from hnbooks.scoring.embed import TextStore, begin_pass, planned_chunks
from hnbooks.store.connection import fsync_folder

FORMAT_VERSION = 1
HASHED_COLUMNS = 2**18
"""Columns words are hashed into: at 2^18, collisions cost the discovery suite nothing measurable
against a 20k-word vocabulary, and the document counts take 2 MB."""
COUNT_BITS = 32 - 18
MAX_COUNT = (1 << COUNT_BITS) - 1
"""Counts above this are stored as it: under sublinear TF a word said 16k times is said often."""
INDEX_FIELDS = 3
INDEX_ROW_BYTES = INDEX_FIELDS * 8
SCAN_ROWS = 1 << 16
COMMIT_HEADER = 2
ENTRY_DTYPE = np.dtype("<u4")
ENTRY_BYTES = ENTRY_DTYPE.itemsize
INDEX_DTYPE = np.dtype("<i8")


def hashed_counts(texts: Sequence[str]) -> Any:
    """scipy CSR (len(texts), HASHED_COLUMNS) float32 of word counts, English stop words left out,
    indices sorted within each row: what the scorer stores and the simulation reads alike."""
    from sklearn.feature_extraction.text import HashingVectorizer

    counts = HashingVectorizer(
        n_features=HASHED_COLUMNS,
        alternate_sign=False,
        norm=None,
        stop_words="english",
        dtype=np.float32,
    ).transform(list(texts))
    counts.sort_indices()
    return counts


def inverse_document_frequency(
    document_counts: NDArray[np.integer], documents: int
) -> NDArray[np.float32]:
    """Smoothed IDF per column, ln((1 + n) / (1 + df)) + 1: as scikit-learn's TfidfTransformer."""
    counts = np.asarray(document_counts, dtype=np.float64)
    return np.asarray(np.log((1.0 + documents) / (1.0 + counts)) + 1.0, dtype=np.float32)


def tfidf_values(
    row_lengths: NDArray[np.integer],
    columns: NDArray[np.integer],
    counts: NDArray[np.floating | np.integer],
    idf: NDArray[np.float32],
) -> NDArray[np.float32]:
    """Sublinear TF-IDF of each stored count, rows (of `row_lengths` entries each) L2-normalised."""
    values = (1.0 + np.log(np.minimum(np.asarray(counts, dtype=np.float32), MAX_COUNT))) * idf[
        columns
    ]
    rows = np.repeat(np.arange(row_lengths.size), row_lengths)
    norms = np.sqrt(np.bincount(rows, weights=values * values, minlength=row_lengths.size))
    values /= np.maximum(norms, 1e-12)[rows].astype(np.float32)
    return np.asarray(values, dtype=np.float32)


def tfidf_matrix(counts: Any, idf: NDArray[np.float32]) -> Any:
    """The CSR counts of `hashed_counts` as sublinear, L2-normalised TF-IDF (a new matrix)."""
    weighted = counts.copy()
    weighted.data = tfidf_values(np.diff(counts.indptr), counts.indices, counts.data, idf)
    return weighted


@dataclass(frozen=True)
class StoredRows:
    """Some items' word counts as read from the cache, in CSR layout: row i is the i-th item asked
    for, with `row_lengths[i]` entries (none for items without counts)."""

    row_lengths: NDArray[np.int64]
    columns: NDArray[np.int32]
    counts: NDArray[np.float32]

    def tfidf(self, idf: NDArray[np.float32]) -> NDArray[np.float32]:
        return tfidf_values(self.row_lengths, self.columns, self.counts, idf)


class TermCache:
    """The word counts of one database's texts; see the module docstring for the files."""

    def __init__(self, db_path: str | os.PathLike[str]) -> None:
        """Use `TermCache.open`; this only records where the files are."""
        base = str(db_path) + ".terms"
        self.entries_path = Path(base + ".entries")
        self.index_path = Path(base + ".index")
        self.commit_path = Path(base + ".commit.npy")
        self.metadata_path = Path(base + ".json")
        self.writing_path = Path(base + ".writing")
        self.database_id: str | None = None
        self.reset_reason: str | None = None
        """Why an existing cache was emptied on open or bind (None when it was reused or new)."""
        self.entries_end = 0
        self.documents = 0
        self.document_counts = np.zeros(HASHED_COLUMNS, dtype=np.int64)
        self.verified_through = 0
        """Ids up to this one were compared with their texts by this process: later checks
        start after it (as `EmbeddingCache.verified_through`)."""
        self._readers: dict[Path, int] = {}
        """Read-only descriptors kept open: a round reads both files once per chunk."""

    # -- opening ----------------------------------------------------------------------------------

    @classmethod
    def open(cls, db_path: str | os.PathLike[str], database_id: str | None = None) -> TermCache:
        cache = cls(db_path)
        if cache.metadata_path.exists():
            try:
                cache._open_existing()
            except (OSError, ValueError, KeyError) as damage:
                cache.reset_reason = f"the word counts were unreadable ({damage})"
                cache._create()
        else:
            cache._create()
        cache.bind(database_id)
        return cache

    def _open_existing(self) -> None:
        metadata = json.loads(self.metadata_path.read_text(encoding="utf-8"))
        if metadata["format"] != FORMAT_VERSION or metadata["columns"] != HASHED_COLUMNS:
            raise ValueError(f"format {metadata['format']}, {metadata['columns']} columns")
        self.database_id = metadata.get("database_id")
        committed = np.load(self.commit_path)
        if committed.shape != (COMMIT_HEADER + HASHED_COLUMNS,):
            raise ValueError(f"{self.commit_path.name} holds {committed.shape}")
        self.entries_end, self.documents = int(committed[0]), int(committed[1])
        self.document_counts = np.asarray(committed[COMMIT_HEADER:], dtype=np.int64)
        if self.entries_path.stat().st_size < self.entries_end * ENTRY_BYTES:
            raise ValueError(f"{self.entries_path.name} is shorter than its commit says")
        if self.writing_path.exists():
            self._clear_uncommitted_rows()

    def _reader(self, path: Path) -> int:
        if path not in self._readers:
            self._readers[path] = os.open(path, os.O_RDONLY)
        return self._readers[path]

    def close(self) -> None:
        for descriptor in self._readers.values():
            os.close(descriptor)
        self._readers.clear()

    def __del__(self) -> None:
        self.close()

    def _create(self) -> None:
        self.close()
        for path in (self.commit_path, self.index_path, self.entries_path, self.writing_path):
            path.unlink(missing_ok=True)
        self.entries_path.parent.mkdir(parents=True, exist_ok=True)
        self.entries_path.touch()
        self.index_path.touch()
        self.entries_end, self.documents = 0, 0
        self.document_counts = np.zeros(HASHED_COLUMNS, dtype=np.int64)
        self.verified_through = 0
        self._commit()
        self._write_metadata()

    def _write_metadata(self) -> None:
        metadata = {
            "format": FORMAT_VERSION,
            "columns": HASHED_COLUMNS,
            "database_id": self.database_id,
        }
        write_json_durably(self.metadata_path, metadata)

    def bind(self, database_id: str | None) -> str | None:
        """Tie the counts to the database `database_id`; those of another database are emptied
        (its ids name other texts here). Returns why they were, if they were."""
        if database_id is None or database_id == self.database_id:
            return None
        if self.database_id is None:
            self.database_id = database_id
            self._write_metadata()
            return None
        reason = "the word counts were made for another database"
        self.database_id = database_id
        self._create()
        self.reset_reason = reason
        return reason

    def _clear_uncommitted_rows(self) -> None:
        """After a killed write: forget index rows past the committed entries, so their ids are
        counted again, and drop the entries nothing committed."""
        with self.index_path.open("r+b", buffering=0) as handle:
            rows = os.fstat(handle.fileno()).st_size // INDEX_ROW_BYTES
            for first in range(0, rows, SCAN_ROWS):
                block = self._read_index(handle.fileno(), first, min(first + SCAN_ROWS, rows))
                beyond = block[:, 0] + block[:, 1] > self.entries_end
                beyond |= (block[:, 2] != 0) & (block[:, 0] == self.entries_end)
                if beyond.any():
                    block[beyond] = 0
                    os.pwrite(handle.fileno(), block.tobytes(), first * INDEX_ROW_BYTES)
            os.fsync(handle.fileno())
        os.truncate(self.entries_path, self.entries_end * ENTRY_BYTES)
        self.writing_path.unlink()

    # -- reading ----------------------------------------------------------------------------------

    def idf(self) -> NDArray[np.float32]:
        return inverse_document_frequency(self.document_counts, self.documents)

    @staticmethod
    def _read_index(descriptor: int, start: int, stop: int) -> NDArray[np.int64]:
        """Index rows [start, stop) as int64 (stop - start, 3); rows past the file's end are zeros."""
        data = os.pread(descriptor, (stop - start) * INDEX_ROW_BYTES, start * INDEX_ROW_BYTES)
        block = np.zeros((stop - start, INDEX_FIELDS), dtype=np.int64)
        read = np.frombuffer(data, dtype=INDEX_DTYPE)
        block.ravel()[: read.size] = read
        return block

    def _committed(self, block: NDArray[np.int64]) -> NDArray[np.bool_]:
        valid: NDArray[np.bool_] = (block[:, 2] != 0) & (
            block[:, 0] + block[:, 1] <= self.entries_end
        )
        return valid

    def stored_keys(self, item_ids: NDArray[np.integer]) -> NDArray[np.int64]:
        """The fingerprint of the text each id was counted from (0 where none is)."""
        block = self._index_rows(np.asarray(item_ids, dtype=np.int64))
        return np.where(self._committed(block), block[:, 2], 0)

    def _index_rows(self, ids: NDArray[np.int64]) -> NDArray[np.int64]:
        """Index rows of any ids, in their order: one read for a compact range, else one per id."""
        block = np.zeros((ids.size, INDEX_FIELDS), dtype=np.int64)
        if ids.size == 0:
            return block
        low, high = int(ids.min()), int(ids.max())
        descriptor = self._reader(self.index_path)
        if high - low + 1 <= 4 * ids.size + 1024:
            return self._read_index(descriptor, low, high + 1)[ids - low]
        for n, item_id in enumerate(ids.tolist()):
            block[n] = self._read_index(descriptor, item_id, item_id + 1)[0]
        return block

    def rows(self, item_ids: NDArray[np.integer]) -> StoredRows:
        """The stored counts of `item_ids`, in their order (no entries for ids without counts)."""
        return self._rows_of(self._index_rows(np.asarray(item_ids, dtype=np.int64).ravel()))

    def _rows_of(self, block: NDArray[np.int64]) -> StoredRows:
        """The stored counts of the items whose index rows are `block`."""
        valid = self._committed(block)
        starts, lengths = block[:, 0], np.where(valid, block[:, 1], 0)
        total = int(lengths.sum())
        entries = np.empty(total, dtype=ENTRY_DTYPE)
        if total:
            low = int(starts[lengths > 0].min())
            high = int((starts + lengths)[lengths > 0].max())
            descriptor = self._reader(self.entries_path)
            if high - low <= 2 * total + 4096:
                # Texts counted together lie together: one read, then a gather.
                span = np.frombuffer(
                    os.pread(descriptor, (high - low) * ENTRY_BYTES, low * ENTRY_BYTES),
                    dtype=ENTRY_DTYPE,
                )
                positions = np.repeat(starts - low - np.cumsum(lengths) + lengths, lengths)
                entries[:] = span[positions + np.arange(total)]
            else:
                offset = 0
                for start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
                    if length:
                        entries[offset : offset + length] = np.frombuffer(
                            os.pread(descriptor, length * ENTRY_BYTES, start * ENTRY_BYTES),
                            dtype=ENTRY_DTYPE,
                        )
                        offset += length
        return StoredRows(
            lengths.astype(np.int64),
            (entries >> COUNT_BITS).astype(np.int32),
            (entries & MAX_COUNT).astype(np.float32),
        )

    def unusable_rows(self, stop: int, start: int = 0) -> NDArray[np.bool_]:
        """None: unlike a vector, stored counts cannot be damaged into meaninglessness (planning
        asks both caches; see `hnbooks.scoring.embed.KeyedRows`)."""
        return np.zeros(max(stop - start, 0), dtype=bool)

    # -- writing ----------------------------------------------------------------------------------

    def write_counts(
        self, item_ids: NDArray[np.integer], counts: Any, keys: NDArray[np.integer]
    ) -> None:
        """Store the CSR word counts (`hashed_counts`) of texts with the fingerprints they were
        counted from, and count them in the document frequencies; see the module docstring for
        why a kill at any point leaves the cache whole.

        A text counted again has its old words taken out of the document counts first. A kill
        while it is rewritten leaves its old words counted once more than they should be: a
        share of one text in the IDF, which no ranking will notice.
        """
        ids = np.asarray(item_ids, dtype=np.int64).ravel()
        fingerprints = np.asarray(keys, dtype=np.int64).ravel()
        if fingerprints.shape != ids.shape or counts.shape[0] != ids.size:
            raise ValueError(f"{ids.size} ids, {fingerprints.size} keys, {counts.shape[0]} rows")
        if ids.size == 0:
            return
        if int(ids.min()) < 0 or np.any(fingerprints == 0):
            raise ValueError("ids must not be negative and fingerprints not 0")
        if np.unique(ids).size != ids.size:
            raise ValueError("each id may be written once per call")
        counts.sort_indices()
        lengths = np.diff(counts.indptr).astype(np.int64)
        entries = (counts.indices.astype(np.uint32) << COUNT_BITS) | np.minimum(
            counts.data, MAX_COUNT
        ).astype(np.uint32)

        old_block = self._index_rows(ids)
        old = self._rows_of(old_block)
        old_present = self._committed(old_block)
        document_counts = self.document_counts.copy()
        np.subtract.at(document_counts, old.columns, 1)
        document_counts += np.bincount(counts.indices, minlength=HASHED_COLUMNS)

        starts = self.entries_end + np.concatenate(([0], np.cumsum(lengths)[:-1]))
        index_rows = np.stack([starts, lengths, fingerprints], axis=1).astype(INDEX_DTYPE)
        self.writing_path.touch()
        with self.entries_path.open("r+b", buffering=0) as handle:
            os.pwrite(
                handle.fileno(),
                entries.astype(ENTRY_DTYPE).tobytes(),
                self.entries_end * ENTRY_BYTES,
            )
            os.fsync(handle.fileno())
        with self.index_path.open("r+b", buffering=0) as handle:
            order = np.argsort(ids)
            for run in contiguous_runs(ids[order]):
                rows = order[run]
                os.pwrite(
                    handle.fileno(), index_rows[rows].tobytes(), int(ids[rows[0]]) * INDEX_ROW_BYTES
                )
            os.fsync(handle.fileno())
        self.entries_end += int(lengths.sum())
        self.documents += int(ids.size - np.count_nonzero(old_present))
        self.document_counts = document_counts
        self._commit()
        self.writing_path.unlink()

    def _commit(self) -> None:
        committed = np.concatenate(
            ([self.entries_end, self.documents], self.document_counts)
        ).astype(np.int64)
        temporary = self.commit_path.with_name("partial." + self.commit_path.name)
        with temporary.open("wb") as handle:
            np.save(handle, committed)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.commit_path)
        fsync_folder(self.commit_path.parent)


@dataclass(frozen=True)
class CountReport:
    counted: int
    already_counted: int
    seconds: float
    rebuilt: str | None = None


CountProgress = Callable[[int, int], None]
"""Called with (texts counted so far, texts to count in all) after each chunk."""


def count_missing_terms(
    store: TextStore,
    terms: TermCache,
    *,
    chunk: int = 20_000,
    progress: CountProgress | None = None,
) -> CountReport:
    """Count the words of every stored text the cache lacks (new, or changed since), committed
    chunk by chunk, so a killed run resumes where it stopped."""
    started = time.perf_counter()
    counting = begin_pass(store, terms)
    plan = counting.plan
    total = int(plan.ids.size)
    done = 0
    if progress is not None and total:
        progress(0, total)
    for ids, keys, texts in planned_chunks(store, plan, chunk):
        terms.write_counts(np.asarray(ids), hashed_counts(texts), np.asarray(keys))
        done += len(ids)
        if progress is not None:
            progress(done, total)
    counting.mark_checked(terms)
    return CountReport(
        done, counting.already_cached, time.perf_counter() - started, counting.rebuilt
    )


def contiguous_runs(sorted_ids: NDArray[np.int64]) -> Iterator[slice]:
    """Slices of `sorted_ids` whose ids follow one another, so each run is one write."""
    breaks = np.flatnonzero(np.diff(sorted_ids) != 1) + 1
    bounds = [0, *breaks.tolist(), sorted_ids.size]
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        yield slice(start, stop)
