"""`AnnotateApp`: the Textual application behind `hnbooks-tui`.

The app owns the store connection, the annotator's name and the one writer: every answer and undo goes
through `submit_write`, which queues it for one long-lived writer thread that makes them in order. The UI
thread never blocks on a write; screens are told when it is done (`AnswerSaved`, `AnswerUndone`,
`WriteFailed`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from queue import SimpleQueue
from threading import Lock, Thread

from textual import on
from textual.app import App
from textual.binding import Binding
from textual.message import Message
from textual.reactive import var
from textual.screen import Screen

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
        self._writes: SimpleQueue[WriteRequest | None] = SimpleQueue()
        """Writes in key-press order; None tells the writer to close the store and stop."""
        self._unfinished_writes = 0
        self._unfinished_lock = Lock()
        # One long-lived writer thread: starting a worker per answer would put a thread start
        # between every key press and its commit.
        self._writer = Thread(target=self.write_in_order, name="hnbooks-writer")
        self._items_answered_elsewhere: set[int] = set()

    def get_default_screen(self) -> Screen[None]:
        from hnbooks.tui.annotate import AnnotateScreen

        return AnnotateScreen()

    # -- writing ----------------------------------------------------------------------------------

    @property
    def writes_in_flight(self) -> int:
        """Writes queued or being made."""
        with self._unfinished_lock:
            return self._unfinished_writes

    def submit_write(self, request: WriteRequest) -> None:
        """Queue a write; it is made after every write queued before it, off the UI thread."""
        if isinstance(request, AnswerToWrite) and not request.client_key.startswith(
            QUEUE_KEY_PREFIX
        ):
            self._items_answered_elsewhere.add(request.item_id)
        with self._unfinished_lock:
            self._unfinished_writes += 1
        if not self._writer.is_alive() and self._writer.ident is None:
            self._writer.start()
        self._writes.put(request)

    def take_items_answered_elsewhere(self) -> set[int]:
        """Items answered on the search or review screen since the last call (the queue drops them)."""
        taken, self._items_answered_elsewhere = self._items_answered_elsewhere, set()
        return taken

    def write_in_order(self) -> None:
        """The writer thread: one write at a time, in the order they were submitted, never
        cancelled (a cancelled write would be a lost answer)."""
        while True:
            request = self._writes.get()
            if request is None:
                self.store.close()
                return
            try:
                self.perform_write(request)
            finally:
                with self._unfinished_lock:
                    self._unfinished_writes -= 1

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
                # The screen first: it shows the next item; the app's tally can follow a frame later.
                if request.reply_to is not None:
                    request.reply_to.post_message(AnswerSaved(request, answer_id))
                self.post_message(AnswerSaved(request, answer_id))
            else:
                undone = self.store.undo_last(self.annotator)
                shown = None
                if undone is not None:
                    try:
                        shown = shown_from_answer(
                            self.store, undone, self.annotator, self.labels[0]
                        )
                    except StoreError:
                        pass  # the undo is committed; the screen says the item could not be shown
                self.post_message(AnswerUndone(undone, shown))
                if request.reply_to is not None:
                    request.reply_to.post_message(AnswerUndone(undone, shown))
        except Exception as error:  # noqa: BLE001 - any failure must reach the user, not kill the writer
            message = (
                str(error) if isinstance(error, StoreError) else f"{type(error).__name__}: {error}"
            )
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
        self.notify(
            f"not saved: {event.error}",
            title="write failed",
            severity="error",
            timeout=10,
            markup=False,
        )

    async def wait_for_writes(self) -> None:
        """Return once every queued write is made (or has failed and been reported)."""
        while self.writes_in_flight:
            await asyncio.sleep(0.001)

    async def action_quit(self) -> None:
        """Quit once every answer given is in the database."""
        if self.writes_in_flight:
            self.notify("saving the last answers…", timeout=2)
        await self.wait_for_writes()
        self.exit()

    def on_unmount(self) -> None:
        # The writer outlives the app's message loop: it makes every write still queued, then
        # closes the store.
        if self._writer.ident is None:
            self.store.close()
        else:
            self._writes.put(None)
