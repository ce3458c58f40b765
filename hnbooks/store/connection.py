"""The one owner of the SQLite connection: opening, pragmas, migrations, transactions, error wording.

Every query module of the store (items, answers, queue, rounds) builds on `Connection`; nothing outside
`hnbooks.store` ever holds the `sqlite3.Connection`.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import threading
import urllib.parse
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


def closed_wal_database(path: Path) -> bool:
    """A SQLite file in WAL mode that no program has open (open ones have a `-wal` beside them)."""
    try:
        with path.open("rb") as handle:
            header = handle.read(20)
    except OSError:
        return False
    return (
        header[:16] == b"SQLite format 3\x00"
        and header[18:20] == b"\x02\x02"
        and not Path(f"{path}-wal").exists()
    )


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
    """One SQLite database file. Safe to share between threads (calls are serialised).

    `create=False` opens only a database that exists (and upgrades it); `readonly=True` opens it
    read-only and never creates, migrates or converts anything. A non-empty SQLite file of another
    program is refused before any pragma that writes (`journal_mode = WAL` is a write).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, create: bool = True, readonly: bool = False
    ) -> None:
        self.path = str(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        self._conn = self._connect(create and not readonly)

    def _connect(self, create: bool) -> sqlite3.Connection:
        path = Path(self.path)
        if self.path != ":memory:":
            if path.is_dir():
                raise StoreError(f"{self.path} is a directory, not a database file")
            if not path.parent.exists():
                raise StoreError(f"{self.path}: directory {path.parent} does not exist")
            # An empty file is no database yet: creating it is writing it.
            if (not create and not path.exists()) or (self.readonly and path.stat().st_size == 0):
                raise StoreError(
                    f"{self.path}: no database here; create one with `hnbooks import FILE --db {self.path}`"
                )
            if closed_wal_database(path):
                self._probe(path)
        try:
            if self.readonly:
                target = "file:" + urllib.parse.quote(str(path.absolute())) + "?mode=ro"
            else:
                target = self.path
            conn = sqlite3.connect(
                target,
                isolation_level=None,
                timeout=BUSY_TIMEOUT_S,
                check_same_thread=False,
                uri=self.readonly,
            )
        except sqlite3.Error as error:
            raise friendly_sqlite_error(error, self.path) from None
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            # Before anything that writes: another program's file is left exactly as it was.
            schema.check_is_hnbooks(conn, self.path)
            schema.refuse_newer(conn, self.path)
            if self.readonly:
                self._refuse_pending(conn)
            else:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal" and self.path != ":memory:":
                    conn.execute("PRAGMA journal_mode").fetchone()
                # NORMAL in WAL mode: a commit is in the WAL before it returns, so it survives the
                # process being killed; only a power cut or an OS crash can drop the last commits
                # (no fsync per answer, which put ~1-10 ms behind every key press).
                # Outside WAL (a file system without shared memory), FULL as before.
                wal = mode.lower() == "wal"
                conn.execute(f"PRAGMA synchronous = {'NORMAL' if wal else 'FULL'}")
                schema.migrate(conn, self.path)
        except (schema.SchemaTooNew, schema.NotHnbooks) as error:
            conn.close()
            raise StoreError(str(error)) from None
        except sqlite3.Error as error:
            conn.close()
            raise friendly_sqlite_error(error, self.path) from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _probe(self, path: Path) -> None:
        """Refuse another program's closed WAL database before a real connection touches it: that
        would create its `-wal` and `-shm` files. Opened immutable (no lock, no file created), which
        is sound only because no program has it open; the real connection checks again anyway."""
        uri = "file:" + urllib.parse.quote(str(path.absolute())) + "?mode=ro&immutable=1"
        try:
            probe = sqlite3.connect(uri, uri=True)
        except sqlite3.Error as error:
            raise friendly_sqlite_error(error, self.path) from None
        try:
            schema.check_is_hnbooks(probe, self.path)
        except schema.NotHnbooks as error:
            raise StoreError(str(error)) from None
        except sqlite3.Error as error:
            raise friendly_sqlite_error(error, self.path) from None
        finally:
            probe.close()

    def _refuse_pending(self, conn: sqlite3.Connection) -> None:
        """A read-only opening reads the database as it is, unless it lacks a migration its queries
        need: then it says how to upgrade it rather than failing on a missing table later."""
        if schema.is_blank(conn):
            raise StoreError(
                f"{self.path}: no database here; create one with `hnbooks import FILE --db {self.path}`"
            )
        needed = [name for name in schema.pending_migrations(conn) if name not in schema.READ_AS_IS]
        if needed:
            raise StoreError(
                f"{self.path}: made by an older hnbooks and not upgraded yet (lacks {', '.join(needed)}); "
                "run `hnbooks import` or `hnbooks-score` once to upgrade it"
            )

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
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only; nothing can be written through it")
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

    def checkpoint(self, *, wait_s: float = 0.25) -> bool:
        """Fold the write-ahead log into the database file and truncate it (`X.db-wal` to 0 bytes).

        Returns False, without raising, when another connection keeps it from finishing (a reader of
        an older snapshot, a writer); `wait_s` bounds how long it waits for them, so it can run on
        quit or when idle. Nothing is lost either way: the log is folded in later.
        """
        with self._lock:
            if self.readonly or self.path == ":memory:" or self._conn.in_transaction:
                return False
            try:
                self._conn.execute(f"PRAGMA busy_timeout = {max(0, int(wait_s * 1000))}")
                try:
                    busy = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                finally:
                    self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            except sqlite3.OperationalError as error:
                lowered = str(error).lower()
                if "locked" in lowered or "busy" in lowered:
                    return False
                raise friendly_sqlite_error(error, self.path) from None
            except sqlite3.Error as error:
                raise friendly_sqlite_error(error, self.path) from None
            return int(busy) == 0

    def backup(self, destination: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Copy the database to `destination`: one self-contained file (rollback journal, no
        `-wal`), consistent as of one moment however many others write meanwhile.

        The copy is written beside the destination and renamed over it once complete, so an
        interrupted backup leaves no half file. An existing destination is refused unless
        `overwrite`; one another program has open (its `-wal` or `-shm` exists) is always refused,
        since that program's log would be replayed onto the copy.
        """
        target = Path(destination)
        if not target.parent.exists():
            raise StoreError(f"{target}: directory {target.parent} does not exist")
        if target.is_dir():
            raise StoreError(f"{target} is a directory; give the backup a file name")
        if target.exists():
            if self.path != ":memory:" and os.path.samefile(target, self.path):
                raise StoreError(f"{target} is the database itself; give the backup another name")
            if not overwrite:
                raise StoreError(
                    f"{target} already exists; choose a new file, or replace it (`hnbooks backup --force`)"
                )
        for suffix in ("-wal", "-shm"):
            if Path(f"{target}{suffix}").exists():
                raise StoreError(
                    f"{target}: {target.name}{suffix} exists, so a program has it open "
                    "(or did not close it); close that program or choose a new file"
                )
        temporary = target.with_name(f".{target.name}.{os.getpid()}.backup")
        try:
            copy = sqlite3.connect(temporary, isolation_level=None)
            try:
                with self._lock:
                    # One step (pages=-1) under one read transaction: a consistent snapshot.
                    self._conn.backup(copy)
                # The source's WAL mode travels in page 1; the copy must stand on its own.
                copy.execute("PRAGMA journal_mode = DELETE")
            finally:
                copy.close()
            with temporary.open("rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(temporary, target)
            fsync_folder(target.parent)
        except sqlite3.Error as error:
            remove_quietly(temporary)
            raise friendly_sqlite_error(error, str(target)) from None
        except OSError as error:
            remove_quietly(temporary)
            raise StoreError(
                f"{target}: cannot write the backup ({error.strerror or error})"
            ) from None
        except BaseException:
            remove_quietly(temporary)
            raise


def remove_quietly(path: Path) -> None:
    for leftover in (path, Path(f"{path}-journal"), Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            leftover.unlink(missing_ok=True)
        except OSError:
            pass


def process_is_gone(host: str, pid: int) -> bool:
    """Whether `pid` is a process of this machine (`host`) that no longer runs: a session or a
    scorer killed with -9. A process of another machine, or one we may not signal, is not gone."""
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (no-op where directories cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
