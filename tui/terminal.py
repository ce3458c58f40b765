"""The terminal under `hnbooks-tui`: whether there is one, whether it is still there, and a Textual
driver that survives losing it.

When the terminal goes away (an SSH connection dropped, the window closed) with SIGHUP ignored
(nohup, or a process not in the terminal's foreground group), reads from it return end-of-file and
writes fail: Textual's input thread then spins and its output thread dies, after which the app
blocks once the output queue fills. `TerminalDriver` swallows the failed writes so the app can
still quit in order; the app polls `terminal_is_gone` and quits when it says so.
"""

from __future__ import annotations

import os
import select
import sys
import termios
from typing import IO, Any

from textual.drivers.linux_driver import LinuxDriver


def missing_terminal() -> str | None:
    """Which of stdin, stdout and stderr is not a terminal (Textual reads keys from stdin and
    draws on stderr), or None when all three are."""
    for name, stream in (("stdin", sys.stdin), ("stdout", sys.stdout), ("stderr", sys.stderr)):
        try:
            if stream is None or not os.isatty(stream.fileno()):
                return name
        except (OSError, ValueError):
            return name
    return None


def terminal_is_gone(fd: int) -> bool:
    """Whether the terminal on `fd` hung up: a hung-up terminal fails every ioctl and polls as
    POLLHUP (a live one in the background still answers tcgetattr)."""
    try:
        termios.tcgetattr(fd)
    except (termios.error, OSError):
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return any(
        events & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, events in poller.poll(0)
    )


class GuardedOutput:
    """The terminal's output stream, made to drop what it cannot write instead of raising (which
    would end Textual's output thread and, once its queue filled, block the app)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.failed = False
        """A write or flush failed: the terminal is most likely gone."""

    def write(self, text: str) -> int:
        if self.failed:
            return len(text)
        try:
            return self.stream.write(text)
        except (OSError, ValueError):
            self.failed = True
            return len(text)

    def flush(self) -> None:
        if self.failed:
            return
        try:
            self.stream.flush()
        except (OSError, ValueError):
            self.failed = True

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        return True


class TerminalDriver(LinuxDriver):
    """Textual's Linux driver with its output guarded (`GuardedOutput`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.output = GuardedOutput(self._file)
        self._file = self.output
