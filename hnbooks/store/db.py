"""`Store`: one SQLite database file, with the queries of each concern (items, answers, queue, rounds).

All SQL of the project lives in this package. Write transactions are short (one answer, one batch, one
imported file) so the scorer and several annotators can share one file without "database is locked".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from hnbooks.store.answers import AnswerQueries
from hnbooks.store.connection import (
    BUSY_TIMEOUT_S,
    DEFAULT_DB_PATH,
    StoreError,
    friendly_sqlite_error,
)
from hnbooks.store.items import ItemQueries
from hnbooks.store.labels import LabelQueries
from hnbooks.store.progress import ProgressQueries
from hnbooks.store.records import ANSWER_VALUES, Round
from hnbooks.store.rounds import RoundQueries
from hnbooks.store.scorer import ScorerQueries
from hnbooks.store.titles import TitleQueries

__all__ = [
    "BUSY_TIMEOUT_S",
    "DEFAULT_DB_PATH",
    "Store",
    "StoreError",
    "StoreStats",
    "friendly_sqlite_error",
]


@dataclass(frozen=True)
class StoreStats:
    """What `hnbooks stats` shows."""

    items: int
    answers: int
    answers_by_answer: dict[str, int]
    answers_by_annotator: dict[str, dict[str, int]]
    batches: int
    queued: int
    label: str
    positives: int
    spans: int
    labels: list[str]
    rounds: list[Round] = field(default_factory=list)


class Store(
    ItemQueries,
    AnswerQueries,
    ProgressQueries,
    RoundQueries,
    ScorerQueries,
    LabelQueries,
    TitleQueries,
):
    """One hnbooks database. Safe to share between threads (calls are serialised)."""

    def __enter__(self) -> Store:
        return self

    def database_id(self) -> str | None:
        """The identity made once for this database (None for one read as is, not yet upgraded)."""
        row = self._one("SELECT value FROM settings WHERE name = 'database_id'")
        return str(row[0]) if row is not None else None

    def iter_item_text_keys(
        self, after_id: int = 0, chunk: int = 65536
    ) -> Iterator[tuple[list[int], list[str]]]:
        """(ids, text keys) of every item with id > after_id in id order, `chunk` at a time, without
        the texts.

        The text key (SHA-1 of the text, whitespace runs collapsed) is what derived files such as
        the embedding cache check their rows against: reading it costs a fraction of the texts.
        """
        last = after_id
        while True:
            rows = self._query(
                "SELECT id, text_key FROM items WHERE id > ? AND"
                " (import_id IS NULL OR import_id NOT IN (SELECT id FROM imports_in_progress))"
                " ORDER BY id LIMIT ?",
                (last, chunk),
            )
            if not rows:
                return
            yield [int(row[0]) for row in rows], [str(row[1]) for row in rows]
            last = int(rows[-1][0])

    def stats(self) -> StoreStats:
        current = self.current_answers()
        by_answer = Counter(a.answer for a in current)
        by_annotator: dict[str, Counter[str]] = {}
        for a in current:
            by_annotator.setdefault(a.annotator, Counter())[a.answer] += 1
        label = self.default_label()
        positives = {a.item_id for a in current if a.verdict_for(label)}
        return StoreStats(
            items=self.item_count(),
            answers=len(current),
            answers_by_answer={k: by_answer.get(k, 0) for k in ANSWER_VALUES},
            answers_by_annotator={k: dict(v) for k, v in sorted(by_annotator.items())},
            batches=self.batch_count(),
            queued=self.queued_count(),
            label=label,
            positives=len(positives),
            spans=sum(len(a.spans) for a in current if a.answer == "accept"),
            labels=self.labels(),
            rounds=self.rounds(),
        )
