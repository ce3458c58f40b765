"""Plain records passed between the store and its callers (the CLIs, the scorer, the TUI)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from hnbooks.store.reports import RoundReport

AnswerValue = Literal["accept", "reject", "ignore"]
ANSWER_VALUES: tuple[AnswerValue, ...] = ("accept", "reject", "ignore")
FeedMode = Literal["overlap", "split"]
FEED_MODES: tuple[FeedMode, ...] = ("overlap", "split")
"""How published items go to annotators: `overlap`, every annotator answers every item; `split`,
each item goes to one annotator (answered by anyone, it is done)."""
SPAN_TASK_KEY = "spans"
SPAN_VIEWS = ("ner_manual", "spans_manual", "ner", "span")


def task_key_for(label: str | None, view_id: str | None, has_spans: bool) -> str:
    """Which task an answer belongs to: span-marking answers together, classification per label."""
    if view_id in SPAN_VIEWS or (not label and has_spans):
        return SPAN_TASK_KEY
    return f"label:{label or ''}"


@dataclass(frozen=True)
class Span:
    """A labelled character range of an item's text; `end` is exclusive (Prodigy's convention)."""

    start: int
    end: int
    label: str

    def to_json(self, text: str | None = None) -> dict[str, Any]:
        record: dict[str, Any] = {"start": self.start, "end": self.end, "label": self.label}
        if text is not None:
            record["text"] = text[self.start : self.end]
        return record


def without_non_finite(value: Any) -> Any:
    """`value` with every NaN and ±Infinity (nested in lists and objects too) made None: JSON has
    no such numbers, and Python's `json` would write them as `NaN`, which no JSON reader accepts."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: without_non_finite(entry) for key, entry in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_non_finite(entry) for entry in value]
    return value


def finite_json(value: Any, **options: Any) -> str:
    """`json.dumps(value)` as valid JSON: a NaN or an infinity is written as null."""
    try:
        return json.dumps(value, allow_nan=False, **options)
    except ValueError:
        return json.dumps(without_non_finite(value), allow_nan=False, **options)


def spans_to_json(spans: list[Span] | tuple[Span, ...]) -> str:
    return json.dumps([s.to_json() for s in sorted(spans, key=lambda s: (s.start, s.end, s.label))])


def spans_from_json(raw: str) -> tuple[Span, ...]:
    return tuple(Span(int(s["start"]), int(s["end"]), str(s["label"])) for s in json.loads(raw))


@dataclass(frozen=True)
class SpanSuggestion:
    """A span proposed for an item's text, best first within an item; `end` is exclusive.

    `source` is "rule" for a candidate of the cheap rules (`hnbooks.suggest`) and "model" for a
    span only the learned span model proposed; `score` is the span model's calibrated probability
    that the span is one the annotator would mark (a fixed prior per rule before any model exists).
    """

    start: int
    end: int
    label: str
    score: float
    source: str

    def to_json(self, text: str | None = None) -> dict[str, Any]:
        record: dict[str, Any] = {
            "start": self.start,
            "end": self.end,
            "label": self.label,
            "score": round(self.score, 4),
            "source": self.source,
        }
        if text is not None:
            record["text"] = text[self.start : self.end]
        return record


@dataclass(frozen=True)
class Item:
    id: int
    external_id: str
    text: str
    meta: dict[str, Any]
    input_hash: int


@dataclass(frozen=True)
class QueuedItem:
    """An item waiting in a published batch, with why it was chosen and where it stands."""

    item: Item
    batch_id: int
    position: int
    batch_size: int
    answered_in_batch: int
    strategy: str
    score: float | None
    rank: int | None
    label: str
    suggestions: tuple[SpanSuggestion, ...] | None = None
    """The scorer's span suggestions for this item, best first; None when its batch has none."""
    near_duplicate_of: int | None = None
    """The accepted item this one nearly duplicates, where that is why it may be shown."""


@dataclass(frozen=True)
class NewAnswer:
    """An answer before it is stored: what the TUI, review, search and the importer hand the store.

    Every field but the two first has a default, so a new field added here (with a migration adding
    its column) needs no change where answers are made.
    """

    annotator: str
    answer: AnswerValue
    label: str | None = None
    """The classification question answered; None: the database's first label."""
    spans: tuple[Span, ...] = ()
    view_id: str | None = "classification"
    task_hash: int | None = None
    batch_id: int | None = None
    strategy: str | None = None
    score: float | None = None
    client_key: str | None = None
    """Makes a repeated write a no-op (the TUI's key per showing of an item)."""
    created_at: float | None = None
    """Seconds since the epoch; None: now."""
    passthrough: Mapping[str, Any] | None = field(default=None, hash=False)
    """Fields of an imported task that hnbooks does not model (Prodigy's `tokens`, `options`,
    `accept`, `_is_binary`, `_session_id`, `relations`, any unknown one; under `spans`, each span's
    extra fields such as `token_start`, `source`), written back verbatim on export. None for an
    answer made in hnbooks; stored in the `answer_passthrough` table, not a column of `answers`."""

    def derived_task_key(self) -> str:
        """The task this answer belongs to (see `task_key_for`)."""
        return task_key_for(self.label, self.view_id, bool(self.spans))


NEW_ANSWER_COLUMNS = tuple(f.name for f in fields(NewAnswer) if f.name != "passthrough")
"""The answers table's columns that a `NewAnswer` fills, in field order (its passthrough fields
have a table of their own)."""


@dataclass(frozen=True, kw_only=True)
class Answer(NewAnswer):
    """A stored answer: a `NewAnswer` with its row id, its item and the task it belongs to."""

    id: int
    item_id: int
    task_key: str

    def verdict_for(self, label: str) -> bool | None:
        """Does this answer say the item has `label`? None when it says nothing about it.

        A classification answer speaks for its own label; a span answer accepted after reading the
        whole text says yes when it marks a span of `label` and no when it marks none.
        """
        if self.answer == "ignore":
            return None
        if self.task_key == SPAN_TASK_KEY:
            if self.answer != "accept":
                return None
            return any(span.label == label for span in self.spans)
        if self.label != label:
            return None
        return self.answer == "accept"


@dataclass(frozen=True)
class AnswerWithItem:
    answer: Answer
    item: Item


@dataclass(frozen=True)
class QueueEntry:
    """One line of `hnbooks queue`."""

    batch: int
    position: int
    item_id: int
    strategy: str
    score: float | None
    text: str


@dataclass(frozen=True)
class BatchEntry:
    """An item chosen for a batch, before it is published."""

    item_id: int
    strategy: str
    score: float | None = None
    rank: int | None = None
    inclusion_probability: float | None = None
    near_duplicate_of: int | None = None
    """The accepted item this one nearly duplicates (shown to the annotator as such)."""


@dataclass(frozen=True)
class AnnotatorProgress:
    """One annotator's work as the database holds it (the same after a restart)."""

    annotator: str
    answers: int
    """Answers in force, all time."""
    today: int
    """Answers in force given since the start of the day asked about."""
    positives: int
    """Items this annotator's answers in force say have a label (accepted with a span or a label)."""
    remaining: int
    """Items of the published batches still to be served to this annotator (see `remaining_for`)."""
    rate_per_hour: float
    """Today's answers over the time since today's first one (at least `MIN_RATE_SPAN_S`)."""
    first_today_at: float | None
    read_at: float
    """Seconds since the epoch when it was read: of two readings, the later one is current."""


@dataclass(frozen=True)
class SearchHit:
    item: Item
    snippet: str
    match_ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Round:
    id: int
    started_at: float
    finished_at: float | None
    label: str
    report: RoundReport


@dataclass
class IncomingItem:
    """A text read from a file (with the line it came from and any answers it carries)."""

    line: int
    text: str
    meta: dict[str, Any]
    external_id: str | None = None
    input_hash: int | None = None
    answers: list[NewAnswer] = field(default_factory=list)
