"""The queue: batches published by the scorer or a seed, what each annotator is served next, progress,
and which items a new batch must leave out."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import replace

from hnbooks.store.connection import Connection, StoreError
from hnbooks.store.items import item_from_row
from hnbooks.store.records import BatchEntry, QueuedItem, QueueEntry
from hnbooks.store.reports import RoundReport

# The annotator has an answer in force, or an undone one re-answered, on the batch item `bi`.
ANSWERED_BY = (
    "EXISTS (SELECT 1 FROM effective_answers a WHERE a.item_id = bi.item_id AND a.annotator = ?)"
)
ANSWERED_BY_ANYONE = "EXISTS (SELECT 1 FROM effective_answers a WHERE a.item_id = bi.item_id)"


def insert_round(
    conn: sqlite3.Connection, report: RoundReport, started_at: float, finished_at: float
) -> int:
    cursor = conn.execute(
        "INSERT INTO rounds (started_at, finished_at, label, report) VALUES (?, ?, ?, ?)",
        (started_at, finished_at, report.label, report.to_json()),
    )
    return int(cursor.lastrowid or 0)


class QueueQueries(Connection):
    def publish_batch(
        self,
        entries: list[BatchEntry],
        *,
        source: str,
        label: str | None = None,
        note: str | None = None,
        round_report: RoundReport | None = None,
        round_started_at: float | None = None,
    ) -> int:
        """Publish a batch (and its round's report) in one transaction; return the batch id.

        `label` is the question the batch asks (default: the database's first label).
        """
        if not entries:
            raise StoreError("refusing to publish an empty batch")
        if len({e.item_id for e in entries}) != len(entries):
            raise StoreError("a batch cannot hold the same item twice")
        now = time.time()
        with self._transaction() as conn:
            batch_id = int(
                conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM batches").fetchone()[0]
            )
            if label is None:
                row = conn.execute(
                    "SELECT name FROM labels ORDER BY position, name LIMIT 1"
                ).fetchone()
                if row is None:
                    raise StoreError(f"{self.path}: the database defines no label")
                label = str(row[0])
            round_id = None
            if round_report is not None:
                report = replace(round_report, batch_id=batch_id)
                round_id = insert_round(conn, report, round_started_at or now, now)
            conn.execute(
                "INSERT INTO batches (id, round_id, source, label, note, published_at) VALUES (?, ?, ?, ?, ?, ?)",
                (batch_id, round_id, source, label, note, now),
            )
            conn.executemany(
                "INSERT INTO batch_items (batch_id, position, item_id, strategy, score, rank,"
                " inclusion_probability) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        batch_id,
                        position,
                        e.item_id,
                        e.strategy,
                        e.score,
                        e.rank,
                        e.inclusion_probability,
                    )
                    for position, e in enumerate(entries)
                ],
            )
            return batch_id

    def latest_batch_id(self) -> int:
        return self._count("SELECT COALESCE(MAX(id), 0) FROM batches")

    def latest_batch_id_of(self, source: str) -> int | None:
        row = self._one("SELECT MAX(id) FROM batches WHERE source = ?", (source,))
        return None if row is None or row[0] is None else int(row[0])

    def batch_strategies(self, batch_id: int) -> dict[int, str]:
        """Item id → the strategy that placed it in the batch."""
        rows = self._query(
            "SELECT item_id, strategy FROM batch_items WHERE batch_id = ?", (batch_id,)
        )
        return {r["item_id"]: r["strategy"] for r in rows}

    def batch_count(self) -> int:
        return self._count("SELECT COUNT(*) FROM batches")

    def next_queued_item(
        self, annotator: str, *, skip_item_ids: Iterable[int] = ()
    ) -> QueuedItem | None:
        """The first item of the oldest published batch this annotator has not answered."""
        skip = list(skip_item_ids)
        skip_sql = f" AND bi.item_id NOT IN ({','.join('?' * len(skip))})" if skip else ""
        row = self._one(
            "SELECT bi.*, b.label AS batch_label FROM batch_items bi JOIN batches b ON b.id = bi.batch_id"
            f" WHERE NOT {ANSWERED_BY}{skip_sql} ORDER BY bi.batch_id, bi.position LIMIT 1",
            [annotator, *skip],
        )
        return None if row is None else self._queued_item(row, annotator)

    def queued_item(self, annotator: str, batch_id: int, item_id: int) -> QueuedItem | None:
        row = self._one(
            "SELECT bi.*, b.label AS batch_label FROM batch_items bi JOIN batches b ON b.id = bi.batch_id"
            " WHERE bi.batch_id = ? AND bi.item_id = ?",
            (batch_id, item_id),
        )
        return None if row is None else self._queued_item(row, annotator)

    def _queued_item(self, row: sqlite3.Row, annotator: str) -> QueuedItem:
        size, answered = self.batch_progress(row["batch_id"], annotator)
        item_row = self._one("SELECT * FROM items WHERE id = ?", (row["item_id"],))
        if item_row is None:
            raise StoreError(f"no item with id {row['item_id']}")
        return QueuedItem(
            item=item_from_row(item_row),
            batch_id=row["batch_id"],
            position=row["position"],
            batch_size=size,
            answered_in_batch=answered,
            strategy=row["strategy"],
            score=row["score"],
            rank=row["rank"],
            label=row["batch_label"],
        )

    def batch_progress(self, batch_id: int, annotator: str) -> tuple[int, int]:
        """(items in the batch, items of it this annotator has answered)."""
        row = self._one(
            f"SELECT COUNT(*) AS size, SUM({ANSWERED_BY}) AS answered FROM batch_items bi WHERE bi.batch_id = ?",
            (annotator, batch_id),
        )
        assert row is not None
        return int(row["size"]), int(row["answered"] or 0)

    def queue(self, annotator: str | None = None) -> list[QueueEntry]:
        """What waits to be annotated: items of published batches without an answer (by anyone, or
        by `annotator` when given), in the order they will be served."""
        answered = ANSWERED_BY if annotator else ANSWERED_BY_ANYONE
        rows = self._query(
            "SELECT bi.batch_id, bi.position, bi.item_id, bi.strategy, bi.score, i.text"
            f" FROM batch_items bi JOIN items i ON i.id = bi.item_id WHERE NOT {answered}"
            " ORDER BY bi.batch_id, bi.position",
            [annotator] if annotator else [],
        )
        return [
            QueueEntry(
                r["batch_id"], r["position"], r["item_id"], r["strategy"], r["score"], r["text"]
            )
            for r in rows
        ]

    def queued_count(self) -> int:
        return self._count(f"SELECT COUNT(*) FROM batch_items bi WHERE NOT {ANSWERED_BY_ANYONE}")

    def excluded_item_ids(self) -> set[int]:
        """Items a new batch must not hold: answered by anyone, or waiting in a published batch."""
        answered = self._query("SELECT DISTINCT item_id FROM effective_answers")
        queued = self._query(
            f"SELECT DISTINCT bi.item_id FROM batch_items bi WHERE NOT {ANSWERED_BY_ANYONE}"
        )
        return {r[0] for r in answered} | {r[0] for r in queued}

    def served_item_ids(self) -> set[int]:
        """Every item ever placed in a batch."""
        return {r[0] for r in self._query("SELECT DISTINCT item_id FROM batch_items")}

    def random_answers_with_probability(self, label: str) -> list[tuple[int, str, float]]:
        """(item id, answer, inclusion probability) for current answers to items served as `random`."""
        rows = self._query(
            "SELECT a.item_id, a.answer, bi.inclusion_probability FROM current_answers a"
            " JOIN batch_items bi ON bi.batch_id = a.batch_id AND bi.item_id = a.item_id"
            " WHERE a.label = ? AND bi.strategy = 'random' AND bi.inclusion_probability IS NOT NULL",
            (label,),
        )
        return [(r[0], r[1], float(r[2])) for r in rows]
