"""Several annotators on one database at once: four processes answering (and undoing) every few
milliseconds, each through its own queue, until every batch is done for each of them; the same
four in split feed, where each item goes to one of them; and one annotator in two sessions (two
terminals), which are never served the same item."""

from __future__ import annotations

import json
import random
from pathlib import Path

from hnbooks.store.db import Store
from tests.helpers import publish, store_with_texts
from tests.reliability.annotators import (
    check_log,
    check_sessions,
    finish,
    spawn_annotator,
    start_all,
)
from tests.reliability.conftest import LedgerLine
from tests.reliability.processes import read_rows, run_cli

NAMES = ["ann", "bob", "cat", "dan"]


def test_four_annotators_each_keep_their_answers_queue_and_progress(
    tmp_path: Path, rng: random.Random, slow: bool, ledger: LedgerLine
) -> None:
    batches, batch_size = (6, 50) if slow else (3, 30)
    db_path = tmp_path / "team.db"
    store, ids = store_with_texts(
        db_path, [f"comment {n} about things" for n in range(batches * batch_size)]
    )
    batch_ids = [publish(store, ids[b * batch_size : (b + 1) * batch_size]) for b in range(batches)]
    store.close()

    annotators = [
        spawn_annotator(
            db_path,
            name,
            seed=rng.randrange(10**6),
            until_empty=True,
            seconds=120,
            pace_ms=2,
            undo_rate=0.15,
        )
        for name in NAMES
    ]
    start_all(annotators)
    logs = {annotator.name: finish(annotator) for annotator in annotators}

    with Store(db_path) as store:
        for name, events in logs.items():
            checked = check_log(db_path, name, events)
            ledger.add("answers written", checked.answers)
            ledger.add("undos written", checked.undos)
            # Everyone answered everything once: their own queue and progress say so.
            assert store.queue(name) == []
            assert store.answer_count(name) == len(ids)
            for batch_id in batch_ids:
                assert store.batch_progress(batch_id, name) == (batch_size, batch_size)
            assert sorted(a.item_id for a in store.current_answers(annotator=name)) == sorted(ids)
    stats = run_cli("hnbooks", "stats", "--json", "--db", str(db_path), cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    by_annotator = json.loads(stats.stdout)["answers_by_annotator"]
    assert {name: sum(counts.values()) for name, counts in by_annotator.items()} == dict.fromkeys(
        NAMES, len(ids)
    )
    ledger.add("annotators", len(NAMES))
    ledger.add("items served twice", 0)
    ledger.add("answers lost or misattributed", 0)


def test_four_annotators_in_split_feed_never_get_the_same_item(
    tmp_path: Path, rng: random.Random, slow: bool, ledger: LedgerLine
) -> None:
    batches, batch_size = (6, 50) if slow else (3, 30)
    db_path = tmp_path / "split.db"
    store, ids = store_with_texts(
        db_path, [f"comment {n} about things" for n in range(batches * batch_size)]
    )
    for b in range(batches):
        publish(store, ids[b * batch_size : (b + 1) * batch_size])
    store.set_feed_mode("split")
    store.close()

    annotators = [
        spawn_annotator(
            db_path,
            name,
            seed=rng.randrange(10**6),
            until_empty=True,
            seconds=120,
            pace_ms=2,
            undo_rate=0.1,
            session=True,
        )
        for name in NAMES
    ]
    start_all(annotators)
    logs = {annotator.name: finish(annotator) for annotator in annotators}

    served: dict[str, set[int]] = {}
    with Store(db_path) as store:
        for name, events in logs.items():
            checked = check_log(db_path, name, events)
            ledger.add("answers written", checked.answers)
            ledger.add("undos written", checked.undos)
            served[name] = {e["item"] for e in events if e["event"] == "served"}
            assert store.queue(name) == []
            assert store.remaining_for(name) == 0
        # Each item was served to one annotator only, and is answered once, by them.
        for n, name in enumerate(NAMES):
            for other in NAMES[n + 1 :]:
                assert not served[name] & served[other], f"{name} and {other} shared items"
        current = store.current_answers()
        assert sorted(a.item_id for a in current) == sorted(ids)
        for a in current:
            assert a.item_id in served[a.annotator]
        assert sum(1 for items in served.values() if items) >= 2, "one annotator took everything"
    assert read_rows(db_path, "SELECT COUNT(*) FROM claims") == [(0,)], "claims left behind"
    ledger.add("annotators", len(NAMES))
    ledger.add("items served to two annotators", 0)


def test_one_annotator_in_two_sessions_never_answers_an_item_twice(
    tmp_path: Path, rng: random.Random, slow: bool, ledger: LedgerLine
) -> None:
    batches, batch_size = (6, 50) if slow else (3, 30)
    db_path = tmp_path / "terminals.db"
    store, ids = store_with_texts(
        db_path, [f"comment {n} about things" for n in range(batches * batch_size)]
    )
    for b in range(batches):
        publish(store, ids[b * batch_size : (b + 1) * batch_size])
    store.close()

    sessions = [
        spawn_annotator(
            db_path,
            "ann",
            seed=rng.randrange(10**6),
            log_name=f"ann-{n}",
            until_empty=True,
            seconds=120,
            pace_ms=2,
            undo_rate=0,
            session=True,
        )
        for n in range(2)
    ]
    start_all(sessions)
    logs = [finish(session) for session in sessions]

    checked = check_sessions(db_path, "ann", logs)
    ledger.add("answers written", checked.answers)
    ledger.add(
        "skipped as answered elsewhere",
        sum(e["event"] == "skipped" for events in logs for e in events),
    )
    assert all(any(e["event"] == "answer" for e in events) for events in logs)
    with Store(db_path) as store:
        assert store.queue("ann") == []
        assert sorted(a.item_id for a in store.current_answers(annotator="ann")) == sorted(ids)
    assert read_rows(db_path, "SELECT COUNT(*) FROM claims") == [(0,)], "claims left behind"
    ledger.add("sessions", len(sessions))
    ledger.add("items served to two sessions", 0)
    ledger.add("items answered twice", 0)
