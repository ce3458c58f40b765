"""`AnswerWriter` without a Textual app: one report per write, in order, and an idle signal."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hnbooks.store.db import Store
from hnbooks.store.records import AnswerValue, NewAnswer
from hnbooks.tui.messages import AnswerSaved, AnswerUndone, WriteFailed, WriteReport
from hnbooks.tui.session import AnswerToWrite, UndoToWrite
from hnbooks.tui.writer import AnswerWriter


def answer(
    item_id: int, value: AnswerValue, key: str, batch_id: int | None = None
) -> AnswerToWrite:
    return AnswerToWrite(
        item_id, NewAnswer("ann", value, batch_id=batch_id, client_key=key), reply_to="screen"
    )


@pytest.fixture
def reports() -> list[WriteReport]:
    return []


@pytest.fixture
def writer(db_path: Path, reports: list[WriteReport]) -> Iterator[AnswerWriter]:
    """A writer on its own connection; closed even when a test fails, so no thread is left behind."""
    if not db_path.exists():
        Store(db_path).close()
    writer = AnswerWriter(Store(db_path, create=False), "ann", "BOOK", reports.append)
    yield writer
    writer.close()
    writer.join(timeout=10)


def test_each_write_is_reported_once_in_order_and_idle_is_signalled(
    db_path: Path,
    item_ids: list[int],
    batch: int,
    writer: AnswerWriter,
    reports: list[WriteReport],
) -> None:
    may_write = threading.Event()
    record_answer = writer.store.record_answer

    def held_record_answer(item_id: int, new: NewAnswer) -> int:
        may_write.wait(10)
        return record_answer(item_id, new)

    writer.store.record_answer = held_record_answer  # type: ignore[method-assign]
    requests = [
        answer(item_ids[0], "accept", "k1"),
        answer(item_ids[1], "reject", "k2", batch_id=batch),
        UndoToWrite(reply_to="screen"),
        answer(item_ids[0], "accept", "k1"),  # the same client key again: stored once
        answer(10_000, "accept", "k3"),  # no such item: reported as failed, the writer goes on
        answer(item_ids[2], "ignore", "k4"),
    ]
    for request in requests:
        writer.submit(request)
    assert writer.in_flight == len(requests)
    assert not writer.wait_idle(timeout=0.05)
    may_write.set()
    assert writer.wait_idle(timeout=10)
    assert writer.in_flight == 0

    assert [report.request for report in reports] == requests
    saved = [r for r in reports if isinstance(r, AnswerSaved)]
    assert [r.request.client_key for r in saved] == ["k1", "k2", "k1", "k4"]
    assert saved[0].answer_id == saved[2].answer_id
    undone = reports[2]
    assert isinstance(undone, AnswerUndone) and undone.answer is not None
    assert undone.answer.item_id == item_ids[1] and undone.shown is not None
    assert undone.shown.item_id == item_ids[1] and undone.shown.batch_id == batch
    failed = reports[4]
    assert isinstance(failed, WriteFailed) and "no item with id 10000" in failed.error

    writer.close()
    writer.join(timeout=10)
    with Store(db_path, create=False) as store:
        assert [(a.item_id, a.answer) for a in store.current_answers(annotator="ann")] == [
            (item_ids[0], "accept"),
            (item_ids[2], "ignore"),
        ]


def test_idle_wakes_an_event_loop_once_the_last_write_is_made(
    item_ids: list[int], writer: AnswerWriter, reports: list[WriteReport]
) -> None:

    async def scenario() -> None:
        await writer.idle()  # nothing submitted: returns at once
        for n, item_id in enumerate(item_ids):
            writer.submit(answer(item_id, "reject", f"k{n}"))
        await asyncio.wait_for(writer.idle(), 10)
        assert len(reports) == len(item_ids) and writer.in_flight == 0

    asyncio.run(scenario())


def test_closing_makes_the_writes_left_then_closes_the_store(
    db_path: Path, item_ids: list[int]
) -> None:
    store = Store(db_path, create=False)
    closed_in: list[str] = []
    close = store.close

    def recording_close() -> None:
        closed_in.append(threading.current_thread().name)
        close()

    store.close = recording_close  # type: ignore[method-assign]
    writer = AnswerWriter(store, "ann", "BOOK", lambda report: None)
    for n, item_id in enumerate(item_ids):
        writer.submit(answer(item_id, "accept", f"k{n}"))
    writer.close()  # right after the submits: every write is still made
    writer.join(timeout=10)
    assert closed_in == ["hnbooks-writer"]
    with Store(db_path, create=False) as check:
        assert check.answer_count("ann") == len(item_ids)


def test_a_writer_that_wrote_nothing_closes_the_store_at_once(db_path: Path) -> None:
    Store(db_path).close()
    store = Store(db_path, create=False)
    closed: list[bool] = []
    close = store.close
    store.close = lambda: closed.append(True) or close()  # type: ignore[method-assign, func-returns-value]
    AnswerWriter(store, "ann", "BOOK", lambda report: None).close()
    assert closed == [True]


def wal_size(db_path: Path) -> int:
    wal = db_path.with_name(db_path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_the_log_is_checkpointed_when_the_writer_idles_and_when_it_closes(
    db_path: Path, item_ids: list[int], reports: list[WriteReport]
) -> None:
    reader = Store(db_path, create=False)  # another connection holding the log open, as the poll's
    writer = AnswerWriter(
        Store(db_path, create=False), "ann", "BOOK", reports.append, checkpoint_idle_s=0.05
    )
    try:
        writer.submit(answer(item_ids[0], "accept", "c1"))
        assert writer.wait_idle(10)
        assert wal_size(db_path) > 0
        for _ in range(200):
            if writer.checkpoints:
                break
            threading.Event().wait(0.01)
        assert writer.checkpoints == 1 and wal_size(db_path) == 0
        threading.Event().wait(0.2)
        assert writer.checkpoints == 1, "checkpointed again with nothing written"
        writer.submit(answer(item_ids[1], "reject", "c2"))
        assert writer.wait_idle(10)
    finally:
        writer.close()
        writer.join(timeout=10)
    assert writer.checkpoints >= 2 and wal_size(db_path) == 0
    assert len(reader.current_answers()) == 2
    reader.close()
