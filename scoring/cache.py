"""Float16 embeddings cached beside the database, memory-mapped, indexed by item id, crash-safe.

For a database `X.db` the cache is four files:
- `X.db.vectors.npy`: float16 (capacity, dim), row i holds item i's vector;
- `X.db.vectors.keys.npy`: int64 (capacity,), the fingerprint of the text row i was embedded from;
- `X.db.vectors.filled.npy`: uint8 (capacity,), 1 where row i holds a written vector;
- `X.db.vectors.json`: format version, model hash and name, dim, capacity, and the identity of
  the database the cache belongs to.

Vectors are flushed to disk before the mask marks them, so a process killed at any moment never
leaves a mask that claims an unwritten row. A damaged or inconsistent cache is rebuilt (empty) on
open with the reason in `reset_reason`, and so is a cache built by another model or bound to another
database: ids are only meaningful in the database that gave them.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.format import open_memmap, read_array_header_1_0, read_array_header_2_0, read_magic

from hnbooks.store.connection import fsync_folder

FORMAT_VERSION = 2
VECTOR_DTYPE = np.float16
INITIAL_CAPACITY = 1024
# Rows copied at a time when the files grow: bounded memory whatever the cache size.
COPY_CHUNK_ROWS = 65536
# Rows read at a time when checking every vector: a few MB of buffers at any dimension.
SCAN_CHUNK_ROWS = 8192
KEY_DTYPE = np.int64
NO_KEY = 0
"""The fingerprint of a row written without one (`write`): it matches no text."""


class CacheDamaged(Exception):
    """A cache file is missing, truncated or disagrees with the others."""


def cache_paths(db_path: str | os.PathLike[str]) -> tuple[Path, Path, Path, Path]:
    """(vectors, filled mask, metadata, text keys) paths of the cache beside `db_path`."""
    base = str(db_path) + ".vectors"
    return (
        Path(base + ".npy"),
        Path(base + ".filled.npy"),
        Path(base + ".json"),
        Path(base + ".keys.npy"),
    )


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype[Any], int]:
    """(shape, dtype, data offset) of an .npy file, after checking the file holds all its data."""
    with path.open("rb") as handle:
        version = read_magic(handle)
        if version == (1, 0):
            shape, fortran_order, dtype = read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, fortran_order, dtype = read_array_header_2_0(handle)
        else:
            raise CacheDamaged(f"{path.name}: unsupported .npy version {version}")
        offset = handle.tell()
    if fortran_order:
        raise CacheDamaged(f"{path.name}: unexpected Fortran order")
    expected_bytes = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual_bytes = path.stat().st_size
    if actual_bytes != expected_bytes:
        raise CacheDamaged(
            f"{path.name}: {actual_bytes} bytes on disk, its header says {expected_bytes}"
        )
    return shape, dtype, offset


def reserve_disk_space(path: Path) -> None:
    """Allocate the whole file on disk now.

    numpy creates .npy files sparse; writing through a memory map into a page the disk has no room
    for kills the process with SIGBUS. With the space reserved, a full disk is an OSError instead.
    """
    reserve = getattr(os, "posix_fallocate", None)
    if reserve is None:
        return
    with path.open("r+b") as handle:
        try:
            reserve(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise


def new_memmap(path: Path, dtype: Any, shape: tuple[int, ...]) -> np.memmap[Any, Any]:
    """A new .npy file mapped for writing, its disk space reserved (see `reserve_disk_space`)."""
    created = open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    try:
        reserve_disk_space(path)
    except OSError:
        del created
        path.unlink(missing_ok=True)
        raise
    return created


def write_json_durably(path: Path, data: Any) -> None:
    """Replace `path` with `data` as JSON, on disk before the rename: a kill leaves the old file
    or the new one, whole."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class EmbeddingCache:
    """Item vectors of one model, float16 on disk, read through memory maps."""

    def __init__(
        self, db_path: str | os.PathLike[str], model_hash: str, dim: int, model_name: str = ""
    ) -> None:
        """Use `EmbeddingCache.open`; this only records where the files are."""
        self.db_path = Path(db_path)
        self.vectors_path, self.filled_path, self.metadata_path, self.keys_path = cache_paths(
            db_path
        )
        self.database_id: str | None = None
        """The database the rows belong to (None until `bind` records it)."""
        self.model_hash = model_hash
        self.model_name = model_name
        self.dim = dim
        self.reset_reason: str | None = None
        """Why an existing cache was discarded on open (None when it was reused or new)."""
        self._vectors: np.memmap[Any, np.dtype[np.float16]] | None = None
        self._filled: np.memmap[Any, np.dtype[np.uint8]] | None = None
        self._keys: np.memmap[Any, np.dtype[np.int64]] | None = None
        self.verified_through = 0
        """Ids up to this one were checked (text fingerprint, finite, non-zero) by this process,
        and rows written since through `write_keyed` need no check: later checks start after it."""

    # -- opening ----------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        db_path: str | os.PathLike[str],
        model_hash: str,
        dim: int,
        *,
        model_name: str = "",
        database_id: str | None = None,
    ) -> EmbeddingCache:
        """Open (or create) the cache beside `db_path` for the model `model_hash` of `dim` dimensions
        (and, given `database_id`, bound to that database: see `bind`)."""
        if dim < 1:
            raise ValueError("dim must be positive")
        cache = cls(db_path, model_hash, dim, model_name)
        cache._remove_leftovers()
        paths = (cache.vectors_path, cache.filled_path, cache.metadata_path, cache.keys_path)
        if not any(path.exists() for path in paths):
            cache.database_id = database_id
            cache._create(INITIAL_CAPACITY)
            return cache
        try:
            cache._open_existing()
        except CacheDamaged as damage:
            cache._discard()
            cache.reset_reason = str(damage)
            cache._create(INITIAL_CAPACITY)
        cache.bind(database_id)
        return cache

    def _open_existing(self) -> None:
        try:
            metadata = json.loads(self.metadata_path.read_text(encoding="utf-8"))
            stored_format = metadata["format"]
            stored_hash = str(metadata["model_hash"])
            stored_dim = int(metadata["dim"])
            stored_capacity = int(metadata["capacity"])
            stored_name = str(metadata.get("model_name", ""))
            stored_database = metadata.get("database_id")
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CacheDamaged(f"metadata {self.metadata_path.name} unreadable ({error})") from None
        if stored_format != FORMAT_VERSION:
            raise CacheDamaged(
                f"cache format {stored_format} is not {FORMAT_VERSION} (format 2 records which "
                "database and which text each vector belongs to)"
            )
        if stored_hash != self.model_hash:
            old = f"{stored_name} " if stored_name else ""
            new = f"{self.model_name} " if self.model_name else ""
            raise CacheDamaged(
                f"the model changed (vectors are from {old}{stored_hash[:12]}, the encoder is {new}{self.model_hash[:12]})"
            )
        if stored_dim != self.dim:
            raise CacheDamaged(f"dimension changed ({stored_dim} stored, {self.dim} now)")
        self.database_id = None if stored_database is None else str(stored_database)
        try:
            vector_shape, vector_dtype, _ = npy_header(self.vectors_path)
            keys_shape, keys_dtype, _ = npy_header(self.keys_path)
            filled_shape, filled_dtype, _ = npy_header(self.filled_path)
        except (OSError, ValueError) as error:
            raise CacheDamaged(f"cache file unreadable ({error})") from None
        if vector_dtype != VECTOR_DTYPE or len(vector_shape) != 2 or vector_shape[1] != self.dim:
            raise CacheDamaged(
                f"{self.vectors_path.name}: {vector_dtype} {vector_shape}, expected float16 (n, {self.dim})"
            )
        if filled_dtype != np.uint8 or len(filled_shape) != 1:
            raise CacheDamaged(
                f"{self.filled_path.name}: {filled_dtype} {filled_shape}, expected uint8 (n,)"
            )
        if keys_dtype != KEY_DTYPE or len(keys_shape) != 1:
            raise CacheDamaged(
                f"{self.keys_path.name}: {keys_dtype} {keys_shape}, expected int64 (n,)"
            )
        vector_rows, keys_rows, filled_rows = vector_shape[0], keys_shape[0], filled_shape[0]
        if stored_capacity > vector_rows:
            # The metadata is written last, so it can lag behind a growth but never run ahead.
            raise CacheDamaged(
                f"metadata says {stored_capacity} rows, the vectors file holds {vector_rows}"
            )
        if filled_rows > keys_rows or keys_rows > vector_rows:
            raise CacheDamaged(
                f"the mask has {filled_rows} rows, the keys {keys_rows}, the vectors {vector_rows}"
            )
        reserve_disk_space(self.vectors_path)
        reserve_disk_space(self.keys_path)
        reserve_disk_space(self.filled_path)
        self._map()
        # Growth replaces the vectors file first, then the keys, then the mask: a kill in between
        # leaves older (shorter) files whose rows all exist in the newer ones. Finish the growth.
        if keys_rows < vector_rows:
            self._grow_keys(vector_rows)
        if filled_rows < vector_rows:
            self._grow_mask(vector_rows)
        if stored_capacity != vector_rows:
            self._write_metadata()

    def _create(self, capacity: int) -> None:
        self.vectors_path.parent.mkdir(parents=True, exist_ok=True)
        for path, dtype, shape in (
            (self.vectors_path, VECTOR_DTYPE, (capacity, self.dim)),
            (self.keys_path, KEY_DTYPE, (capacity,)),
            (self.filled_path, np.uint8, (capacity,)),
        ):
            temporary = self._temporary(path)
            created = new_memmap(temporary, dtype, shape)
            created.flush()
            del created
            os.replace(temporary, path)
        self._write_metadata(capacity)
        fsync_folder(self.vectors_path.parent)
        self._map()

    def _map(self) -> None:
        self._vectors = open_memmap(self.vectors_path, mode="r+")
        self._keys = open_memmap(self.keys_path, mode="r+")
        self._filled = open_memmap(self.filled_path, mode="r+")

    def _discard(self) -> None:
        self._vectors = None
        self._keys = None
        self._filled = None
        self.verified_through = 0
        # The metadata first: a kill part-way leaves files that fail to open, never stale ones
        # that open.
        for path in (self.metadata_path, self.filled_path, self.keys_path, self.vectors_path):
            path.unlink(missing_ok=True)

    def _remove_leftovers(self) -> None:
        for path in (self.vectors_path, self.keys_path, self.filled_path, self.metadata_path):
            self._temporary(path).unlink(missing_ok=True)

    @staticmethod
    def _temporary(path: Path) -> Path:
        return path.with_name(path.name + ".tmp")

    def _write_metadata(self, capacity: int | None = None) -> None:
        metadata = {
            "format": FORMAT_VERSION,
            "model_hash": self.model_hash,
            "model_name": self.model_name,
            "dim": self.dim,
            "capacity": self.capacity if capacity is None else capacity,
            "dtype": "float16",
            "database_id": self.database_id,
        }
        write_json_durably(self.metadata_path, metadata)

    def bind(self, database_id: str | None) -> str | None:
        """Tie the cache to the database `database_id`; return why it was rebuilt, if it was.

        A cache recorded for another database is emptied (its ids name other texts there); one not
        bound yet is bound as it is, its rows still checked one by one against their fingerprints.
        """
        if database_id is None or database_id == self.database_id:
            return None
        if self.database_id is None:
            self.database_id = database_id
            self._write_metadata()
            return None
        reason = (
            f"the cache was made for another database ({self.database_id[:8]}, this one is "
            f"{database_id[:8]}: the database was re-created or replaced)"
        )
        self._discard()
        self.database_id = database_id
        self._create(INITIAL_CAPACITY)
        self.reset_reason = reason
        return reason

    # -- what it holds ----------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """Rows the files hold now (ids 0 .. capacity-1); grows on demand."""
        return int(self._mask().shape[0])

    @property
    def filled_count(self) -> int:
        filled = self._mask()
        return sum(
            int(np.count_nonzero(filled[start : start + COPY_CHUNK_ROWS]))
            for start in range(0, filled.shape[0], COPY_CHUNK_ROWS)
        )

    def missing_ids(self, item_ids: np.ndarray) -> np.ndarray:
        """The ids among `item_ids` with no cached vector, in their given order (int64)."""
        ids = np.asarray(item_ids, dtype=np.int64).ravel()
        filled = self._mask()
        in_range = (ids >= 0) & (ids < filled.shape[0])
        missing = ~in_range
        missing[in_range] = filled[ids[in_range]] == 0
        missing_ids: np.ndarray = ids[missing]
        return missing_ids

    def stored_keys(self, item_ids: np.ndarray) -> np.ndarray:
        """The fingerprint each id's row was written with (int64); `NO_KEY` for ids not filled."""
        ids = np.asarray(item_ids, dtype=np.int64).ravel()
        keys = np.full(ids.size, NO_KEY, dtype=KEY_DTYPE)
        filled, stored = self._mask(), self._key_column()
        in_range = (ids >= 0) & (ids < filled.shape[0])
        inside = ids[in_range]
        keys[in_range] = np.where(filled[inside] != 0, stored[inside], NO_KEY)
        return keys

    def unusable_rows(self, stop: int, start: int = 0) -> np.ndarray:
        """bool (stop - start,): rows in [start, stop) holding a non-finite value or only zeros.

        Read with plain file reads into one reused buffer, `SCAN_CHUNK_ROWS` rows at a time, so
        checking ten million rows neither maps them all nor holds them at once.
        """
        stop = min(stop, self.capacity)
        result = np.zeros(max(stop - start, 0), dtype=bool)
        if stop <= start:
            return result
        self.flush()
        _, _, offset = npy_header(self.vectors_path)
        buffer = np.empty((SCAN_CHUNK_ROWS, self.dim), dtype=np.uint16)
        row_bytes = self.dim * 2
        with self.vectors_path.open("rb", buffering=0) as handle:
            handle.seek(offset + start * row_bytes)
            for first in range(start, stop, SCAN_CHUNK_ROWS):
                rows = min(SCAN_CHUNK_ROWS, stop - first)
                view = memoryview(buffer[:rows].data).cast("B")
                read = 0
                while read < len(view):
                    got = handle.readinto(view[read:])
                    if not got:
                        raise CacheDamaged(
                            f"{self.vectors_path.name}: shorter than its header says"
                        )
                    read += got
                bits = buffer[:rows]
                # float16: exponent bits all set is inf or NaN; no bit but the sign set is zero.
                non_finite = ((bits & 0x7C00) == 0x7C00).any(axis=1)
                zero = ~((bits & 0x7FFF) != 0).any(axis=1)
                result[first - start : first - start + rows] = non_finite | zero
        return result

    def filled_blocks(self, rows: int = COPY_CHUNK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
        """(first id, bool mask of filled rows) for the whole cache, `rows` ids at a time, read
        with plain file reads: scanning a 10M mask leaves no mapped pages behind."""
        self.flush()
        _, _, offset = npy_header(self.filled_path)
        capacity = self.capacity
        with self.filled_path.open("rb", buffering=0) as handle:
            handle.seek(offset)
            for start in range(0, capacity, rows):
                data = handle.read(min(rows, capacity - start))
                yield start, np.frombuffer(data, dtype=np.uint8) != 0

    def filled_ids(self) -> np.ndarray:
        """Every id with a cached vector, ascending (int64)."""
        filled = self._mask()
        parts = [
            np.flatnonzero(filled[start : start + COPY_CHUNK_ROWS]) + start
            for start in range(0, filled.shape[0], COPY_CHUNK_ROWS)
        ]
        return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, dtype=np.int64)

    def vectors(self, item_ids: np.ndarray) -> np.ndarray:
        """float32 (len(item_ids), dim) vectors of cached ids; KeyError if any is not cached."""
        ids = np.asarray(item_ids, dtype=np.int64).ravel()
        absent = self.missing_ids(ids)
        if absent.size:
            shown = ", ".join(str(item_id) for item_id in absent[:5])
            raise KeyError(f"{absent.size} item(s) have no cached vector (e.g. {shown})")
        return np.asarray(self._matrix()[ids], dtype=np.float32)

    def matrix(self) -> np.ndarray:
        """All rows (capacity, dim) as a read-only float16 memory map; unfilled rows are zeros."""
        view = self._matrix().view()
        view.flags.writeable = False
        return view

    # -- writing ----------------------------------------------------------------------------------

    def reserve(self, capacity: int) -> None:
        """Grow the files now to hold ids below `capacity` (saves repeated growth while embedding)."""
        if capacity > self.capacity:
            self._grow(capacity)

    def write_keyed(self, item_ids: np.ndarray, vectors: np.ndarray, keys: np.ndarray) -> None:
        """Store vectors with the fingerprints of the texts they were embedded from.

        A row written again is unmarked first, then its key written, then its vector (`write`):
        a kill at any point leaves it unmarked (embedded again) or whole, never an old vector
        under a new key.
        """
        ids = np.asarray(item_ids, dtype=np.int64).ravel()
        fingerprints = np.asarray(keys, dtype=KEY_DTYPE).ravel()
        if fingerprints.shape != ids.shape:
            raise ValueError(f"{fingerprints.size} keys for {ids.size} ids")
        if ids.size == 0:
            return
        self._ensure_capacity(ids)
        filled = self._mask()
        rewritten = ids[filled[ids] != 0]
        if rewritten.size:
            filled[rewritten] = 0
            filled.flush()
        column = self._key_column()
        column[ids] = fingerprints
        column.flush()
        self.write(ids, vectors)

    def _ensure_capacity(self, ids: np.ndarray) -> None:
        if int(ids.min()) < 0:
            raise ValueError("item ids must not be negative")
        needed_capacity = int(ids.max()) + 1
        if needed_capacity > self.capacity:
            # Doubling keeps the total copying linear in the final size.
            self._grow(max(needed_capacity, 2 * self.capacity))

    def write(self, item_ids: np.ndarray, vectors: np.ndarray) -> None:
        """Store `vectors` (n, dim) for `item_ids` (n,): on disk first, then marked as filled.

        Rows keep the fingerprint they had; `write_keyed` is what the embedding uses."""
        ids = np.asarray(item_ids, dtype=np.int64).ravel()
        rows = np.asarray(vectors)
        if rows.shape != (ids.size, self.dim):
            raise ValueError(f"vectors have shape {rows.shape}, expected ({ids.size}, {self.dim})")
        if ids.size == 0:
            return
        self._ensure_capacity(ids)
        stored = self._matrix()
        filled = self._mask()
        stored[ids] = rows.astype(VECTOR_DTYPE)
        stored.flush()
        self._mark_filled(filled, ids)

    def _mark_filled(self, filled: np.memmap[Any, np.dtype[np.uint8]], ids: np.ndarray) -> None:
        """Mark rows as written; only ever called after their vectors were flushed to disk."""
        filled[ids] = 1
        filled.flush()

    def flush(self) -> None:
        """Write every mapped change to disk (vectors before the mask)."""
        if self._vectors is not None:
            self._vectors.flush()
        if self._keys is not None:
            self._keys.flush()
        if self._filled is not None:
            self._filled.flush()

    def close(self) -> None:
        self.flush()
        self._vectors = None
        self._keys = None
        self._filled = None

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- growing ----------------------------------------------------------------------------------

    def _grow(self, new_capacity: int) -> None:
        """Every file with `new_capacity` rows: the vectors, the keys, then the mask (see
        `_grow_mask`)."""
        self._vectors = self._swap_in_larger_copy(
            self.vectors_path, self._matrix(), (new_capacity, self.dim)
        )
        self._grow_keys(new_capacity)
        self._grow_mask(new_capacity)

    def _grow_keys(self, new_capacity: int) -> None:
        self._keys = self._swap_in_larger_copy(self.keys_path, self._key_column(), (new_capacity,))

    def _grow_mask(self, new_capacity: int) -> None:
        """The mask with `new_capacity` rows, then the metadata. Also the recovery path: `open` calls
        it when a growth was killed after the vectors file was replaced but before the mask was."""
        self._filled = self._swap_in_larger_copy(self.filled_path, self._mask(), (new_capacity,))
        self._write_metadata()

    def _swap_in_larger_copy(
        self, path: Path, old: np.memmap[Any, Any], shape: tuple[int, ...]
    ) -> np.memmap[Any, Any]:
        """Copy `old` into a new file of `shape` beside `path`, flush it, rename it over `path`
        (atomic: a kill leaves either file whole) and return the new file's map."""
        temporary = self._temporary(path)
        grown = new_memmap(temporary, old.dtype, shape)
        for start in range(0, old.shape[0], COPY_CHUNK_ROWS):
            stop = min(start + COPY_CHUNK_ROWS, old.shape[0])
            grown[start:stop] = old[start:stop]
        grown.flush()
        del grown
        os.replace(temporary, path)
        fsync_folder(path.parent)
        return open_memmap(path, mode="r+")

    def _matrix(self) -> np.memmap[Any, np.dtype[np.float16]]:
        if self._vectors is None:
            raise ValueError("the embedding cache is closed")
        return self._vectors

    def _key_column(self) -> np.memmap[Any, np.dtype[np.int64]]:
        if self._keys is None:
            raise ValueError("the embedding cache is closed")
        return self._keys

    def _mask(self) -> np.memmap[Any, np.dtype[np.uint8]]:
        if self._filled is None:
            raise ValueError("the embedding cache is closed")
        return self._filled
