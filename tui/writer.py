"""`AnswerWriter`: the one thread that writes answers and undos, in the order they were given.

The UI thread never blocks on a write: it submits a request and carries on; the writer makes it and
reports exactly one message per request (`AnswerSaved`, `AnswerUndone` or `WriteFailed`). Writes are
never cancelled: a cancelled write would be a lost answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from queue import SimpleQueue
from threading import Event, Lock, Thread

from hnbooks.store.db import Store, StoreError
from hnbooks.tui.messages import AnswerSaved, AnswerUndone, WriteFailed, WriteReport
from hnbooks.tui.session import AnswerToWrite, ShownItem, WriteRequest, shown_from_answer


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
    ) -> None:
        self.store = store
        self.annotator = annotator
        self.default_label = default_label
        """The label an undone answer's item is shown with when the answer named none."""
        self.report = report
        """Called in the writer thread with each write's outcome (e.g. an app's post_message)."""
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
        """Make every write still queued, then close the store (at once when none was made)."""
        if self._thread.ident is None:
            self.store.close()
        else:
            self._requests.put(None)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to stop (after `close`)."""
        if self._thread.ident is not None:
            self._thread.join(timeout)

    def _write_in_order(self) -> None:
        while True:
            request = self._requests.get()
            if request is None:
                self.store.close()
                return
            outcome = self._write(request)
            try:
                self.report(outcome)
            except Exception:  # noqa: BLE001 - the app is gone: the write is made, nobody is left to tell
                pass
            finally:
                self._finished_one()

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
                return AnswerSaved(
                    request, self.store.record_answer(request.item_id, request.answer)
                )
            undone = self.store.undo_last(self.annotator)
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
