"""The scorer as seen from the TUI: the `hnbooks-score --watch` child a session may start, and what the
header says about whichever scorer holds the database. No Textual.

The child is started from a command line (a string for `python -c`), never imported: the TUI loads
no model code. It runs in its own process group with its output appended to a log beside the
database; stopping it sends SIGTERM to the group, waits, then SIGKILLs whatever is left. On Linux it
is also told to take SIGTERM when the TUI dies, so a TUI killed with -9 leaves no scorer behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from hnbooks.store.scorer import ScorerLease

STOP_TIMEOUT_S = 5.0
"""How long a scorer gets to stop after SIGTERM before it is killed."""

ChildState = Literal["none", "running", "exited", "failed"]
"""No child started by this session / running / exited on its own or stopped / could not start."""


def scorer_command(db_path: str | os.PathLike[str]) -> list[str]:
    """`hnbooks-score --watch --db DB` run by this interpreter, named as a string (never imported)."""
    return [
        sys.executable,
        "-c",
        "from hnbooks.scoring.cli import main; main()",
        "--watch",
        "--db",
        str(db_path),
    ]


def scorer_log_path(db_path: str | os.PathLike[str]) -> Path:
    """Where the child's output goes: `<db>.scorer.log`, beside the database."""
    return Path(f"{os.fspath(db_path)}.scorer.log")


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` asking Linux to send the child SIGTERM when its parent dies (None elsewhere).

    The death signal follows the thread that forked, so the child must be started from a thread
    that lives as long as the TUI (its main thread)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    parent = os.getpid()

    def set_death_signal() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return set_death_signal


class ScorerProcess:
    """One child process started from `command`, stopped for good by `stop`."""

    def __init__(
        self,
        command: Sequence[str],
        log_path: Path,
        *,
        stop_timeout_s: float = STOP_TIMEOUT_S,
    ) -> None:
        self.command = list(command)
        self.log_path = log_path
        self.stop_timeout_s = stop_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.start_error: str | None = None
        """Why the child could not be started, when it could not."""
        self.stopped = False
        """`stop` was called: the child is not to be started (again)."""

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def state(self) -> ChildState:
        if self.start_error is not None:
            return "failed"
        if self.process is None:
            return "none"
        return "running" if self.process.poll() is None else "exited"

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def start(self) -> bool:
        """Start the child (once); False when it could not be (the reason is in `start_error`)."""
        if self.process is not None or self.stopped:
            return False
        log: IO[bytes] | None = None
        try:
            log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"--- {stamp} started by hnbooks-tui (pid {os.getpid()})\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),
                close_fds=True,
            )
        except OSError as error:
            self.start_error = f"{type(error).__name__}: {error}"
            return False
        finally:
            if log is not None:
                log.close()
        return True

    def terminate(self) -> None:
        """Ask the child's process group to stop (SIGTERM); returns at once."""
        self._signal_group(signal.SIGTERM)

    def stop(self, timeout_s: float | None = None) -> int | None:
        """Stop the child and everything in its process group: SIGTERM, up to `timeout_s` (default
        `stop_timeout_s`) to exit, then SIGKILL. Idempotent; returns the child's exit status."""
        self.stopped = True
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                process.wait(self.stop_timeout_s if timeout_s is None else timeout_s)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                process.wait()
        # Anything the scorer started and left in its group goes with it.
        self._signal_group(signal.SIGKILL)
        return process.returncode

    def _signal_group(self, signum: int) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


@dataclass(frozen=True)
class ScorerStatus:
    """What the header says about the scorer: the lease in the database and this session's child."""

    lease: ScorerLease | None = None
    child: ChildState = "none"
    log_name: str | None = None
    """The child's log file name (shown when it stopped)."""
    error: str | None = None
    """Why the lease could not be read, or the child not started."""

    @property
    def alive(self) -> bool:
        """A scorer holds the database now (its lease is current and its process not seen gone)."""
        lease = self.lease
        return lease is not None and lease.held

    @property
    def preparing(self) -> bool:
        """A scorer runs or is starting: the next batch is on its way without the user's help."""
        return self.alive or self.child == "running"

    def describe(self, now: float) -> str:
        """'scorer: embedding 34%', 'scorer: idle · last round 12 s ago · next after 7 answers'…"""
        lease = self.lease
        if lease is not None and self.alive:
            text = f"scorer: {lease.state}"
            if lease.state == "embedding" and lease.progress is not None:
                text += f" {100 * lease.progress:.0f}%"
            elif lease.state == "backing-off" and lease.detail:
                text += f" ({lease.detail})"
            if lease.last_round_at is not None:
                text += f" · last round {ago(now - lease.last_round_at)} ago"
            if lease.state == "idle" and lease.answers_before_next_round is not None:
                count = lease.answers_before_next_round
                text += f" · next after {count} answer{'' if count == 1 else 's'}"
            return text
        if self.child == "running":
            return "scorer: starting"
        if self.child == "exited":
            return f"scorer: stopped (see {self.log_name or 'its log'})"
        if self.child == "failed":
            return f"scorer: could not start ({self.error})"
        if self.error is not None:
            return f"scorer: unknown ({self.error})"
        return "scorer: none (run hnbooks-score --watch)"


def ago(seconds: float) -> str:
    """12 → '12 s', 150 → '2 min', 7200 → '2 h'."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"
