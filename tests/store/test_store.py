"""The store: schema, append-only answers, undo, the queue, search, several annotators."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hnbooks.store import schema
from hnbooks.store.db import Store, StoreError
from hnbooks.store.records import NewAnswer, Span
from tests.helpers import publish, store_with_texts


def test_new_database_is_migrated_and_in_wal_mode(db_path: Path) -> None:
    Store(db_path).close()
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.LEGACY_VERSION
    applied = {
        r[0]
        for r in conn.execute("SELECT name FROM _sqlite_migrations WHERE migration_set = 'hnbooks'")
    }
    assert applied == schema.KNOWN_MIGRATIONS
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"items", "answers", "batches", "batch_items", "rounds", "labels", "items_fts"} <= tables


def test_database_from_a_newer_schema_is_refused(db_path: Path) -> None:
    Store(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {schema.LEGACY_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer hnbooks"):
        Store(db_path)


def test_database_with_a_migration_this_hnbooks_does_not_know_is_refused(db_path: Path) -> None:
    Store(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('hnbooks', 'm999_future', 'x')"
    )
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer hnbooks.*m999_future"):
        Store(db_path)


def test_missing_directory_and_missing_file_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "nope" / "x.db")
    with pytest.raises(StoreError, match="no database here"):
        Store(tmp_path / "x.db", create=False)


def test_answers_are_append_only_and_undo_restores_the_previous_one(db_path: Path) -> None:
    store, ids = store_with_texts(db_path, ["first text", "second text"])
    first = store.record_answer(ids[0], NewAnswer("ann", "reject"))
    store.record_answer(ids[0], NewAnswer("ann", "accept"))
    assert [a.answer for a in store.current_answers()] == ["accept"]
    undone = store.undo_last("ann")
    assert undone is not None and undone.answer == "accept"
    current = store.current_answers()
    assert [(a.id, a.answer) for a in current] == [(first, "reject")]
    rows = sqlite3.connect(db_path).execute("SELECT answer FROM answers ORDER BY id").fetchall()
    assert [r[0] for r in rows] == ["reject", "accept", "undo"]


def test_undo_walks_back_without_limit_and_then_reports_nothing(db_path: Path) -> None:
    store, ids = store_with_texts(db_path, ["a one", "b two", "c three"])
    for item_id in ids:
        store.record_answer(item_id, NewAnswer("ann", "accept"))
    undone = [store.undo_last("ann") for _ in range(3)]
    assert [u.item_id for u in undone if u] == list(reversed(ids))
    assert store.undo_last("ann") is None
    assert store.current_answers() == []


def test_same_client_key_never_doubles_an_answer(db_path: Path) -> None:
    store, ids = store_with_texts(db_path, ["only text"])
    first = store.record_answer(ids[0], NewAnswer("ann", "accept", client_key="k1"))
    second = store.record_answer(ids[0], NewAnswer("ann", "accept", client_key="k1"))
    assert first == second
    assert store.answer_count() == 1


def test_spans_outside_the_text_are_refused(db_path: Path) -> None:
    store, ids = store_with_texts(db_path, ["short"])
    with pytest.raises(StoreError, match="outside the text"):
        store.record_answer(ids[0], NewAnswer("ann", "accept", spans=[Span(2, 40, "BOOK")]))
    assert store.answer_count() == 0


def test_queue_serves_oldest_batch_first_and_skips_what_the_annotator_answered(
    db_path: Path,
) -> None:
    store, ids = store_with_texts(db_path, [f"text number {n}" for n in range(6)])
    first_batch = publish(store, ids[:3])
    second_batch = publish(store, ids[3:])
    served = store.next_queued_item("ann")
    assert served is not None and (served.batch_id, served.item.id) == (first_batch, ids[0])
    store.record_answer(ids[1], NewAnswer("ann", "accept"))  # answered elsewhere (e.g. search)
    store.record_answer(ids[0], NewAnswer("ann", "reject", batch_id=first_batch))
    served = store.next_queued_item("ann")
    assert served is not None and served.item.id == ids[2]
    assert (served.batch_size, served.answered_in_batch) == (3, 2)
    store.record_answer(ids[2], NewAnswer("ann", "ignore", batch_id=first_batch))
    served = store.next_queued_item("ann")
    assert served is not None and (served.batch_id, served.item.id) == (second_batch, ids[3])


def test_two_annotators_keep_their_own_progress(db_path: Path) -> None:
    store, ids = store_with_texts(db_path, ["alpha text", "beta text"])
    publish(store, ids)
    store.record_answer(ids[0], NewAnswer("alice", "accept"))
    alice_next, bob_next = store.next_queued_item("alice"), store.next_queued_item("bob")
    assert alice_next is not None and alice_next.item.id == ids[1]
    assert bob_next is not None and bob_next.item.id == ids[0]
    store.record_answer(ids[0], NewAnswer("bob", "reject"))
    assert {(a.annotator, a.answer) for a in store.current_answers()} == {
        ("alice", "accept"),
        ("bob", "reject"),
    }
    assert store.undo_last("bob") is not None
    assert [a.annotator for a in store.current_answers()] == ["alice"]


def test_excluded_items_are_answered_or_waiting(db_path: Path) -> None:
    store, ids = store_with_texts(db_path, [f"text {n}" for n in range(5)])
    publish(store, ids[:2])
    store.record_answer(ids[4], NewAnswer("ann", "reject"))
    assert store.excluded_item_ids() == {ids[0], ids[1], ids[4]}


def test_published_batch_is_all_or_nothing(db_path: Path) -> None:
    store, ids = store_with_texts(db_path, ["x text", "y text"])
    from hnbooks.store.records import BatchEntry

    with pytest.raises(StoreError):
        store.publish_batch([BatchEntry(ids[0], "top"), BatchEntry(ids[0], "top")], source="t")
    with pytest.raises(StoreError):
        store.publish_batch([BatchEntry(ids[0], "top"), BatchEntry(99999, "top")], source="t")
    assert store.batch_count() == 0
    assert sqlite3.connect(db_path).execute("SELECT COUNT(*) FROM batch_items").fetchone()[0] == 0


def test_keyword_and_regex_search_with_highlights(db_path: Path) -> None:
    store, ids = store_with_texts(
        db_path, ["I loved Snow Crash by Neal Stephenson", "Nothing here", "snow in winter"]
    )
    hits = store.search("snow crash")
    assert [h.item.id for h in hits] == [ids[0]]
    assert hits[0].match_ranges == ((8, 12), (13, 18))
    regex_hits = store.search(r"by [A-Z]\w+ [A-Z]\w+", mode="regex")
    assert [h.item.id for h in regex_hits] == [ids[0]]
    with pytest.raises(StoreError, match="invalid regular expression"):
        store.search("(", mode="regex")
    assert store.search('"; DROP TABLE items; --') == []


def test_verdicts_for_classification_and_span_answers(db_path: Path) -> None:
    store, ids = store_with_texts(db_path, ["Read Dune now", "plain words", "other"])
    store.record_answer(
        ids[0],
        NewAnswer("a", "accept", label=None, view_id="ner_manual", spans=[Span(5, 9, "BOOK")]),
    )
    store.record_answer(ids[1], NewAnswer("a", "accept", label=None, view_id="ner_manual"))
    store.record_answer(ids[2], NewAnswer("a", "accept", label="WORK_OF_ART"))
    verdicts = {a.item_id: a.verdict_for("BOOK") for a in store.current_answers()}
    assert verdicts == {ids[0]: True, ids[1]: False, ids[2]: None}


def test_checkpoint_folds_the_write_ahead_log_into_the_database(db_path: Path) -> None:
    store, ids = store_with_texts(db_path, [f"text {n}" for n in range(50)])
    wal = db_path.with_name(db_path.name + "-wal")
    assert wal.stat().st_size > 0
    assert store.checkpoint() is True
    assert wal.stat().st_size == 0
    store.record_answer(ids[0], NewAnswer("ann", "accept"))
    reader = sqlite3.connect(db_path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM answers").fetchone()
    # A reader holding an old snapshot: the checkpoint cannot finish, and says so without waiting.
    assert store.checkpoint() is False
    reader.execute("COMMIT")
    reader.close()
    assert store.checkpoint() is True
    store.close()


def test_backup_is_one_self_contained_file(tmp_path: Path) -> None:
    store, ids = store_with_texts(tmp_path / "x.db", [f"text {n}" for n in range(20)])
    store.record_answer(ids[0], NewAnswer("ann", "accept"))
    copy = tmp_path / "copy.db"
    store.backup(copy)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("copy")) == ["copy.db"]
    conn = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 20
    assert conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 1
    conn.close()
    with Store(copy) as copied:
        assert copied.database_id() == store.database_id()
        assert [a.item_id for a in copied.current_answers()] == [ids[0]]
    store.close()


def test_backup_refuses_an_existing_destination_unless_told(tmp_path: Path) -> None:
    store, ids = store_with_texts(tmp_path / "x.db", ["one text", "two texts"])
    existing = tmp_path / "existing.db"
    existing.write_bytes(b"precious")
    with pytest.raises(StoreError, match="already exists"):
        store.backup(existing)
    assert existing.read_bytes() == b"precious"
    with pytest.raises(StoreError, match="is the database itself"):
        store.backup(tmp_path / "x.db", overwrite=True)
    with pytest.raises(StoreError, match="does not exist"):
        store.backup(tmp_path / "nope" / "copy.db")
    store.backup(existing, overwrite=True)
    with Store(existing, readonly=True) as copied:
        assert copied.item_count() == 2
    store.close()


def test_backup_is_consistent_while_another_connection_writes(tmp_path: Path) -> None:
    import threading

    store, ids = store_with_texts(tmp_path / "x.db", [f"text {n}" for n in range(200)])
    writer = Store(tmp_path / "x.db")
    stop = threading.Event()

    def keep_answering() -> None:
        n = 0
        while not stop.is_set():
            writer.record_answer(ids[n % len(ids)], NewAnswer("ann", "accept"))
            n += 1

    thread = threading.Thread(target=keep_answering)
    thread.start()
    try:
        for n in range(5):
            store.backup(tmp_path / f"copy{n}.db")
    finally:
        stop.set()
        thread.join()
    for n in range(5):
        conn = sqlite3.connect(tmp_path / f"copy{n}.db")
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
    writer.close()
    store.close()


def test_a_common_word_is_ranked_among_its_newest_matches(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ranking every match of a word found in millions of texts takes seconds; the search ranks
    the newest few thousand, so an old text that mentions the word most is left out."""
    from hnbooks.store import items

    monkeypatch.setattr(items, "SEARCH_RANKED_MATCHES", 10)
    texts = ["dune dune dune dune, the oldest and most about it"]
    texts += [
        f"note {n}: {'dune dune' if n % 4 == 0 else 'dune'} and other words" for n in range(29)
    ]
    store, _ = store_with_texts(db_path, texts)
    with store:
        newest_ten = set(texts[-10:])
        hits = [hit.item.text for hit in store.search("dune", limit=5)]
        assert set(hits) <= newest_ten
        # Among those, the texts that say it twice rank first.
        assert all("dune dune" in text for text in hits[:2])
        assert texts[0] not in hits
        # A limit beyond the ranked window returns every match.
        assert len(store.search("dune", limit=100)) == 30
