"""The scorer and annotators at once, on one file: scoring rounds back to back (real `hnbooks-score`,
fake encoder), new texts imported meanwhile, an annotator process answering every few milliseconds,
and the real TUI waiting on an empty queue. No write may fail ("database is locked" included), no
answer may be lost, and batches published meanwhile must reach both the annotator and the TUI."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

from hnbooks.importing import import_file
from hnbooks.store.db import Store
from hnbooks.store.records import NewAnswer
from tests.helpers import store_with_texts, write_jsonl
from tests.reliability.annotators import check_log, finish, spawn_annotator, start_all
from tests.reliability.conftest import LedgerLine
from tests.reliability.processes import read_rows, sigkill, spawn_tui
from tests.reliability.scorer import BOOK_WORDS, run_scorer, synthetic_texts

BATCH_SIZE = 150


class Importer(threading.Thread):
    """Imports a file of new texts (one write transaction each) until told to stop."""

    def __init__(self, db_path: Path, rng: random.Random, first: int) -> None:
        super().__init__(daemon=True)
        self.db_path, self.rng, self.next_text = db_path, rng, first
        self.stop = threading.Event()
        self.files = 0
        self.errors: list[str] = []

    def run(self) -> None:
        store = Store(self.db_path)
        try:
            while not self.stop.wait(0.3):
                texts = synthetic_texts(self.rng, 300, self.next_text)
                self.next_text += len(texts)
                source = write_jsonl(
                    self.db_path.parent / f"new{self.files}.jsonl", [{"text": t} for t in texts]
                )
                try:
                    import_file(store, source, fmt="jsonl")
                    self.files += 1
                except Exception as error:  # noqa: BLE001 - the test reports every failure
                    self.errors.append(f"{type(error).__name__}: {error}")
        finally:
            store.close()


def test_scorer_importer_and_annotator_at_once_lock_out_and_lose_nothing(
    tmp_path: Path, rng: random.Random, slow: bool, ledger: LedgerLine
) -> None:
    seconds = 60.0 if slow else 10.0
    db_path = tmp_path / "busy.db"
    store, ids = store_with_texts(db_path, synthetic_texts(rng, 600, 0))
    texts = store.texts_for(ids)
    for item_id in ids[:40]:
        book = any(word in texts[item_id] for word in BOOK_WORDS)
        store.record_answer(item_id, NewAnswer("earlier", "accept" if book else "reject"))
    store.close()

    tui = spawn_tui(db_path, "watcher")
    annotator = spawn_annotator(
        db_path, "ann", seed=rng.randrange(10**6), seconds=seconds, pace_ms=6, undo_rate=0.05
    )
    importer = Importer(db_path, rng, first=600)
    try:
        tui.expect_exact(b"Nothing left to annotate")
        start_all([annotator])
        importer.start()
        deadline = time.monotonic() + seconds
        rounds = 0
        tui_saw_batch = False
        while time.monotonic() < deadline or rounds == 0:
            returncode, log = run_scorer(db_path, rng, batch_size=BATCH_SIZE)
            assert returncode == 0, log
            assert "locked" not in log and "Traceback" not in log, log
            rounds += 1
            if not tui_saw_batch:
                # The TUI was waiting on an empty queue: the first batch shows without a restart.
                (first_text,) = read_rows(
                    db_path,
                    "SELECT i.text FROM batch_items bi JOIN items i ON i.id = bi.item_id"
                    " WHERE bi.batch_id = (SELECT MIN(id) FROM batches) AND bi.position = 0",
                )[0]
                tui.expect_exact(first_text.split(":")[0].encode() + b":")
                tui_saw_batch = True
                ledger.add("batches the waiting TUI showed without a restart")
    finally:
        importer.stop.set()
        importer.join()
        sigkill(tui)
    events = finish(annotator)

    assert importer.errors == []
    checked = check_log(db_path, "ann", events)
    started = next(e for e in events if e["event"] == "start")
    batches = [batch_id for (batch_id,) in read_rows(db_path, "SELECT id FROM batches ORDER BY id")]
    assert len(batches) == rounds
    # The annotator started with no batch at all: whatever it answered was published while it ran.
    assert started["latest_batch"] == 0 and checked.answers > 0
    ledger.add("scoring rounds", rounds)
    ledger.add("files imported meanwhile", importer.files)
    ledger.add("answers written", checked.answers)
    ledger.add("undos written", checked.undos)
    ledger.add("batches picked up live", len(checked.batches_served))
    ledger.add("slowest answer write ms", round(checked.slowest_write_s * 1000))
    ledger.add("database is locked", 0)
    ledger.add("lost", 0)
