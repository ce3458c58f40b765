"""`AnswerWriter`: the one thread that writes answers and undos, in the order they were given.

The UI thread never blocks on a write: it submits a request and carries on; the writer makes it and
reports exactly one message per request (`AnswerSaved`, `AnswerUndone`, `AnsweredElsewhere` or
`WriteFailed`). Writes are never cancelled: a cancelled write would be a lost answer.

An answer given on the queue (its client key says so) is stored only if its item is not done
already: another session may have answered it once this one's claim lapsed. With a session id the
writer also claims an undone item back for the session and releases the session's claims when it
closes. After each write, once no other write waits, it reads the annotator's progress for the
progress line (off the UI thread, after the write's own report).

The writer folds the write-ahead log into the database file (`Store.checkpoint`) once it has been
idle for `checkpoint_idle_s` after a write, and when it closes after its last write: otherwise the
`-wal` file of a long session only grows while another connection keeps reading.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from queue import Empty, SimpleQueue
from threading import Event, Lock, Thread

from hnbooks.store.claims import CLAIM_TTL_S
from hnbooks.store.db import Store, StoreError
from hnbooks.store.progress import local_day_start
from hnbooks.store.records import AnnotatorProgress
from hnbooks.tui.messages import (
    AnsweredElsewhere,
    AnswerSaved,
    AnswerUndone,
    WriteFailed,
    WriteReport,
)
from hnbooks.tui.session import (
    QUEUE_KEY_PREFIX,
    AnswerToWrite,
    ShownItem,
    WriteRequest,
    shown_from_answer,
)

CHECKPOINT_IDLE_S = 30.0
"""After a write, the log is checkpointed once no write has come for this long."""


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class AnswerWriter:
    """Owns the store's writes for one session: a queue of requests and the thread that makes them.

    The thread starts with the first write (a session that writes nothing starts none) and lives
    until `close`: starting a thread per answer would put a thread start between every key press
    and its commit.
    """

    def __init__(
        self,
        store: Store,
        annotator: str,
        default_label: str,
        report: Callable[[WriteReport], object],
        *,
        session: str | None = None,
        claim_ttl_s: float = CLAIM_TTL_S,
        on_progress: Callable[[AnnotatorProgress], object] | None = None,
        checkpoint_idle_s: float = CHECKPOINT_IDLE_S,
    ) -> None:
        self.store = store
        self.annotator = annotator
        self.default_label = default_label
        """The label an undone answer's item is shown with when the answer named none."""
        self.report = report
        """Called in the writer thread with each write's outcome (e.g. an app's post_message)."""
        self.session = session
        """The annotator session whose claims this writer keeps; None: no claims."""
        self.claim_ttl_s = claim_ttl_s
        self.on_progress = on_progress
        """Called in the writer thread with the progress read after writes (None: not read)."""
        self.checkpoint_idle_s = checkpoint_idle_s
        self.checkpoints = 0
        """Checkpoints the writer has made (tests read it)."""
        self._requests: SimpleQueue[WriteRequest | None] = SimpleQueue()
        """Writes in submission order; None tells the thread to close the store and stop."""
        self._lock = Lock()
        self._unfinished = 0
        self._idle = Event()
        self._idle.set()
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._thread = Thread(target=self._write_in_order, name="hnbooks-writer")

    @property
    def in_flight(self) -> int:
        """Writes submitted and not yet made (or failed and reported)."""
        with self._lock:
            return self._unfinished

    def submit(self, request: WriteRequest) -> None:
        """Queue a write; it is made after every write submitted before it."""
        with self._lock:
            self._unfinished += 1
            self._idle.clear()
        if self._thread.ident is None:
            self._thread.start()
        self._requests.put(request)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every submitted write is made and reported; False if `timeout` ran out."""
        return self._idle.wait(timeout)

    async def idle(self) -> None:
        """Return once every submitted write is made and its report handed to `report`."""
        with self._lock:
            if not self._unfinished:
                return
            waiter = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(waiter)
        await waiter

    def close(self) -> None:
        """Make every write still queued, release the session's claims, then close the store (at
        once when no write was made)."""
        if self._thread.ident is None:
            self._release_claims()
            self._checkpoint()  # the session's claims were written, and maybe others' rows
            self.store.close()
        else:
            self._requests.put(None)

    def _release_claims(self) -> None:
        if self.session is None:
            return
        self.store.end_session(self.session)
        try:
            self.store.release_claims(self.session)
        except StoreError:
            pass  # e.g. a read-only database: the claims lapse on their own

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to stop (after `close`)."""
        if self._thread.ident is not None:
            self._thread.join(timeout)

    def _checkpoint(self) -> None:
        try:
            if self.store.checkpoint():
                self.checkpoints += 1
        except StoreError:
            pass  # e.g. a read-only database: the log is folded in by a later writer

    def _write_in_order(self) -> None:
        wrote_since_checkpoint = False
        while True:
            try:
                request = self._requests.get(
                    timeout=self.checkpoint_idle_s if wrote_since_checkpoint else None
                )
            except Empty:
                self._checkpoint()
                wrote_since_checkpoint = False
                continue
            if request is None:
                self._release_claims()
                self._checkpoint()
                self.store.close()
                return
            wrote_since_checkpoint = True
            outcome = self._write(request)
            try:
                self.report(outcome)
                if self.on_progress is not None and self._requests.empty():
                    self._report_progress(self.on_progress)
            except Exception:  # noqa: BLE001 - the app is gone: the write is made, nobody is left to tell
                pass
            finally:
                self._finished_one()

    def _report_progress(self, on_progress: Callable[[AnnotatorProgress], object]) -> None:
        try:
            progress = self.store.annotator_progress(
                self.annotator, day_start=local_day_start(time.time())
            )
        except StoreError:
            return  # the progress line keeps its last figures; the next read may do better
        on_progress(progress)

    def _finished_one(self) -> None:
        with self._lock:
            self._unfinished -= 1
            if self._unfinished:
                return
            self._idle.set()
            waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            try:
                waiter.get_loop().call_soon_threadsafe(_wake, waiter)
            except RuntimeError:
                pass  # the waiting event loop is closed: nobody is waiting any more

    def _write(self, request: WriteRequest) -> WriteReport:
        """Make one write; whatever goes wrong becomes a `WriteFailed` for the user to see."""
        try:
            if isinstance(request, AnswerToWrite):
                if not request.client_key.startswith(QUEUE_KEY_PREFIX):
                    return AnswerSaved(
                        request, self.store.record_answer(request.item_id, request.answer)
                    )
                answer_id = self.store.record_queued_answer(request.item_id, request.answer)
                if answer_id is None:
                    return AnsweredElsewhere(request)
                return AnswerSaved(request, answer_id)
            if self.session is None:
                undone = self.store.undo_last(self.annotator)
            else:
                undone = self.store.undo_last_claiming(
                    self.annotator, session=self.session, claim_ttl_s=self.claim_ttl_s
                )
            shown: ShownItem | None = None
            if undone is not None:
                try:
                    shown = shown_from_answer(
                        self.store, undone, self.annotator, self.default_label
                    )
                except StoreError:
                    pass  # the undo is committed; the screen says the item could not be shown
            return AnswerUndone(request, undone, shown)
        except Exception as error:  # noqa: BLE001 - any failure must reach the user, not kill the writer
            message = (
                str(error) if isinstance(error, StoreError) else f"{type(error).__name__}: {error}"
            )
            return WriteFailed(request, message)
