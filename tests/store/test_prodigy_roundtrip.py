"""Prodigy both ways: what an import reads of a task comes back out of the export, field by field;
span answers made in hnbooks come out as `ner_manual` tasks with tokens; the output is valid JSON."""

from __future__ import annotations

import io
import json
import math
import sqlite3
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from hnbooks.cli import cli
from hnbooks.exporting import write_jsonl as export_jsonl
from hnbooks.importing import import_file
from hnbooks.prodigy import input_hash, prodigy_tokens, token_bounds
from hnbooks.store import schema
from hnbooks.store.db import Store
from hnbooks.store.records import NewAnswer, Span
from tests.helpers import write_jsonl


def exported(store: Store) -> list[dict[str, Any]]:
    out = io.StringIO()
    export_jsonl(store, out)
    return [
        json.loads(line, parse_constant=refuse_constant) for line in out.getvalue().splitlines()
    ]


def refuse_constant(name: str) -> Any:
    raise AssertionError(f"{name} is not JSON")


def normalised(text: str) -> str:
    return " ".join(text.split())


def by_span(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(spans, key=lambda s: (s["start"], s["end"], s["label"]))


def assert_keeps(
    source: dict[str, Any], result: dict[str, Any], *, skip: frozenset[str] = frozenset()
) -> None:
    """Every field of `source` is in `result` with the same value; a span's fields likewise."""
    for key, value in source.items():
        if key in skip:
            continue
        assert key in result, f"{key} dropped"
        if key == "spans":
            assert len(result["spans"]) == len(value)
            for given, written in zip(by_span(value), by_span(result["spans"]), strict=True):
                for span_key, span_value in given.items():
                    assert written.get(span_key) == span_value, (span_key, given, written)
        else:
            assert result[key] == value, key


def test_each_bookfinder_file_comes_back_field_by_field(
    tmp_path: Path, bookfinder_files: list[Path]
) -> None:
    for number, path in enumerate(bookfinder_files):
        # The same text is in several files (they merge into one item): one database per file.
        store = Store(tmp_path / f"{number}.db")
        try:
            summary = import_file(store, path)
            records = exported(store)
        finally:
            store.close()
        inputs: dict[str, list[dict[str, Any]]] = {}
        blank = 0
        for line in path.read_text(encoding="utf-8").splitlines():
            task = json.loads(line)
            if not task["text"].strip():
                blank += 1  # no item without a text: skipped, and counted as skipped
                continue
            inputs.setdefault(normalised(task["text"]), []).append(task)
        assert summary.answers == sum(map(len, inputs.values())), path.name
        assert sum(summary.skipped.values()) == summary.skipped["empty text"] == blank
        written = {normalised(record["text"]): record for record in records}
        assert written.keys() == inputs.keys(), path.name
        for key, tasks in inputs.items():
            # A text given several times in a file is one item (the first task's meta); the
            # answer in force is the last one given.
            assert_keeps(tasks[-1], written[key], skip={"meta"})
            assert written[key]["meta"] == tasks[0]["meta"]
            if tasks[-1].get("tokens") is None and tasks[-1].get("spans"):
                assert written[key]["tokens"] == prodigy_tokens(tasks[-1]["text"])


def test_a_choice_task_keeps_options_accept_and_unknown_fields(db_path: Path) -> None:
    options = [{"id": "BOOK", "text": "a book"}, {"id": "FILM", "text": "a film"}]
    task = {
        "text": "Dune, the novel",
        "meta": {"id": 1},
        "options": options,
        "accept": ["BOOK"],
        "config": {"choice_style": "single"},
        "relations": [{"head": 0, "child": 2, "label": "BY"}],
        "_session_id": "books-alice",
        "_view_id": "choice",
        "answer": "accept",
        "_timestamp": 1700000000,
        "my_field": [1, {"nested": True}],
    }
    store = Store(db_path)
    import_file(store, write_jsonl(db_path.parent / "choice.jsonl", [task]))
    (record,) = exported(store)
    store.close()
    assert_keeps(task, record)
    assert "label" not in record
    assert record["_annotator_id"] == "books-alice"


def test_spans_without_token_offsets_get_them_and_keep_source(db_path: Path) -> None:
    text = "I read Missile Gap by Charles Stross."
    task = {
        "text": text,
        "spans": [
            {"start": 7, "end": 18, "label": "WORK_OF_ART", "source": "model", "input_hash": 5}
        ],
        "_view_id": "ner_manual",
        "answer": "accept",
    }
    store = Store(db_path)
    import_file(store, write_jsonl(db_path.parent / "spans.jsonl", [task]))
    (record,) = exported(store)
    assert store.labels()[-1] == "WORK_OF_ART"
    store.close()
    (span,) = record["spans"]
    assert (span["source"], span["input_hash"], span["text"]) == ("model", 5, "Missile Gap")
    tokens = prodigy_tokens(text)
    assert record["tokens"] == tokens
    assert (span["token_start"], span["token_end"]) == token_bounds(tokens, 7, 18)
    assert record["_input_hash"] == input_hash({"text": text})
    assert "label" not in record


def test_a_span_answer_made_in_hnbooks_is_a_ner_manual_task(db_path: Path) -> None:
    text = "Try Gödel, Escher, Bach this summer."
    store = Store(db_path)
    import_file(store, write_jsonl(db_path.parent / "t.jsonl", [{"text": text}, {"text": "other"}]))
    first, second = (item_id for item_id, _ in store.iter_item_texts())
    store.record_answer(first, NewAnswer("alice", "accept", spans=(Span(4, 23, "BOOK"),)))
    store.record_answer(second, NewAnswer("alice", "reject"))
    span_record, classification = exported(store)
    store.close()
    assert span_record["_view_id"] == "ner_manual"
    assert "label" not in span_record and span_record["_is_binary"] is False
    assert span_record["tokens"] == prodigy_tokens(text)
    (span,) = span_record["spans"]
    assert (span["token_start"], span["token_end"]) == token_bounds(span_record["tokens"], 4, 23)
    assert (
        isinstance(span_record["_task_hash"], int) and -(2**31) <= span_record["_task_hash"] < 2**31
    )
    assert classification["_view_id"] == "classification" and classification["label"] == "BOOK"
    assert "tokens" not in classification


def test_nan_and_infinity_in_meta_are_exported_as_null(db_path: Path) -> None:
    source = db_path.parent / "nan.jsonl"
    # Python's json writes NaN, and reads it back: a dataframe's missing value ends up like this.
    source.write_text(
        json.dumps({"text": "a", "meta": {"score": math.nan}, "answer": "accept", "label": "BOOK"})
        + "\n"
        + json.dumps({"text": "b", "meta": {"x": [math.inf, 1.5]}, "answer": "reject"})
        + "\n",
        encoding="utf-8",
    )
    store = Store(db_path)
    import_file(store, source)
    records = exported(store)
    store.close()
    assert [r["meta"] for r in records] == [{"score": None}, {"x": [None, 1.5]}]


def test_export_reimports_to_the_same_answers_and_adds_nothing_twice(
    tmp_path: Path, bookfinder_files: list[Path]
) -> None:
    ner = next(path for path in bookfinder_files if path.name == "hnbook_ner_manual.jsonl")
    first = Store(tmp_path / "first.db")
    import_file(first, ner)
    records = exported(first)
    exported_file = write_jsonl(tmp_path / "out.jsonl", records)
    again = import_file(first, exported_file)
    first.close()
    assert again.answers == 0 and again.answers_already_present == len(records)
    second = Store(tmp_path / "second.db")
    import_file(second, exported_file)
    assert exported(second) == records
    second.close()


def test_an_imported_label_the_database_cannot_hold_is_reported(tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "labels.jsonl",
        [
            {"text": "one", "label": "WORK_OF_ART", "answer": "accept"},
            {"text": "two", "label": "has space", "answer": "accept"},
        ],
    )
    db = tmp_path / "l.db"
    result = CliRunner().invoke(cli, ["import", str(source), "--db", str(db)])
    assert result.exit_code == 0, result.stderr
    assert "label 'has space' not added" in result.stderr
    assert "new labels WORK_OF_ART" in result.stdout
    store = Store(db, create=False)
    assert store.labels() == ["BOOK", "WORK_OF_ART"]
    assert store.answer_count() == 2
    store.close()


def test_nan_in_a_parquet_column_is_stored_as_null(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": ["a text", "b text"], "score": [math.nan, 0.5]}), path)
    store = Store(tmp_path / "t.db")
    import_file(store, path)
    metas = [store.item(item_id).meta for item_id, _ in store.iter_item_texts()]
    store.close()
    assert metas == [{"score": None}, {"score": 0.5}]


def test_hashes_made_by_hnbooks_are_the_ones_prodigy_gave(
    tmp_path: Path, bookfinder_files: list[Path]
) -> None:
    classify = next(path for path in bookfinder_files if path.name == "hnbook_classify.jsonl")
    tasks = [json.loads(line) for line in classify.read_text(encoding="utf-8").splitlines()[:20]]
    store = Store(tmp_path / "h.db")
    # The texts alone: hnbooks hashes them itself, and the answers are given in hnbooks.
    import_file(store, write_jsonl(tmp_path / "texts.jsonl", [{"text": t["text"]} for t in tasks]))
    for (item_id, _), task in zip(store.iter_item_texts(), tasks, strict=True):
        store.record_answer(item_id, NewAnswer("alice", task["answer"], label=task["label"]))
    records = exported(store)
    store.close()
    assert [(r["_input_hash"], r["_task_hash"]) for r in records] == [
        (t["_input_hash"], t["_task_hash"]) for t in tasks
    ]


def test_a_renamed_span_label_keeps_the_span_fields_read_on_import(db_path: Path) -> None:
    task = {
        "text": "I read Missile Gap.",
        "spans": [{"start": 7, "end": 18, "label": "TITLE", "source": "model", "token_start": 2}],
        "_view_id": "ner_manual",
        "answer": "accept",
    }
    store = Store(db_path)
    import_file(store, write_jsonl(db_path.parent / "r.jsonl", [task]))
    store.rename_label("TITLE", "WORK_OF_ART")
    ((span,),) = [record["spans"] for record in exported(store)]
    store.close()
    assert (span["label"], span["source"], span["token_start"]) == ("WORK_OF_ART", "model", 2)


def test_a_database_from_before_the_passthrough_table_exports_read_only(tmp_path: Path) -> None:
    db = tmp_path / "older.db"
    store = Store(db)
    import_file(store, write_jsonl(tmp_path / "a.jsonl", [{"text": "a", "answer": "accept"}]))
    store.close()
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE answer_passthrough")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm006_answer_passthrough'")
    conn.commit()
    conn.close()
    result = CliRunner().invoke(cli, ["export", "--db", str(db), "--quiet"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["answer"] == "accept"
    assert "m006_answer_passthrough" in schema.pending_migrations(sqlite3.connect(db))
