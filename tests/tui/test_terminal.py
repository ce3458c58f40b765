"""`hnbooks-tui` in a real pseudo-terminal (as under tmux or SSH): keys in, bytes out, answers stored."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pexpect
import pytest

from hnbooks.store.db import Store
from tests.tui.conftest import insert_items, publish

HOSTILE = 'Read "Dune" \x1b]0;owned\x07 and \x1b[2J twice'


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")
def test_the_cli_in_a_pty_answers_quits_and_never_echoes_item_escapes(
    db_path: Path, store: Store
) -> None:
    publish(store, insert_items(store, [HOSTILE, "second comment about compilers"]))
    child = pexpect.spawn(
        sys.executable,
        [
            "-c",
            "from hnbooks.tui.cli import main; main()",
            "--db",
            str(db_path),
            "--annotator",
            "tty",
        ],
        env={"TERM": "xterm-256color", "PATH": "/usr/bin:/bin", "HOME": str(db_path.parent)},
        dimensions=(24, 80),
        timeout=20,
        encoding="utf-8",
        codec_errors="replace",
    )
    received = io.StringIO()
    child.logfile_read = received
    try:
        child.expect("Dune")
        child.send("a")
        child.expect("compilers")
        child.send("q")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    # The item's own OSC (window title) and clear-screen sequences never reach the terminal.
    output = received.getvalue()
    assert "Dune" in output and "␛]0;owned␇" in output
    assert "\x1b]0;owned" not in output
    assert [(a.answer, a.annotator) for a in store.current_answers()] == [("accept", "tty")]
