"""Importers and the exporter, through the `hnbooks` CLI as a user runs it."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from hnbooks.cli import cli
from hnbooks.importing import ImportFault, import_file
from hnbooks.store.db import Store
from hnbooks.store.records import NewAnswer
from hnbooks.store.reports import EstimateReport, RoundReport
from tests.helpers import table_counts, write_jsonl


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def answers_signature(db: Path) -> list[tuple[object, ...]]:
    """What must survive a round trip: text, answer, label, spans and annotator of each current answer."""
    store = Store(db, create=False)
    try:
        return sorted(
            (
                e.item.text,
                e.answer.answer,
                e.answer.label or "",
                tuple((s.start, s.end, s.label) for s in e.answer.spans),
                e.answer.annotator,
                e.answer.view_id or "",
            )
            for e in store.current_answers_with_items()
        )
    finally:
        store.close()


def items_signature(db: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db)
    try:
        return sorted(conn.execute("SELECT text, meta FROM items").fetchall())
    finally:
        conn.close()


def test_real_bookfinder_files_round_trip_through_export(
    tmp_path: Path, bookfinder_files: list[Path]
) -> None:
    first, second = tmp_path / "first.db", tmp_path / "second.db"
    code, out, err = run("import", *map(str, bookfinder_files), "--db", str(first))
    assert code == 0, err
    assert out.count("[prodigy]") == len(bookfinder_files)
    exported = tmp_path / "answers.jsonl"
    assert run("export", "--db", str(first), "-o", str(exported))[0] == 0
    assert run("import", str(exported), "--db", str(second))[0] == 0
    assert items_signature(first) == items_signature(second)
    assert answers_signature(first) == answers_signature(second)
    assert len(answers_signature(first)) > 1000
    # Spans in the export carry their text, and it is the text they point at.
    for line in exported.read_text().splitlines():
        record = json.loads(line)
        for span in record["spans"]:
            assert record["text"][span["start"] : span["end"]] == span["text"]
    # Importing the export again into the first database adds nothing.
    before = table_counts(first)
    code, out, _ = run("import", str(exported), "--db", str(first))
    assert code == 0 and "0 new" in out and "0 answers," in out
    assert table_counts(first) == before


def test_reimporting_a_file_adds_nothing(tmp_path: Path, bookfinder_files: list[Path]) -> None:
    db = tmp_path / "x.db"
    run("import", str(bookfinder_files[0]), "--db", str(db))
    before = table_counts(db)
    code, out, _ = run("import", str(bookfinder_files[0]), "--db", str(db))
    assert code == 0 and "0 new" in out
    assert table_counts(db) == before


def test_truncated_jsonl_names_the_line_and_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    good = write_jsonl(tmp_path / "good.jsonl", [{"text": "already here"}])
    run("import", str(good), "--db", str(db))
    before = table_counts(db)
    bad = tmp_path / "bad.jsonl"
    lines = [
        json.dumps({"text": f"comment {n}", "answer": "accept", "label": "BOOK"}) for n in range(5)
    ]
    bad.write_text("\n".join(lines[:3]) + "\n" + lines[3][:17] + "\n" + lines[4] + "\n")
    code, _, err = run("import", str(bad), "--db", str(db))
    assert code == 1
    assert "bad.jsonl:4" in err and "invalid JSON" in err
    assert "Traceback" not in err
    assert table_counts(db) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"text": "ok"}\n{"text": "caf\xe9"}\n', ":2: not valid UTF-8"),
        (b'{"text": 5}\n', '"text" must be a string, got int'),
        (
            b'{"text": "abc", "spans": [{"start": 1, "end": 9, "label": "BOOK"}], "answer": "accept"}\n',
            "lies outside the text",
        ),
        (b'{"text": "abc", "answer": "maybe"}\n', '"answer" must be accept, reject or ignore'),
        (b"[" * 100_000 + b"\n", "JSON"),
        (b'{"text": "' + b"x" * 5_000_000 + b'"}\n', "over the 4 MB limit"),
        (b'{"text": "nul \\u0000 inside"}\n', "NUL"),
    ],
)
def test_hostile_lines_get_one_clear_message(tmp_path: Path, content: bytes, message: str) -> None:
    db = tmp_path / "x.db"
    path = tmp_path / "in.jsonl"
    path.write_bytes(content)
    code, _, err = run("import", str(path), "--db", str(db), "--format", "prodigy")
    assert code == 1
    assert message in err and "in.jsonl" in err
    assert "Traceback" not in err
    assert table_counts(db)["items"] == 0


def test_empty_texts_are_skipped_with_a_reason(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": "  "}, {"text": "real"}])
    code, out, _ = run("import", str(path), "--db", str(tmp_path / "x.db"))
    assert code == 0
    assert "1 new" in out and "1 empty text" in out


def test_duplicates_merge_and_answers_attach_to_the_stored_text(tmp_path: Path) -> None:
    store = Store(tmp_path / "x.db")
    path = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"text": "I read  Dune today", "answer": "accept", "label": "BOOK"},
            {
                "text": "I read Dune today",
                "answer": "accept",
                "_view_id": "ner_manual",
                "spans": [{"start": 7, "end": 11, "label": "BOOK"}],
            },
        ],
    )
    summary = import_file(store, path)
    assert (summary.new_items, summary.merged, summary.answers) == (1, 1, 2)
    spans = [a.spans for a in store.current_answers() if a.spans]
    item = store.item(store.current_answers()[0].item_id)
    assert item.text[spans[0][0].start : spans[0][0].end] == "Dune"


def test_hacker_news_api_lines_are_cleaned_and_dead_items_skipped(tmp_path: Path) -> None:
    store = Store(tmp_path / "x.db")
    path = write_jsonl(
        tmp_path / "hn.jsonl",
        [
            {
                "id": 1,
                "by": "pg",
                "time": 1,
                "type": "comment",
                "parent": 7,
                "text": 'Read <i>Dune</i>.<p>See <a href="https:&#x2F;&#x2F;example.com&#x2F;a">https:&#x2F;&#x2F;example.com&#x2F;...</a> &amp; enjoy',
            },
            {"id": 2, "by": "x", "type": "comment", "text": "gone", "dead": True},
            {"id": 3, "type": "comment", "deleted": True},
            {
                "id": 4,
                "by": "y",
                "type": "story",
                "title": "Ask HN: Best books of 2021?",
                "text": "",
            },
        ],
    )
    summary = import_file(store, path)
    assert summary.format == "hn"
    assert summary.new_items == 2 and dict(summary.skipped) == {"dead": 1, "deleted": 1}
    texts = {i.external_id: (i.text, i.meta) for i in store.items_by_ids([1, 2])}
    assert texts["hn:1"][0] == "Read *Dune*.\n\nSee https://example.com/a & enjoy"
    assert texts["hn:1"][1]["parent"] == 7
    assert texts["hn:4"][0] == "Ask HN: Best books of 2021?"


def test_hacker_news_csv_and_parquet_dumps(tmp_path: Path) -> None:
    rows = [
        {
            "id": 10,
            "by": "a",
            "time": 5,
            "text": "<p>Try <i>SICP</i>",
            "parent": 9,
            "title": "",
            "type": "comment",
            "dead": "",
            "deleted": "",
        },
        {
            "id": 11,
            "by": "b",
            "time": 6,
            "text": "bye",
            "parent": 9,
            "title": "",
            "type": "comment",
            "dead": "true",
            "deleted": "",
        },
    ]
    csv_path = tmp_path / "hn.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    parquet_path = tmp_path / "hn.parquet"
    pq.write_table(
        pa.Table.from_pylist([{**rows[0], "id": 12, "text": "Also <i>TAOCP</i>"}, rows[1]]),
        parquet_path,
    )
    store = Store(tmp_path / "x.db")
    assert import_file(store, csv_path).format == "hn"
    assert import_file(store, parquet_path).format == "hn"
    assert sorted(t for _, t in store.iter_item_texts()) == ["Also *TAOCP*", "Try *SICP*"]


def test_generic_csv_needs_its_text_column(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text('body,author\nfirst note,amy\n"second, quoted",bo\n')
    db = tmp_path / "x.db"
    code, _, err = run("import", str(path), "--db", str(db))
    assert code == 1 and 'no "text" column' in err
    code, out, _ = run("import", str(path), "--db", str(db), "--text-field", "body")
    assert code == 0 and "2 new" in out
    store = Store(db)
    assert [i.meta for i in store.items_by_ids([1, 2])] == [{"author": "amy"}, {"author": "bo"}]


def test_parquet_and_plain_text_lines(tmp_path: Path) -> None:
    parquet_path = tmp_path / "t.parquet"
    pq.write_table(
        pa.table({"text": ["one comment", "two comment"], "score": [1, 2]}), parquet_path
    )
    text_path = tmp_path / "t.txt"
    text_path.write_text("line one\n\nline two\n")
    store = Store(tmp_path / "x.db")
    assert import_file(store, parquet_path).new_items == 2
    assert import_file(store, text_path).new_items == 2
    assert store.item_count() == 4


def test_same_hn_id_with_a_different_text_is_a_clear_fault(tmp_path: Path) -> None:
    store = Store(tmp_path / "x.db")
    path = write_jsonl(
        tmp_path / "hn.jsonl",
        [{"id": 1, "by": "a", "text": "one"}, {"id": 1, "by": "a", "text": "two"}],
    )
    with pytest.raises(ImportFault, match="hn.jsonl:2: id hn:1 is already stored"):
        import_file(store, path)
    assert store.item_count() == 0


def test_export_leaves_out_undone_answers_and_writes_csv(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    store = Store(db)
    import_file(
        store, write_jsonl(tmp_path / "t.jsonl", [{"text": "keep me"}, {"text": "undo me"}])
    )
    store.record_answer(1, NewAnswer("ann", "accept", strategy="top", score=0.9))
    store.record_answer(2, NewAnswer("ann", "reject"))
    store.undo_last("ann")
    code, out, _ = run("export", "--db", str(db))
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["text"] for r in records] == ["keep me"]
    assert records[0]["_annotator_id"] == "ann" and records[0]["_hnbooks"]["strategy"] == "top"
    code, out, _ = run("export", "--db", str(db), "--format", "csv")
    rows = list(csv.DictReader(out.splitlines()))
    assert code == 0 and [(r["text"], r["answer"]) for r in rows] == [("keep me", "accept")]


def test_stats_json(tmp_path: Path, bookfinder_files: list[Path]) -> None:
    db = tmp_path / "x.db"
    run("import", *map(str, bookfinder_files), "--db", str(db))
    code, out, _ = run("stats", "--db", str(db), "--json")
    stats = json.loads(out)
    assert code == 0
    assert stats["items"] > 1000 and stats["answers"] > 1000
    assert stats["spans"] >= 400 and stats["positives"] > 100
    assert set(stats["answers_by_answer"]) == {"accept", "reject", "ignore"}


def test_stats_says_how_many_positives_are_left_to_find(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    store = Store(db)
    prevalence = EstimateReport(0.01, 0.005, 0.02, n=40, method="test", level=0.9)
    store.record_round(
        RoundReport(mode="model", label="BOOK", pool=1000, positives=3, prevalence=prevalence)
    )
    store.close()
    code, out, _ = run("stats", "--db", str(db))
    flat = " ".join(out.split())
    assert code == 0
    # 1,000 items at 1% (0.5-2%) hold 10 (5-20) positives; 3 are found.
    assert "About 7 BOOK positives are left to find (90% interval 2-17)" in flat


def test_every_command_explains_itself() -> None:
    for command in (
        [],
        ["import"],
        ["export"],
        ["stats"],
        ["queue"],
        ["seed"],
        ["backup"],
        ["models"],
        ["models", "export"],
        ["simulate"],
    ):
        code, out, _ = run(*command, "--help")
        assert code == 0 and "Usage:" in out
    assert "Examples" in run("import", "--help")[1]
