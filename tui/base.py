"""`SessionScreen`: what every screen of a session shares — the session it was made for, and what
happens when one of its workers fails unexpectedly."""

from __future__ import annotations

from textual import on
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from hnbooks.tui.context import AnnotationSession


class SessionScreen(Screen[None]):
    """A screen made by the app for one `AnnotationSession`."""

    def __init__(self, session: AnnotationSession) -> None:
        super().__init__()
        self.session = session

    # Workers run with exit_on_error=False and catch the store's own errors themselves; anything
    # else would otherwise vanish and leave the screen waiting for a message that never comes.
    @on(Worker.StateChanged)
    def report_worker_error(self, event: Worker.StateChanged) -> None:
        if event.state is not WorkerState.ERROR:
            return
        error = event.worker.error
        message = f"{type(error).__name__}: {error}"
        self.notify(
            message,
            title=f"{event.worker.group} failed",
            severity="error",
            timeout=10,
            markup=False,
        )
        self.worker_failed(event.worker.group, message)

    def worker_failed(self, group: str, error: str) -> None:
        """After a worker of `group` failed with `error` (already notified): leave the screen in a
        state that can go on. Nothing to do by default."""
