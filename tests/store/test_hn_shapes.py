"""Every common Hacker News shape imports: API items as JSON arrays or pretty-printed objects,
Algolia `/items/:id` trees, BigQuery's `full` and `comments` tables, dataframe-written dumps."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from hnbooks import hn_dumps
from hnbooks.cli import cli
from hnbooks.importing import ImportFault, import_file
from hnbooks.store.db import Store

SHAPES = Path(__file__).parent / "data" / "hn_shapes"


def stored(store: Store) -> dict[str, tuple[str, dict[str, Any]]]:
    """external id -> (text, meta) of every item."""
    ids = [item_id for item_id, _ in store.iter_item_texts()]
    return {item.external_id: (item.text, item.meta) for item in store.items_by_ids(ids)}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "x.db")


def test_a_json_array_of_api_items(store: Store) -> None:
    summary = import_file(store, SHAPES / "api_items_array.json")
    assert summary.format == "hn"
    assert dict(summary.skipped) == {
        "dead": 1,
        "deleted": 1,
        "poll not in --types": 1,
        "pollopt not in --types": 1,
        "job not in --types": 1,
    }
    items = stored(store)
    assert sorted(items) == ["hn:26552000", "hn:26552101", "hn:26552104", "hn:26552400"]
    text, meta = items["hn:26552101"]
    assert text == (
        "*The Mythical Man-Month* by Fred Brooks.\n\n"
        "Still true fifty years on: adding people to a late project makes it later."
    )
    assert meta["parent"] == 26552000 and meta["by"] == "kqr" and meta["type"] == "comment"
    assert items["hn:26552104"][1]["parent"] == 26552101
    story_text, story = items["hn:26552000"]
    assert story_text.startswith("Ask HN: Books that changed how you think?\n\nI'm looking")
    assert story["title"] == "Ask HN: Books that changed how you think?" and story["score"] == 412
    assert "parent" not in story
    link = items["hn:26552400"][1]
    assert link["url"] == "https://example.com/hn-books" and link["score"] == 230


def test_pretty_printed_objects_one_after_another(store: Store) -> None:
    summary = import_file(store, SHAPES / "api_items_pretty.json")
    assert summary.new_items == 2 and dict(summary.skipped) == {"dead": 1}
    items = stored(store)
    assert items["hn:29077001"] == (
        "Because the audience already exists.\n\nSee also: *The Expanse*.",
        {
            "id": 29077001,
            "by": "patio11",
            "time": 1635800100,
            "parent": 29076995,
            "type": "comment",
        },
    )


def test_a_document_split_anywhere_reads_the_same(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks a few bytes long cut records, strings and multi-byte characters in two."""
    monkeypatch.setattr(hn_dumps, "READ_CHUNK", 5)
    import_file(store, SHAPES / "api_items_array.json")
    import_file(store, SHAPES / "algolia_item_tree.json")
    small = stored(store)
    other = Store(tmp_path / "other.db")
    monkeypatch.setattr(hn_dumps, "READ_CHUNK", 1 << 20)
    import_file(other, SHAPES / "api_items_array.json")
    import_file(other, SHAPES / "algolia_item_tree.json")
    assert small == stored(other) and len(small) == 9


def test_a_json_array_on_stdin_and_on_one_line(tmp_path: Path) -> None:
    records = json.loads((SHAPES / "api_items_array.json").read_text())
    db = tmp_path / "x.db"
    result = CliRunner().invoke(
        cli, ["import", "-", "--db", str(db), "--json"], input=json.dumps(records)
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["new_items"] == 4


def test_an_algolia_tree_imports_every_comment_under_it(store: Store) -> None:
    summary = import_file(store, SHAPES / "algolia_item_tree.json")
    # The deleted comment (no author, no text) is skipped; its reply is not.
    assert summary.new_items == 5 and dict(summary.skipped) == {"empty text": 1}
    items = stored(store)
    parents = {external_id: meta.get("parent") for external_id, (_, meta) in items.items()}
    assert parents == {
        "hn:27501300": None,
        "hn:27501359": 27501300,
        "hn:27501400": 27501359,
        "hn:27501450": 27501400,
        "hn:27501510": 27501500,
    }
    story_text, story = items["hn:27501300"]
    assert story_text == (
        "Ask HN: What are you reading this summer?\n\n"
        "Looking for summer reading lists. Technical or not."
    )
    assert story["score"] == 187 and story["by"] == "mtlynch" and story["time"] == 1623686400
    assert items["hn:27501400"][0] == "Thanks! It's in the collection *Wireless*."


def test_thread_context_follows_the_parent_chain(store: Store) -> None:
    import_file(store, SHAPES / "algolia_item_tree.json")
    by_id = {item.external_id: item for item in store.items_by_ids(list(range(1, 10)))}
    chain = store.parent_context(by_id["hn:27501450"])
    assert chain is not None
    assert chain.splitlines() == [
        "Thanks! It's in the collection *Wireless*.",
        'Charles Stross has a short story called "Missile Gap", which I heartily recommend.',
        "Ask HN: What are you reading this summer? Looking for summer reading lists. Technical"
        " or not.",
    ]
    assert store.parent_context(by_id["hn:27501450"], depth=1) == by_id["hn:27501400"].text
    # Its parent was deleted (never stored): nothing above it is held.
    assert store.parent_context(by_id["hn:27501510"]) is None


def test_bigquery_full_table_as_csv_and_as_parquet(store: Store, tmp_path: Path) -> None:
    summary = import_file(store, SHAPES / "bigquery_full.csv")
    assert summary.format == "hn"
    assert dict(summary.skipped) == {"dead": 1, "deleted": 1, "job not in --types": 1}
    items = stored(store)
    sicp_text, sicp = items["hn:22150001"]
    assert sicp_text == (
        "Read *Structure and Interpretation of Computer Programs*.\n\n"
        "Free at https://mitpress.mit.edu/sicp"
    )
    assert sicp == {
        "id": 22150001,
        "by": "abecedarius",
        "time": 1580000100,
        "parent": 22150000,
        "type": "comment",
    }
    assert items["hn:22150004"][0] == "The C Programming Language & nothing else."
    launch = items["hn:22150100"][1]
    assert launch["url"] == "https://example.com/bookshelf" and launch["score"] == 88
    assert "parent" not in items["hn:22150000"][1]

    # BigQuery's Parquet export: typed columns, booleans and a TIMESTAMP, nulls for blanks.
    with (SHAPES / "bigquery_full.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    table = pa.table(
        {
            "title": [r["title"] or None for r in rows],
            "url": [r["url"] or None for r in rows],
            "text": [r["text"] or None for r in rows],
            "dead": pa.array([r["dead"] == "true" if r["dead"] else None for r in rows]),
            "by": [r["by"] or None for r in rows],
            "score": pa.array([int(r["score"]) if r["score"] else None for r in rows]),
            "time": pa.array([int(r["time"]) for r in rows]),
            "timestamp": pa.array([int(r["time"]) for r in rows], pa.timestamp("s", tz="UTC")),
            "type": [r["type"] for r in rows],
            "id": pa.array([int(r["id"]) + 1000 for r in rows]),
            "parent": pa.array([int(r["parent"]) + 1000 if r["parent"] else None for r in rows]),
            "descendants": pa.array(
                [int(r["descendants"]) if r["descendants"] else None for r in rows]
            ),
            "ranking": pa.array([None] * len(rows), pa.int64()),
            "deleted": pa.array([True if r["deleted"] else None for r in rows]),
        }
    )
    parquet_path = tmp_path / "full.parquet"
    pq.write_table(table, parquet_path)
    other = Store(tmp_path / "parquet.db")
    summary = import_file(other, parquet_path)
    assert summary.format == "hn" and summary.new_items == 4
    assert dict(summary.skipped) == {"dead": 1, "deleted": 1, "job not in --types": 1}
    assert stored(other)["hn:22151001"] == (sicp_text, {**sicp, "id": 22151001, "parent": 22151000})


def test_bigquery_comments_table(store: Store) -> None:
    summary = import_file(store, SHAPES / "bigquery_comments.csv")
    assert summary.format == "hn" and dict(summary.skipped) == {"dead": 1, "deleted": 1}
    items = stored(store)
    assert items == {
        "hn:8863001": (
            "I'd start with *Gödel, Escher, Bach*.",
            {"id": 8863001, "by": "dang", "time": 1420000000, "parent": 8863000, "type": "comment"},
        ),
        "hn:8863004": (
            "Seconded; and then *I Am a Strange Loop*.\n\nShorter, same ideas.",
            {"id": 8863004, "by": "sctb", "time": 1420000180, "parent": 8863001, "type": "comment"},
        ),
    }


def test_dataframe_written_csv_flags_and_float_ids(store: Store) -> None:
    summary = import_file(store, SHAPES / "hf_dump.csv")
    # dead=1.0, Y, y, True and deleted=true are set; 0.0, False, nan and blank are not.
    assert dict(summary.skipped) == {"dead": 4, "deleted": 1}
    items = stored(store)
    assert sorted(items) == ["hn:39000001", "hn:39000002", "hn:39000008", "hn:39000009"]
    assert items["hn:39000002"][1]["parent"] == 39000001
    assert items["hn:39000009"] == (
        "A reply to the orphan — agreed.",
        {"id": 39000009, "by": "ivan", "time": 1705000800, "parent": 39000008, "type": "comment"},
    )
    assert "parent" not in items["hn:39000008"][1]
    assert items["hn:39000001"][1]["score"] == 42


def test_parquet_dump_with_nan_parents(store: Store) -> None:
    summary = import_file(store, SHAPES / "hf_dump.parquet")
    assert summary.format == "hn"
    assert dict(summary.skipped) == {"dead": 1, "deleted": 1, "job not in --types": 1}
    items = stored(store)
    assert sorted(items) == ["hn:40100001", "hn:40100002", "hn:40100005", "hn:40100006"]
    assert "parent" not in items["hn:40100006"][1] and "parent" not in items["hn:40100001"][1]
    assert items["hn:40100005"][1]["parent"] == 40100002
    assert items["hn:40100002"][0] == "Emily Wilson's. It reads like a thriller."
    assert items["hn:40100001"][1]["score"] == 77
    assert "nan" not in json.dumps([meta for _, meta in items.values()]).lower()


def test_types_option_chooses_the_item_types(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    runner = CliRunner()
    array = str(SHAPES / "api_items_array.json")
    result = runner.invoke(cli, ["import", array, "--db", str(db), "--types", "comment"])
    assert result.exit_code == 0, result.output
    assert sorted(stored(Store(db))) == ["hn:26552101", "hn:26552104"]
    result = runner.invoke(
        cli, ["import", array, "--db", str(db), "--types", "job,poll,pollopt", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["new_items"] == 3
    assert stored(Store(db))["hn:26552300"][0] == (
        "Acme (YC S21) is hiring a librarian engineer\n\n"
        "We are hiring engineers who love reading papers."
    )
    result = runner.invoke(cli, ["import", array, "--db", str(db), "--types", "comments"])
    assert result.exit_code == 2
    assert "unknown item type comments" in result.output and "pollopt" in result.output


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ('[\n  {"id": 1, "by": "a", "text": "x"},\n', 1, "never closed"),
        ('[\n  {"id": 1, "by": "a", "text": "x"},\n  {"id": 2,\n', 3, "invalid JSON in the record"),
        ('[\n  {"id": 1, "by": "a", "text": "x"}\n]\n{"id": 2}\n', 1, "more follows (line 4)"),
        ('[\n  {"id": 1, "by": "a", "text": "x"}\n  {"id": 2}\n]\n', 3, "expected ',' or ']'"),
        ('{\n  "id": 1,\n  "by": "a",\n  "text": x\n}\n', 1, "(line 4)"),
        ('[\n  {"id": 1, "by": "a", "text": "x"},\n  [1]\n]\n', 3, "expected a JSON object"),
    ],
)
def test_a_broken_document_names_the_record(
    store: Store, tmp_path: Path, content: str, line: int, message: str
) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(ImportFault, match=re.escape(message)) as fault:
        import_file(store, path)
    assert fault.value.line == line
    assert stored(store) == {}


def test_json_lines_are_still_read_line_by_line(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": 1, "by": "a", "text": "one"}\n{"id": 2, "by": "b", "text": "two"\n')
    with pytest.raises(ImportFault, match="invalid JSON") as fault:
        import_file(store, path)
    assert fault.value.line == 2
