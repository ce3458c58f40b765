"""The fast paths of an import give what the plain ones gave: the regular-expression HTML pass the
same text as the HTML parser, a file written in many chunks the same rows as in one, and staged
rows stay hidden until the import publishes them."""

from __future__ import annotations

import csv
import io
import json
import random
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from hnbooks.hn_html import BLANK_LINES, CommentTextParser, clean_comment_html
from hnbooks.importing import MAX_LINE_BYTES, ImportFault, Source, import_file, table_text_lines
from hnbooks.prodigy import input_hash as prodigy_input_hash
from hnbooks.prodigy import text_input_hash
from hnbooks.store.db import Store
from hnbooks.store.records import IncomingItem
from tests.helpers import write_jsonl

HTML_PIECES = (
    "<p>", "</p>", "<i>", "</i>", "<em>", "</em>", "<br>", "</a>", "<pre><code>", "</code></pre>",
    '<a href="https://x.org/a?b=1&amp;c=2" rel="nofollow">', '<a href="h&#x2F;&amp;amp;">',
    '<a href="">', "<b>", "<P>", "word", " ", "  ", "\n", "\t", "&#x27;", "&amp;", "&amp", "&lt;",
    "&", "&#", "&quot;", "<", ">", "x;",
)  # fmt: skip


def parsed_by_html_parser(html: str) -> str:
    """What `clean_comment_html` gave before its fast pass: every comment through `HTMLParser`."""
    parser = CommentTextParser()
    parser.feed(html)
    parser.close()
    if parser.in_code:
        parser.handle_endtag("pre")
    text = "\n".join(line.rstrip() for line in "".join(parser.parts).split("\n"))
    return BLANK_LINES.sub("\n\n", text).strip("\n").rstrip()


def test_the_fast_html_pass_gives_the_parsers_text() -> None:
    rng = random.Random(11)
    samples = [
        "<p>it&#x27;s <i>Dune</i>, see"
        ' <a href="https:&#x2F;&#x2F;x.org&#x2F;b" rel="nofollow">https:&#x2F;&#x2F;x.org...</a>',
        "plain text, no tags &amp; one entity",
        "a <b>bold</b> claim <p>and <pre><code>  code\n  more</code></pre>",
    ]
    samples += [
        "".join(rng.choice(HTML_PIECES) for _ in range(rng.randint(0, 12))) for _ in range(3000)
    ]
    for html in samples:
        assert clean_comment_html(html) == parsed_by_html_parser(html), html


def mixed_file(path: Path) -> Path:
    """Duplicates within a few lines and far apart, whitespace variants, answers with spans."""
    records: list[dict[str, Any]] = []
    for n in range(12):
        records.append({"text": f"text number {n} about a book", "meta": {"n": n}})
    records.append({"text": "text  number 3 about\ta book", "meta": {"again": 3}})
    records.append(
        {
            "text": "text number  5 about a book",
            "answer": "accept",
            "spans": [{"start": 21, "end": 27, "label": "BOOK"}],
            "_annotator_id": "ann",
            "_timestamp": 1_700_000_000,
        }
    )
    records.append({"text": "text number 11 about a book", "answer": "reject", "label": "TOPIC"})
    records.append({"text": "text number 0 about a book"})
    return write_jsonl(path, records)


def table_rows(db_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(db_path)
    try:
        return {
            "items": conn.execute(
                "SELECT id, external_id, text, meta, input_hash, text_key FROM items ORDER BY id"
            ).fetchall(),
            "answers": conn.execute(
                "SELECT item_id, annotator, answer, label, spans FROM answers ORDER BY id"
            ).fetchall(),
            "labels": conn.execute("SELECT name FROM labels ORDER BY position").fetchall(),
        }
    finally:
        conn.close()


def test_a_file_written_in_many_chunks_stores_what_one_chunk_stores(tmp_path: Path) -> None:
    source = mixed_file(tmp_path / "mixed.jsonl")
    results = []
    for chunk_records in (2, 1000):
        db_path = tmp_path / f"chunks-{chunk_records}.db"
        with Store(db_path) as store:
            summary = import_file(store, source, chunk_records=chunk_records)
            again = import_file(store, source, chunk_records=chunk_records)
        results.append((summary.as_json(), again.as_json(), table_rows(db_path)))
    assert results[0] == results[1]
    summary, again, rows = results[0]
    assert (summary["new_items"], summary["merged"], summary["answers"]) == (12, 4, 2)
    assert (again["new_items"], again["answers"], again["answers_already_present"]) == (0, 0, 2)
    assert rows["labels"] == [("BOOK",), ("TOPIC",)]
    # The span moved onto the stored text, whose whitespace differs.
    assert ('[{"start": 20, "end": 26, "label": "BOOK"}]') in [a[4] for a in rows["answers"]]


@pytest.mark.parametrize(
    "spoiled",
    [
        {"id": 1, "by": "a", "text": "another text under a stored id"},
        {"text": "lone \ud800 surrogate"},
    ],
    ids=["conflicting-id", "unstorable-text"],
)
def test_a_fault_in_a_late_chunk_names_its_line_and_leaves_nothing(
    tmp_path: Path, db_path: Path, spoiled: dict[str, Any]
) -> None:
    records = [{"id": n, "by": "a", "text": f"text {n}"} for n in range(1, 10)]
    source = tmp_path / "spoiled.jsonl"
    lines = [json.dumps(r) for r in records] + [json.dumps(spoiled)]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with Store(db_path) as store:
        with pytest.raises(ImportFault) as fault:
            import_file(store, source, chunk_records=3)
        assert fault.value.line == 10
        assert store.item_count() == 0
        assert not store.imports_in_progress()
    assert table_rows(db_path)["items"] == []


def test_staged_items_are_hidden_until_published_and_gone_when_abandoned(db_path: Path) -> None:
    with Store(db_path) as store:
        store.add_items([IncomingItem(1, "stored before the import", {})], "t")
        before = store.item_ids()
        with store.staging_import("file.jsonl") as staged:
            staged.write([IncomingItem(n, f"staged text {n} of the import", {}) for n in range(4)])
            assert store.imports_in_progress()
            assert store.item_count() == 1
            assert store.item_ids() == before
            assert [item_id for item_id, _ in store.iter_item_texts()] == before
            assert store.max_item_id() == before[-1]
            assert store.search("staged") == []
            staged.publish()
            assert store.item_count() == 5
            assert len(store.search("staged")) == 4
        with store.staging_import("other.jsonl") as abandoned:
            abandoned.write([IncomingItem(1, "never published", {})])
        assert store.item_count() == 5
        assert store.search("published") == []
        assert not store.imports_in_progress()


@pytest.mark.parametrize(
    "text", ["a", 'it\'s "quoted" \\ é 中文\n\t', "lone \ud800 surrogate", "😀 emoji", ""]
)
def test_the_one_step_input_hash_is_prodigys(text: str) -> None:
    assert text_input_hash(text) == prodigy_input_hash({"text": text})


def test_a_second_import_while_one_is_staging_is_refused_saying_why(
    tmp_path: Path, db_path: Path
) -> None:
    source = write_jsonl(tmp_path / "texts.jsonl", [{"text": "a text"}])
    with Store(db_path) as importing, Store(db_path) as other:
        with importing.staging_import("first.jsonl") as staged:
            with pytest.raises(ImportFault, match="another import \\(first.jsonl, process"):
                import_file(other, source)
            staged.publish()
        assert import_file(other, source).new_items == 1


def csv_rows(lines: Iterable[str]) -> list[tuple[int, list[str]]] | str:
    reader = csv.reader(lines, strict=True)
    try:
        return [(reader.line_num, row) for row in reader]
    except csv.Error as error:
        return f"line {reader.line_num}: {error}"


def test_csv_read_line_by_line_gives_the_rows_of_the_whole_text(tmp_path: Path) -> None:
    rng = random.Random(5)
    pieces = ["a", "b c", ",", '"', '"q,\nx"', "\r", "\n", "\r\n", "é", "\t"]
    for n in range(300):
        body = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        data = ("\ufeff" if n % 7 == 0 else "") + "text,n\n" + body
        path = tmp_path / f"t{n}.csv"
        path.write_bytes(data.encode("utf-8"))
        expected = csv_rows(io.StringIO(data.lstrip("\ufeff"), newline=""))
        got = csv_rows(table_text_lines(Source(path), None))
        assert got == expected, repr(data)


def test_a_csv_on_one_huge_line_is_refused_naming_that_line(tmp_path: Path, db_path: Path) -> None:
    path = tmp_path / "one-line.csv"
    path.write_bytes(b"text," + b"x" * (MAX_LINE_BYTES + 10))
    with Store(db_path) as store, pytest.raises(ImportFault, match="one-line.csv:1: line is over"):
        import_file(store, path, fmt="csv")


def test_bad_bytes_in_a_late_csv_line_name_that_line(tmp_path: Path, db_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b'text,n\r\nfirst,1\r\n"second\nline",2\r\ncaf\xe9,3\r\n')
    with Store(db_path) as store, pytest.raises(ImportFault, match="bad.csv:5: not valid UTF-8"):
        import_file(store, path, fmt="csv")
