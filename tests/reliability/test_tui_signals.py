"""The real `hnbooks-tui` and the signals and terminals it meets: SIGTERM and SIGHUP (a `kill`, tmux
closing the window) quit it cleanly, giving the terminal back; Ctrl+Z suspends it under a job-control
shell and `fg` brings it back; with no terminal it refuses to start, and when its terminal goes away
under it (the pty closed, SIGHUP ignored as under nohup) it exits instead of spinning."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest

from tests.helpers import publish, store_with_texts
from tests.reliability.processes import child_env, command, read_rows, spawn_tui, wait_for

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")

ALT_SCREEN_ON = b"\x1b[?1049h"
ALT_SCREEN_OFF = b"\x1b[?1049l"
# The mouse modes Textual turns on, each turned off again by its `l` form.
MOUSE_OFF = [b"\x1b[?1000l", b"\x1b[?1003l", b"\x1b[?1015l", b"\x1b[?1006l"]


def token(n: int) -> str:
    return f"q{n:03d}q"


def database(tmp_path: Path, count: int = 12) -> tuple[Path, list[int]]:
    db_path = tmp_path / "signals.db"
    store, ids = store_with_texts(
        db_path, [f"comment {token(n)} on compilers, nothing more" for n in range(count)]
    )
    publish(store, ids)
    store.close()
    return db_path, ids


def answers(db_path: Path) -> list[tuple[int, str]]:
    return [
        (int(i), str(a))
        for i, a in read_rows(db_path, "SELECT item_id, answer FROM answers ORDER BY id")
    ]


class Received:
    """A pexpect log sink keeping every byte the terminal received."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data.extend(data)

    def flush(self) -> None:
        pass


def answer_three(child: pexpect.spawn, db_path: Path) -> None:
    child.expect_exact(token(0).encode())
    for n in range(3):
        child.send("a")
        child.expect_exact(token(n + 1).encode())
    wait_for(lambda: len(answers(db_path)), lambda n: n == 3, timeout=10, what="three answers")


def assert_terminal_given_back(output: bytes) -> None:
    """After the last time the alternate screen was entered, it is left and every mouse mode is off."""
    tail = output[output.rindex(ALT_SCREEN_ON) :]
    assert ALT_SCREEN_OFF in tail, "the alternate screen was never left"
    missing = [mode for mode in MOUSE_OFF if mode not in tail]
    assert missing == [], f"mouse tracking left on: {missing}"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_give_the_terminal_back_and_keep_every_answer(
    tmp_path: Path, signum: signal.Signals
) -> None:
    db_path, ids = database(tmp_path)
    child = spawn_tui(db_path, "ann")
    received = Received()
    child.logfile_read = received
    try:
        answer_three(child, db_path)
        child.kill(signum)
        # Generous: on a loaded machine the exit (commit, release claims, restore the terminal)
        # has taken over 10 s; the test is about how it ends, not how fast.
        child.expect(pexpect.EOF, timeout=45)
        child.wait()
    finally:
        child.close(force=True)
    assert child.signalstatus is None, f"killed by signal {child.signalstatus}, not an exit"
    assert child.exitstatus == 0
    assert_terminal_given_back(bytes(received.data))
    assert answers(db_path) == [(item_id, "accept") for item_id in ids[:3]]
    assert read_rows(db_path, "SELECT COUNT(*) FROM claims") == [(0,)], "claims left behind"


def process_state(pid: int) -> str:
    """The one-letter state of `pid` in /proc (T: stopped)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0]


def tui_pid(shell_pid: int) -> int:
    """The hnbooks-tui process the shell started (its only child)."""
    children = Path(f"/proc/{shell_pid}/task/{shell_pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_ctrl_z_suspends_under_a_shell_and_fg_resumes(tmp_path: Path) -> None:
    db_path, ids = database(tmp_path)
    program, *args = command("hnbooks-tui")
    line = " ".join(
        f"'{part}'"
        for part in [program, *args, "--db", str(db_path), "--annotator", "ann", "--no-scorer"]
    )
    env = child_env(tmp_path, PS1="$ ")
    shell = pexpect.spawn(
        "bash",
        ["--norc", "--noprofile", "-i"],
        env=env,
        dimensions=(24, 80),
        timeout=20,
        cwd=str(tmp_path),
    )
    received = Received()
    shell.logfile_read = received
    try:
        shell.expect_exact("$ ")
        shell.sendline(line)
        shell.expect_exact(token(0).encode())
        pid = tui_pid(shell.pid)
        shell.send("a")
        shell.expect_exact(token(1).encode())
        suspended_at = len(received.data)
        shell.send("\x1a")  # ctrl+z
        shell.expect("Stopped")
        assert process_state(pid) == "T"
        assert_terminal_given_back(bytes(received.data[:]))
        assert ALT_SCREEN_OFF in received.data[suspended_at:]
        shell.sendline("fg")
        shell.expect_exact(token(1).encode())
        assert ALT_SCREEN_ON in received.data[suspended_at:]
        shell.send("a")
        shell.expect_exact(token(2).encode())
        shell.send("q")
        shell.expect_exact("$ ")
        shell.sendline("echo tui-exit-$?")  # $? after `fg` is the resumed job's exit status
        shell.expect_exact("tui-exit-0")
        shell.sendline("exit")
        shell.expect(pexpect.EOF)
    finally:
        shell.close(force=True)
    assert answers(db_path) == [(ids[0], "accept"), (ids[1], "accept")]


def test_without_a_terminal_it_refuses_in_one_line(tmp_path: Path) -> None:
    db_path, _ = database(tmp_path)
    args = [*command("hnbooks-tui"), "--db", str(db_path), "--annotator", "ann", "--no-scorer"]
    out = tmp_path / "out.txt"
    primary, secondary = pty.openpty()
    try:
        for stdin, stdout in (
            (subprocess.DEVNULL, secondary),  # stdin from /dev/null
            (secondary, None),  # stdout to a file
            (subprocess.DEVNULL, None),  # neither
        ):
            with out.open("w") as out_file:
                result = subprocess.run(
                    args,
                    stdin=stdin,
                    stdout=out_file if stdout is None else stdout,
                    stderr=subprocess.PIPE,
                    env=child_env(tmp_path),
                    cwd=str(tmp_path),
                    timeout=30,
                    text=True,
                )
            assert result.returncode == 1
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and "hnbooks-tui needs a terminal" in lines[0], result.stderr
            assert "\x1b[" not in out.read_text(), "it drew on a file"
    finally:
        os.close(primary)
        os.close(secondary)
    assert answers(db_path) == []


def test_a_terminal_closed_under_it_makes_it_exit_not_spin(tmp_path: Path) -> None:
    db_path, ids = database(tmp_path)
    program, *args = command("hnbooks-tui")
    child = pexpect.spawn(
        program,
        [*args, "--db", str(db_path), "--annotator", "ann", "--no-scorer"],
        env=child_env(tmp_path),
        dimensions=(24, 80),
        timeout=20,
        cwd=str(tmp_path),
        ignore_sighup=True,  # as under nohup: only the dead terminal can tell it to go
    )
    try:
        answer_three(child, db_path)
        os.close(child.child_fd)  # the terminal window closes
        child.closed = True
        deadline = time.monotonic() + 8
        while child.isalive() and time.monotonic() < deadline:
            time.sleep(0.05)
        alive = child.isalive()
    finally:
        if child.isalive():
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
    assert not alive, "still running 8 s after its terminal went away"
    assert answers(db_path) == [(item_id, "accept") for item_id in ids[:3]]
    assert read_rows(db_path, "SELECT COUNT(*) FROM claims") == [(0,)], "claims left behind"
