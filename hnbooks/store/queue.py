"""The queue: batches published by the scorer or a seed, what each annotator is served next, progress,
and which items a new batch must leave out.

How items go to annotators is the database's feed mode (`overlap` or `split`, in `settings`). An
annotator session (one TUI run) claims the items it fetches ahead, in the transaction that picks
them, so no other session is served them while the claim lasts: in overlap mode no other session of
the same annotator, in split mode no other session at all. A session renews its claims while it
runs and releases them when it quits; a crashed session's claims lapse after their time to live, or
at once when its process is seen gone on this machine.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from hnbooks.store.claims import (
    ANSWERED_BY_ANYONE,
    CLAIM_TTL_S,
    FEED_MODE_SQL,
    FEED_SETTING,
    NO_SESSION,
    answered_condition,
    claim,
    claimed_condition,
    drop_claims_of_gone_sessions,
    feed_mode_in,
    parse_feed_mode,
    waiting_condition,
)
from hnbooks.store.connection import StoreError, friendly_sqlite_error
from hnbooks.store.items import item_from_row
from hnbooks.store.records import (
    FEED_MODES,
    BatchEntry,
    FeedMode,
    QueuedItem,
    QueueEntry,
    SpanSuggestion,
)
from hnbooks.store.reports import RoundReport
from hnbooks.store.suggestions import SuggestionQueries, insert_span_suggestions


class NothingLeftToPublish(StoreError):
    """Every item of a batch was queued by another publisher or answered before it was published."""


def items_taken_meanwhile(conn: sqlite3.Connection, item_ids: list[int]) -> set[int]:
    """Of `item_ids`, those answered by anyone or waiting in a published batch."""
    taken: set[int] = set()
    for start in range(0, len(item_ids), 500):
        chunk = item_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT item_id FROM effective_answers WHERE item_id IN ({marks})"
            f" UNION SELECT bi.item_id FROM batch_items bi WHERE bi.item_id IN ({marks})"
            f" AND NOT {ANSWERED_BY_ANYONE}",
            [*chunk, *chunk],
        ).fetchall()
        taken.update(int(row[0]) for row in rows)
    return taken


def insert_round(
    conn: sqlite3.Connection, report: RoundReport, started_at: float, finished_at: float
) -> int:
    cursor = conn.execute(
        "INSERT INTO rounds (started_at, finished_at, label, report) VALUES (?, ?, ?, ?)",
        (started_at, finished_at, report.label, report.to_json()),
    )
    return int(cursor.lastrowid or 0)


class QueueQueries(SuggestionQueries):
    def publish_batch(
        self,
        entries: list[BatchEntry],
        *,
        source: str,
        label: str | None = None,
        note: str | None = None,
        round_report: RoundReport | None = None,
        round_started_at: float | None = None,
        span_suggestions: Mapping[int, Sequence[SpanSuggestion]] | None = None,
    ) -> int:
        """Publish a batch (its round's report and its items' span suggestions) in one
        transaction; return the batch id.

        `label` is the question the batch asks (default: the database's first label).
        """
        if not entries:
            raise StoreError("refusing to publish an empty batch")
        if len({e.item_id for e in entries}) != len(entries):
            raise StoreError("a batch cannot hold the same item twice")
        now = time.time()
        with self._transaction() as conn:
            # Another publisher (a seed, a second scorer) may have queued or someone answered
            # these items since they were chosen: they are left out, never queued twice.
            taken = items_taken_meanwhile(conn, [e.item_id for e in entries])
            entries = [e for e in entries if e.item_id not in taken]
            if not entries:
                raise NothingLeftToPublish(
                    "every item of the batch was queued or answered meanwhile; nothing published"
                )
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
                " inclusion_probability, near_duplicate_of) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        batch_id,
                        position,
                        e.item_id,
                        e.strategy,
                        e.score,
                        e.rank,
                        e.inclusion_probability,
                        e.near_duplicate_of,
                    )
                    for position, e in enumerate(entries)
                ],
            )
            if span_suggestions is not None:
                insert_span_suggestions(conn, batch_id, span_suggestions)
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

    def feed_mode(self) -> FeedMode:
        """`overlap` (every annotator answers every item; the default) or `split` (each item goes to
        one annotator)."""
        return parse_feed_mode(self._one(FEED_MODE_SQL))

    def set_feed_mode(self, mode: str) -> None:
        if mode not in FEED_MODES:
            raise StoreError(f"feed mode must be one of {', '.join(FEED_MODES)}, not {mode!r}")
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO settings (name, value) VALUES (?, ?)", (FEED_SETTING, mode)
            )

    def next_queued_item(
        self,
        annotator: str,
        *,
        session: str | None = None,
        skip_item_ids: Iterable[int] = (),
        claim_ttl_s: float = CLAIM_TTL_S,
    ) -> QueuedItem | None:
        """The first item of the oldest published batch still to be done for this annotator.

        Done means answered by this annotator (overlap mode) or by anyone (split mode). Items another
        session has claimed are skipped: of the same annotator in overlap mode, of anyone in split
        mode. With `session`, the item returned is claimed for it for `claim_ttl_s`, in the same
        write transaction that picked it; without, nothing is written.
        """
        skip = list(skip_item_ids)
        skip_sql = f" AND bi.item_id NOT IN ({','.join('?' * len(skip))})" if skip else ""

        def pick(conn: sqlite3.Connection, now: float) -> sqlite3.Row | None:
            split = feed_mode_in(conn) == "split"
            answered, answered_params = answered_condition(split, annotator)
            claimed, claimed_params = claimed_condition(
                split, annotator, session or NO_SESSION, now
            )
            # Read before any batch is checked: an undo after this makes the next call start over.
            undo_mark = self._undo_mark(conn)
            finished_through = self._finished_batches_through(annotator, split, undo_mark)
            # Batch by batch from the oldest not known finished: each query reads one batch's
            # items, never the answered items of every earlier batch.
            batch_ids = [
                int(batch_id)
                for (batch_id,) in conn.execute(
                    "SELECT id FROM batches WHERE id > ? ORDER BY id", (finished_through,)
                )
            ]
            contiguous = True
            for batch_id in batch_ids:
                row: sqlite3.Row | None = conn.execute(
                    "SELECT bi.*, b.label AS batch_label FROM batch_items bi"
                    " JOIN batches b ON b.id = bi.batch_id"
                    f" WHERE bi.batch_id = ? AND NOT {answered} AND NOT {claimed}{skip_sql}"
                    " ORDER BY bi.position LIMIT 1",
                    [batch_id, *answered_params, *claimed_params, *skip],
                ).fetchone()
                if row is not None:
                    return row
                if contiguous:
                    waiting = conn.execute(
                        f"SELECT 1 FROM batch_items bi WHERE bi.batch_id = ? AND NOT {answered}"
                        " LIMIT 1",
                        [batch_id, *answered_params],
                    ).fetchone()
                    if waiting is None:
                        self._remember_finished(annotator, split, undo_mark, batch_id)
                    else:
                        contiguous = False
            return None

        if session is None:
            with self._lock:
                try:
                    row = pick(self._conn, time.time())
                except sqlite3.Error as error:
                    raise friendly_sqlite_error(error, self.path) from None
        else:
            with self._transaction() as conn:
                now = time.time()
                drop_claims_of_gone_sessions(conn, now)
                row = pick(conn, now)
                if row is not None:
                    claim(
                        conn, row["batch_id"], row["item_id"], annotator, session, now, claim_ttl_s
                    )
        return None if row is None else self._queued_item(row, annotator)

    def _undo_mark(self, conn: sqlite3.Connection) -> int:
        """The latest undo row's id: an undo can make an item of a finished batch wait again."""
        return int(
            conn.execute(
                "SELECT COALESCE(MAX(id), 0) FROM answers WHERE undoes IS NOT NULL"
            ).fetchone()[0]
        )

    def _finished_batches_through(self, annotator: str, split: bool, undo_mark: int) -> int:
        """The batch id up to which every batch is known done for `annotator` (0: none known).

        Remembered per annotator and feed mode by this connection. Answers only ever finish more
        items; only an undo (by any process) can reopen one, so any new undo row forgets it."""
        known: dict[tuple[str, bool], tuple[int, int]] = self.__dict__.setdefault(
            "_finished_batches", {}
        )
        remembered = known.get((annotator, split))
        if remembered is None:
            return 0
        remembered_mark, batch_id = remembered
        if remembered_mark != undo_mark:
            known.clear()
            return 0
        return batch_id

    def _remember_finished(
        self, annotator: str, split: bool, undo_mark: int, batch_id: int
    ) -> None:
        known: dict[tuple[str, bool], tuple[int, int]] = self.__dict__.setdefault(
            "_finished_batches", {}
        )
        known[(annotator, split)] = (undo_mark, batch_id)

    def renew_claims(
        self,
        session: str,
        annotator: str,
        held: Iterable[tuple[int, int]],
        *,
        ttl_s: float = CLAIM_TTL_S,
    ) -> set[int]:
        """Renew the session's claims on `held` ((batch id, item id) pairs: what it shows and has
        fetched ahead) for another `ttl_s`; return the item ids of `held` that another session
        claims meanwhile (its own claim had lapsed): the caller gives those up.

        Claims of the session that `held` does not list are left to expire, not dropped: an item
        between the fetch that claimed it and the screen, or brought back by an undo still being
        reported, is in flight and not in `held` yet."""
        pairs = list(dict.fromkeys(held))
        with self._transaction() as conn:
            now = time.time()
            conn.execute("DELETE FROM claims WHERE expires_at <= ?", (now,))
            split = feed_mode_in(conn) == "split"
            taken: set[int] = set()
            for _, item_id in pairs:
                params: list[object] = [item_id, now, session]
                extra = ""
                if not split:
                    extra = " AND annotator = ?"
                    params.append(annotator)
                other = conn.execute(
                    "SELECT 1 FROM claims WHERE item_id = ? AND expires_at > ? AND session != ?"
                    f"{extra} LIMIT 1",
                    params,
                ).fetchone()
                if other is not None:
                    taken.add(item_id)
            kept = [(b, i) for b, i in pairs if i not in taken]
            for batch_id, item_id in kept:
                claim(conn, batch_id, item_id, annotator, session, now, ttl_s)
            return taken

    def release_claims(self, session: str) -> None:
        """The session is over: its items go to whoever asks next."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM claims WHERE session = ?", (session,))

    def claimed_item_ids(self, session: str) -> set[int]:
        """Items the session holds unexpired claims on."""
        rows = self._query(
            "SELECT item_id FROM claims WHERE session = ? AND expires_at > ?",
            (session, time.time()),
        )
        return {int(r[0]) for r in rows}

    def answered_item_ids(self, annotator: str, item_ids: Iterable[int]) -> set[int]:
        """Which of `item_ids` are done for this annotator: answered by them (overlap mode) or by
        anyone (split mode)."""
        ids = list(dict.fromkeys(item_ids))
        if not ids:
            return set()
        with self._lock:
            split = self.feed_mode() == "split"
            who, params = ("", []) if split else (" AND annotator = ?", [annotator])
            rows = self._query(
                "SELECT DISTINCT item_id FROM effective_answers"
                f" WHERE item_id IN ({','.join('?' * len(ids))}){who}",
                [*ids, *params],
            )
        return {int(r[0]) for r in rows}

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
            suggestions=self.span_suggestions_of(row["batch_id"], row["item_id"]),
            # A database opened read-only before its m009 migration has no such column.
            near_duplicate_of=row["near_duplicate_of"]
            if "near_duplicate_of" in row.keys()
            else None,
        )

    def batch_progress(self, batch_id: int, annotator: str) -> tuple[int, int]:
        """(items in the batch, items of it done for this annotator: answered by them in overlap
        mode, by anyone in split mode)."""
        with self._lock:
            answered, params = answered_condition(self.feed_mode() == "split", annotator)
            row = self._one(
                f"SELECT COUNT(*) AS size, SUM({answered}) AS answered FROM batch_items bi"
                " WHERE bi.batch_id = ?",
                [*params, batch_id],
            )
        assert row is not None
        return int(row["size"]), int(row["answered"] or 0)

    def _waiting_for(
        self, annotator: str | None, now: float | None = None
    ) -> tuple[str, list[object]]:
        split = annotator is not None and self.feed_mode() == "split"
        return waiting_condition(split, annotator, time.time() if now is None else now)

    def queue(self, annotator: str | None = None) -> list[QueueEntry]:
        """What waits to be annotated, in the order it will be served: items of published batches
        without an answer by anyone, or, with `annotator`, still to be served to them (see
        `remaining_for`)."""
        with self._lock:
            waiting, params = self._waiting_for(annotator)
            rows = self._query(
                "SELECT bi.batch_id, bi.position, bi.item_id, bi.strategy, bi.score, i.text"
                f" FROM batch_items bi JOIN items i ON i.id = bi.item_id WHERE {waiting}"
                " ORDER BY bi.batch_id, bi.position",
                params,
            )
        return [
            QueueEntry(
                r["batch_id"], r["position"], r["item_id"], r["strategy"], r["score"], r["text"]
            )
            for r in rows
        ]

    def remaining_for(self, annotator: str, *, now: float | None = None) -> int:
        """How many items of the published batches are still to be served to this annotator: not
        answered by them (overlap mode), or by anyone and not claimed by another annotator (split
        mode). Claims of the annotator's own other sessions count: those items are still theirs."""
        with self._lock:
            waiting, params = self._waiting_for(annotator, now)
            return self._count(f"SELECT COUNT(*) FROM batch_items bi WHERE {waiting}", params)

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
