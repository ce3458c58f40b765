"""`AnnotationSession`: what a screen needs from the running app, without importing the app.

The app implements it and hands itself to each screen it makes, so the screens depend on this
protocol only and no screen module imports the app module or another screen module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from hnbooks.store.db import Store
from hnbooks.store.records import AnnotatorProgress, FeedMode
from hnbooks.tui.scorer_process import ScorerStatus
from hnbooks.tui.session import SessionTally, WriteRequest


class AnnotationSession(Protocol):
    """One annotator's session on one database."""

    store: Store
    """For reads in worker threads; every write goes through `submit_write`."""
    annotator: str
    labels: list[str]
    """The database's labels, in order; the first is the default question."""
    clock: Callable[[], float]
    poll_interval_s: float
    """How often an empty queue is read again for a newly published batch, and the scorer's
    state with it."""
    session_id: str
    """This run's id: what its claims on queue items are held under."""
    claim_ttl_s: float
    """How long a claim holds unrenewed (the screen renews well before)."""

    @property
    def closing(self) -> bool:
        """The session is quitting: no new claims (they would outlive it)."""
        ...

    @property
    def tally(self) -> SessionTally:
        """This session's answers and positives."""
        ...

    @property
    def progress(self) -> AnnotatorProgress | None:
        """The annotator's progress as the database holds it (None until first read)."""
        ...

    @property
    def scorer_status(self) -> ScorerStatus:
        """The scorer holding the database, and the child this session started, if any."""
        ...

    @property
    def feed(self) -> FeedMode:
        """The database's feed mode, as last read."""
        ...

    def submit_write(self, request: WriteRequest) -> None:
        """Queue an answer or undo for the writer; `request.reply_to` is told when it is done."""
        ...

    def take_items_answered_elsewhere(self) -> set[int]:
        """Items answered on the search or review screen since the last call."""
        ...
