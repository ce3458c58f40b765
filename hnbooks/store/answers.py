"""Answers: append-only rows, recorded, undone, and read through the `current_answers` view.

An undo is a row of its own pointing at the answer it takes back; nothing is updated or deleted.
The rule for the answer in force lives in the views of migration m002 (`effective_answers`,
`current_answers`), not in the queries here.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from hnbooks.store.claims import CLAIM_TTL_S, claim, feed_mode_in, session_process_is_gone
from hnbooks.store.connection import Connection, StoreError
from hnbooks.store.records import (
    ANSWER_VALUES,
    NEW_ANSWER_COLUMNS,
    Answer,
    AnswerWithItem,
    Item,
    NewAnswer,
    Span,
    finite_json,
    spans_from_json,
    spans_to_json,
)

# A NewAnswer's fields are the answers table's columns; these three are derived, not given.
INSERT_ANSWER_SQL = (
    f"INSERT INTO answers (item_id, task_key, {', '.join(NEW_ANSWER_COLUMNS)})"
    f" VALUES ({', '.join('?' * (len(NEW_ANSWER_COLUMNS) + 2))})"
)
ITEM_COLUMNS = "i.id AS i_id, i.external_id, i.text, i.meta, i.input_hash"
PASSTHROUGH_TABLE_SQL = (
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'answer_passthrough'"
)


def answer_row_values(item_id: int, new: NewAnswer, default_label: str | None) -> tuple[Any, ...]:
    """The INSERT parameters for `new`: the label filled in, spans as JSON, the time now if unset."""
    label = new.label
    if label is None and new.view_id == "classification":
        label = default_label
    filled = replace(new, label=label)
    values = {name: getattr(filled, name) for name in NEW_ANSWER_COLUMNS}
    values["spans"] = spans_to_json(filled.spans)
    values["created_at"] = time.time() if filled.created_at is None else filled.created_at
    return (item_id, filled.derived_task_key(), *(values[name] for name in NEW_ANSWER_COLUMNS))


def insert_answer(
    conn: sqlite3.Connection, item_id: int, new: NewAnswer, default_label: str | None
) -> int:
    """Append one answer inside the caller's transaction; return its id."""
    cursor = conn.execute(INSERT_ANSWER_SQL, answer_row_values(item_id, new, default_label))
    answer_id = int(cursor.lastrowid or 0)
    if new.passthrough is not None:
        conn.execute(
            "INSERT INTO answer_passthrough (answer_id, fields) VALUES (?, ?)",
            (answer_id, finite_json(dict(new.passthrough))),
        )
    return answer_id


def answer_from_row(row: sqlite3.Row) -> Answer:
    values: dict[str, Any] = {name: row[name] for name in NEW_ANSWER_COLUMNS}
    values["spans"] = spans_from_json(row["spans"])
    if "passthrough" in row.keys() and row["passthrough"] is not None:
        values["passthrough"] = json.loads(row["passthrough"])
    return Answer(id=row["id"], item_id=row["item_id"], task_key=row["task_key"], **values)


def answer_with_item_from_row(row: sqlite3.Row) -> AnswerWithItem:
    item = Item(
        row["i_id"], row["external_id"], row["text"], json.loads(row["meta"]), row["input_hash"]
    )
    return AnswerWithItem(answer=answer_from_row(row), item=item)


def check_spans(spans: Iterable[Span], text_length: int) -> None:
    for span in spans:
        if not (0 <= span.start < span.end <= text_length):
            raise StoreError(
                f"span {span.start}-{span.end} ({span.label}) lies outside the text (length {text_length})"
            )


def first_label(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT name FROM labels ORDER BY position, name LIMIT 1").fetchone()
    return None if row is None else str(row[0])


def check_new_answer(new: NewAnswer) -> None:
    if new.answer not in ANSWER_VALUES:
        raise StoreError(f"answer must be one of {', '.join(ANSWER_VALUES)}, not {new.answer!r}")
    if not new.annotator:
        raise StoreError("an answer needs an annotator name")


def checked_item_text(conn: sqlite3.Connection, item_id: int, new: NewAnswer) -> None:
    """The item exists and the answer's spans lie inside its text."""
    text_row = conn.execute("SELECT text FROM items WHERE id = ?", (item_id,)).fetchone()
    if text_row is None:
        raise StoreError(f"no item with id {item_id}")
    check_spans(new.spans, len(text_row["text"]))


def existing_answer_id(conn: sqlite3.Connection, client_key: str | None) -> int | None:
    """The answer already written with `client_key`, if any (a repeated write is a no-op)."""
    if client_key is None:
        return None
    row = conn.execute("SELECT id FROM answers WHERE client_key = ?", (client_key,)).fetchone()
    return None if row is None else int(row["id"])


ENDED_SESSIONS: set[str] = set()
"""Sessions of this process that have ended (`AnswerQueries.end_session`): their process still
runs, but their answers are the next session's to undo, as a gone process's are."""


def session_of_client_key(client_key: str | None) -> str | None:
    """The session an answer was given in, when its client key names one: the TUI's keys are
    `<screen>:<session>:<unique>`, the session being `new_session_id()`'s `host:pid:uuid`."""
    if client_key is None:
        return None
    parts = client_key.split(":")
    if len(parts) != 5 or not parts[2].isdigit():
        return None
    return ":".join(parts[1:4])


def undoable_by(session: str | None, row: sqlite3.Row) -> bool:
    """Whether `session` may take back the answer in `row`: its own, one of a session whose
    process is gone (undo after a crash), or one given outside any session (an import, a key from
    before sessions were named). Another live session's answers are that session's to undo."""
    if session is None:
        return True
    given_in = session_of_client_key(row["client_key"])
    return (
        given_in is None
        or given_in == session
        or given_in in ENDED_SESSIONS
        or session_process_is_gone(given_in)
    )


def latest_undoable(
    conn: sqlite3.Connection, annotator: str, session: str | None
) -> sqlite3.Row | None:
    cursor = conn.execute(
        "SELECT * FROM effective_answers WHERE annotator = ? ORDER BY id DESC", (annotator,)
    )
    try:
        rows: list[sqlite3.Row]
        while rows := cursor.fetchmany(64):
            for row in rows:
                if undoable_by(session, row):
                    return row
        return None
    finally:
        cursor.close()


def undo_latest(
    conn: sqlite3.Connection, annotator: str, session: str | None = None
) -> Answer | None:
    """Inside the caller's transaction: take back this annotator's latest answer still in force
    that `session` may undo (`undoable_by`; any, without a session)."""
    row = latest_undoable(conn, annotator, session)
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


class AnswerQueries(Connection):
    def record_answer(self, item_id: int, new: NewAnswer) -> int:
        """Append one answer and return its id. A repeated `client_key` returns the first id instead."""
        check_new_answer(new)
        with self._transaction() as conn:
            checked_item_text(conn, item_id, new)
            existing = existing_answer_id(conn, new.client_key)
            if existing is not None:
                return existing
            return insert_answer(conn, item_id, new, first_label(conn))

    def record_queued_answer(self, item_id: int, new: NewAnswer) -> int | None:
        """`record_answer` for an item served from the queue, unless it is done already: answered
        by this annotator (overlap mode) or by anyone (split mode) — in another session whose claim
        it outlived, say. Returns the answer's id, or None when nothing was written for that reason.
        A repeated `client_key` returns the first id."""
        check_new_answer(new)
        with self._transaction() as conn:
            checked_item_text(conn, item_id, new)
            existing = existing_answer_id(conn, new.client_key)
            if existing is not None:
                return existing
            who, params = (
                ("", [])
                if feed_mode_in(conn) == "split"
                else (" AND annotator = ?", [new.annotator])
            )
            done = conn.execute(
                f"SELECT 1 FROM effective_answers WHERE item_id = ?{who} LIMIT 1",
                [item_id, *params],
            ).fetchone()
            if done is not None:
                return None
            return insert_answer(conn, item_id, new, first_label(conn))

    def undo_last(self, annotator: str) -> Answer | None:
        """Take back this annotator's latest answer still in force; None when there is none."""
        with self._transaction() as conn:
            return undo_latest(conn, annotator)

    def end_session(self, session: str) -> None:
        """`session` is over (its app quit): a later session may undo its answers."""
        ENDED_SESSIONS.add(session)

    def undo_last_claiming(
        self, annotator: str, *, session: str, claim_ttl_s: float = CLAIM_TTL_S
    ) -> Answer | None:
        """`undo_last` of the latest answer `session` may take back (its own, a gone session's,
        or one given outside a session; never another live session's), and the undone answer's
        queue item claimed for `session` in the same transaction (taken over from any other
        session): it is about to be answered again there."""
        with self._transaction() as conn:
            undone = undo_latest(conn, annotator, session)
            if undone is not None and undone.batch_id is not None:
                in_batch = conn.execute(
                    "SELECT 1 FROM batch_items WHERE batch_id = ? AND item_id = ?",
                    (undone.batch_id, undone.item_id),
                ).fetchone()
                if in_batch is not None:
                    now = time.time()
                    # In overlap mode other annotators' claims on the item are theirs to keep: only
                    # this annotator's other sessions give it up. In split mode it is this session's.
                    same_annotator = "" if feed_mode_in(conn) == "split" else " AND annotator = ?"
                    conn.execute(
                        f"DELETE FROM claims WHERE item_id = ? AND session != ?{same_annotator}",
                        (undone.item_id, session, *(() if same_annotator == "" else (annotator,))),
                    )
                    claim(
                        conn,
                        undone.batch_id,
                        undone.item_id,
                        annotator,
                        session,
                        now,
                        claim_ttl_s,
                    )
            return undone

    def current_answers(
        self, *, label: str | None = None, annotator: str | None = None
    ) -> list[Answer]:
        """Every answer in force (latest, not undone), oldest first."""
        where, params = ["1"], []
        if label is not None:
            where.append("label = ?")
            params.append(label)
        if annotator is not None:
            where.append("annotator = ?")
            params.append(annotator)
        rows = self._query(
            f"SELECT * FROM current_answers WHERE {' AND '.join(where)} ORDER BY id", params
        )
        return [answer_from_row(r) for r in rows]

    def current_answers_with_items(self) -> list[AnswerWithItem]:
        """Every answer in force with its item and its passthrough fields, oldest first."""
        # A database opened read-only before migration m006 has no passthrough table yet.
        with_passthrough = self._one(PASSTHROUGH_TABLE_SQL) is not None
        passthrough, join = (
            (", p.fields AS passthrough", " LEFT JOIN answer_passthrough p ON p.answer_id = a.id")
            if with_passthrough
            else ("", "")
        )
        rows = self._query(
            f"SELECT a.*, {ITEM_COLUMNS}{passthrough} FROM current_answers a"
            f" JOIN items i ON i.id = a.item_id{join} ORDER BY a.id"
        )
        return [answer_with_item_from_row(row) for row in rows]

    def answers_of_item(self, item_id: int, annotator: str | None = None) -> list[Answer]:
        """Current answers on one item, e.g. to show what was said before."""
        params: list[Any] = [item_id]
        extra = ""
        if annotator is not None:
            extra = " AND annotator = ?"
            params.append(annotator)
        rows = self._query(
            f"SELECT * FROM current_answers WHERE item_id = ?{extra} ORDER BY id", params
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
        where: list[str] = ["1"]
        params: list[Any] = []
        for column, value in (("answer", answer), ("annotator", annotator), ("strategy", strategy)):
            if value is not None:
                where.append(f"a.{column} = ?")
                params.append(value)
        low = "(a.answer = 'accept' AND a.score IS NOT NULL AND a.score < ?)"
        high = "(a.answer = 'reject' AND a.score IS NOT NULL AND a.score > ?)"
        if disagreement == "accepted-low":
            where.append(low)
            params.append(float(low_score))
        elif disagreement == "rejected-high":
            where.append(high)
            params.append(float(high_score))
        elif disagreement == "any":
            where.append(f"({low} OR {high})")
            params.extend([float(low_score), float(high_score)])
        elif disagreement is not None:
            raise StoreError(f"unknown disagreement filter {disagreement!r}")
        rows = self._query(
            f"SELECT a.*, {ITEM_COLUMNS} FROM current_answers a JOIN items i ON i.id = a.item_id"
            f" WHERE {' AND '.join(where)} ORDER BY a.id DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [answer_with_item_from_row(r) for r in rows]

    def answer_count(self, annotator: str | None = None) -> int:
        if annotator is None:
            return self._count("SELECT COUNT(*) FROM current_answers")
        return self._count("SELECT COUNT(*) FROM current_answers WHERE annotator = ?", (annotator,))

    def answer_strategies(self) -> list[str]:
        """The strategies that served the answers in force (what review can filter by), sorted."""
        rows = self._query(
            "SELECT DISTINCT strategy FROM current_answers WHERE strategy IS NOT NULL ORDER BY strategy"
        )
        return [str(row[0]) for row in rows]
