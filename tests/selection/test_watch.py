"""The watching scorer in this process (fake encoder, real store and cache): it publishes before the
queue runs out, acts on a round asked for, survives a failing round, and stops when told."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from hnbooks.scoring import watch as watch_module
from hnbooks.scoring.cache import EmbeddingCache
from hnbooks.scoring.job import RoundConfig
from hnbooks.scoring.prepare import LoadedEncoder
from hnbooks.scoring.watch import WatchConfig, Watcher
from hnbooks.store import Store
from hnbooks.store.records import IncomingItem, NewAnswer
from hnbooks.store.scorer import LeaseHolder
from tests.reliability.fakes import FakeEncoder
from tests.reliability.scorer import synthetic_texts

BATCH = 10


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class RunningWatcher:
    def __init__(self, db_path: Path, annotators_store: Store, lines: list[str]) -> None:
        store = Store(db_path)
        self.store = store
        encoder = FakeEncoder()
        cache = EmbeddingCache.open(db_path, encoder.model_hash, encoder.dimension)
        loaded = LoadedEncoder(encoder, cache, "fake", encoder.provider)  # type: ignore[arg-type]
        self.holder = LeaseHolder.this_process("watch")
        assert store.acquire_scorer_lease(self.holder).holder == self.holder
        config = WatchConfig(
            round=RoundConfig(label="BOOK", batch_size=BATCH, random_seed=3),
            low_water=BATCH // 2,
            poll_s=0.02,
            heartbeat_s=0.2,
            first_backoff_s=0.05,
        )
        self.stop = threading.Event()
        self.watcher = Watcher(store, loaded, config, self.holder, self.stop, lines.append)
        self.thread = threading.Thread(target=self.watcher.run)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        self.store.close()
        assert not self.thread.is_alive(), "the watcher did not stop"


@pytest.fixture
def pool(db_path: Path) -> Iterator[tuple[Path, Store]]:
    """The database and the annotators' connection to it (the watcher has its own, as the
    TUI and the scorer are two processes)."""
    import random

    store = Store(db_path)
    texts = synthetic_texts(random.Random(5), 300, 0)
    store.add_items([IncomingItem(n, text, {}) for n, text in enumerate(texts)], source="t")
    yield db_path, store
    store.close()


def answer_queue(store: Store, annotator: str, count: int) -> None:
    for entry in store.queue(annotator)[:count]:
        verdict = "accept" if "book" in entry.text.lower() else "reject"
        store.record_answer(
            entry.item_id,
            NewAnswer(annotator, verdict, batch_id=entry.batch, strategy=entry.strategy),
        )


def test_the_next_batch_is_published_before_the_queue_runs_out(pool: tuple[Path, Store]) -> None:
    db_path, store = pool
    lines: list[str] = []
    running = RunningWatcher(db_path, store, lines)
    try:
        wait_until(lambda: store.batch_count() == 1, "the first batch")
        for expected_batches in (2, 3, 4):
            # Answer down to just under the low-water mark, never to empty.
            answer_queue(store, "ann", len(store.queue("ann")) - BATCH // 2 + 1)
            wait_until(
                lambda n=expected_batches: store.batch_count() == n, f"batch {expected_batches}"
            )
            assert len(store.queue("ann")) >= BATCH // 2
        lease = store.scorer_lease()
        assert lease is not None and lease.alive and lease.holder == running.holder
        assert lease.last_round_at is not None
        assert not any("failed" in line for line in lines), lines
    finally:
        running.close()


def test_a_round_asked_for_runs_and_the_request_is_marked_handled(pool: tuple[Path, Store]) -> None:
    db_path, store = pool
    running = RunningWatcher(db_path, store, [])
    try:
        wait_until(lambda: store.batch_count() == 1, "the first batch")
        wait_until(
            lambda: (lease := store.scorer_lease()) is not None and lease.state == "idle", "idle"
        )
        answer_queue(store, "ann", 1)
        request = store.request_round("ann")
        wait_until(lambda: store.batch_count() == 2, "the requested round")
        wait_until(lambda: request not in store.pending_round_requests(), "the request handled")
    finally:
        running.close()


def test_a_failing_round_is_logged_and_retried(
    pool: tuple[Path, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path, store = pool
    real_run_round = watch_module.run_round
    calls = {"n": 0}

    def fails_once(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("the disk hiccuped")
        return real_run_round(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(watch_module, "run_round", fails_once)
    lines: list[str] = []
    running = RunningWatcher(db_path, store, lines)
    try:
        wait_until(lambda: store.batch_count() == 1, "the retried first batch")
        assert any("round failed: RuntimeError: the disk hiccuped" in line for line in lines), lines
    finally:
        running.close()


def test_an_idle_watcher_does_not_run_rounds_on_its_own(
    pool: tuple[Path, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path, store = pool
    checks = {"n": 0}
    real_step = Watcher.step

    def counted(self: Watcher) -> None:
        checks["n"] += 1
        real_step(self)

    monkeypatch.setattr(Watcher, "step", counted)
    running = RunningWatcher(db_path, store, [])
    try:
        wait_until(lambda: store.batch_count() == 1, "the first batch")
        seen = checks["n"]
        # Twenty more checks with nothing new: none of them may start a round.
        wait_until(lambda: checks["n"] >= seen + 20, "twenty idle checks")
        assert store.batch_count() == 1
        assert len(store.rounds()) == 1
    finally:
        running.close()


def test_texts_imported_while_watching_are_embedded_without_a_restart(
    pool: tuple[Path, Store],
) -> None:
    db_path, store = pool
    running = RunningWatcher(db_path, store, [])
    try:
        wait_until(lambda: store.batch_count() == 1, "the first batch")
        new_ids = store.add_items(
            [
                IncomingItem(1000 + n, f"a new comment number {n} about a book I read", {})
                for n in range(40)
            ],
            source="later",
        )
        cache = running.watcher.loaded.cache
        wait_until(lambda: cache.missing_ids(np.array(new_ids)).size == 0, "the new texts embedded")
        assert cache.filled_count == store.item_count()
    finally:
        running.close()
