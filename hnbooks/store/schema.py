"""The one owner of the database schema: numbered migrations, applied in order, never edited once shipped.

Every DDL statement of the project lives here. `PRAGMA user_version` records the last migration applied;
a database whose version is newer than the code knows is refused rather than guessed at.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

Migration = Callable[[sqlite3.Connection], None]


def execute_statements(conn: sqlite3.Connection, script: str) -> None:
    """Run a multi-statement script inside the caller's transaction.

    `executescript` would commit the open transaction first, so statements are split with
    `sqlite3.complete_statement` (which understands trigger bodies) and run one by one.
    """
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip():
                conn.execute(pending)
            pending = ""
    if pending.strip().strip(";").strip():
        raise ValueError(f"incomplete SQL statement in migration: {pending[:80]!r}")


def m001_initial(conn: sqlite3.Connection) -> None:
    execute_statements(
        conn,
        """
        CREATE TABLE labels (
            name TEXT PRIMARY KEY,
            position INTEGER NOT NULL
        );
        INSERT INTO labels (name, position) VALUES ('BOOK', 0);

        CREATE TABLE items (
            id INTEGER PRIMARY KEY,
            external_id TEXT NOT NULL UNIQUE,
            text TEXT NOT NULL,
            meta TEXT NOT NULL DEFAULT '{}',
            input_hash INTEGER NOT NULL,
            text_key TEXT NOT NULL UNIQUE,
            source TEXT,
            created_at REAL NOT NULL
        );

        CREATE VIRTUAL TABLE items_fts USING fts5(
            text, content='items', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER items_fts_insert AFTER INSERT ON items BEGIN
            INSERT INTO items_fts (rowid, text) VALUES (new.id, new.text);
        END;
        CREATE TRIGGER items_fts_delete AFTER DELETE ON items BEGIN
            INSERT INTO items_fts (items_fts, rowid, text) VALUES ('delete', old.id, old.text);
        END;
        CREATE TRIGGER items_fts_update AFTER UPDATE OF text ON items BEGIN
            INSERT INTO items_fts (items_fts, rowid, text) VALUES ('delete', old.id, old.text);
            INSERT INTO items_fts (rowid, text) VALUES (new.id, new.text);
        END;

        -- A scorer round: its report (JSON) is what `hnbooks stats` and the stats screen show.
        CREATE TABLE rounds (
            id INTEGER PRIMARY KEY,
            started_at REAL NOT NULL,
            finished_at REAL,
            label TEXT NOT NULL,
            report TEXT NOT NULL DEFAULT '{}'
        );

        -- A batch is visible to annotators from the moment its row exists: it is inserted together
        -- with all its items in one transaction.
        CREATE TABLE batches (
            id INTEGER PRIMARY KEY,
            round_id INTEGER REFERENCES rounds(id),
            source TEXT NOT NULL,
            label TEXT NOT NULL,
            note TEXT,
            published_at REAL NOT NULL
        );

        CREATE TABLE batch_items (
            batch_id INTEGER NOT NULL REFERENCES batches(id),
            position INTEGER NOT NULL,
            item_id INTEGER NOT NULL REFERENCES items(id),
            strategy TEXT NOT NULL,
            score REAL,
            rank INTEGER,
            inclusion_probability REAL,
            PRIMARY KEY (batch_id, position),
            UNIQUE (batch_id, item_id)
        );
        CREATE INDEX batch_items_item ON batch_items (item_id);

        -- Append-only. An undo is a row of its own pointing at the answer it takes back;
        -- re-answering adds a row, and the current answer is the latest one not undone per
        -- (item, annotator, task_key).
        CREATE TABLE answers (
            id INTEGER PRIMARY KEY,
            item_id INTEGER NOT NULL REFERENCES items(id),
            annotator TEXT NOT NULL,
            answer TEXT NOT NULL CHECK (answer IN ('accept', 'reject', 'ignore', 'undo')),
            task_key TEXT NOT NULL,
            label TEXT,
            view_id TEXT,
            spans TEXT NOT NULL DEFAULT '[]',
            task_hash INTEGER,
            batch_id INTEGER REFERENCES batches(id),
            strategy TEXT,
            score REAL,
            undoes INTEGER REFERENCES answers(id),
            client_key TEXT UNIQUE,
            created_at REAL NOT NULL,
            CHECK ((answer = 'undo') = (undoes IS NOT NULL))
        );
        CREATE INDEX answers_item ON answers (item_id, annotator);
        CREATE INDEX answers_annotator ON answers (annotator, id);
        CREATE UNIQUE INDEX answers_undoes ON answers (undoes) WHERE undoes IS NOT NULL;
        """,
    )


MIGRATIONS: list[Migration] = [m001_initial]
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(Exception):
    """The database was written by a newer hnbooks than this one."""


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration the database lacks, each in its own transaction; return how many ran."""
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"database schema version {current} is newer than this hnbooks supports "
            f"({SCHEMA_VERSION}); upgrade hnbooks"
        )
    applied = 0
    for number, migration in enumerate(MIGRATIONS[current:], start=current + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            migration(conn)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied += 1
    return applied
