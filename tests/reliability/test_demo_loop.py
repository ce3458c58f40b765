"""`make demo` as a user lives it, in a real pseudo-terminal: the real `hnbooks-tui` on the demo
comments starts its own watching scorer (the real exported model), 150 answers go in at a steady pace
without another shell, the empty-queue screen never shows after the first item, and `q` leaves no
scorer process behind."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pexpect
import pytest

from hnbooks.models.registry import default_models_dir
from tests.conftest import DEMO_FILE
from tests.reliability.processes import child_env, command, run_cli, wait_for

pytestmark = pytest.mark.model

ANSWERS = 150
PACE_S = 0.1
"""Seconds between answers: faster than anyone reads, so the scorer is tested, not the reader."""


def count(db_path: Path, sql: str) -> int:
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def scorer_pid(db_path: Path) -> int | None:
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        row = conn.execute("SELECT pid FROM scorer_lease").fetchone()
        return None if row is None else int(row[0])
    finally:
        conn.close()


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours would still answer: only the TUI could have left one, and it is gone.
    return True


def test_the_demo_loop_never_shows_an_empty_queue_and_leaves_no_scorer(
    tmp_path: Path, ledger
) -> None:  # type: ignore[no-untyped-def]
    db_path = tmp_path / "demo.db"
    assert (
        run_cli("hnbooks", "import", str(DEMO_FILE), "--db", str(db_path), cwd=tmp_path).returncode
        == 0
    )
    env = child_env(tmp_path, HNBOOKS_MODELS_DIR=str(default_models_dir()))
    program, *args = command("hnbooks-tui")
    child = pexpect.spawn(
        program,
        [*args, "--db", str(db_path), "--annotator", "me"],
        env=env,
        dimensions=(30, 100),
        timeout=120,
        cwd=str(tmp_path),
    )
    try:
        child.expect_exact(b"batch 1")
        pid = scorer_pid(db_path)
        assert pid is not None and process_exists(pid), "the TUI started no scorer"
        seen_empty = 0
        for n in range(ANSWERS):
            child.send("a" if n % 6 == 0 else "x")
            deadline = time.monotonic() + PACE_S
            while time.monotonic() < deadline:
                try:
                    output = child.read_nonblocking(65536, timeout=0.02)
                except pexpect.TIMEOUT:
                    continue
                seen_empty += output.count(b"Nothing left to annotate")
        wait_for(
            lambda: count(db_path, "SELECT COUNT(*) FROM current_answers WHERE annotator = 'me'"),
            lambda answered: answered == ANSWERS,
            timeout=60,
            what=f"{ANSWERS} answers committed",
        )
        assert seen_empty == 0, "the empty-queue screen was shown after the first item"
        rounds = count(db_path, "SELECT COUNT(*) FROM rounds")
        assert rounds >= 3, f"only {rounds} rounds for {ANSWERS} answers in batches of 50"
        child.send("q")
        child.expect(pexpect.EOF, timeout=30)
    finally:
        if child.isalive():
            child.terminate(force=True)
    wait_for(
        lambda: process_exists(pid), lambda alive: not alive, timeout=15, what="the scorer to stop"
    )
    assert scorer_pid(db_path) is None, "the scorer left its lease behind"
    ledger.add("answers through the demo loop", ANSWERS)
    ledger.add("rounds run by the TUI's scorer", rounds)
    ledger.add("empty-queue screens after the first item", seen_empty)
    ledger.add("scorer processes left behind", 0)
