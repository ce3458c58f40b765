"""One scorer per database: the real `hnbooks-score` (fake encoder) in child processes. A second
scorer says who holds the database or waits for it; SIGTERM stops a watching scorer cleanly and frees
the lease; a killed holder's lease is taken over; an expired one is too."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from hnbooks.store import Store
from hnbooks.store.records import IncomingItem
from tests.reliability.processes import REPO_ROOT, child_env, wait_for
from tests.reliability.scorer import synthetic_texts


def scorer_command(db_path: Path, *args: str) -> list[str]:
    """The real `hnbooks-score` with the fake encoder, on batches of 10."""
    child = ["-m", "tests.reliability.score_child"]
    return [sys.executable, *child, "--db", str(db_path), "--batch-size", "10", *args]


def scorer(db_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        scorer_command(db_path, *args),
        cwd=REPO_ROOT,
        env=child_env(db_path.parent),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def score_once(db_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One `hnbooks-score` run to its end, output captured."""
    return subprocess.run(
        scorer_command(db_path, *args),
        cwd=REPO_ROOT,
        env=child_env(db_path.parent),
        capture_output=True,
        text=True,
        timeout=60,
    )


def make_pool(db_path: Path) -> None:
    store = Store(db_path)
    texts = synthetic_texts(random.Random(11), 120, 0)
    store.add_items([IncomingItem(n, text, {}) for n, text in enumerate(texts)], source="t")
    store.close()


def lease_of(db_path: Path) -> tuple[object, ...] | None:
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        row = conn.execute("SELECT holder, pid, state FROM scorer_lease").fetchone()
        return None if row is None else tuple(row)
    finally:
        conn.close()


def batches(db_path: Path) -> int:
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM batches").fetchone()[0])
    finally:
        conn.close()


def start_watching(db_path: Path) -> subprocess.Popen[str]:
    watching = scorer(db_path, "--watch")
    wait_for(
        lambda: (lease_of(db_path), batches(db_path)),
        lambda s: s[0] is not None and s[1] >= 1,
        timeout=60,
        what="the watching scorer's first batch",
    )
    return watching


def stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.kill()
    out, _ = process.communicate(timeout=30)
    return out


def test_a_second_scorer_names_the_holder_and_sigterm_frees_the_lease(
    db_path: Path, ledger
) -> None:  # type: ignore[no-untyped-def]
    make_pool(db_path)
    watching = start_watching(db_path)
    try:
        lease = lease_of(db_path)
        assert lease is not None and lease[1] == watching.pid
        second = score_once(db_path)
        assert second.returncode == 1
        assert (
            f"hnbooks-score --watch (pid {watching.pid}" in second.stderr
            and "is scoring this database" in second.stderr
        )
        assert batches(db_path) == 1, "the refused scorer published"
        ledger.add("second scorers refused, naming the holder")
        watching.send_signal(signal.SIGTERM)
        out, _ = watching.communicate(timeout=20)
        assert watching.returncode == 0, out
        assert "stopped" in out and "Traceback" not in out, out
        assert lease_of(db_path) is None
        ledger.add("watching scorers stopped by SIGTERM with the lease freed")
    finally:
        stop(watching)


def test_a_waiting_scorer_runs_once_the_holder_stops(db_path: Path, ledger) -> None:  # type: ignore[no-untyped-def]
    make_pool(db_path)
    watching = start_watching(db_path)
    log = db_path.parent / "waiting.log"
    with log.open("w") as output:
        waiting = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.reliability.score_child",
                "--db",
                str(db_path),
                "--wait",
                "60",
            ],
            cwd=REPO_ROOT,
            env=child_env(db_path.parent),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            log.read_text,
            lambda text: "waiting for hnbooks-score --watch" in text,
            timeout=60,
            what="the second scorer to wait",
        )
        assert batches(db_path) == 1
        watching.send_signal(signal.SIGTERM)
        assert waiting.wait(timeout=60) == 0, log.read_text()
        assert batches(db_path) == 2
        ledger.add("waiting scorers that ran after the holder stopped")
    finally:
        stop(watching)
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()


def test_a_killed_holder_or_an_expired_lease_is_taken_over(db_path: Path, ledger) -> None:  # type: ignore[no-untyped-def]
    make_pool(db_path)
    watching = start_watching(db_path)
    watching.send_signal(signal.SIGKILL)
    watching.wait(timeout=10)
    assert lease_of(db_path) is not None, "a kill -9 leaves the lease row behind"
    after_kill = score_once(db_path)
    assert after_kill.returncode == 0, after_kill.stderr
    assert batches(db_path) == 2
    ledger.add("leases of killed scorers taken over")

    conn = sqlite3.connect(db_path, timeout=30)
    now = time.time()
    for expires_at, expected in ((now + 600, 1), (now - 1, 0)):
        with conn:
            conn.execute("DELETE FROM scorer_lease")
            conn.execute(
                "INSERT INTO scorer_lease (id, holder, host, pid, mode, acquired_at, heartbeat_at, expires_at)"
                " VALUES (1, 'elsewhere:1:x', 'elsewhere', 1, 'watch', ?, ?, ?)",
                (now - 60, now - 60, expires_at),
            )
        result = score_once(db_path)
        assert result.returncode == expected, result.stderr
        if expected:
            assert "(pid 1 on elsewhere)" in result.stderr
    conn.close()
    ledger.add("expired leases taken over, live ones of another host respected")
