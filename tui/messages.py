"""Every message of the TUI: what a worker or the writer thread found, told to the screen that asked.

Textual sets bookkeeping attributes on every message, so messages are plain dataclasses; what they
carry (requests, answers, items, reports) is frozen. Each is named for a fact that has happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.message import Message

from hnbooks.store.records import (
    AnnotatorProgress,
    Answer,
    AnswerWithItem,
    FeedMode,
    Round,
    SearchHit,
    Span,
)
from hnbooks.tui.scorer_process import ScorerStatus
from hnbooks.tui.session import AnswerToWrite, ShownItem, UndoToWrite, WriteRequest

# -- the writer ------------------------------------------------------------------------------------


@dataclass
class AnswerSaved(Message, bubble=False):
    """An answer was committed to the database."""

    request: AnswerToWrite
    answer_id: int


@dataclass
class AnswerUndone(Message, bubble=False):
    """The annotator's latest answer was taken back (`answer` is None when there was none)."""

    request: UndoToWrite
    answer: Answer | None
    shown: ShownItem | None
    """The undone answer's item, ready to show again (None when it could not be read back)."""


@dataclass
class AnsweredElsewhere(Message, bubble=False):
    """The queue item was done before this answer reached the database — answered in another
    session of the annotator (or, in split mode, by anyone) — so nothing was stored."""

    request: AnswerToWrite


@dataclass
class WriteFailed(Message, bubble=False):
    """A write could not be made; nothing was stored. `error` says why, for the user."""

    request: WriteRequest
    error: str


WriteReport = AnswerSaved | AnswerUndone | AnsweredElsewhere | WriteFailed
"""What the writer tells the app after each write: exactly one of these per request."""


@dataclass
class ProgressRead(Message, bubble=False):
    """The annotator's progress as the database holds it (read after a write, or on a poll)."""

    progress: AnnotatorProgress


# -- the session's status --------------------------------------------------------------------------


@dataclass
class StatusRead(Message, bubble=False):
    """The scorer's state and the feed mode, read on a poll; the progress too when it may have
    changed (None: not read this time)."""

    scorer: ScorerStatus
    feed: FeedMode
    progress: AnnotatorProgress | None


@dataclass
class RoundRequested(Message, bubble=False):
    """A round was asked of the scorer (`round_requests` row `request_id`)."""

    request_id: int


@dataclass
class RoundRequestFailed(Message, bubble=False):
    error: str


# -- the annotate screen's queue -------------------------------------------------------------------


@dataclass
class ItemsFetched(Message, bubble=False):
    """Items of the queue, ready to show, in queue order."""

    items: tuple[ShownItem, ...]
    data_version: int
    """The database's data_version read before the queue was, to tell later whether it changed."""
    exhausted: bool
    """Fewer items than asked for were left: the queue is (for now) empty beyond these."""
    done_elsewhere: frozenset[int] = frozenset()
    """Items known to the queue that are done meanwhile elsewhere (another session, another
    annotator in split mode): the ones fetched ahead leave the queue."""


@dataclass
class FetchFailed(Message, bubble=False):
    """Reading the queue failed; `error` says why."""

    error: str


@dataclass
class ClaimsLost(Message, bubble=False):
    """Items fetched ahead that another session claims now (this session's claims had lapsed)."""

    item_ids: frozenset[int]


# -- search ----------------------------------------------------------------------------------------


@dataclass
class SearchFinished(Message, bubble=False):
    """Hits of one query, with this annotator's current answer to each and the spans it marks
    (by item id)."""

    query: str
    mode: str
    hits: tuple[SearchHit, ...]
    answers: dict[int, str]
    spans: dict[int, tuple[Span, ...]] = field(default_factory=dict)


@dataclass
class SearchFailed(Message, bubble=False):
    query: str
    error: str


# -- review ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewFilters:
    """What the review page shows; None means no filter."""

    answer: str | None = None
    annotator: str | None = None
    strategy: str | None = None
    disagreement: str | None = None
    page: int = 0


@dataclass
class PageLoaded(Message, bubble=False):
    """One page of answers for `filters`, and the strategies the answers in force were served by."""

    filters: ReviewFilters
    rows: tuple[AnswerWithItem, ...]
    strategies: tuple[str, ...]


@dataclass
class PageFailed(Message, bubble=False):
    error: str


# -- stats -----------------------------------------------------------------------------------------


@dataclass
class StatsLoaded(Message, bubble=False):
    rounds: tuple[Round, ...]
    my_answers: int
    all_answers: int


@dataclass
class StatsFailed(Message, bubble=False):
    error: str
