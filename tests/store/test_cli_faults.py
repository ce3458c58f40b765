"""The `hnbooks` CLI on awkward input: mixed JSONL flavours, answers without a timestamp, odd HN
ids, export targets that are not regular files, data that would drive the terminal, and a backup
taken while another connection is writing."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from hnbooks.cli import cli
from hnbooks.importing import ImportFault, import_file
from hnbooks.store.db import Store
from hnbooks.store.records import NewAnswer
from tests.helpers import publish, table_counts, write_jsonl
from tests.reliability.processes import child_env, command


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def answer_rows(db: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT i.text, a.annotator, a.answer FROM answers a JOIN items i ON i.id = a.item_id"
            " ORDER BY a.id"
        ).fetchall()
    finally:
        conn.close()


# -- 1. every JSONL line is read for what it is ---------------------------------------------------


def test_answers_on_later_lines_are_answers_whatever_the_first_line_is(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    source = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            {"text": "a plain first line"},
            {"text": "b", "answer": "accept", "_timestamp": 1_600_000_000, "_annotator_id": "kim"},
            {"id": 7, "by": "pg", "text": "<p>an HN item"},
            {"text": "d", "answer": "reject", "label": "BOOK", "_annotator_id": "lee"},
        ],
    )
    code, out, err = run("import", str(source), "--db", str(db))
    assert code == 0, err
    assert answer_rows(db) == [("b", "kim", "accept"), ("d", "lee", "reject")]
    conn = sqlite3.connect(db)
    metas = dict(conn.execute("SELECT text, meta FROM items").fetchall())
    external = dict(conn.execute("SELECT text, external_id FROM items").fetchall())
    conn.close()
    assert "answer" not in json.loads(metas["b"]) and "_timestamp" not in json.loads(metas["b"])
    assert external["an HN item"] == "hn:7"
    assert "prodigy" in out


def test_an_hn_file_with_a_prodigy_line_keeps_the_answer(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    source = write_jsonl(
        tmp_path / "hn.jsonl",
        [
            {"id": 1, "by": "pg", "text": "first"},
            {"text": "second", "answer": "ignore", "_annotator_id": "kim"},
        ],
    )
    assert run("import", str(source), "--db", str(db))[0] == 0
    assert answer_rows(db) == [("second", "kim", "ignore")]


# -- 2. re-importing adds nothing; odd HN ids are no traceback ------------------------------------


def test_answers_without_a_timestamp_are_imported_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "x.db"
    real_time, clock = time.time, [0.0]
    # Each import happens a minute after the one before, as a real re-import would.
    monkeypatch.setattr(time, "time", lambda: real_time() + clock[0])
    source = write_jsonl(
        tmp_path / "answers.jsonl",
        [
            {"text": "one", "answer": "accept", "label": "BOOK", "_annotator_id": "kim"},
            {"text": "two", "answer": "reject", "label": "BOOK"},
            {
                "text": "three words",
                "answer": "accept",
                "label": "BOOK",
                "spans": [{"start": 0, "end": 5, "label": "BOOK"}],
            },
        ],
    )
    assert run("import", str(source), "--db", str(db))[0] == 0
    first = table_counts(db)
    assert first["answers"] == 3
    for _ in range(3):
        clock[0] += 60
        code, out, _ = run("import", str(source), "--db", str(db))
        assert code == 0 and "0 answers," in out and "3 answers already present" in out
    assert table_counts(db) == first


@pytest.mark.parametrize(
    "item_id",
    ["²", "-²", "١٢", "9" * 5000, "12\x1b[2J"],
    ids=["superscript", "negative-superscript", "arabic-indic", "5000-digits", "escape"],
)
def test_unusual_hn_ids_import_or_are_refused_without_a_traceback(
    tmp_path: Path, item_id: str
) -> None:
    db = tmp_path / "x.db"
    line = {"id": item_id, "by": "pg", "text": "a comment", "parent": item_id, "time": item_id}
    source = write_jsonl(tmp_path / "hn.jsonl", [line])
    with Store(db) as store:
        try:
            import_file(store, source, fmt="hn")
        except ImportFault as fault:
            assert fault.line == 1
        else:
            (external,) = store._query("SELECT external_id FROM items")
            # Only ASCII digits make a number; anything else stays the text it was.
            assert external[0] == f"hn:{item_id}"
            import_file(store, source, fmt="hn")
            assert store.item_count() == 1


# -- 3. export onto something that is not a regular file ------------------------------------------


@pytest.fixture
def answered_db(tmp_path: Path) -> Path:
    db = tmp_path / "answered.db"
    with Store(db) as store:
        import_file(store, write_jsonl(tmp_path / "t.jsonl", [{"text": "one"}, {"text": "two"}]))
        store.record_answer(1, NewAnswer("ann", "accept"))
        store.record_answer(2, NewAnswer("ann", "reject"))
    return db


def test_export_writes_through_a_symlink_and_keeps_it(tmp_path: Path, answered_db: Path) -> None:
    real = tmp_path / "real.jsonl"
    real.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    code, _, err = run("export", "--db", str(answered_db), "-o", str(link))
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert len(real.read_text().splitlines()) == 2
    # A link to a device writes to the device, and both stay what they were.
    to_null = tmp_path / "null.jsonl"
    to_null.symlink_to("/dev/null")
    assert run("export", "--db", str(answered_db), "-o", str(to_null))[0] == 0
    assert to_null.is_symlink() and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_export_writes_into_a_fifo_without_replacing_it(tmp_path: Path, answered_db: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []

    def read() -> None:
        # Opening for reading blocks until the exporter opens it for writing (or the test ends).
        with open(fifo, "rb") as handle:
            received.append(handle.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    code, _, err = run("export", "--db", str(answered_db), "-o", str(fifo))
    if not received:
        # The exporter never opened the FIFO: release the reader before asserting.
        with open(fifo, "wb"):
            pass
    reader.join(timeout=10)
    assert code == 0, err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced by a regular file"
    assert [json.loads(line)["text"] for line in received[0].splitlines()] == ["one", "two"]


def test_export_writes_into_a_character_device(tmp_path: Path, answered_db: Path) -> None:
    device = tmp_path / "null"
    try:
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs CAP_MKNOD")
    code, _, err = run("export", "--db", str(answered_db), "-o", str(device))
    assert code == 0, err
    assert stat.S_ISCHR(os.lstat(device).st_mode), "the device was replaced by a regular file"
    assert not device.with_name("null.partial").exists()


def test_export_refuses_a_socket(tmp_path: Path, answered_db: Path) -> None:
    import socket

    path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    try:
        code, _, err = run("export", "--db", str(answered_db), "-o", str(path))
    finally:
        server.close()
    assert code == 1 and "sock" in err and "Traceback" not in err
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


# -- 4. data never drives the terminal -----------------------------------------------------------

HOSTILE = [
    "\x1b]52;c;aGVsbG8=\x07",
    "\x1b]0;pwned\x07",
    "\x1b[2J",
    "[/]",
    "[link=http://x]a[/link]",
    "[red]x[/red]",
    "\x9b31m",
    "\u202eevil",
]


def test_one_sanitiser_for_every_program() -> None:
    from hnbooks.printable import CONTROL_TRANSLATION, inert_json, printable, printable_line
    from hnbooks.tui import render

    assert render.printable is printable
    value = {"name": "".join(HOSTILE), "text": "line\nbreak \u2028 \x7f"}
    encoded = inert_json(value)
    assert json.loads(encoded) == value
    # Exact JSON, and not one character a terminal would act on.
    assert not any(ord(ch) in CONTROL_TRANSLATION for ch in encoded)
    shown = printable_line(value["name"] + value["text"])
    assert len(shown) == len(value["name"] + value["text"]) and "\n" not in shown
    assert "\x1b" not in printable(value["name"])


def cli_process(*args: str, home: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*command("hnbooks"), *args],
        env=child_env(home, COLUMNS="200"),
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def assert_inert(result: subprocess.CompletedProcess[bytes]) -> str:
    for stream in (result.stdout, result.stderr):
        assert b"Traceback" not in stream, stream
        for byte in (b"\x1b", b"\x07", "\x9b".encode(), "\u202e".encode()):
            assert byte not in stream, stream
    return (result.stdout + result.stderr).decode()


def test_stats_queue_and_import_errors_print_data_inert(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    records = [
        {"text": f"text {n} {name}", "answer": "accept", "_annotator_id": f"{name}{n}"}
        for n, name in enumerate(HOSTILE)
    ]
    records += [{"text": f"waiting {n} {name}"} for n, name in enumerate(HOSTILE)]
    with Store(db) as store:
        import_file(store, write_jsonl(tmp_path / "hostile.jsonl", records))
        waiting = [i for i, text in store.iter_item_texts() if text.startswith("waiting")]
        publish(store, waiting, strategy="[bold]top\x1b[5m")

    stats = cli_process("stats", "--db", str(db), home=tmp_path)
    assert stats.returncode == 0, stats.stderr
    shown = assert_inert(stats)
    for name in ("[/]", "[link=http://x]a[/link]", "[red]x[/red]", "␛]0;pwned␇"):
        assert name in shown, shown

    queue = cli_process("queue", "--db", str(db), home=tmp_path)
    assert queue.returncode == 0, queue.stderr
    shown = assert_inert(queue)
    assert "[red]x[/red]" in shown and "[bold]top" in shown

    as_json = cli_process("queue", "--db", str(db), "--json", home=tmp_path)
    assert_inert(as_json)
    assert {e["text"] for e in json.loads(as_json.stdout)} == {r["text"] for r in records[8:]}
    assert_inert(cli_process("stats", "--db", str(db), "--json", home=tmp_path))
    exported = cli_process("export", "--db", str(db), home=tmp_path)
    assert_inert(exported)
    assert {json.loads(line)["_annotator_id"] for line in exported.stdout.splitlines()} == {
        r["_annotator_id"] for r in records[:8]
    }

    clash = write_jsonl(
        tmp_path / "clash.jsonl",
        [
            {"id": "\x1b]0;pwned\x07", "by": "x", "text": "one text"},
            {"id": "\x1b]0;pwned\x07", "by": "x", "text": "another text"},
            {"id": "two\nlines", "by": "x", "text": "a third text"},
            {"id": "two\nlines", "by": "x", "text": "a fourth text"},
        ],
    )
    failed = cli_process("import", str(clash), "--db", str(db), home=tmp_path)
    assert failed.returncode == 1
    assert "clash.jsonl:2" in assert_inert(failed)
    assert len(failed.stderr.strip().splitlines()) == 1
    second = clash.with_name("clash2.jsonl")
    second.write_bytes(b"".join(clash.read_bytes().splitlines(keepends=True)[2:]))
    failed = cli_process("import", str(second), "--db", str(db), home=tmp_path)
    assert failed.returncode == 1 and "two␤lines" in assert_inert(failed)
    assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr


# -- 5. backup ------------------------------------------------------------------------------------


def test_backup_copies_writes_still_in_another_connections_wal(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    with Store(db) as store:
        import_file(
            store, write_jsonl(tmp_path / "t.jsonl", [{"text": f"t{n}"} for n in range(50)])
        )
    annotator = Store(db)  # stays open: its answers stay in the -wal file, not checkpointed
    for item_id in range(1, 51):
        annotator.record_answer(item_id, NewAnswer("ann", "accept"))
    assert Path(f"{db}-wal").stat().st_size > 0
    dest = tmp_path / "copy" / "backup.db"
    dest.parent.mkdir()
    try:
        code, out, err = run("backup", str(dest), "--db", str(db))
    finally:
        annotator.close()
    assert code == 0, err
    assert not Path(f"{dest}-wal").exists() and not Path(f"{dest}-shm").exists()
    alone = tmp_path / "alone.db"
    alone.write_bytes(dest.read_bytes())  # the file by itself, nothing beside it
    assert len(answer_rows(alone)) == 50

    code, _, err = run("backup", str(dest), "--db", str(db))
    assert code == 1 and "exists" in err and "--force" in err
    assert run("backup", str(dest), "--db", str(db), "--force")[0] == 0
    assert "Examples" in run("backup", "--help")[1]


class TerminalText(io.StringIO):
    """Text written where a terminal would read it."""

    def isatty(self) -> bool:
        return True


def test_a_csv_export_onto_a_terminal_carries_no_escape_from_the_data(tmp_path: Path) -> None:
    from hnbooks.exporting import write_csv
    from hnbooks.store import Store
    from hnbooks.store.records import IncomingItem, NewAnswer

    store = Store(tmp_path / "x.db")
    (item_id,) = store.add_items([IncomingItem(1, "title \x1b]0;pwned\x07 here \x1b[2J", {})], "t")
    store.record_answer(item_id, NewAnswer("ann \x1b]52;c;eA==\x07", "accept"))
    on_terminal, to_file = TerminalText(), io.StringIO()
    write_csv(store, on_terminal)
    write_csv(store, to_file)
    store.close()
    assert "\x1b" not in on_terminal.getvalue() and "\x07" not in on_terminal.getvalue()
    assert "\x1b]0;pwned\x07" in to_file.getvalue(), "a file keeps the exact text"
