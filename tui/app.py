"""`AnnotateApp`: the Textual application behind `hnbooks-tui`.

The app owns the store connection, the annotator's name and the one writer: every answer and undo goes
through `submit_write`, which queues it and lets a thread worker drain the queue in order. The
screens never wait for a write; they are told when it is done (`AnswerSaved`, `AnswerUndone`,
`WriteFailed`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from threading import Lock

from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.message import Message
from textual.reactive import var
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from hnbooks.store.db import Store, StoreError
from hnbooks.store.records import Answer
from hnbooks.tui.session import (
    QUEUE_KEY_PREFIX,
    AnswerToWrite,
    SessionTally,
    ShownItem,
    WriteRequest,
    shown_from_answer,
)


# Textual sets bookkeeping attributes on every message, so messages are plain dataclasses; what they
# carry (requests, answers, items) is frozen.
@dataclass
class AnswerSaved(Message, bubble=False):
    """An answer was committed to the database."""

    request: AnswerToWrite
    answer_id: int


@dataclass
class AnswerUndone(Message, bubble=False):
    """The annotator's latest answer was taken back (`answer` is None when there was none)."""

    answer: Answer | None
    shown: ShownItem | None
    """The undone answer's item, ready to show again."""


@dataclass
class WriteFailed(Message, bubble=False):
    """A write could not be made; nothing was stored. `error` says why, for the user."""

    request: WriteRequest
    error: str


class AnnotateApp(App[None]):
    """Keyboard annotation over one hnbooks database, as one annotator."""

    CSS_PATH = "app.tcss"
    TITLE = "hnbooks"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("ctrl+q", "quit", "Quit", id="quit-anywhere", show=False, priority=True),
    ]

    tally: var[SessionTally] = var(SessionTally(started_at=0.0), init=False)
    """This session's answers and positives (replaced, never mutated, so screens can watch it)."""

    def __init__(
        self,
        db_path: str | Path,
        annotator: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        poll_interval_s: float = 1.0,
    ) -> None:
        super().__init__()
        if not annotator:
            raise StoreError("an annotator name is needed (--annotator NAME)")
        self.store = Store(db_path, create=False)
        self.annotator = annotator
        self.labels = self.store.labels() or ["BOOK"]
        self.clock = clock
        self.poll_interval_s = poll_interval_s
        self.set_reactive(AnnotateApp.tally, SessionTally(started_at=clock()))
        self._queued_writes: deque[WriteRequest] = deque()
        self._queued_writes_lock = Lock()
        self._writer_running = False
        self._closing = False
        self._writer: Worker[None] | None = None
        self._items_answered_elsewhere: set[int] = set()

    def get_default_screen(self) -> Screen[None]:
        from hnbooks.tui.annotate import AnnotateScreen

        return AnnotateScreen()

    # -- writing ----------------------------------------------------------------------------------

    @property
    def writes_in_flight(self) -> int:
        """Writes queued or being made."""
        with self._queued_writes_lock:
            return len(self._queued_writes) + (1 if self._writer_running else 0)

    def submit_write(self, request: WriteRequest) -> None:
        """Queue a write; it is made after every write queued before it, off the UI thread."""
        if isinstance(request, AnswerToWrite) and not request.client_key.startswith(QUEUE_KEY_PREFIX):
            self._items_answered_elsewhere.add(request.item_id)
        with self._queued_writes_lock:
            self._queued_writes.append(request)
            start_writer = not self._writer_running
            self._writer_running = True
        if start_writer:
            self._writer = self.drain_writes()

    def take_items_answered_elsewhere(self) -> set[int]:
        """Items answered on the search or review screen since the last call (the queue drops them)."""
        taken, self._items_answered_elsewhere = self._items_answered_elsewhere, set()
        return taken

    # Never exclusive: a cancelled write would be a lost answer. One drainer at a time keeps the
    # writes in key-press order, so an undo always takes back what was answered just before it.
    @work(thread=True, group="writes", exit_on_error=False)
    def drain_writes(self) -> None:
        while True:
            with self._queued_writes_lock:
                if not self._queued_writes:
                    self._writer_running = False
                    if self._closing:
                        self.store.close()
                    return
                request = self._queued_writes.popleft()
            self.perform_write(request)

    def perform_write(self, request: WriteRequest) -> None:
        """Make one write and report it; runs in the writer thread."""
        try:
            if isinstance(request, AnswerToWrite):
                answer_id = self.store.record_answer(
                    request.item_id,
                    self.annotator,
                    request.answer,
                    label=request.label,
                    spans=request.spans,
                    view_id=request.view_id,
                    batch_id=request.batch_id,
                    strategy=request.strategy,
                    score=request.score,
                    client_key=request.client_key,
                )
                self.post_message(AnswerSaved(request, answer_id))
                if request.reply_to is not None:
                    request.reply_to.post_message(AnswerSaved(request, answer_id))
            else:
                undone = self.store.undo_last(self.annotator)
                shown = None
                if undone is not None:
                    try:
                        shown = shown_from_answer(self.store, undone, self.annotator, self.labels[0])
                    except StoreError:
                        pass  # the undo is committed; the screen says the item could not be shown
                self.post_message(AnswerUndone(undone, shown))
                if request.reply_to is not None:
                    request.reply_to.post_message(AnswerUndone(undone, shown))
        except Exception as error:  # noqa: BLE001 - any failure must reach the user, not kill the writer
            message = str(error) if isinstance(error, StoreError) else f"{type(error).__name__}: {error}"
            self.post_message(WriteFailed(request, message))
            if request.reply_to is not None:
                request.reply_to.post_message(WriteFailed(request, message))

    @on(AnswerSaved)
    def count_answer(self, event: AnswerSaved) -> None:
        self.tally = self.tally.counted(event.answer_id, event.request.answer)

    @on(AnswerUndone)
    def uncount_answer(self, event: AnswerUndone) -> None:
        if event.answer is not None:
            self.tally = self.tally.uncounted(event.answer.id)

    @on(WriteFailed)
    def report_failed_write(self, event: WriteFailed) -> None:
        self.notify(f"not saved: {event.error}", title="write failed", severity="error", timeout=10, markup=False)

    async def wait_for_writes(self) -> None:
        """Return once every queued write is made (or has failed and been reported)."""
        while self.writes_in_flight:
            writer = self._writer
            if writer is not None and writer.state in (WorkerState.PENDING, WorkerState.RUNNING):
                await self.workers.wait_for_complete([writer])
            elif writer is not None and writer.state is WorkerState.ERROR:
                # perform_write catches every error, so this is a bug: start a new drainer rather
                # than leave answers unwritten.
                self._writer = self.drain_writes()
            else:
                # A drainer cancelled at shutdown keeps draining in its thread: wait for its flag.
                await asyncio.sleep(0.001)

    async def action_quit(self) -> None:
        """Quit once every answer given is in the database."""
        if self.writes_in_flight:
            self.notify("saving the last answers…", timeout=2)
        await self.wait_for_writes()
        self.exit()

    def on_unmount(self) -> None:
        # The writer outlives the app's message loop (its thread is not interruptible): when it is
        # still draining, it closes the store after its last write instead.
        with self._queued_writes_lock:
            self._closing = True
            close_now = not self._writer_running
        if close_now:
            self.store.close()
