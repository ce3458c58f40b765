"""Database file problems: a read-only file, a missing directory, a database from a newer hnbooks and
a full disk. Every command (`hnbooks import`, `hnbooks export`, `hnbooks-score`, `hnbooks-tui`) says
what is wrong in one clear message, never with a traceback, and no row already stored is lost.

A read-only file is read-only for root too inside a user namespace (`unshare --user`); a full disk
is a small tmpfs, filled to the last byte (mounting needs root: skipped elsewhere).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from hnbooks.store import schema
from hnbooks.store.records import NewAnswer
from tests.helpers import publish, store_with_texts, write_jsonl
from tests.reliability.conftest import LedgerLine
from tests.reliability.processes import (
    REPO_ROOT,
    child_env,
    command,
    read_rows,
    table_dump,
)

TEXTS = [f"comment {n} about a book and the weather" for n in range(30)]


def make_database(db_path: Path) -> None:
    """Thirty texts, a published batch and two answers: something to lose."""
    store, ids = store_with_texts(db_path, TEXTS)
    publish(store, ids[:10])
    store.record_answer(ids[0], NewAnswer("ann", "accept"))
    store.record_answer(ids[1], NewAnswer("ann", "reject"))
    store.close()


def answers_in(db_path: Path) -> list[tuple[object, ...]]:
    return read_rows(db_path, "SELECT item_id, annotator, answer FROM answers ORDER BY id")


def score_command() -> list[str]:
    """`hnbooks-score` with the fake encoder (the encoder is not what is tested here)."""
    return [sys.executable, "-m", "tests.reliability.score_child"]


def run(args: list[str], cwd: Path, prefix: list[str] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, *args],
        cwd=REPO_ROOT if args[0] == sys.executable else cwd,
        env=child_env(cwd),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def assert_clear_failure(result: subprocess.CompletedProcess[str], says: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output, output
    assert says in output, output
    return output


def expect_all(child: pexpect.spawn, patterns: list[bytes]) -> None:
    """Wait until the terminal has received every pattern, in any order."""
    waiting = list(patterns)
    while waiting:
        waiting.pop(child.expect_exact(waiting))


def every_command(db_path: Path, folder: Path) -> dict[str, list[str]]:
    source = write_jsonl(folder / "new.jsonl", [{"text": "a new text"}])
    return {
        "hnbooks import": [*command("hnbooks"), "import", str(source), "--db", str(db_path)],
        "hnbooks export": [
            *command("hnbooks"),
            "export",
            "--db",
            str(db_path),
            "-o",
            str(folder / "out.jsonl"),
        ],
        "hnbooks-score": [*score_command(), "--db", str(db_path)],
        "hnbooks-tui": [
            *command("hnbooks-tui"),
            "--db",
            str(db_path),
            "--annotator",
            "ann",
            "--no-scorer",
        ],
    }


def test_a_missing_directory_is_named(tmp_path: Path, ledger: LedgerLine) -> None:
    db_path = tmp_path / "no" / "such" / "folder" / "x.db"
    for args in every_command(db_path, tmp_path).values():
        assert_clear_failure(run(args, tmp_path), f"directory {db_path.parent} does not exist")
        ledger.add("commands refused clearly")
    assert not (tmp_path / "no").exists()


def test_a_database_from_a_newer_hnbooks_is_refused_untouched(
    tmp_path: Path, ledger: LedgerLine
) -> None:
    db_path = tmp_path / "newer.db"
    make_database(db_path)
    newer = schema.LEGACY_VERSION + 1
    conn = __import__("sqlite3").connect(db_path)
    conn.execute(f"PRAGMA user_version = {newer}")
    conn.close()
    before = table_dump(db_path)
    for args in every_command(db_path, tmp_path).values():
        assert_clear_failure(run(args, tmp_path), "written by a newer hnbooks")
        ledger.add("commands refused clearly")
    assert table_dump(db_path) == before
    assert read_rows(db_path, "PRAGMA user_version") == [(newer,)]
    ledger.add("rows lost", 0)


@pytest.fixture(scope="module")
def as_non_root() -> list[str]:
    """A prefix that runs a command without root's power over file permissions."""
    if os.geteuid() != 0:
        return []
    if shutil.which("unshare") is None:
        pytest.skip("running as root without unshare: a read-only file is writable")
    probe = subprocess.run(["unshare", "--user", "--map-user=65534", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("running as root and user namespaces are not available")
    return ["unshare", "--user", "--map-user=65534"]


def test_a_read_only_database_is_read_and_never_half_written(
    tmp_path: Path, as_non_root: list[str], ledger: LedgerLine
) -> None:
    db_path = tmp_path / "ro.db"
    make_database(db_path)
    db_path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    before = table_dump(db_path)
    commands = every_command(db_path, tmp_path)

    assert_clear_failure(run(commands["hnbooks import"], tmp_path, as_non_root), "read-only")
    assert_clear_failure(run(commands["hnbooks-score"], tmp_path, as_non_root), "read-only")
    # Reading still works: the export holds both answers.
    exported = run(commands["hnbooks export"], tmp_path, as_non_root)
    assert exported.returncode == 0, exported.stderr
    assert len((tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()) == 2
    # The TUI shows the queue; an answer is refused with a message and the item stays on screen.
    program, *args = [*as_non_root, *commands["hnbooks-tui"]]
    child = pexpect.spawn(program, args, env=child_env(tmp_path), dimensions=(24, 80), timeout=20)
    try:
        child.expect_exact(b"comment 2 ")
        child.send("a")
        # The refusal is said, and the item comes back to be answered again (in either order).
        expect_all(child, [b"not saved", b"comment 2 "])
        child.send("q")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    assert table_dump(db_path) == before
    ledger.add("commands tried", 4)
    ledger.add("rows lost", 0)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MB tmpfs: a disk that fills up."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full disk is simulated with a tmpfs, which needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(folder: Path) -> Path:
    """Fill the disk holding `folder` to its last byte; return the file that fills it."""
    filler = folder / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        free = shutil.disk_usage(folder).free
        if free > 65536:
            os.posix_fallocate(descriptor, 0, free - 65536)
        for _ in range(10_000):
            try:
                os.write(descriptor, b"\0" * 512)
            except OSError as error:
                assert error.errno == errno.ENOSPC
                break
    finally:
        os.close(descriptor)
    return filler


def test_a_full_disk_is_said_and_loses_nothing(
    tmp_path: Path, small_disk: Path, ledger: LedgerLine
) -> None:
    db_path = small_disk / "full.db"
    make_database(db_path)
    big = write_jsonl(
        tmp_path / "big.jsonl", [{"text": f"new text {n} " + "x" * 300} for n in range(3000)]
    )
    commands = every_command(db_path, tmp_path)

    # The TUI starts while there is room; the disk fills up under it.
    program, *args = command("hnbooks-tui")
    child = pexpect.spawn(
        program,
        [*args, "--db", str(db_path), "--annotator", "kim", "--no-scorer"],
        env=child_env(tmp_path),
        dimensions=(24, 80),
        timeout=20,
    )
    try:
        child.expect_exact(b"comment 0 ")
        filler = fill(small_disk)
        before = table_dump(db_path)
        answers_before = answers_in(db_path)
        assert_clear_failure(
            run([*command("hnbooks"), "import", str(big), "--db", str(db_path)], tmp_path),
            "disk is full",
        )
        result = run(commands["hnbooks-score"], tmp_path)
        assert result.returncode != -7, (
            "hnbooks-score died of SIGBUS writing its cache on a full disk"
        )
        # The scorer's first write is its lease (the database says "disk is full"); with a lease
        # already held it is the embedding cache (the OS says "No space left on device").
        output = result.stdout + result.stderr
        assert_clear_failure(
            result, "disk is full" if "disk is full" in output else "No space left on device"
        )
        assert table_dump(db_path) == before
        ledger.add("commands refused clearly", 2)

        child.send("a")
        expect_all(child, [b"disk is full", b"comment 0 "])  # not saved: said, and the item is back
        assert answers_in(db_path) == answers_before
        filler.unlink()  # space again: the same key press now saves the answer
        child.send("a")
        child.expect_exact(b"comment 1 ")
        child.send("q")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert read_rows(db_path, "SELECT COUNT(*) FROM answers WHERE annotator = 'kim'") == [(1,)]
    assert len(answers_in(db_path)) == 3
    ledger.add("answers lost", 0)

    # An export onto a full disk fails before it replaces the previous export.
    target = small_disk / "answers.jsonl"
    assert (
        run(
            [*command("hnbooks"), "export", "--db", str(db_path), "-o", str(target)], tmp_path
        ).returncode
        == 0
    )
    previous = target.read_bytes()
    shutil.copy(db_path, tmp_path / "elsewhere.db")
    filler = fill(small_disk)
    result = run(
        [*command("hnbooks"), "export", "--db", str(tmp_path / "elsewhere.db"), "-o", str(target)],
        tmp_path,
    )
    assert_clear_failure(result, "No space left on device")
    assert target.read_bytes() == previous
    assert not target.with_name(target.name + ".partial").exists()
    filler.unlink()
    assert len([json.loads(line) for line in previous.splitlines()]) == 3
    ledger.add("previous exports kept whole", 1)


def test_another_programs_database_is_refused_untouched(tmp_path: Path, ledger: LedgerLine) -> None:
    import sqlite3

    db_path = tmp_path / "prodigy.db"
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.executescript(
        """
        CREATE TABLE dataset (id INTEGER PRIMARY KEY, name TEXT, meta BLOB, session INTEGER);
        CREATE TABLE example (id INTEGER PRIMARY KEY, input_hash INTEGER, content BLOB);
        CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);
        INSERT INTO dataset (name) VALUES ('books');
        """
    )
    conn.close()
    before = db_path.read_bytes()
    commands = every_command(db_path, tmp_path)
    del commands["hnbooks-tui"]  # it wants a terminal first; it opens the store as the others do
    commands["hnbooks stats"] = [*command("hnbooks"), "stats", "--db", str(db_path)]
    for args in commands.values():
        assert_clear_failure(run(args, tmp_path), "not an hnbooks database")
        ledger.add("commands refused clearly")
    assert db_path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("prodigy")) == [
        "prodigy.db"
    ]
    ledger.add("files altered", 0)
