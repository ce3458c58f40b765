"""The SQLite store: the contract between `hnbooks-score`, `hnbooks-tui` and the `hnbooks` CLI.

All SQL of the project lives in this package. Write transactions are short (one answer, one batch, one
imported file) so the scorer and several annotators can share one file without "database is locked".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hnbooks.store import schema
from hnbooks.store.records import (
    ANSWER_VALUES,
    SPAN_TASK_KEY,
    Answer,
    AnswerWithItem,
    BatchEntry,
    IncomingItem,
    Item,
    QueuedItem,
    QueueEntry,
    Round,
    SearchHit,
    Span,
    spans_from_json,
    spans_to_json,
)

DEFAULT_DB_PATH = "hnbooks.db"
BUSY_TIMEOUT_S = 30.0

# Answers that count: not an undo row and not taken back by one.
EFFECTIVE = "a.answer != 'undo' AND NOT EXISTS (SELECT 1 FROM answers u WHERE u.undoes = a.id)"
# The current answer per (item, annotator, task): the latest effective one.
CURRENT = (
    EFFECTIVE + " AND a.id = (SELECT MAX(b.id) FROM answers b WHERE b.item_id = a.item_id"
    " AND b.annotator = a.annotator AND b.task_key = a.task_key AND b.answer != 'undo'"
    " AND NOT EXISTS (SELECT 1 FROM answers v WHERE v.undoes = b.id))"
)


class StoreError(Exception):
    """A problem with the database the user can act on; the message says what and what to do."""


def disk_nearly_full(path: str, margin_bytes: int = 1 << 20) -> bool:
    """Whether the disk holding `path` has less than `margin_bytes` free."""
    try:
        return shutil.disk_usage(Path(path).resolve().parent).free < margin_bytes
    except OSError:
        return False


def friendly_sqlite_error(error: sqlite3.Error, path: str) -> StoreError:
    message = str(error)
    lowered = message.lower()
    if "readonly" in lowered or "read-only" in lowered:
        return StoreError(f"{path}: the database is read-only ({message}); check file permissions")
    if (
        "disk is full" in lowered
        or "database or disk is full" in lowered
        or (
            # With no byte left SQLite cannot even size its shared-memory file, and says only "I/O".
            "disk i/o error" in lowered and disk_nearly_full(path)
        )
    ):
        return StoreError(f"{path}: the disk is full; free space and retry (nothing was written)")
    if "not a database" in lowered or "malformed" in lowered:
        return StoreError(f"{path}: not an hnbooks database or the file is damaged ({message})")
    if "unable to open" in lowered:
        return StoreError(f"{path}: cannot open the database ({message})")
    if "locked" in lowered or "busy" in lowered:
        return StoreError(f"{path}: the database stayed locked for {BUSY_TIMEOUT_S:.0f} s; retry")
    return StoreError(f"{path}: {message}")


SPAN_VIEWS = ("ner_manual", "spans_manual", "ner", "span")


def task_key_for(label: str | None, view_id: str | None, has_spans: bool) -> str:
    """Which task an answer belongs to: span-marking answers together, classification per label."""
    if view_id in SPAN_VIEWS or (not label and has_spans):
        return SPAN_TASK_KEY
    return f"label:{label or ''}"


def item_from_row(row: sqlite3.Row) -> Item:
    return Item(
        id=row["id"],
        external_id=row["external_id"],
        text=row["text"],
        meta=json.loads(row["meta"]),
        input_hash=row["input_hash"],
    )


def answer_from_row(row: sqlite3.Row) -> Answer:
    return Answer(
        id=row["id"],
        item_id=row["item_id"],
        annotator=row["annotator"],
        answer=row["answer"],
        task_key=row["task_key"],
        label=row["label"],
        view_id=row["view_id"],
        spans=spans_from_json(row["spans"]),
        task_hash=row["task_hash"],
        batch_id=row["batch_id"],
        strategy=row["strategy"],
        score=row["score"],
        created_at=row["created_at"],
    )


def fts_query(user_query: str) -> str:
    """Turn what a user typed into a safe FTS5 query: every word must match, as a literal."""
    words = [w for w in re.findall(r"\w+", user_query, flags=re.UNICODE)]
    return " ".join('"' + w.replace('"', '""') + '"' for w in words)


def match_ranges(
    text: str, pattern: re.Pattern[str], limit: int = 50
) -> tuple[tuple[int, int], ...]:
    ranges = []
    for match in pattern.finditer(text):
        if match.end() > match.start():
            ranges.append((match.start(), match.end()))
        if len(ranges) >= limit:
            break
    return tuple(ranges)


def snippet_around(text: str, ranges: tuple[tuple[int, int], ...], width: int = 160) -> str:
    start = max(0, ranges[0][0] - width // 3) if ranges else 0
    snippet = text[start : start + width].replace("\n", " ")
    return ("…" if start else "") + snippet + ("…" if start + width < len(text) else "")


class Store:
    """One SQLite database file. Safe to share between threads (calls are serialised)."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        self.conn = self._connect(create)

    # -- connection -------------------------------------------------------------------------------

    def _connect(self, create: bool) -> sqlite3.Connection:
        path = Path(self.path)
        if self.path != ":memory:":
            if path.is_dir():
                raise StoreError(f"{self.path} is a directory, not a database file")
            if not path.parent.exists():
                raise StoreError(f"{self.path}: directory {path.parent} does not exist")
            if not create and not path.exists():
                raise StoreError(
                    f"{self.path}: no database here; create one with `hnbooks import FILE --db {self.path}`"
                )
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=BUSY_TIMEOUT_S, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            if schema.schema_version(conn) > schema.SCHEMA_VERSION:
                raise schema.SchemaTooNew(
                    f"{self.path}: written by a newer hnbooks (schema version "
                    f"{schema.schema_version(conn)}, this one knows up to {schema.SCHEMA_VERSION}); "
                    "upgrade hnbooks to open it"
                )
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal" and self.path != ":memory:":
                conn.execute("PRAGMA journal_mode").fetchone()
            # FULL: an answer acknowledged on screen survives a power cut, not only a crash.
            conn.execute("PRAGMA synchronous = FULL")
            schema.migrate(conn)
        except schema.SchemaTooNew as error:
            raise StoreError(str(error)) from None
        except sqlite3.Error as error:
            raise friendly_sqlite_error(error, self.path) from None
        return conn

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: BEGIN IMMEDIATE so a writer waits for the lock up front, not mid-way."""
        with self._lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as error:
                raise friendly_sqlite_error(error, self.path) from None
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except sqlite3.Error as error:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise friendly_sqlite_error(error, self.path) from None
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self.conn.execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as error:
                raise friendly_sqlite_error(error, self.path) from None

    def _one(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        rows = self._query(sql, params)
        return rows[0] if rows else None

    def data_version(self) -> int:
        """Changes whenever another connection commits (cheap to poll)."""
        row = self._one("PRAGMA data_version")
        assert row is not None
        return int(row[0])

    # -- labels -----------------------------------------------------------------------------------

    def labels(self) -> list[str]:
        return [r["name"] for r in self._query("SELECT name FROM labels ORDER BY position, name")]

    def add_label(self, name: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_\-]{1,40}", name):
            raise StoreError(f"label {name!r}: use 1-40 letters, digits, '_' or '-'")
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO labels (name, position) "
                "VALUES (?, (SELECT COALESCE(MAX(position), -1) + 1 FROM labels))",
                (name,),
            )

    # -- items ------------------------------------------------------------------------------------

    def item(self, item_id: int) -> Item:
        row = self._one("SELECT * FROM items WHERE id = ?", (item_id,))
        if row is None:
            raise StoreError(f"no item with id {item_id}")
        return item_from_row(row)

    def items_by_ids(self, item_ids: list[int]) -> list[Item]:
        found: dict[int, Item] = {}
        for start in range(0, len(item_ids), 500):
            chunk = item_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._query(f"SELECT * FROM items WHERE id IN ({marks})", chunk):
                found[row["id"]] = item_from_row(row)
        return [found[i] for i in item_ids if i in found]

    def item_count(self) -> int:
        row = self._one("SELECT COUNT(*) FROM items")
        return int(row[0]) if row else 0

    def max_item_id(self) -> int:
        row = self._one("SELECT COALESCE(MAX(id), 0) FROM items")
        return int(row[0]) if row else 0

    def item_ids(self) -> list[int]:
        """Every item id, ascending, read without the texts."""
        return [row[0] for row in self._query("SELECT id FROM items ORDER BY id")]

    def add_items(self, incoming: Iterable[IncomingItem], source: str) -> list[int]:
        """Store items (and their answers) as `hnbooks import` does, in one transaction; return
        the id each incoming item ended up with (an existing one for a duplicate text)."""
        from hnbooks.store.ingest import write_incoming

        ids = []
        with self.transaction() as conn:
            for item in incoming:
                ids.append(write_incoming(conn, item, source).item_id)
        return ids

    def iter_item_texts(self, after_id: int = 0, chunk: int = 2000) -> Iterator[tuple[int, str]]:
        """(id, text) for every item with id > after_id, in id order, read in chunks."""
        last = after_id
        while True:
            rows = self._query(
                "SELECT id, text FROM items WHERE id > ? ORDER BY id LIMIT ?", (last, chunk)
            )
            if not rows:
                return
            for row in rows:
                yield row["id"], row["text"]
            last = rows[-1]["id"]

    def texts_for(self, item_ids: list[int]) -> dict[int, str]:
        return {item.id: item.text for item in self.items_by_ids(item_ids)}

    def parent_context(self, item: Item) -> str | None:
        """The parent comment's text or the story title, when the item's meta names one we hold."""
        title = item.meta.get("story_title") or item.meta.get("title")
        parent = item.meta.get("parent")
        if parent is not None:
            row = self._one("SELECT text FROM items WHERE external_id = ?", (f"hn:{parent}",))
            if row is not None:
                return str(row["text"])
        return str(title) if title else None

    # -- answers ----------------------------------------------------------------------------------

    def record_answer(
        self,
        item_id: int,
        annotator: str,
        answer: str,
        *,
        label: str | None = "BOOK",
        spans: Iterable[Span] = (),
        view_id: str | None = "classification",
        task_hash: int | None = None,
        batch_id: int | None = None,
        strategy: str | None = None,
        score: float | None = None,
        client_key: str | None = None,
        created_at: float | None = None,
    ) -> int:
        """Append one answer and return its id. A repeated `client_key` returns the first id instead."""
        if answer not in ANSWER_VALUES:
            raise StoreError(f"answer must be one of {', '.join(ANSWER_VALUES)}, not {answer!r}")
        if not annotator:
            raise StoreError("an answer needs an annotator name")
        span_list = tuple(spans)
        with self.transaction() as conn:
            text_row = conn.execute("SELECT text FROM items WHERE id = ?", (item_id,)).fetchone()
            if text_row is None:
                raise StoreError(f"no item with id {item_id}")
            check_spans(span_list, len(text_row["text"]))
            if client_key is not None:
                existing = conn.execute(
                    "SELECT id FROM answers WHERE client_key = ?", (client_key,)
                ).fetchone()
                if existing is not None:
                    return int(existing["id"])
            cursor = conn.execute(
                "INSERT INTO answers (item_id, annotator, answer, task_key, label, view_id, spans,"
                " task_hash, batch_id, strategy, score, client_key, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    item_id,
                    annotator,
                    answer,
                    task_key_for(label, view_id, bool(span_list)),
                    label,
                    view_id,
                    spans_to_json(span_list),
                    task_hash,
                    batch_id,
                    strategy,
                    score,
                    client_key,
                    time.time() if created_at is None else created_at,
                ),
            )
            return int(cursor.lastrowid or 0)

    def undo_last(self, annotator: str) -> Answer | None:
        """Take back this annotator's latest answer still in force; None when there is none."""
        with self.transaction() as conn:
            row = conn.execute(
                f"SELECT a.* FROM answers a WHERE a.annotator = ? AND {EFFECTIVE}"
                " ORDER BY a.id DESC LIMIT 1",
                (annotator,),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "INSERT INTO answers (item_id, annotator, answer, task_key, label, spans, batch_id,"
                " strategy, undoes, created_at) VALUES (?, ?, 'undo', ?, ?, '[]', ?, ?, ?, ?)",
                (
                    row["item_id"],
                    annotator,
                    row["task_key"],
                    row["label"],
                    row["batch_id"],
                    row["strategy"],
                    row["id"],
                    time.time(),
                ),
            )
            return answer_from_row(row)

    def current_answers(
        self, *, label: str | None = None, annotator: str | None = None
    ) -> list[Answer]:
        """Every answer in force (latest, not undone), oldest first."""
        where, params = [CURRENT], []
        if label is not None:
            where.append("a.label = ?")
            params.append(label)
        if annotator is not None:
            where.append("a.annotator = ?")
            params.append(annotator)
        rows = self._query(
            f"SELECT a.* FROM answers a WHERE {' AND '.join(where)} ORDER BY a.id", params
        )
        return [answer_from_row(r) for r in rows]

    def current_answers_with_items(self) -> Iterator[AnswerWithItem]:
        rows = self._query(
            "SELECT a.*, i.id AS i_id, i.external_id, i.text, i.meta, i.input_hash FROM answers a"
            f" JOIN items i ON i.id = a.item_id WHERE {CURRENT} ORDER BY a.id"
        )
        for row in rows:
            item = Item(
                id=row["i_id"],
                external_id=row["external_id"],
                text=row["text"],
                meta=json.loads(row["meta"]),
                input_hash=row["input_hash"],
            )
            yield AnswerWithItem(answer=answer_from_row(row), item=item)

    def answers_of_item(self, item_id: int, annotator: str | None = None) -> list[Answer]:
        """Current answers on one item, e.g. to show what was said before."""
        params: list[Any] = [item_id]
        extra = ""
        if annotator is not None:
            extra = " AND a.annotator = ?"
            params.append(annotator)
        rows = self._query(
            f"SELECT a.* FROM answers a WHERE a.item_id = ?{extra} AND {CURRENT} ORDER BY a.id",
            params,
        )
        return [answer_from_row(r) for r in rows]

    def review_answers(
        self,
        *,
        answer: str | None = None,
        annotator: str | None = None,
        strategy: str | None = None,
        disagreement: str | None = None,
        low_score: float = 0.2,
        high_score: float = 0.8,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AnswerWithItem]:
        """Current answers, newest first, filtered for the review screen.

        `disagreement="accepted-low"` keeps accepts the model scored below `low_score`;
        `"rejected-high"` keeps rejects it scored above `high_score`; `"any"` keeps both.
        """
        where, params = [CURRENT], []
        for column, value in (("answer", answer), ("annotator", annotator), ("strategy", strategy)):
            if value is not None:
                where.append(f"a.{column} = ?")
                params.append(value)
        low = f"(a.answer = 'accept' AND a.score IS NOT NULL AND a.score < {float(low_score)!r})"
        high = f"(a.answer = 'reject' AND a.score IS NOT NULL AND a.score > {float(high_score)!r})"
        if disagreement == "accepted-low":
            where.append(low)
        elif disagreement == "rejected-high":
            where.append(high)
        elif disagreement == "any":
            where.append(f"({low} OR {high})")
        elif disagreement is not None:
            raise StoreError(f"unknown disagreement filter {disagreement!r}")
        rows = self._query(
            "SELECT a.*, i.id AS i_id, i.external_id, i.text, i.meta, i.input_hash FROM answers a"
            f" JOIN items i ON i.id = a.item_id WHERE {' AND '.join(where)}"
            " ORDER BY a.id DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [
            AnswerWithItem(
                answer=answer_from_row(r),
                item=Item(
                    r["i_id"], r["external_id"], r["text"], json.loads(r["meta"]), r["input_hash"]
                ),
            )
            for r in rows
        ]

    def answer_count(self, annotator: str | None = None) -> int:
        params: list[Any] = []
        extra = ""
        if annotator is not None:
            extra = " AND a.annotator = ?"
            params.append(annotator)
        row = self._one(f"SELECT COUNT(*) FROM answers a WHERE {CURRENT}{extra}", params)
        return int(row[0]) if row else 0

    # -- batches and the queue --------------------------------------------------------------------

    def publish_batch(
        self,
        entries: list[BatchEntry],
        *,
        source: str,
        label: str = "BOOK",
        note: str | None = None,
        round_report: dict[str, Any] | None = None,
        round_started_at: float | None = None,
    ) -> int:
        """Publish a batch (and its round's report) in one transaction; return the batch id."""
        if not entries:
            raise StoreError("refusing to publish an empty batch")
        if len({e.item_id for e in entries}) != len(entries):
            raise StoreError("a batch cannot hold the same item twice")
        now = time.time()
        with self.transaction() as conn:
            round_id = None
            if round_report is not None:
                cursor = conn.execute(
                    "INSERT INTO rounds (started_at, finished_at, label, report) VALUES (?, ?, ?, ?)",
                    (round_started_at or now, now, label, json.dumps(round_report)),
                )
                round_id = cursor.lastrowid
            cursor = conn.execute(
                "INSERT INTO batches (round_id, source, label, note, published_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (round_id, source, label, note, now),
            )
            batch_id = int(cursor.lastrowid or 0)
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
            if round_id is not None:
                report = dict(round_report or {})
                report["batch_id"] = batch_id
                conn.execute(
                    "UPDATE rounds SET report = ? WHERE id = ?", (json.dumps(report), round_id)
                )
            return batch_id

    def record_round(self, report: dict[str, Any], label: str = "BOOK") -> int:
        """Store a round's report when it published no batch (e.g. nothing left to choose)."""
        now = time.time()
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO rounds (started_at, finished_at, label, report) VALUES (?, ?, ?, ?)",
                (now, now, label, json.dumps(report)),
            )
            return int(cursor.lastrowid or 0)

    def latest_batch_id(self) -> int:
        row = self._one("SELECT COALESCE(MAX(id), 0) FROM batches")
        return int(row[0]) if row else 0

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
        row = self._one("SELECT COUNT(*) FROM batches")
        return int(row[0]) if row else 0

    def next_queued_item(
        self, annotator: str, *, skip_item_ids: Iterable[int] = ()
    ) -> QueuedItem | None:
        """The first item of the oldest published batch this annotator has not answered."""
        skip = list(skip_item_ids)
        skip_sql = f" AND bi.item_id NOT IN ({','.join('?' * len(skip))})" if skip else ""
        row = self._one(
            "SELECT bi.*, b.label AS batch_label FROM batch_items bi JOIN batches b ON b.id = bi.batch_id"
            f" WHERE NOT EXISTS (SELECT 1 FROM answers a WHERE a.item_id = bi.item_id"
            f" AND a.annotator = ? AND {EFFECTIVE}){skip_sql}"
            " ORDER BY bi.batch_id, bi.position LIMIT 1",
            [annotator, *skip],
        )
        if row is None:
            return None
        return self._queued_item(row, annotator)

    def queued_item(self, annotator: str, batch_id: int, item_id: int) -> QueuedItem | None:
        row = self._one(
            "SELECT bi.*, b.label AS batch_label FROM batch_items bi JOIN batches b ON b.id = bi.batch_id"
            " WHERE bi.batch_id = ? AND bi.item_id = ?",
            (batch_id, item_id),
        )
        return None if row is None else self._queued_item(row, annotator)

    def _queued_item(self, row: sqlite3.Row, annotator: str) -> QueuedItem:
        size, answered = self.batch_progress(row["batch_id"], annotator)
        return QueuedItem(
            item=self.item(row["item_id"]),
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
            "SELECT COUNT(*) AS size, SUM(EXISTS (SELECT 1 FROM answers a WHERE a.item_id = bi.item_id"
            f" AND a.annotator = ? AND {EFFECTIVE})) AS answered FROM batch_items bi WHERE bi.batch_id = ?",
            (annotator, batch_id),
        )
        assert row is not None
        return int(row["size"]), int(row["answered"] or 0)

    def queue(self, annotator: str | None = None) -> list[QueueEntry]:
        """What waits to be annotated: items of published batches without an answer (by anyone, or
        by `annotator` when given), in the order they will be served."""
        who = " AND a.annotator = ?" if annotator else ""
        params = [annotator] if annotator else []
        rows = self._query(
            "SELECT bi.batch_id, bi.position, bi.item_id, bi.strategy, bi.score, i.text"
            " FROM batch_items bi JOIN items i ON i.id = bi.item_id"
            f" WHERE NOT EXISTS (SELECT 1 FROM answers a WHERE a.item_id = bi.item_id{who} AND {EFFECTIVE})"
            " ORDER BY bi.batch_id, bi.position",
            params,
        )
        return [
            QueueEntry(
                r["batch_id"], r["position"], r["item_id"], r["strategy"], r["score"], r["text"]
            )
            for r in rows
        ]

    def excluded_item_ids(self) -> set[int]:
        """Items a new batch must not hold: answered by anyone, or waiting in a published batch."""
        answered = self._query(f"SELECT DISTINCT a.item_id FROM answers a WHERE {EFFECTIVE}")
        queued = self._query(
            "SELECT DISTINCT bi.item_id FROM batch_items bi WHERE NOT EXISTS"
            f" (SELECT 1 FROM answers a WHERE a.item_id = bi.item_id AND {EFFECTIVE})"
        )
        return {r[0] for r in answered} | {r[0] for r in queued}

    def served_item_ids(self) -> set[int]:
        """Every item ever placed in a batch."""
        return {r[0] for r in self._query("SELECT DISTINCT item_id FROM batch_items")}

    def random_answers_with_probability(self, label: str) -> list[tuple[int, str, float]]:
        """(item id, answer, inclusion probability) for current answers to items served as `random`."""
        rows = self._query(
            "SELECT a.item_id, a.answer, bi.inclusion_probability FROM answers a"
            " JOIN batch_items bi ON bi.batch_id = a.batch_id AND bi.item_id = a.item_id"
            f" WHERE {CURRENT} AND a.label = ? AND bi.strategy = 'random'"
            " AND bi.inclusion_probability IS NOT NULL",
            (label,),
        )
        return [(r[0], r[1], float(r[2])) for r in rows]

    # -- rounds -----------------------------------------------------------------------------------

    def rounds(self) -> list[Round]:
        rows = self._query("SELECT * FROM rounds ORDER BY id")
        return [
            Round(r["id"], r["started_at"], r["finished_at"], r["label"], json.loads(r["report"]))
            for r in rows
        ]

    # -- search -----------------------------------------------------------------------------------

    def search(self, query: str, *, mode: str = "fts", limit: int = 50) -> list[SearchHit]:
        """Keyword (FTS5, every word must match) or regular-expression search over all texts."""
        if mode == "fts":
            match = fts_query(query)
            if not match:
                return []
            rows = self._query(
                "SELECT i.* FROM items_fts f JOIN items i ON i.id = f.rowid"
                " WHERE items_fts MATCH ? ORDER BY f.rank LIMIT ?",
                (match, limit),
            )
            words = re.findall(r"\w+", query, flags=re.UNICODE)
            pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)
            items = [item_from_row(r) for r in rows]
        elif mode == "regex":
            try:
                pattern = re.compile(query, re.IGNORECASE)
            except re.error as error:
                raise StoreError(f"invalid regular expression {query!r}: {error}") from None
            items = []
            for item_id, text in self.iter_item_texts():
                if pattern.search(text):
                    items.append(item_id)
                    if len(items) >= limit:
                        break
            items = self.items_by_ids(items)
        else:
            raise StoreError(f"unknown search mode {mode!r} (use fts or regex)")
        hits = []
        for item in items:
            ranges = match_ranges(item.text, pattern)
            hits.append(
                SearchHit(item=item, snippet=snippet_around(item.text, ranges), match_ranges=ranges)
            )
        return hits

    # -- stats ------------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        current = self.current_answers()
        by_answer = Counter(a.answer for a in current)
        by_annotator: dict[str, dict[str, int]] = {}
        for a in current:
            by_annotator.setdefault(a.annotator, Counter())[a.answer] += 1  # type: ignore[arg-type]
        label = self.labels()[0]
        positives = {a.item_id for a in current if a.verdict_for(label)}
        spans = sum(len(a.spans) for a in current if a.answer == "accept")
        rounds = self.rounds()
        return {
            "items": self.item_count(),
            "answers": len(current),
            "answers_by_answer": {k: by_answer.get(k, 0) for k in ANSWER_VALUES},
            "answers_by_annotator": {k: dict(v) for k, v in sorted(by_annotator.items())},
            "batches": self.batch_count(),
            "queued": len(self.queue()),
            "label": label,
            "positives": len(positives),
            "spans": spans,
            "labels": self.labels(),
            "rounds": [{"id": r.id, "finished_at": r.finished_at, **r.report} for r in rounds],
        }


def check_spans(spans: Iterable[Span], text_length: int) -> None:
    for span in spans:
        if not (0 <= span.start < span.end <= text_length):
            raise StoreError(
                f"span {span.start}-{span.end} ({span.label}) lies outside the text "
                f"(length {text_length})"
            )
