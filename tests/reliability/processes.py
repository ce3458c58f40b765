"""Real processes for the reliability suite: the console scripts in a pty or as subprocesses, and
polling a database file from outside with a deadline."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pexpect

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ENTRY_POINTS = {
    "hnbooks": "hnbooks.cli",
    "hnbooks-tui": "hnbooks.tui.cli",
    "hnbooks-score": "hnbooks.scoring.cli",
}
T = TypeVar("T")


def command(name: str) -> list[str]:
    """The installed console script `name`, or the same entry point run by this interpreter."""
    script = BIN / name
    if script.exists():
        return [str(script)]
    found = shutil.which(name)
    if found:
        return [found]
    return [sys.executable, "-c", f"from {ENTRY_POINTS[name]} import main; main()"]


def child_env(home: Path, **extra: str) -> dict[str, str]:
    """A small, offline environment for a child: no HNBOOKS_DB leaking in from the caller."""
    env = {
        "PATH": f"{BIN}{os.pathsep}/usr/bin:/bin",
        "HOME": str(home),
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONPATH": str(REPO_ROOT),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update(extra)
    return env


def as_from_a_terminal() -> None:
    """Signals as a terminal's shell leaves them for a program it starts: at their defaults. A test
    run started under `nohup` or with `&` ignores SIGHUP (and SIGINT, SIGQUIT), and an ignored
    signal stays ignored across exec, so the TUI would rightly keep ignoring them."""
    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_DFL)


def spawn_tui(db_path: Path, annotator: str, *, timeout: float = 20) -> pexpect.spawn:
    """The real `hnbooks-tui` in an 80x24 pseudo-terminal, started as from a terminal's shell;
    output kept as bytes."""
    program, *args = command("hnbooks-tui")
    return pexpect.spawn(
        program,
        # No scorer child: these tests run their own scorer when they want one.
        [*args, "--db", str(db_path), "--annotator", annotator, "--no-scorer"],
        env=child_env(db_path.parent),
        dimensions=(24, 80),
        timeout=timeout,
        cwd=str(db_path.parent),
        preexec_fn=as_from_a_terminal,
    )


def sigkill(child: pexpect.spawn) -> None:
    """kill -9 the child and reap it."""
    if child.isalive():
        os.kill(child.pid, signal.SIGKILL)
    child.close(force=True)


def run_cli(
    name: str, *args: str, cwd: Path, timeout: float = 60, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run a console script to the end; text output captured."""
    env = kwargs.pop("env", None) or child_env(cwd)
    return subprocess.run(
        [*command(name), *args],
        cwd=str(cwd),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def wait_for(read: Callable[[], T], done: Callable[[T], bool], *, timeout: float, what: str) -> T:
    """Poll `read()` until `done(value)`; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what}; last value {value!r}"
            )
        time.sleep(0.002)


def read_rows(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """One query on a fresh connection (as another program would read the file)."""
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        return [tuple(row) for row in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()


def table_dump(db_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every hnbooks table, in rowid order: to compare a database before and after."""
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'items_fts%'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return {
            table: [tuple(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")]
            for table in tables
        }
    finally:
        conn.close()
