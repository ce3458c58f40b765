"""`hnbooks` in shell pipelines: `-` is stdin / stdout, FIFOs and `<(cmd)` are read by content,
an export into a reader that stops early ends quietly, and `--json` / `--quiet` say what they say."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from hnbooks.cli import cli
from hnbooks.exporting import write_jsonl as export_jsonl
from hnbooks.store.db import Store

HNBOOKS = Path(sys.executable).parent / "hnbooks"


def prodigy_lines(count: int) -> bytes:
    return b"".join(
        json.dumps(
            {"text": f"comment number {n} about a book", "label": "BOOK", "answer": "accept"}
        ).encode()
        + b"\n"
        for n in range(count)
    )


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "stream"
    os.mkfifo(path)
    yield path


def feed(path: Path, data: bytes) -> threading.Thread:
    """Write `data` into the FIFO at `path` from a thread (opening blocks until it is read)."""

    def write() -> None:
        with open(path, "wb") as handle:
            handle.write(data)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_stdin_is_read_from_dash_and_nothing_stray_goes_to_stderr(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    result = subprocess.run(
        [str(HNBOOKS), "import", "-", "--db", str(db)],
        input=b'{"text":"x"}\n',
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""  # no blank line left by a progress bar off a terminal
    assert b"1 new" in result.stdout
    store = Store(db, create=False)
    assert store.item_count() == 1
    store.close()


def test_prodigy_lines_from_stdin_are_answers_not_texts(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    result = CliRunner().invoke(
        cli, ["import", "-", "--db", str(db), "--json"], input=prodigy_lines(1000)
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["new_items"] == 1000 and summary["answers"] == 1000
    assert summary["failed_files"] == 0
    (file_summary,) = summary["files"]
    assert file_summary["format"] == "prodigy" and file_summary["path"] == "<stdin>"


def test_a_fifo_is_sniffed_without_losing_its_first_line(tmp_path: Path, fifo: Path) -> None:
    db = tmp_path / "d.db"
    writer = feed(fifo, prodigy_lines(300))
    result = CliRunner().invoke(cli, ["import", str(fifo), "--db", str(db), "--quiet"])
    writer.join(timeout=10)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    store = Store(db, create=False)
    assert (store.item_count(), store.answer_count()) == (300, 300)
    store.close()


def test_parquet_from_a_pipe_says_to_pass_a_file(tmp_path: Path, fifo: Path) -> None:
    parquet = io.BytesIO()
    pq.write_table(pa.table({"text": ["a", "b"]}), parquet)
    writer = feed(fifo, parquet.getvalue())
    result = CliRunner().invoke(cli, ["import", str(fifo), "--db", str(tmp_path / "d.db")])
    writer.join(timeout=10)
    assert result.exit_code == 1
    assert "Parquet cannot be read from a pipe" in result.stderr
    assert "pass the file's name" in result.stderr


def test_export_to_dash_writes_stdout_and_quiet_drops_the_count(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    CliRunner().invoke(cli, ["import", "-", "--db", str(db)], input=prodigy_lines(3))
    result = CliRunner().invoke(cli, ["export", "--db", str(db), "-o", "-"])
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3
    assert "exported 3 answers" in result.stderr
    assert not (tmp_path / "-").exists() and not Path("-").exists()
    quiet = CliRunner().invoke(cli, ["export", "--db", str(db), "-o", "-", "--quiet"])
    assert quiet.stdout == result.stdout and quiet.stderr == ""


def test_export_into_a_reader_that_stops_early_ends_quietly(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    CliRunner().invoke(cli, ["import", "-", "--db", str(db)], input=prodigy_lines(4000))
    store = Store(db, create=False)
    expected_first = io.StringIO()
    export_jsonl(store, expected_first)
    store.close()
    # More than a pipe buffer holds, so the export is still writing when the reader leaves.
    assert len(expected_first.getvalue()) > 1 << 17
    export = subprocess.Popen(
        [str(HNBOOKS), "export", "--db", str(db), "-o", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert export.stdout is not None and export.stderr is not None
    first_line = export.stdout.readline()
    export.stdout.close()
    stderr = export.stderr.read()
    code = export.wait(timeout=60)
    assert json.loads(first_line) == json.loads(expected_first.getvalue().splitlines()[0])
    assert b"Traceback" not in stderr and b"Error" not in stderr
    assert code in (0, 141, -13)


def test_process_substitution_is_read_by_content(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    source = tmp_path / "tasks.txt"  # no JSON suffix: only the content says Prodigy
    source.write_bytes(prodigy_lines(5))
    result = subprocess.run(
        ["bash", "-c", f'"{HNBOOKS}" import <(cat "{source}") /dev/stdin --db "{db}" --json'],
        stdin=source.open("rb"),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert [f["format"] for f in summary["files"]] == ["prodigy", "prodigy"]
    assert summary["answers"] == 5 and summary["answers_already_present"] == 5
