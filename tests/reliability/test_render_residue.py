"""Zero-width characters where the terminal has no base to put them on: an item starting with a
combining mark (U+0301), one of zero-width characters only. A terminal puts a combining mark on the
cell before it; drawn at the start of a line that cell is the padding beside the text, which Textual
never redraws, so the mark stayed there over every later item and the empty-queue screen. The real
`hnbooks-tui` in a pty: every zero-width character it sends follows a visible base it drew itself."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pexpect
import pytest

from tests.helpers import publish, store_with_texts
from tests.reliability.processes import spawn_tui

TEXTS = [
    "\u0301accent first, then the words",
    "\u200b\u200b",
    "\u200d",
    "a plain comment after them",
]
ZERO_WIDTH = "\u0301\u200b\u200d"
# Colours and attributes (SGR) leave the cursor where it is: dropped. Every other escape sequence
# (a cursor move above all) may leave it anywhere: each becomes one NUL, which is no base.
SGR = re.compile(r"\x1b\[[0-9;:]*m")
ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def unbased_zero_widths(output: str) -> list[str]:
    """The zero-width characters sent with no visible character of their own cell before them."""
    flat = ESCAPES.sub("\x00", SGR.sub("", output))
    found = []
    for n, char in enumerate(flat):
        if char not in ZERO_WIDTH:
            continue
        before = n - 1
        while before >= 0 and flat[before] in ZERO_WIDTH:
            before -= 1
        if before < 0 or flat[before] in " \x00\r\n":
            found.append(repr(flat[max(0, n - 12) : n + 3]))
    return found


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")
def test_zero_width_characters_never_land_on_the_padding(tmp_path: Path) -> None:
    db_path = tmp_path / "residue.db"
    store, ids = store_with_texts(db_path, TEXTS)
    publish(store, ids)
    store.close()
    child = spawn_tui(db_path, "ann")
    received = bytearray()

    class Sink:
        def write(self, data: bytes) -> None:
            received.extend(data)

        def flush(self) -> None:
            pass

    child.logfile_read = Sink()
    try:
        child.expect_exact(b"accent first")
        child.send("x")
        child.expect_exact(b"zero-width")  # a visible placeholder for a text showing nothing
        child.send("x")
        child.expect_exact(b"zero-width")
        child.send("x")
        child.expect_exact(b"plain comment")
        child.send("x")
        child.expect_exact(b"Nothing left to annotate")
        child.send("q")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    output = received.decode("utf-8", errors="replace")
    assert "\u0301" in output, "the combining mark is not shown at all"
    assert unbased_zero_widths(output) == []
