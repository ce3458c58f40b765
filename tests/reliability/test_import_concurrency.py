"""A long import beside annotators: it commits in chunks, so an answer waits for one chunk at most,
and it shows nothing until the whole file is in, so a killed import leaves nothing visible.

The import runs as a real subprocess (`import_file`, what `hnbooks import` calls, with a small
chunk so that a file of a few thousand lines makes many chunks); answers are written here through
`Store.record_answer`, as the TUI's writer does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hnbooks.exporting import iter_prodigy_lines
from hnbooks.importing import import_file
from hnbooks.store.db import Store
from hnbooks.store.records import NewAnswer
from tests.reliability.processes import REPO_ROOT, child_env, read_rows, wait_for

ANSWER_WAIT_LIMIT_S = 1.0
IMPORT_CHILD = (
    "import sys\n"
    "from hnbooks.importing import import_file\n"
    "from hnbooks.store.db import Store\n"
    "with Store(sys.argv[1]) as store:\n"
    "    print(import_file(store, sys.argv[2], chunk_records=int(sys.argv[3])).line(), flush=True)\n"
)


def write_hn_comments(path: Path, lines: int) -> Path:
    """HN API comments with the HTML HN writes; every text names the word `zanzibarite`."""
    with path.open("w", encoding="utf-8") as handle:
        for n in range(lines):
            html = (
                f"<p>comment {n} about zanzibarite, it&#x27;s <i>book {n % 97}</i>"
                f' <a href="https://example.com/{n}" rel="nofollow">https://example.com/{n}</a>'
            )
            record = {"by": f"u{n % 50}", "id": 5_000_000 + n, "parent": 1, "text": html}
            handle.write(
                json.dumps({**record, "time": 1_700_000_000 + n, "type": "comment"}) + "\n"
            )
    return path


def start_import(db_path: Path, source: Path, chunk_records: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", IMPORT_CHILD, str(db_path), str(source), str(chunk_records)],
        env=child_env(db_path.parent),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def stored_rows(db_path: Path) -> int:
    """Rows in the items table, staged ones included (what the import has committed so far)."""
    return int(read_rows(db_path, "SELECT COUNT(*) FROM items")[0][0])


@pytest.fixture
def store_with_one_item(db_path: Path, tmp_path: Path) -> Store:
    store = Store(db_path)
    first = tmp_path / "first.jsonl"
    first.write_text(json.dumps({"text": "an item to answer, stored before"}) + "\n")
    import_file(store, first, fmt="jsonl")
    return store


def answer_while_importing(
    store: Store, db_path: Path, source: Path, chunk_records: int
) -> tuple[list[float], list[int], int]:
    """Write an answer each time the import has committed another chunk (so it is asked for while
    the next chunk is being written) until the import ends: (waits of the answers written while
    it had rows staged, visible item counts seen meanwhile, the child's exit status)."""
    (item_id,) = store.item_ids()
    child = start_import(db_path, source, chunk_records)
    waits: list[float] = []
    visible_counts: list[int] = []
    try:
        while child.poll() is None:
            committed = stored_rows(db_path)
            started = time.monotonic()
            store.record_answer(item_id, NewAnswer(annotator="alice", answer="accept"))
            waited = time.monotonic() - started
            if store.imports_in_progress():
                waits.append(waited)
                visible_counts.append(store.item_count())
            wait_for(
                lambda: stored_rows(db_path),
                lambda rows, before=committed: rows > before or child.poll() is not None,
                timeout=60,
                what="the import to commit its next chunk",
            )
    finally:
        if child.poll() is None:
            child.kill()
        _, errors = child.communicate(timeout=60)
    assert child.returncode == 0, errors.decode()
    return waits, visible_counts, child.returncode


def test_answers_are_saved_within_a_second_while_a_large_import_commits_in_chunks(
    store_with_one_item: Store, db_path: Path, tmp_path: Path
) -> None:
    lines = 8000
    source = write_hn_comments(tmp_path / "comments.jsonl", lines)
    waits, visible_counts, _ = answer_while_importing(store_with_one_item, db_path, source, 500)
    # One transaction for the whole file would hold every answer back until it ended.
    assert len(waits) >= 5, f"only {len(waits)} answers got in while the import ran"
    assert max(waits) <= ANSWER_WAIT_LIMIT_S, f"an answer waited {max(waits):.2f} s"
    # Meanwhile the import's rows were committed, yet none was visible.
    assert set(visible_counts) == {1}
    assert store_with_one_item.item_count() == 1 + lines
    assert not store_with_one_item.imports_in_progress()


@pytest.mark.slow
def test_answers_wait_at_most_a_second_beside_a_300k_line_import(
    store_with_one_item: Store, db_path: Path, tmp_path: Path
) -> None:
    lines = 300_000
    source = write_hn_comments(tmp_path / "comments.jsonl", lines)
    waits, _, _ = answer_while_importing(store_with_one_item, db_path, source, 0)
    waits.sort()
    assert waits[int(len(waits) * 0.99)] <= ANSWER_WAIT_LIMIT_S
    assert store_with_one_item.item_count() == 1 + lines


def nothing_of_the_file_is_visible(store: Store, before_ids: list[int]) -> None:
    assert store.item_count() == len(before_ids)
    assert store.item_ids() == before_ids
    assert [item_id for item_id, _ in store.iter_item_texts()] == before_ids
    assert [i for ids, _ in store.iter_item_text_keys() for i in ids] == before_ids
    assert store.max_item_id() == max(before_ids)
    assert store.search("zanzibarite") == []
    assert not any("zanzibarite" in line for line in iter_prodigy_lines(store))
    assert store.stats().items == len(before_ids)


@pytest.mark.parametrize("killed_after_rows", [1, 3000, 7000])
def test_a_killed_import_leaves_nothing_visible_and_a_rerun_imports_the_whole_file(
    store_with_one_item: Store, db_path: Path, tmp_path: Path, killed_after_rows: int
) -> None:
    lines = 8000
    store = store_with_one_item
    source = write_hn_comments(tmp_path / "comments.jsonl", lines)
    before_ids = store.item_ids()
    before_answers = iter_prodigy_lines(store)
    child = start_import(db_path, source, 500)
    try:
        wait_for(
            lambda: stored_rows(db_path),
            lambda rows: rows > killed_after_rows or child.poll() is not None,
            timeout=60,
            what=f"the import to commit {killed_after_rows} rows",
        )
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, "the import ended before it was killed"
    assert stored_rows(db_path) > len(before_ids), "nothing was staged before the kill"
    nothing_of_the_file_is_visible(store, before_ids)
    assert list(iter_prodigy_lines(store)) == list(before_answers)

    summary = import_file(store, source)
    assert summary.new_items == lines
    assert store.item_count() == len(before_ids) + lines
    # The killed import's rows are gone, not merged into: each text is stored once.
    assert stored_rows(db_path) == len(before_ids) + lines
    assert not store.imports_in_progress()
    assert len(store.search("zanzibarite", limit=lines + 1)) == lines
