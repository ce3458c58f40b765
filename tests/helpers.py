"""Small builders shared by tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hnbooks.importing import import_file
from hnbooks.store.db import Store
from hnbooks.store.records import BatchEntry


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    return path


def store_with_texts(db_path: Path, texts: list[str]) -> tuple[Store, list[int]]:
    """A store holding `texts` (in order); returns it and their item ids."""
    store = Store(db_path)
    source = write_jsonl(
        db_path.parent / "texts.jsonl", [{"text": t, "meta": {"n": n}} for n, t in enumerate(texts)]
    )
    import_file(store, source, fmt="jsonl")
    ids = [item_id for item_id, _ in store.iter_item_texts()]
    return store, ids


def publish(store: Store, item_ids: list[int], strategy: str = "top") -> int:
    entries = [
        BatchEntry(item_id, strategy, 1.0 - n / 100, n) for n, item_id in enumerate(item_ids)
    ]
    return store.publish_batch(entries, source="test")


def table_counts(db_path: Path) -> dict[str, int]:
    import sqlite3

    conn = sqlite3.connect(db_path)
    try:
        return {
            table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("items", "answers", "batches", "batch_items", "rounds")
        }
    finally:
        conn.close()


def kill_writer(script: str, args: list[str], lines_before_kill: int) -> int:
    """Run the Python `script` with `args`, SIGKILL it once it has printed `lines_before_kill`
    lines (one per finished chunk; by then it is inside the next write), or let it kill itself;
    the lines it printed."""
    import os
    import signal
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    reported = 0
    for _line in process.stdout:
        reported += 1
        if reported >= lines_before_kill:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    return reported
