"""The one owner of the database schema: migrations applied in order, never edited once shipped.

Every DDL statement of the project lives here. The first migration predates sqlite-utils here and is
recorded in `PRAGMA user_version` (1); every later one is a function registered with
`sqlite_utils.Migrations` and recorded by name in `_sqlite_migrations`. A database holding a
migration this code does not know was written by a newer hnbooks, and is refused rather than guessed at.
"""

from __future__ import annotations

import sqlite3
import sys
import uuid
from collections.abc import Callable

if "pandas" in sys.modules:
    from sqlite_utils import Database, Migrations
else:
    # sqlite-utils imports pandas (and with it pyarrow) where installed, only to map pandas
    # values to column types, which hnbooks never inserts: 0.3 s of every process's start (the
    # TUI, the scorer, each parser process). Hidden while sqlite-utils loads, then shown again to
    # whatever imports it later (the Ray engine, the benchmarks).
    sys.modules["pandas"] = None  # type: ignore[assignment]
    try:
        from sqlite_utils import Database, Migrations
    finally:
        del sys.modules["pandas"]

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


LEGACY_MIGRATIONS: list[Migration] = [m001_initial]
LEGACY_VERSION = len(LEGACY_MIGRATIONS)
"""`PRAGMA user_version` of every database from here on: later migrations are recorded by name."""

migrations = Migrations("hnbooks")


@migrations()
def m002_current_answers_view(db: Database) -> None:
    """The "answer in force" rule as views, so every query (and raw SQL, and `sqlite-utils query`)
    counts what hnbooks counts."""
    execute_statements(
        db.conn,
        """
        -- Answers that count: not an undo row, and not taken back by one.
        CREATE VIEW effective_answers AS
            SELECT a.* FROM answers a
            WHERE a.answer != 'undo'
              AND NOT EXISTS (SELECT 1 FROM answers u WHERE u.undoes = a.id);

        -- The answer in force per (item, annotator, task): the latest effective one.
        CREATE VIEW current_answers AS
            SELECT e.* FROM effective_answers e
            WHERE e.id = (
                SELECT MAX(b.id) FROM effective_answers b
                WHERE b.item_id = e.item_id AND b.annotator = e.annotator AND b.task_key = e.task_key
            );
        """,
    )


@migrations()
def m003_fts_declared_for_sqlite_utils(db: Database) -> None:
    """The FTS5 index in the form sqlite-utils and Datasette detect (`content="items"`), so
    `sqlite-utils search DB items QUERY` works on an hnbooks database."""
    execute_statements(
        db.conn,
        """
        DROP TRIGGER items_fts_insert;
        DROP TRIGGER items_fts_delete;
        DROP TRIGGER items_fts_update;
        DROP TABLE items_fts;

        CREATE VIRTUAL TABLE items_fts USING fts5(
            text, content="items", content_rowid="id", tokenize='unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER items_ai AFTER INSERT ON items BEGIN
            INSERT INTO items_fts (rowid, text) VALUES (new.id, new.text);
        END;
        CREATE TRIGGER items_ad AFTER DELETE ON items BEGIN
            INSERT INTO items_fts (items_fts, rowid, text) VALUES ('delete', old.id, old.text);
        END;
        CREATE TRIGGER items_au AFTER UPDATE OF text ON items BEGIN
            INSERT INTO items_fts (items_fts, rowid, text) VALUES ('delete', old.id, old.text);
            INSERT INTO items_fts (rowid, text) VALUES (new.id, new.text);
        END;
        INSERT INTO items_fts (items_fts) VALUES ('rebuild');
        """,
    )


@migrations()
def m004_scorer_lease_requests_claims_settings(db: Database) -> None:
    """What lets the loop run itself: one scorer per database, round requests from the TUI, claims
    on queued items per annotator session, and the database's settings (the feed mode)."""
    execute_statements(
        db.conn,
        """
        -- One row at most: the scorer holding the database. It renews `heartbeat_at` and
        -- `expires_at`; another scorer may take over once `expires_at` has passed.
        CREATE TABLE scorer_lease (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            holder TEXT NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            mode TEXT NOT NULL,
            acquired_at REAL NOT NULL,
            heartbeat_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            state TEXT NOT NULL DEFAULT 'starting',
            progress REAL,
            detail TEXT,
            last_round_at REAL,
            answers_before_next_round INTEGER
        );

        -- "Score now" asked by an annotator; the scorer marks what it acted on.
        CREATE TABLE round_requests (
            id INTEGER PRIMARY KEY,
            requested_by TEXT NOT NULL,
            requested_at REAL NOT NULL,
            handled_at REAL
        );

        -- An item of a published batch held for one annotator session until answered, released or
        -- expired (a crashed session's claims come back once `expires_at` passes).
        CREATE TABLE claims (
            batch_id INTEGER NOT NULL REFERENCES batches(id),
            item_id INTEGER NOT NULL REFERENCES items(id),
            annotator TEXT NOT NULL,
            session TEXT NOT NULL,
            claimed_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            PRIMARY KEY (batch_id, item_id, session)
        );
        CREATE INDEX claims_item ON claims (item_id, expires_at);
        CREATE INDEX claims_session ON claims (session);

        CREATE TABLE settings (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE INDEX answers_created ON answers (annotator, created_at);
        """,
    )


@migrations()
def m005_database_id(db: Database) -> None:
    """The database's identity, made once: files derived from the database (the embedding cache)
    record it, so a database re-created beside them is told apart from the one they were made for.
    A copy made with `hnbooks backup` keeps it, as it keeps every row."""
    db.conn.execute(
        "INSERT OR IGNORE INTO settings (name, value) VALUES ('database_id', ?)",
        (str(uuid.uuid4()),),
    )


@migrations()
def m006_answer_passthrough(db: Database) -> None:
    """Task fields of an imported answer that hnbooks does not model (Prodigy's tokens, options,
    accept, relations, span token offsets and sources, any unknown field), kept beside the answer
    so an export writes back what the import read. A table of its own: the answers table, and
    every query of it, stay as they were."""
    execute_statements(
        db.conn,
        """
        CREATE TABLE answer_passthrough (
            answer_id INTEGER PRIMARY KEY REFERENCES answers(id),
            fields TEXT NOT NULL
        );
        """,
    )


@migrations()
def m007_staged_imports(db: Database) -> None:
    """Imports that commit in chunks yet show nothing until done: each running import has a row in
    `imports_in_progress`, and the items it has written carry its id in `items.import_id`. An item
    whose import is still in progress is hidden from every reader (queue, scorer, search, stats,
    export); deleting the import's row publishes all its items at once. A row left by a killed
    import (its process gone) is cleared, with its items, by the next import. An import's items
    all have ids from `first_item_id` up, so finding them scans that range of the table, and
    `import_id` needs no index. Items written with an `import_id` are added to the FTS index by
    their writer, a chunk per statement, not by the insert trigger."""
    execute_statements(
        db.conn,
        """
        -- AUTOINCREMENT: an id is never given twice, since published items keep theirs.
        CREATE TABLE imports_in_progress (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            source TEXT NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started_at REAL NOT NULL,
            first_item_id INTEGER NOT NULL
        );
        ALTER TABLE items ADD COLUMN import_id INTEGER;

        -- An import indexes its rows itself, a chunk per statement (`ingest.write_chunk`): the
        -- trigger, one FTS statement per row, made indexing the slowest part of an import.
        DROP TRIGGER items_ai;
        CREATE TRIGGER items_ai AFTER INSERT ON items WHEN new.import_id IS NULL BEGIN
            INSERT INTO items_fts (rowid, text) VALUES (new.id, new.text);
        END;
        """,
    )


@migrations()
def m008_span_suggestions(db: Database) -> None:
    """Span suggestions computed by the scorer for each item of a batch it publishes, so the TUI
    shows them without loading a model, and the span models they came from (one per label and
    encoder graph, replaced each round), so `hnbooks suggest` answers without retraining."""
    execute_statements(
        db.conn,
        """
        -- A batch listed here has the model's suggestions for every item (an item with none has
        -- no row in span_suggestions); a batch not listed is shown with the rules' candidates.
        CREATE TABLE span_suggestion_batches (
            batch_id INTEGER PRIMARY KEY REFERENCES batches(id),
            stored_at REAL NOT NULL
        );
        CREATE TABLE span_suggestions (
            batch_id INTEGER NOT NULL REFERENCES batches(id),
            item_id INTEGER NOT NULL REFERENCES items(id),
            rank INTEGER NOT NULL,
            span_start INTEGER NOT NULL,
            span_end INTEGER NOT NULL,
            label TEXT NOT NULL,
            score REAL NOT NULL,
            source TEXT NOT NULL,
            PRIMARY KEY (batch_id, item_id, rank)
        );

        -- `weights`: the trained head as an .npz file (numpy arrays only, no pickle).
        CREATE TABLE span_models (
            label TEXT NOT NULL,
            model_hash TEXT NOT NULL,
            trained_at REAL NOT NULL,
            through_answer_id INTEGER NOT NULL,
            weights BLOB NOT NULL,
            report TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (label, model_hash)
        );
        """,
    )


@migrations()
def m009_near_duplicates_of_accepted(db: Database) -> None:
    """Which accepted item a batch item nearly duplicates, where that is why it was chosen (the
    TUI says so)."""
    execute_statements(
        db.conn,
        "ALTER TABLE batch_items ADD COLUMN near_duplicate_of INTEGER REFERENCES items(id);",
    )


@migrations()
def m010_label_queries(db: Database) -> None:
    """The words a user gave for a label (`hnbooks seed --query`, `hnbooks labels query`): every
    later round trains on them as a positive and the seed channel searches them, not only the
    round that was told them on its command line."""
    execute_statements(db.conn, "ALTER TABLE labels ADD COLUMN query TEXT;")


READ_AS_IS = frozenset(
    {
        "m005_database_id",
        "m006_answer_passthrough",
        "m009_near_duplicates_of_accepted",
        "m010_label_queries",
    }
)
"""Migrations a read-only opening can do without: what they add no query needs (a read-only
opening never migrates; lacking any other migration it refuses, saying how to upgrade)."""

KNOWN_MIGRATIONS = frozenset(
    migration.name for migration in migrations.pending(Database(memory=True))
)


class SchemaTooNew(Exception):
    """The database was written by a newer hnbooks than this one."""


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def applied_migration_names(conn: sqlite3.Connection) -> set[str]:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
        (Migrations.migrations_table,),
    ).fetchone()
    if exists is None:
        return set()
    rows = conn.execute(
        f"SELECT name FROM {Migrations.migrations_table} WHERE migration_set = ?",
        (migrations.name,),
    ).fetchall()
    return {str(row[0]) for row in rows}


def refuse_newer(conn: sqlite3.Connection, path: str) -> None:
    """Raise `SchemaTooNew` when the database holds a migration this hnbooks does not know."""
    version = schema_version(conn)
    unknown = applied_migration_names(conn) - KNOWN_MIGRATIONS
    if version > LEGACY_VERSION or unknown:
        found = (
            f"schema version {version}"
            if version > LEGACY_VERSION
            else f"migration {sorted(unknown)[0]}"
        )
        raise SchemaTooNew(
            f"{path}: written by a newer hnbooks ({found}, which this one does not know); "
            "upgrade hnbooks to open it"
        )


def migrate(conn: sqlite3.Connection, path: str = "the database") -> int:
    """Apply every migration the database lacks, in one write transaction; return how many ran.

    BEGIN IMMEDIATE first: two programs opening a new database at once must not both migrate it.
    """
    db = Database(conn)
    if schema_version(conn) == LEGACY_VERSION and not migrations.pending(db):
        return 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        refuse_newer(conn, path)
        applied = 0
        for number, migration in enumerate(
            LEGACY_MIGRATIONS[schema_version(conn) :], start=schema_version(conn) + 1
        ):
            migration(conn)
            conn.execute(f"PRAGMA user_version = {number}")
            applied += 1
        pending = len(migrations.pending(db))
        # Inside the open transaction sqlite-utils runs each migration in a savepoint.
        migrations.apply(db)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return applied + pending


FIRST_MIGRATION_TABLES = frozenset(
    {"labels", "items", "rounds", "batches", "batch_items", "answers"}
)


class NotHnbooks(Exception):
    """The file is another program's SQLite database (or not one hnbooks made)."""


def user_tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " ORDER BY name"
    ).fetchall()
    return [str(row[0]) for row in rows]


def is_blank(conn: sqlite3.Connection) -> bool:
    """Nothing in it yet: no schema and user_version 0 (an empty file, or a new one)."""
    return (
        schema_version(conn) == 0 and conn.execute("SELECT 1 FROM sqlite_master").fetchone() is None
    )


def check_is_hnbooks(conn: sqlite3.Connection, path: str) -> None:
    """Raise `NotHnbooks` unless the database is blank or hnbooks'. Reads only.

    hnbooks' databases record their migrations by name (set 'hnbooks'), or are of schema version 1
    (the first release) and hold the first migration's tables.
    """
    version = schema_version(conn)
    if version < 0:
        raise NotHnbooks(
            f"{path}: not an hnbooks database (user_version {version}); left untouched"
        )
    if is_blank(conn):
        return
    if applied_migration_names(conn):
        return
    tables = user_tables(conn)
    if version >= LEGACY_VERSION and FIRST_MIGRATION_TABLES <= set(tables):
        return
    shown = ", ".join(tables[:6]) + (", …" if len(tables) > 6 else "")
    holds = f"it holds the tables {shown}" if tables else f"user_version {version}"
    raise NotHnbooks(
        f"{path}: not an hnbooks database ({holds}, of another program); hnbooks leaves it "
        "untouched: give --db a new file"
    )


def pending_migrations(conn: sqlite3.Connection) -> list[str]:
    """Names of the migrations the database lacks, the legacy ones as `m001`…; reads only."""
    legacy = [f"m{number:03d}" for number in range(schema_version(conn) + 1, LEGACY_VERSION + 1)]
    return legacy + sorted(KNOWN_MIGRATIONS - applied_migration_names(conn))
