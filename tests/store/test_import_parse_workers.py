"""Parser processes: a file of JSON lines parsed by other processes stores what parsing it here
stores, and a fault in any block is the one a reader in file order meets first."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hnbooks import importing
from hnbooks.cli import cli
from hnbooks.importing import MAX_LINE_BYTES, ImportFault, import_file
from hnbooks.store.db import Store
from tests.store.test_import_speed_paths import table_rows


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parser processes after 5 lines, 7 lines a block: a small file crosses many blocks."""
    monkeypatch.setattr(importing, "SERIAL_HEAD_LINES", 5)
    monkeypatch.setattr(importing, "PARSE_BLOCK_LINES", 7)


def mixed_hn_lines() -> list[str]:
    """HN items (some dead, deleted, without text or duplicated far apart), Prodigy answers with
    spans, blank lines and a BOM."""
    lines: list[str] = []
    for n in range(1, 61):
        item: dict[str, Any] = {
            "id": n,
            "by": f"user{n % 7}",
            "type": "comment",
            "time": 1_600_000_000 + n,
            "parent": n - 1,
            "text": f"<p>comment {n % 45} about <i>Dune</i> &amp; it&#x27;s fine",
        }
        if n % 13 == 0:
            item["dead"] = True
        if n % 17 == 0:
            item = {"id": n, "type": "comment", "deleted": True, "time": 1}
        lines.append(json.dumps(item))
        if n % 9 == 0:
            lines.append("")
        if n % 11 == 0:
            # Only id, type and time: in a file of HN items, an HN item all the same.
            lines.append(json.dumps({"id": 1000 + n, "type": "comment", "time": 5}))
        if n % 10 == 0:
            lines.append(
                json.dumps(
                    {
                        "text": f"Reading Snow Crash again, number {n}",
                        "answer": "accept",
                        "spans": [{"start": 8, "end": 18, "label": "BOOK"}],
                        "_annotator_id": "ann",
                        "_timestamp": 1_700_000_000 + n,
                    }
                )
            )
    lines[0] = "\ufeff" + lines[0]
    return lines


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.usefixtures("small_blocks")
def test_parser_processes_store_what_parsing_here_stores(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "mixed.jsonl", mixed_hn_lines())
    results = []
    for workers in (0, 2):
        db_path = tmp_path / f"workers-{workers}.db"
        with Store(db_path) as store:
            summary = import_file(store, source, parse_workers=workers)
            again = import_file(store, source, parse_workers=workers)
        results.append((summary.as_json(), again.as_json(), table_rows(db_path)))
    assert results[1] == results[0]
    summary, again, rows = results[0]
    assert summary["format"] == "hn+prodigy"
    assert summary["skipped"] == {"dead": 4, "deleted": 3, "empty text": 5}
    assert summary["merged"] > 0 and summary["answers"] == 6
    assert again["new_items"] == 0 and again["answers_already_present"] == 6
    assert ("BOOK",) in rows["labels"]


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize(
    ("spoiled", "message"),
    [
        ("{not json", "invalid JSON"),
        (json.dumps({"id": 30, "by": "a", "text": "lone \ud800 surrogate"}), "cannot store"),
    ],
    ids=["bad-json", "unstorable-text"],
)
def test_a_fault_in_a_parser_process_names_its_line_and_leaves_nothing(
    tmp_path: Path, spoiled: str, message: str
) -> None:
    lines = [json.dumps({"id": n, "by": "a", "text": f"text {n}"}) for n in range(1, 41)]
    lines[29] = spoiled  # line 30: in a block a parser process reads
    source = write_lines(tmp_path / "spoiled.jsonl", lines)
    db_path = tmp_path / "spoiled.db"
    with Store(db_path) as store:
        with pytest.raises(ImportFault, match=message) as fault:
            import_file(store, source, parse_workers=2)
        assert fault.value.line == 30
        assert store.item_count() == 0
        assert not store.imports_in_progress()
    assert sqlite3.connect(db_path).execute("SELECT COUNT(*) FROM items").fetchone() == (0,)


@pytest.mark.usefixtures("small_blocks")
def test_the_first_fault_in_the_file_is_the_one_named(tmp_path: Path) -> None:
    """A bad line in a block still being parsed comes before a line too long to read further on
    (which the reading process meets first)."""
    lines = [json.dumps({"id": n, "by": "a", "text": f"text {n}"}) for n in range(1, 41)]
    lines[19] = "[1, 2"  # line 20
    lines[34] = json.dumps({"id": 35, "by": "a", "text": "x" * (MAX_LINE_BYTES + 10)})
    source = write_lines(tmp_path / "two-faults.jsonl", lines)
    with Store(tmp_path / "two.db") as store:
        with pytest.raises(ImportFault) as fault:
            import_file(store, source, parse_workers=1)
    assert fault.value.line == 20


@pytest.mark.usefixtures("small_blocks")
def test_the_import_command_hands_parsing_to_the_processes_it_is_given(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "mixed.jsonl", mixed_hn_lines())
    rows = []
    for workers in ("0", "2"):
        db_path = tmp_path / f"cli-{workers}.db"
        result = CliRunner().invoke(
            cli, ["import", str(source), "--db", str(db_path), "--parse-workers", workers, "--json"]
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["new_items"] > 40
        rows.append(table_rows(db_path)["items"])
    assert rows[1] == rows[0]


def hn_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=9)
    return path


def dataframe_rows(count: int) -> list[dict[str, Any]]:
    """A pandas-style dump: float ids and parents (NaN for a story), 1.0/0.0 flags."""
    return [
        {
            "id": float(n),
            "by": f"user{n % 5}",
            "type": "story" if n % 10 == 0 else "comment",
            "title": f"Story {n}" if n % 10 == 0 else None,
            "parent": float("nan") if n % 10 == 0 else float(n - 1),
            "dead": 1.0 if n % 12 == 0 else 0.0,
            "text": f"<p>row {n % 33} on <i>Anathem</i>",
            "time": 1_600_000_000 + n,
        }
        for n in range(1, count + 1)
    ]


@pytest.mark.usefixtures("small_blocks")
def test_parquet_parsed_by_processes_stores_what_parsing_here_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importing, "PARQUET_BATCH_ROWS", 8)
    source = hn_parquet(tmp_path / "dump.parquet", dataframe_rows(70))
    results = []
    for workers in (0, 2):
        db_path = tmp_path / f"parquet-{workers}.db"
        with Store(db_path) as store:
            summary = import_file(store, source, fmt="hn", parse_workers=workers)
        results.append((summary.as_json(), table_rows(db_path)))
    assert results[1] == results[0]
    summary, rows = results[0]
    assert summary["skipped"] == {"dead": 5}
    assert summary["new_items"] + summary["merged"] == 65
    metas = [json.loads(meta) for _, _, _, meta, _, _ in rows["items"]]
    assert all("parent" not in meta for meta in metas if meta["type"] == "story")


@pytest.mark.usefixtures("small_blocks")
def test_a_fault_in_a_parquet_batch_names_its_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importing, "PARQUET_BATCH_ROWS", 8)
    rows = dataframe_rows(40)
    rows[33]["id"] = None  # row 34
    source = hn_parquet(tmp_path / "spoiled.parquet", rows)
    with Store(tmp_path / "spoiled.db") as store:
        with pytest.raises(ImportFault, match="without an id") as fault:
            import_file(store, source, fmt="hn", parse_workers=2)
        assert fault.value.line == 34
        assert store.item_count() == 0
