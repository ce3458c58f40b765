"""Span suggestions stored with the batch they were computed for, and the span models behind them.

The scorer stores a batch's suggestions in the transaction that publishes it, from the span models
it holds; a round that trains them again replaces them. A batch with none stored (no span marked
yet) is shown with the rules' candidates. The span model of a label is kept per encoder graph (its features
are that graph's token states) and replaced whenever a round trains it again.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hnbooks.store.connection import Connection
from hnbooks.store.records import SpanSuggestion

__all__ = ["StoredSpanModel", "SuggestionQueries"]


@dataclass(frozen=True)
class StoredSpanModel:
    """A trained span model as stored: its pickled scikit-learn weights and what it learned from.

    Pickled, so a database is trusted as code is: open only databases you or your team wrote."""

    label: str
    model_hash: str
    trained_at: float
    through_answer_id: int
    """The latest answer id when it was trained: answers after it are not in it."""
    weights: bytes
    report: dict[str, Any]


def insert_span_suggestions(
    conn: sqlite3.Connection, batch_id: int, suggestions: Mapping[int, Sequence[SpanSuggestion]]
) -> int:
    """Replace `batch_id`'s stored suggestions, inside the caller's transaction (a batch being
    published stores them in its own). Items not in the batch are skipped; return rows stored."""
    in_batch = {
        int(row[0])
        for row in conn.execute("SELECT item_id FROM batch_items WHERE batch_id = ?", (batch_id,))
    }
    rows = [
        (batch_id, item_id, rank, s.start, s.end, s.label, s.score, s.source)
        for item_id, item_suggestions in suggestions.items()
        if item_id in in_batch
        for rank, s in enumerate(item_suggestions)
    ]
    conn.execute("DELETE FROM span_suggestions WHERE batch_id = ?", (batch_id,))
    conn.execute(
        "INSERT OR REPLACE INTO span_suggestion_batches (batch_id, stored_at) VALUES (?, ?)",
        (batch_id, time.time()),
    )
    conn.executemany(
        "INSERT INTO span_suggestions (batch_id, item_id, rank, span_start, span_end,"
        " label, score, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return len(rows)


class SuggestionQueries(Connection):
    def store_span_suggestions(
        self, batch_id: int, suggestions: Mapping[int, Sequence[SpanSuggestion]]
    ) -> int:
        """Store each item's suggestions (best first) for `batch_id`; return how many were stored.

        Items of other batches, or no longer in this one, are skipped. Storing again replaces.
        """
        with self._transaction() as conn:
            return insert_span_suggestions(conn, batch_id, suggestions)

    def span_suggestions_of(self, batch_id: int, item_id: int) -> tuple[SpanSuggestion, ...] | None:
        """The item's stored suggestions, best first; None when none were stored for its batch."""
        if (
            self._one("SELECT 1 FROM span_suggestion_batches WHERE batch_id = ?", (batch_id,))
            is None
        ):
            return None
        rows = self._query(
            "SELECT span_start, span_end, label, score, source FROM span_suggestions"
            " WHERE batch_id = ? AND item_id = ? ORDER BY rank",
            (batch_id, item_id),
        )
        return tuple(
            SpanSuggestion(int(r[0]), int(r[1]), str(r[2]), float(r[3]), str(r[4])) for r in rows
        )

    def save_span_model(
        self,
        label: str,
        model_hash: str,
        weights: bytes,
        *,
        through_answer_id: int,
        report: Mapping[str, Any] | None = None,
    ) -> None:
        """Keep `weights` as the span model of `label` for the encoder graph `model_hash`."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO span_models (label, model_hash, trained_at,"
                " through_answer_id, weights, report) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    label,
                    model_hash,
                    time.time(),
                    through_answer_id,
                    weights,
                    json.dumps(dict(report or {})),
                ),
            )

    def marked_span_count(self) -> int:
        """Spans in the accepted span answers in force, every label together."""
        return self._count(
            "SELECT COALESCE(SUM(json_array_length(spans)), 0) FROM current_answers"
            " WHERE answer = 'accept' AND spans != '[]'"
        )

    def span_models(self, model_hash: str) -> list[StoredSpanModel]:
        """Every label's stored span model for the encoder graph `model_hash`, by label."""
        rows = self._query(
            "SELECT label, model_hash, trained_at, through_answer_id, weights, report"
            " FROM span_models WHERE model_hash = ? ORDER BY label",
            (model_hash,),
        )
        return [
            StoredSpanModel(
                str(r[0]), str(r[1]), float(r[2]), int(r[3]), bytes(r[4]), json.loads(r[5])
            )
            for r in rows
        ]
