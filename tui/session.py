"""What an annotation session holds between key presses: items ready to show, writes waiting to be
made, and the session's tally. Plain Python, no Textual and no SQL: items are built from store calls
inside worker threads, so everything the screen needs is computed before the item is shown.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from hnbooks.store.db import Store
from hnbooks.store.records import Answer, Item, NewAnswer, QueuedItem, Span, SpanSuggestion
from hnbooks.suggest import Candidate, suggest_candidates, word_spans
from hnbooks.tui.render import printable

# Items fetched ahead of the one shown, so an answer never waits for the store.
PREFETCH_COUNT = 4
# Client keys of answers given on the annotate screen start with this; search and review use others.
QUEUE_KEY_PREFIX = "tui:"


def client_key(prefix: str, session: str, unique: str) -> str:
    """An answer's client key: `<prefix><session>:<unique>`, naming the session it was given in
    (undo takes back only its own session's answers, or a gone session's); without a session,
    `<prefix><unique>`."""
    return f"{prefix}{session}:{unique}" if session else f"{prefix}{unique}"


@dataclass(frozen=True)
class ShownItem:
    """One showing of an item: the item, why it is here, and what the screen renders."""

    item: Item
    label: str
    """The classification question: does this item have `label`?"""
    strategy: str
    score: float | None
    rank: int | None
    batch_id: int | None
    position: int | None
    batch_size: int | None
    context: str | None
    """The parent comment's text or the story title, when the store holds one."""
    display_text: str
    """`item.text` with control characters replaced one-for-one (same length, same offsets)."""
    candidates: tuple[Candidate, ...]
    words: tuple[tuple[int, int], ...]
    spans: tuple[Span, ...] = ()
    """Spans to start from (an undone answer's), not yet stored."""
    near_duplicate_of: int | None = None
    """The accepted item this one nearly duplicates, where that is why it is shown."""
    instance: str = field(default_factory=lambda: uuid.uuid4().hex)
    """Unique per showing: the answer's client key, so one showing can never be answered twice."""

    @property
    def item_id(self) -> int:
        return self.item.id

    @property
    def source_id(self) -> str:
        """The item's id where it came from, e.g. "hn:12345"."""
        if self.item.external_id.startswith("hn:"):
            return self.item.external_id
        hn_id = self.item.meta.get("id") or self.item.meta.get("objectID")
        return f"hn:{hn_id}" if hn_id is not None else self.item.external_id


def shown_item(
    store: Store,
    item: Item,
    *,
    label: str,
    strategy: str,
    score: float | None = None,
    rank: int | None = None,
    batch_id: int | None = None,
    position: int | None = None,
    batch_size: int | None = None,
    spans: tuple[Span, ...] = (),
    suggestions: tuple[SpanSuggestion, ...] | None = None,
    near_duplicate_of: int | None = None,
) -> ShownItem:
    """Everything the screen shows for `item`; runs in a worker thread (it reads the store).

    The candidates are the scorer's stored `suggestions` (best first) when there are any, else
    the rules' candidates."""
    return ShownItem(
        item=item,
        label=label,
        strategy=strategy,
        score=score,
        rank=rank,
        batch_id=batch_id,
        position=position,
        batch_size=batch_size,
        context=store.parent_context(item),
        display_text=printable(item.text),
        candidates=(
            tuple(Candidate(s.start, s.end, s.source) for s in suggestions)
            if suggestions is not None
            else tuple(suggest_candidates(item.text))
        ),
        words=tuple(word_spans(item.text)),
        spans=spans,
        near_duplicate_of=near_duplicate_of,
    )


def shown_from_queue(store: Store, queued: QueuedItem) -> ShownItem:
    return shown_item(
        store,
        queued.item,
        label=queued.label,
        strategy=queued.strategy,
        score=queued.score,
        rank=queued.rank,
        batch_id=queued.batch_id,
        position=queued.position,
        batch_size=queued.batch_size,
        suggestions=queued.suggestions,
        near_duplicate_of=queued.near_duplicate_of,
    )


def shown_from_answer(
    store: Store, answer: Answer, annotator: str, default_label: str
) -> ShownItem:
    """The item of an undone answer, shown again as it was served (batch, strategy, spans)."""
    if answer.batch_id is not None:
        queued = store.queued_item(annotator, answer.batch_id, answer.item_id)
        if queued is not None:
            return replace(shown_from_queue(store, queued), spans=answer.spans)
    return shown_item(
        store,
        store.item(answer.item_id),
        label=answer.label or default_label,
        strategy=answer.strategy or "search",
        score=answer.score,
        batch_id=answer.batch_id,
        spans=answer.spans,
    )


@dataclass(frozen=True)
class AnswerToWrite:
    """An answer waiting for the writer; its `client_key` makes a repeated write a no-op."""

    item_id: int
    answer: NewAnswer
    reply_to: Any = None
    """The screen told when the write is done (a Textual MessagePump), or None."""

    @property
    def client_key(self) -> str:
        return self.answer.client_key or ""


@dataclass(frozen=True)
class UndoToWrite:
    """Take back the annotator's latest answer, after every write queued before it."""

    reply_to: Any = None


WriteRequest = AnswerToWrite | UndoToWrite


@dataclass(frozen=True)
class SessionTally:
    """What this session has answered: counts for the progress line, ids so undo can uncount."""

    started_at: float
    answer_ids: frozenset[int] = frozenset()
    accepted_ids: frozenset[int] = frozenset()

    @property
    def answers(self) -> int:
        return len(self.answer_ids)

    @property
    def positives(self) -> int:
        return len(self.accepted_ids)

    def counted(self, answer_id: int, answer: str) -> SessionTally:
        accepted = self.accepted_ids | {answer_id} if answer == "accept" else self.accepted_ids
        return replace(self, answer_ids=self.answer_ids | {answer_id}, accepted_ids=accepted)

    def uncounted(self, answer_id: int) -> SessionTally:
        return replace(
            self,
            answer_ids=self.answer_ids - {answer_id},
            accepted_ids=self.accepted_ids - {answer_id},
        )

    def rate_per_hour(self, now: float) -> float:
        """Answers per hour since the session started (at least one minute counted)."""
        return self.answers * 3600.0 / max(60.0, now - self.started_at)
