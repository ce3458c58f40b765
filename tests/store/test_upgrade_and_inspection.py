"""A database made by the previous release upgrades in place, and standard SQLite tools read what
hnbooks counts: the `current_answers` view and the FTS index found by sqlite-utils."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from hnbooks.store import Store, schema
from hnbooks.store.records import NewAnswer
from tests.helpers import store_with_texts

RELEASE_DB = Path(__file__).parent / "data" / "release-0.1.0.db"
"""Made by hnbooks 0.1.0 (schema version 1): the demo texts, one scored batch with its round report,
answers by two annotators including an undo and a re-answer."""
SQLITE_UTILS = [sys.executable, "-m", "sqlite_utils"]


def raw_rows(db_path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db_path)
    try:
        return [tuple(row) for row in conn.execute(sql).fetchall()]
    finally:
        conn.close()


def test_a_database_of_the_previous_release_upgrades_and_keeps_every_answer(tmp_path: Path) -> None:
    db_path = tmp_path / "old.db"
    shutil.copy(RELEASE_DB, db_path)
    before = raw_rows(db_path, "SELECT * FROM answers ORDER BY id")
    assert raw_rows(db_path, "PRAGMA user_version") == [(1,)]
    assert len(before) == 7

    store = Store(db_path, create=False)
    current = store.current_answers()
    assert [(a.annotator, a.answer) for a in current] == [
        ("alice", "accept"),
        ("alice", "reject"),
        ("alice", "ignore"),
        ("bob", "reject"),
    ]
    assert current[0].spans and current[0].spans[0].label == "BOOK"
    queued = store.next_queued_item("alice")
    assert queued is not None and queued.position == 3
    (round_,) = store.rounds()
    assert round_.report.mode == "model" and round_.report.batch_id == 1
    assert (
        round_.report.embedding is not None
        and round_.report.embedding.device == "CPUExecutionProvider"
    )
    assert round_.report.prevalence is not None and round_.report.prevalence.estimate == 0.01
    assert store.search("book")
    store.close()

    assert raw_rows(db_path, "SELECT * FROM answers ORDER BY id") == before
    applied = {name for (name,) in raw_rows(db_path, "SELECT name FROM _sqlite_migrations")}
    assert applied == schema.KNOWN_MIGRATIONS
    # Opening again migrates nothing.
    reopened = sqlite3.connect(db_path, isolation_level=None)
    assert schema.migrate(reopened) == 0
    reopened.close()


def test_raw_sql_counts_current_answers_as_hnbooks_does(db_path: Path) -> None:
    store, ids = store_with_texts(db_path, ["one text", "two text", "three text"])
    store.record_answer(ids[0], NewAnswer("ann", "accept"))
    store.record_answer(ids[0], NewAnswer("ann", "reject"))
    store.record_answer(ids[1], NewAnswer("ann", "accept"))
    store.undo_last("ann")
    store.record_answer(ids[2], NewAnswer("bob", "ignore"))
    assert (
        raw_rows(db_path, "SELECT COUNT(*) FROM current_answers")
        == [(store.answer_count(),)]
        == [(2,)]
    )
    assert raw_rows(db_path, "SELECT COUNT(*) FROM answers") == [(5,)]
    store.close()


def test_sqlite_utils_search_finds_texts_of_an_imported_database(tmp_path: Path) -> None:
    db_path = tmp_path / "books.db"
    source = tmp_path / "texts.jsonl"
    source.write_text(
        "\n".join(
            json.dumps({"text": t})
            for t in ["I loved Snow Crash by Neal Stephenson", "Rust or Go?"]
        ),
        encoding="utf-8",
    )
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from hnbooks.cli import main; main()",
            "import",
            str(source),
            "--db",
            str(db_path),
        ],
        capture_output=True,
        check=True,
    )
    found = subprocess.run(
        [*SQLITE_UTILS, "search", str(db_path), "items", "stephenson", "--csv"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Snow Crash" in found.stdout and "Rust or Go" not in found.stdout
