"""The one owner of the SQLite connection: opening, pragmas, migrations, transactions, error wording.

Every query module of the store (items, answers, queue, rounds) builds on `Connection`; nothing outside
`hnbooks.store` ever holds the `sqlite3.Connection`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hnbooks.store import schema

DEFAULT_DB_PATH = "hnbooks.db"
BUSY_TIMEOUT_S = 30.0


class StoreError(Exception):
    """A problem with the database the user can act on; the message says what and what to do."""


def disk_nearly_full(path: str, margin_bytes: int = 1 << 20) -> bool:
    """Whether the disk holding `path` has less than `margin_bytes` free."""
    try:
        return shutil.disk_usage(Path(path).resolve().parent).free < margin_bytes
    except OSError:
        return False


def friendly_sqlite_error(error: sqlite3.Error, path: str) -> StoreError:
    message = str(error)
    lowered = message.lower()
    if "readonly" in lowered or "read-only" in lowered:
        return StoreError(f"{path}: the database is read-only ({message}); check file permissions")
    if (
        "disk is full" in lowered
        or "database or disk is full" in lowered
        or (
            # With no byte left SQLite cannot even size its shared-memory file, and says only "I/O".
            "disk i/o error" in lowered and disk_nearly_full(path)
        )
    ):
        return StoreError(f"{path}: the disk is full; free space and retry (nothing was written)")
    if "not a database" in lowered or "malformed" in lowered:
        return StoreError(f"{path}: not an hnbooks database or the file is damaged ({message})")
    if "unable to open" in lowered:
        return StoreError(f"{path}: cannot open the database ({message})")
    if "locked" in lowered or "busy" in lowered:
        return StoreError(f"{path}: the database stayed locked for {BUSY_TIMEOUT_S:.0f} s; retry")
    return StoreError(f"{path}: {message}")


class Connection:
    """One SQLite database file. Safe to share between threads (calls are serialised)."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        self._conn = self._connect(create)

    def _connect(self, create: bool) -> sqlite3.Connection:
        path = Path(self.path)
        if self.path != ":memory:":
            if path.is_dir():
                raise StoreError(f"{self.path} is a directory, not a database file")
            if not path.parent.exists():
                raise StoreError(f"{self.path}: directory {path.parent} does not exist")
            if not create and not path.exists():
                raise StoreError(
                    f"{self.path}: no database here; create one with `hnbooks import FILE --db {self.path}`"
                )
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=BUSY_TIMEOUT_S, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            schema.refuse_newer(conn, self.path)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal" and self.path != ":memory:":
                conn.execute("PRAGMA journal_mode").fetchone()
            # FULL: an answer acknowledged on screen survives a power cut, not only a crash.
            conn.execute("PRAGMA synchronous = FULL")
            schema.migrate(conn, self.path)
        except schema.SchemaTooNew as error:
            raise StoreError(str(error)) from None
        except sqlite3.Error as error:
            raise friendly_sqlite_error(error, self.path) from None
        return conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: BEGIN IMMEDIATE so a writer waits for the lock up front, not mid-way."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as error:
                raise friendly_sqlite_error(error, self.path) from None
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except sqlite3.Error as error:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise friendly_sqlite_error(error, self.path) from None
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._conn.execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as error:
                raise friendly_sqlite_error(error, self.path) from None

    def _one(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        rows = self._query(sql, params)
        return rows[0] if rows else None

    def _count(self, sql: str, params: Iterable[Any] = ()) -> int:
        row = self._one(sql, params)
        return int(row[0] or 0) if row is not None else 0

    def data_version(self) -> int:
        """Changes whenever another connection commits (cheap to poll)."""
        return self._count("PRAGMA data_version")
