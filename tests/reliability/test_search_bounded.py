"""A regular-expression search that backtracks (`(\\w+\\s?)*!` over comments without a `!`) never
freezes `hnbooks-tui`: the screen stays live while it runs, Escape and q work at once, and the search
is bounded in time (`Store.search(timeout_s=...)`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pexpect
import pytest

from hnbooks.store.items import SearchStopped
from tests.helpers import publish, store_with_texts
from tests.reliability.processes import sigkill, spawn_tui

BACKTRACKING = r"(\w+\s?)*!"
# Python's `re` takes exponential time in the words before the missing "!".
TEXTS = [f"comment q{n:03d}q " + "word " * 28 + "and no exclamation mark" for n in range(30)]


def database(tmp_path: Path) -> Path:
    db_path = tmp_path / "search.db"
    store, ids = store_with_texts(db_path, TEXTS)
    publish(store, ids)
    store.close()
    return db_path


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")
def test_a_backtracking_regex_search_neither_freezes_the_tui_nor_keeps_it_from_quitting(
    tmp_path: Path,
) -> None:
    db_path = database(tmp_path)
    child = spawn_tui(db_path, "ann", timeout=10)
    try:
        child.expect_exact(b"q000q")
        child.send("/")
        child.expect_exact(b"New query")
        child.send("\x14")  # ctrl+t: regex
        child.expect_exact(b"regex")
        child.send(BACKTRACKING)
        child.expect_exact(b"!")
        child.send("\r")
        child.expect_exact(b"hits for")  # answered (no hit), or stopped: either way, at once
        child.send("x(")
        child.send("\r")
        child.expect_exact(b"invalid regular expression")
        child.send("\x1b")
        child.expect_exact(b"q000q")
        started = time.monotonic()
        child.send("q")
        child.expect(pexpect.EOF)
        assert time.monotonic() - started < 5
    finally:
        sigkill(child)


def test_a_regex_search_stops_when_its_time_is_up_or_it_is_cancelled(tmp_path: Path) -> None:
    store, _ = store_with_texts(tmp_path / "bounded.db", TEXTS)
    try:
        started = time.monotonic()
        assert store.search(BACKTRACKING, mode="regex", timeout_s=5) == []
        assert time.monotonic() - started < 2
        with pytest.raises(SearchStopped, match="search stopped after 0 s: the pattern backtracks"):
            store.search("q0", mode="regex", timeout_s=0)
        with pytest.raises(SearchStopped, match="cancelled"):
            store.search("q0", mode="regex", cancelled=lambda: True)
        assert len(store.search("q00", mode="regex", timeout_s=5)) == 10
    finally:
        store.close()
