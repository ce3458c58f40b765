"""`ScorerProcess` with real child processes (small Python one-liners standing in for the scorer), and
what the header says about the scorer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hnbooks.store.scorer import LeaseHolder, ScorerLease
from hnbooks.tui.scorer_process import (
    ScorerProcess,
    ScorerStatus,
    ago,
    scorer_command,
    scorer_log_path,
)

SLEEPER = [sys.executable, "-c", "import time; print('working', flush=True); time.sleep(60)"]
STUBBORN = [
    sys.executable,
    "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    " print('ignoring SIGTERM', flush=True); time.sleep(60)",
]


def gone(pid: int) -> bool:
    """No such process, or only its zombie (a container's init may be slow to reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "State:\tZ" in status


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.02)
    return gone(pid)


def wait_for_text(path: Path, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(encoding="utf-8", errors="replace"):
            return
        time.sleep(0.02)
    raise AssertionError(f"{text!r} never appeared in {path}")


def test_the_command_runs_the_scorer_by_name_and_logs_beside_the_database(tmp_path: Path) -> None:
    db = tmp_path / "books.db"
    command = scorer_command(db)
    assert command[:2] == [sys.executable, "-c"]
    assert "hnbooks.scoring.cli" in command[2]
    assert command[3:] == ["--watch", "--db", str(db)]
    assert scorer_log_path(db) == tmp_path / "books.db.scorer.log"


def test_a_started_child_runs_in_its_own_group_logs_and_is_gone_after_stop(
    tmp_path: Path,
) -> None:
    log = tmp_path / "db.scorer.log"
    log.write_text("earlier run\n")
    child = ScorerProcess(SLEEPER, log)
    assert child.state == "none"
    assert child.start()
    assert not child.start(), "started twice"
    pid = child.pid
    assert pid is not None and child.state == "running"
    assert os.getpgid(pid) == pid != os.getpgid(0)
    wait_for_text(log, "working")
    started = time.monotonic()
    child.stop()
    assert time.monotonic() - started < 3, "a child that obeys SIGTERM is not waited for"
    assert child.state == "exited" and child.returncode == -signal.SIGTERM
    assert wait_gone(pid)
    text = log.read_text()
    assert text.startswith("earlier run\n") and "started by hnbooks-tui" in text
    child.stop()  # idempotent
    assert not child.start(), "a stopped child is not started again"


def test_a_child_ignoring_sigterm_is_killed_after_the_timeout(tmp_path: Path) -> None:
    log = tmp_path / "db.scorer.log"
    child = ScorerProcess(STUBBORN, log, stop_timeout_s=0.5)
    child.start()
    wait_for_text(log, "ignoring SIGTERM")
    pid = child.pid
    assert pid is not None
    started = time.monotonic()
    child.stop()
    assert 0.4 < time.monotonic() - started < 5
    assert child.returncode == -signal.SIGKILL
    assert wait_gone(pid)


def test_a_child_that_cannot_start_says_why(tmp_path: Path) -> None:
    child = ScorerProcess(SLEEPER, tmp_path / "no" / "such" / "dir" / "x.log")
    assert not child.start()
    assert child.state == "failed" and child.start_error is not None
    assert "could not start" in ScorerStatus(child="failed", error=child.start_error).describe(0)
    child.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the death signal is Linux's")
def test_the_child_goes_when_its_parent_is_killed(tmp_path: Path) -> None:
    """A TUI killed with -9 runs no `finally`: the child is told by the kernel instead."""
    log = tmp_path / "db.scorer.log"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, signal, sys, time\n"
            "from pathlib import Path\n"
            "from hnbooks.tui.scorer_process import ScorerProcess\n"
            f"child = ScorerProcess({SLEEPER!r}, Path({str(log)!r}))\n"
            "child.start()\n"
            "print(child.pid, flush=True)\n"
            "time.sleep(0.5)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    assert parent.wait(timeout=30) == -signal.SIGKILL
    assert wait_gone(pid), "the scorer outlived the TUI that started it"


def lease(state: str, now: float, **fields: object) -> ScorerLease:
    values: dict[str, object] = {
        "holder": LeaseHolder("h", "elsewhere", 1, "watch"),
        "acquired_at": now - 100,
        "heartbeat_at": now,
        "expires_at": now + 30,
        "state": state,
        "progress": None,
        "detail": None,
        "last_round_at": None,
        "answers_before_next_round": None,
        "read_at": now,
    }
    values.update(fields)
    return ScorerLease(**values)  # type: ignore[arg-type]


def test_the_header_names_what_the_scorer_does() -> None:
    now = 1_000_000.0
    say = ScorerStatus
    assert say().describe(now) == "scorer: none (run hnbooks-score --watch)"
    assert say(lease("embedding", now, progress=0.341)).describe(now) == "scorer: embedding 34%"
    idle = lease("idle", now, last_round_at=now - 12, answers_before_next_round=7)
    assert say(idle).describe(now) == "scorer: idle · last round 12 s ago · next after 7 answers"
    waiting = lease("backing-off", now, detail="retry in 8 s")
    assert say(waiting).describe(now) == "scorer: backing-off (retry in 8 s)"
    assert say(child="running").describe(now) == "scorer: starting"
    stopped = say(child="exited", log_name="books.db.scorer.log")
    assert stopped.describe(now) == "scorer: stopped (see books.db.scorer.log)"
    assert not stopped.preparing and say(child="running").preparing
    # An expired lease is no scorer: the child's state (or none) is shown instead.
    expired = lease("idle", now, expires_at=now - 1)
    assert (
        say(expired, child="exited", log_name="x.log").describe(now).startswith("scorer: stopped")
    )
    assert not say(expired).alive
    assert say(lease("training", now)).preparing


def test_ago_reads_as_seconds_minutes_hours() -> None:
    assert [ago(s) for s in (0, 12, 150, 7200, -3)] == ["0 s", "12 s", "2 min", "2 h", "0 s"]
