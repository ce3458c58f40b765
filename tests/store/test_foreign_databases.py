"""Other programs' SQLite files are refused untouched; read-only opening never creates or migrates.

A database is hnbooks' when it records hnbooks migrations (`_sqlite_migrations`, set 'hnbooks') or is
a schema-1 database holding the first migration's tables. Anything else with tables in it is another
program's, and `journal_mode = WAL` is a write, so the check comes before any pragma that writes.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from hnbooks.store import schema
from hnbooks.store.db import Store, StoreError
from tests.helpers import publish, store_with_texts

RELEASE_DB = Path(__file__).parent / "data" / "release-0.1.0.db"


def sqlite_file(path: Path, script: str, *, journal_mode: str = "delete") -> Path:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA journal_mode = {journal_mode}")
    conn.executescript(script)
    conn.close()
    return path


def prodigy_database(path: Path, journal_mode: str = "delete") -> Path:
    return sqlite_file(
        path,
        """
        CREATE TABLE dataset (id INTEGER PRIMARY KEY, name TEXT, meta BLOB, session INTEGER);
        CREATE TABLE example (id INTEGER PRIMARY KEY, input_hash INTEGER, task_hash INTEGER, content BLOB);
        CREATE TABLE link (id INTEGER PRIMARY KEY, example_id INTEGER, dataset_id INTEGER);
        INSERT INTO dataset (name) VALUES ('books');
        INSERT INTO example (input_hash, task_hash, content) VALUES (1, 2, '{"text": "hi"}');
        """,
        journal_mode=journal_mode,
    )


def journal_mode(path: Path) -> str:
    """From the file header (bytes 18-19 are 2 in WAL mode): asking SQLite would create a `-wal`."""
    with path.open("rb") as handle:
        header = handle.read(20)
    return "wal" if header[18:20] == b"\x02\x02" else "delete"


def files_beside(path: Path) -> set[str]:
    return {p.name for p in path.parent.iterdir() if p.name.startswith(path.name)}


OPENINGS = [
    pytest.param({}, id="create"),
    pytest.param({"create": False}, id="existing"),
    pytest.param({"readonly": True}, id="readonly"),
]


@pytest.mark.parametrize("options", OPENINGS)
@pytest.mark.parametrize("mode", ["delete", "wal"])
def test_a_prodigy_database_is_refused_untouched(
    tmp_path: Path, options: dict[str, bool], mode: str
) -> None:
    path = prodigy_database(tmp_path / "prodigy.db", mode)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not an hnbooks database.*dataset, example, link"):
        Store(path, **options)
    assert path.read_bytes() == before
    assert journal_mode(path) == mode
    assert files_beside(path) == {"prodigy.db"}


@pytest.mark.parametrize("options", OPENINGS)
def test_a_database_with_its_own_items_table_stays_in_its_journal_mode(
    tmp_path: Path, options: dict[str, bool]
) -> None:
    path = sqlite_file(
        tmp_path / "other.db",
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO items (name) VALUES ('x');",
    )
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not an hnbooks database"):
        Store(path, **options)
    assert path.read_bytes() == before
    assert journal_mode(path) == "delete"


def test_a_negative_user_version_is_not_an_hnbooks_database(tmp_path: Path) -> None:
    path = sqlite_file(tmp_path / "odd.db", "PRAGMA user_version = -5;")
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"not an hnbooks database \(user_version -5\)"):
        Store(path)
    assert path.read_bytes() == before


def test_an_empty_file_and_a_new_path_become_hnbooks_databases(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    for path in (empty, tmp_path / "new.db"):
        with Store(path) as store:
            assert store.item_count() == 0
            assert store.database_id()
        assert journal_mode(path) == "wal"


def test_every_database_gets_an_identity_once(tmp_path: Path) -> None:
    store, _ = store_with_texts(tmp_path / "x.db", ["one text"])
    identity = store.database_id()
    store.close()
    assert identity is not None and len(identity) == 36
    with Store(tmp_path / "x.db") as reopened:
        assert reopened.database_id() == identity
    with Store(tmp_path / "y.db") as other:
        assert other.database_id() not in (None, identity)
    old = tmp_path / "old.db"
    shutil.copy(RELEASE_DB, old)
    with Store(old) as upgraded:
        assert upgraded.database_id()


def test_read_only_opening_never_creates_a_database(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no database here"):
        Store(tmp_path / "x.db", readonly=True)
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(StoreError, match="no database here"):
        Store(empty, readonly=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]
    assert empty.stat().st_size == 0


def test_read_only_opening_of_an_old_database_says_how_to_upgrade_it(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    shutil.copy(RELEASE_DB, old)
    before = old.read_bytes()
    with pytest.raises(StoreError, match="run `hnbooks import` or `hnbooks-score` once to upgrade"):
        Store(old, readonly=True)
    assert old.read_bytes() == before


def test_read_only_opening_reads_a_database_lacking_only_its_identity(tmp_path: Path) -> None:
    store, _ = store_with_texts(tmp_path / "x.db", ["one text", "another text"])
    store.close()
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm005_database_id'")
    conn.execute("DELETE FROM settings WHERE name = 'database_id'")
    conn.close()
    with Store(tmp_path / "x.db", readonly=True) as reader:
        assert reader.item_count() == 2
        assert reader.database_id() is None
        assert reader.stats().items == 2
    applied = {
        name
        for (name,) in sqlite3.connect(tmp_path / "x.db").execute(
            "SELECT name FROM _sqlite_migrations"
        )
    }
    assert "m005_database_id" not in applied
    assert applied < schema.KNOWN_MIGRATIONS


def test_read_only_opening_reads_batches_from_before_near_duplicates_were_recorded(
    tmp_path: Path,
) -> None:
    store, ids = store_with_texts(tmp_path / "x.db", ["one text", "another text"])
    batch_id = publish(store, ids)
    store.close()
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    conn.execute("ALTER TABLE batch_items DROP COLUMN near_duplicate_of")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm009_near_duplicates_of_accepted'")
    conn.close()
    with Store(tmp_path / "x.db", readonly=True) as reader:
        queued = reader.queued_item("ann", batch_id, ids[0])
        assert queued is not None and queued.near_duplicate_of is None
        assert [e.item_id for e in reader.queue()] == ids
    with Store(tmp_path / "x.db") as writer:  # a writer's opening adds the column back
        assert writer.queued_item("ann", batch_id, ids[1]) is not None


def test_read_only_opening_refuses_writes(tmp_path: Path) -> None:
    store, ids = store_with_texts(tmp_path / "x.db", ["one text"])
    store.close()
    with Store(tmp_path / "x.db", readonly=True) as reader:
        assert reader.item_count() == 1
        with pytest.raises(StoreError, match="read-only"):
            reader.add_label("OTHER")
