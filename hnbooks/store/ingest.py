"""Writing imported texts and answers: duplicate texts merge, answers already stored are not added.

Runs inside the caller's transaction (one per imported file), so a fault anywhere rolls back the
whole file.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from hnbooks.prodigy import input_hash as prodigy_input_hash
from hnbooks.store.answers import insert_answer
from hnbooks.store.records import IncomingItem, Span, finite_json, spans_to_json


class ItemConflict(Exception):
    """An incoming item clashes with a stored one (same external id, different text)."""


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
    """Store one incoming item (or find the stored text it duplicates) and its new answers."""
    key = text_key(incoming.text)
    existing = conn.execute("SELECT id, text FROM items WHERE text_key = ?", (key,)).fetchone()
    if existing is not None:
        item_id, stored_text = int(existing["id"]), str(existing["text"])
        new_item = False
    else:
        external_id = incoming.external_id or f"t:{key[:20]}"
        clash = conn.execute("SELECT 1 FROM items WHERE external_id = ?", (external_id,)).fetchone()
        if clash is not None:
            raise ItemConflict(f"id {external_id} is already stored with a different text")
        # An imported hash is kept as it is; a new text gets Prodigy's hash of {"text": ...}, as
        # Prodigy would give it. Items stored earlier keep the hash they were stored with.
        input_hash = (
            incoming.input_hash
            if incoming.input_hash is not None
            else prodigy_input_hash({"text": incoming.text})
        )
        cursor = conn.execute(
            "INSERT INTO items (external_id, text, meta, input_hash, text_key, source, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                external_id,
                incoming.text,
                finite_json(incoming.meta),
                input_hash,
                key,
                source,
                time.time(),
            ),
        )
        item_id, stored_text = int(cursor.lastrowid or 0), incoming.text
        new_item = True
    added = present = 0
    for answer in incoming.answers:
        answer = replace(
            answer,
            spans=remap_spans(answer.spans, incoming.text, stored_text),
            passthrough=remap_passthrough(answer.passthrough, incoming.text, stored_text),
        )
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
    return IngestOutcome(item_id, new_item, added, present)
