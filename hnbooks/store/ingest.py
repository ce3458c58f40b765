"""Writing imported texts and answers: duplicate texts merge, answers already stored are not added.

Runs inside the caller's transaction: one item at a time (`write_incoming`), or a chunk at a time
(`write_chunk`, what `hnbooks import` uses, with the answers written apart by `write_answers`).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from hnbooks.prodigy import text_input_hash
from hnbooks.store.answers import insert_answer
from hnbooks.store.records import IncomingItem, NewAnswer, Span, finite_json, spans_to_json


class ItemConflict(Exception):
    """An incoming item clashes with a stored one (same external id, different text)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class IngestOutcome:
    item_id: int
    new_item: bool
    answers_added: int
    answers_present: int


def text_key(text: str) -> str:
    """Identity of a text for merging duplicates: whitespace runs collapsed, nothing else changed."""
    return hashlib.sha1(" ".join(text.split()).encode("utf-8")).hexdigest()


def remap_spans(spans: tuple[Span, ...], from_text: str, to_text: str) -> tuple[Span, ...]:
    """Move span offsets from one text to another that differs only in whitespace."""
    if from_text == to_text or not spans:
        return spans
    source_positions = [i for i, ch in enumerate(from_text) if not ch.isspace()]
    target_positions = [i for i, ch in enumerate(to_text) if not ch.isspace()]
    rank = {pos: n for n, pos in enumerate(source_positions)}
    remapped = []
    for span in spans:
        inside = [p for p in range(span.start, span.end) if p in rank]
        if inside:
            start = target_positions[rank[inside[0]]]
            end = target_positions[rank[inside[-1]]] + 1
            remapped.append(Span(start, end, span.label))
    return tuple(remapped)


def remap_passthrough(
    passthrough: Mapping[str, Any] | None, from_text: str, to_text: str
) -> Mapping[str, Any] | None:
    """An imported answer's passthrough fields for the stored text its text merged into: tokens
    and token offsets are left out (the export rebuilds them for the stored text), each span's
    other fields move with the span."""
    if passthrough is None or from_text == to_text:
        return passthrough
    moved = {key: value for key, value in passthrough.items() if key not in ("tokens", "spans")}
    span_fields = []
    for entry in passthrough.get("spans") or []:
        spans = remap_spans(
            (Span(entry["start"], entry["end"], entry["label"]),), from_text, to_text
        )
        if spans:
            kept = {k: v for k, v in entry.items() if k not in ("token_start", "token_end")}
            span_fields.append({**kept, "start": spans[0].start, "end": spans[0].end})
    if span_fields:
        moved["spans"] = span_fields
    return moved


def write_incoming(conn: sqlite3.Connection, incoming: IncomingItem, source: str) -> IngestOutcome:
    """Store one incoming item (or find the stored text it duplicates) and its new answers: a
    chunk of one (`write_chunk`), so one item and a file's worth are written the same way."""
    (outcome,) = write_chunk(conn, [incoming], source, import_id=None)
    added, present = write_answers(
        conn,
        outcome.item_id,
        remapped_answers(incoming.answers, incoming.text, outcome.stored_text),
    )
    return IngestOutcome(outcome.item_id, outcome.new_item, added, present)


def remapped_answers(answers: Sequence[NewAnswer], from_text: str, to_text: str) -> list[NewAnswer]:
    """`answers` given on `from_text`, moved onto the stored text `to_text` it merged into."""
    return [
        replace(
            answer,
            spans=remap_spans(answer.spans, from_text, to_text),
            passthrough=remap_passthrough(answer.passthrough, from_text, to_text),
        )
        for answer in answers
    ]


def write_answers(
    conn: sqlite3.Connection, item_id: int, answers: Sequence[NewAnswer]
) -> tuple[int, int]:
    """Add the answers (spans on the stored text) not stored yet to item `item_id`; return
    (added, already present)."""
    added = present = 0
    for answer in answers:
        # Same item, person, verdict, label and spans, and the same second when the answer says
        # when it was given: the same answer, imported before. An answer without a time matches
        # one given at any time, so re-importing a file without timestamps adds nothing.
        duplicate = conn.execute(
            "SELECT 1 FROM answers WHERE item_id = ? AND annotator = ? AND answer = ? AND task_key = ?"
            " AND label IS ? AND spans = ?"
            " AND (? IS NULL OR CAST(created_at AS INTEGER) = CAST(? AS INTEGER))",
            (
                item_id,
                answer.annotator,
                answer.answer,
                answer.derived_task_key(),
                answer.label,
                spans_to_json(answer.spans),
                answer.created_at,
                answer.created_at,
            ),
        ).fetchone()
        if duplicate is not None:
            present += 1
            continue
        if answer.created_at is None:
            answer = replace(answer, created_at=time.time())
        # Imported answers keep the label they carry (None stays None: no question is guessed).
        insert_answer(conn, item_id, answer, default_label=None)
        added += 1
    return added, present


META_ENCODER = json.JSONEncoder(allow_nan=False)
"""One encoder for every row: `json.dumps` with an option builds a new one per call."""


def meta_json(meta: Mapping[str, Any]) -> str:
    """`finite_json(meta)`, a few µs sooner."""
    try:
        return META_ENCODER.encode(meta)
    except ValueError:
        return finite_json(meta)


class PreparedItem(NamedTuple):
    """An incoming item with the values its row needs computed: its text key, input hash and meta
    as JSON. Made where the item is parsed (a parser process during a large import, see
    `hnbooks.importing`), so the writer only looks up duplicates and inserts. A named tuple: a
    parser process hands back thousands a second, and a tuple pickles ~5x faster than a
    dataclass."""

    line: int
    text: str
    external_id: str | None
    answers: Sequence[NewAnswer]
    text_key: str
    input_hash: int
    meta_json: str


def prepare_item(item: IncomingItem) -> PreparedItem:
    """`item` with its row's computed values; `UnstorableRecord` for a text SQLite cannot store
    (a lone surrogate) or an input hash beyond 64 bits."""
    try:
        key = text_key(item.text)
        # An imported hash is kept as it is; a new text gets Prodigy's hash of {"text": ...}, as
        # Prodigy would give it. Items stored earlier keep the hash they were stored with.
        input_hash = item.input_hash if item.input_hash is not None else text_input_hash(item.text)
    except UnicodeEncodeError as error:  # a lone surrogate
        raise UnstorableRecord(item.line, error) from None
    if not -(2**63) <= input_hash < 2**63:
        raise UnstorableRecord(item.line, OverflowError("input hash beyond 64 bits"))
    return PreparedItem(
        item.line, item.text, item.external_id, item.answers, key, input_hash, meta_json(item.meta)
    )


@dataclass(frozen=True)
class ChunkOutcome:
    """Where one incoming item of a chunk went: its item id, whether the text was new, and the
    stored text (its answers' spans are moved onto it)."""

    item_id: int
    new_item: bool
    stored_text: str


ITEM_COLUMNS = "id, external_id, text, meta, input_hash, text_key, source, created_at, import_id"
ROWS_PER_INSERT = 2000


def insert_item_rows(
    conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], import_id: int | None
) -> None:
    """INSERT the rows: with `executemany` for an import's rows (no trigger indexes them, schema
    m007), else `ROWS_PER_INSERT` rows per statement.

    Not `executemany` where the insert trigger indexes a row: FTS5 flushes its pending terms into
    a new segment at every statement (each runs the trigger in a savepoint), so one statement per
    row cost ~35 µs a row; a statement of many rows flushes once."""
    if not rows:
        return
    width = len(rows[0])
    if import_id is not None:
        conn.executemany(
            f"INSERT INTO items ({ITEM_COLUMNS}) VALUES (" + ", ".join("?" * width) + ")", rows
        )
        return
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width
    step = max(1, min(ROWS_PER_INSERT, limit))
    row_marks = "(" + ", ".join("?" * width) + ")"
    for start in range(0, len(rows), step):
        part = rows[start : start + step]
        conn.execute(
            f"INSERT INTO items ({ITEM_COLUMNS}) VALUES " + ", ".join([row_marks] * len(part)),
            [value for row in part for value in row],
        )


def write_chunk(
    conn: sqlite3.Connection,
    records: Sequence[IncomingItem | PreparedItem],
    source: str,
    import_id: int | None,
) -> list[ChunkOutcome]:
    """Store a chunk of incoming items (prepared or not), merging duplicates; answers are left to
    the caller (`write_answers`). Rows of an import (`import_id`) are written with their
    import's id and indexed for search here, a chunk per statement.

    Duplicates are found with one query for the chunk's text keys and one for its new external
    ids, and within the chunk in Python; ids are given in order from the largest stored (the
    caller's write transaction holds the lock). A conflict raises `ItemConflict`, a value SQLite
    cannot store `UnstorableRecord`, each naming the record's line (the caller rolls back)."""
    prepared = [
        record if isinstance(record, PreparedItem) else prepare_item(record) for record in records
    ]
    stored: dict[str, tuple[int, str]] = {
        str(row[0]): (int(row[1]), str(row[2]))
        for row in conn.execute(
            "SELECT text_key, id, text FROM items WHERE text_key IN (SELECT value FROM json_each(?))",
            (json.dumps(list(dict.fromkeys(entry.text_key for entry in prepared))),),
        )
    }
    candidates = {
        entry.external_id or f"t:{entry.text_key[:20]}": None
        for entry in prepared
        if entry.text_key not in stored
    }
    taken_external_ids = {
        str(row[0])
        for row in conn.execute(
            "SELECT external_id FROM items WHERE external_id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(candidates)),),
        )
    }
    next_id = int(conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM items").fetchone()[0])
    now = time.time()
    rows: list[tuple[Any, ...]] = []
    outcomes: list[ChunkOutcome] = []
    new_records: list[PreparedItem] = []
    for record in prepared:
        key = record.text_key
        found = stored.get(key)
        if found is not None:
            outcomes.append(ChunkOutcome(found[0], False, found[1]))
            continue
        external_id = record.external_id or f"t:{key[:20]}"
        if external_id in taken_external_ids:
            raise ItemConflict(
                f"id {external_id} is already stored with a different text", line=record.line
            )
        rows.append(
            (
                next_id,
                external_id,
                record.text,
                record.meta_json,
                record.input_hash,
                key,
                source,
                now,
                import_id,
            )
        )
        new_records.append(record)
        stored[key] = (next_id, record.text)
        taken_external_ids.add(external_id)
        outcomes.append(ChunkOutcome(next_id, True, record.text))
        next_id += 1
    try:
        insert_item_rows(conn, rows, import_id)
        if rows and import_id is not None:
            # Rows with an import id are left out by the insert trigger (schema m007): indexed
            # here, the chunk in one statement.
            conn.execute(
                "INSERT INTO items_fts (rowid, text)"
                " SELECT id, text FROM items WHERE id BETWEEN ? AND ?",
                (rows[0][0], rows[-1][0]),
            )
    except (UnicodeEncodeError, OverflowError):
        # Which record SQLite could not take: the first whose values fail to bind on their own
        # (binding is where these fail; the caller rolls back what the chunk wrote).
        for row, record in zip(rows, new_records):
            try:
                conn.execute("SELECT " + ", ".join("?" * len(row)), row)
            except (UnicodeEncodeError, OverflowError) as error:
                raise UnstorableRecord(record.line, error) from None
        raise
    return outcomes


class UnstorableRecord(Exception):
    """A record holds a value SQLite cannot store (a lone surrogate, an integer beyond 64 bits)."""

    def __init__(self, line: int, error: Exception) -> None:
        super().__init__(f"cannot store this record ({error})")
        self.line = line
