"""Export current answers as Prodigy-compatible JSONL or CSV.

One record per answer in force (undone answers are left out). Field names follow Prodigy so spaCy /
Prodigy pipelines read the file as they would `prodigy db-out`, and `hnbooks import` reads it back
to the same items and answers.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any, TextIO

from hnbooks.store.db import Store
from hnbooks.store.ingest import stable_hash
from hnbooks.store.records import AnswerWithItem

CSV_COLUMNS = (
    "item_id",
    "external_id",
    "hn_id",
    "annotator",
    "answer",
    "label",
    "spans",
    "strategy",
    "score",
    "timestamp",
    "text",
)


def prodigy_record(entry: AnswerWithItem) -> dict[str, Any]:
    answer, item = entry.answer, entry.item
    spans = [s.to_json(item.text) for s in answer.spans]
    task_hash = answer.task_hash
    if task_hash is None:
        task_hash = stable_hash(str(item.input_hash), answer.label or "", json.dumps(spans))
    record: dict[str, Any] = {"text": item.text, "meta": item.meta}
    if answer.label is not None:
        record["label"] = answer.label
    record["spans"] = spans
    record.update(
        {
            "answer": answer.answer,
            "_input_hash": item.input_hash,
            "_task_hash": task_hash,
            "_view_id": answer.view_id or "classification",
            "_annotator_id": answer.annotator,
            "_timestamp": int(answer.created_at),
        }
    )
    if answer.strategy and answer.strategy != "import":
        # Why hnbooks served the item; Prodigy ignores unknown top-level keys, the importer reads it.
        record["_hnbooks"] = {"strategy": answer.strategy, "score": answer.score}
    return record


def iter_prodigy_lines(store: Store) -> Iterator[str]:
    for entry in store.current_answers_with_items():
        yield json.dumps(prodigy_record(entry), ensure_ascii=False)


def write_jsonl(store: Store, out: TextIO) -> int:
    count = 0
    for line in iter_prodigy_lines(store):
        out.write(line + "\n")
        count += 1
    return count


def write_csv(store: Store, out: TextIO) -> int:
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for entry in store.current_answers_with_items():
        answer, item = entry.answer, entry.item
        writer.writerow(
            (
                item.id,
                item.external_id,
                item.meta.get("id", ""),
                answer.annotator,
                answer.answer,
                answer.label or "",
                json.dumps([s.to_json(item.text) for s in answer.spans], ensure_ascii=False),
                answer.strategy or "",
                "" if answer.score is None else answer.score,
                int(answer.created_at),
                item.text,
            )
        )
        count += 1
    return count
