"""The scorer as a child process: the real `hnbooks-score` command with the fake encoder, run to the
end or killed at a chosen phase, with a reader watching the file for partial batches meanwhile."""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.reliability.processes import REPO_ROOT, child_env, read_rows

WORDS = (
    "compiler kernel weather garden coffee bicycle server latency database python rust music "
    "camera winter harbor market engine editor theory museum ocean"
).split()
BOOK_WORDS = "book novel author chapter read recommend".split()


def synthetic_texts(rng: random.Random, count: int, start: int) -> list[str]:
    texts = []
    for n in range(start, start + count):
        words = rng.choices(WORDS, k=rng.randint(6, 14))
        if n % 25 == 0:
            words += rng.choices(BOOK_WORDS, k=3)
        texts.append(f"post {n}: " + " ".join(words))
    return texts


class PartialBatchWatcher(threading.Thread):
    """Reads the file while the scorer runs: every batch it sees, with how many items it saw."""

    def __init__(self, db_path: Path) -> None:
        super().__init__(daemon=True)
        self.db_path = db_path
        self.stop = threading.Event()
        self.seen: dict[int, set[int]] = {}
        self.reads = 0

    def run(self) -> None:
        import sqlite3

        conn = sqlite3.connect(self.db_path, timeout=30)
        try:
            while not self.stop.is_set():
                rows = conn.execute(
                    "SELECT b.id, COUNT(bi.item_id) FROM batches b"
                    " LEFT JOIN batch_items bi ON bi.batch_id = b.id GROUP BY b.id"
                ).fetchall()
                for batch_id, count in rows:
                    self.seen.setdefault(batch_id, set()).add(count)
                self.reads += 1
                self.stop.wait(0.001)
        finally:
            conn.close()

    def partial_batches(self) -> dict[int, set[int]]:
        final = dict(
            read_rows(self.db_path, "SELECT batch_id, COUNT(*) FROM batch_items GROUP BY batch_id")
        )
        return {b: counts for b, counts in self.seen.items() if counts != {final.get(b, 0)}}


def run_scorer(
    db_path: Path,
    rng: random.Random,
    kill: tuple[str, str, float] | None = None,
    *,
    batch_size: int = 20,
) -> tuple[int, str]:
    """Run the scorer (killed as `kill` says); return its exit status and its stderr."""
    read_end, write_end = os.pipe()
    # A small first capacity: the cache grows (and can be killed growing) as items are added.
    env = child_env(
        db_path.parent, HNBOOKS_TEST_MARKER_FD=str(write_end), HNBOOKS_TEST_CACHE_CAPACITY="256"
    )
    if kill is not None and kill[0] == "inside":
        env["HNBOOKS_TEST_KILL_AT"] = kill[1]
    log = db_path.parent / "score.log"
    watcher = PartialBatchWatcher(db_path)
    watcher.start()
    with log.open("w") as stderr:
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.reliability.score_child",
                "--db",
                str(db_path),
                "--batch-size",
                str(batch_size),
                "--random-seed",
                str(rng.randrange(1000)),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=stderr,
            stderr=stderr,
            pass_fds=(write_end,),
        )
    os.close(write_end)
    try:
        if kill is not None and kill[0] == "outside":
            wait_for_marker(read_end, kill[1], child)
            time.sleep(rng.uniform(0.0, kill[2]))  # the random moment of the kill
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
        returncode = child.wait(timeout=120)
    finally:
        os.close(read_end)
        if child.poll() is None:
            child.kill()
            child.wait()
        watcher.stop.set()
        watcher.join()
    assert watcher.reads > 0
    assert watcher.partial_batches() == {}, "a reader saw a batch without all its items"
    return returncode, log.read_text(encoding="utf-8", errors="replace")


def wait_for_marker(read_end: int, phase: str, child: subprocess.Popen[bytes]) -> None:
    buffered = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([read_end], [], [], 0.5)
        if ready:
            chunk = os.read(read_end, 4096)
            if not chunk:
                return  # the child ended without reaching the phase
            buffered += chunk
            if any(line.split(b" ")[0] == phase.encode() for line in buffered.split(b"\n")):
                return
        elif child.poll() is not None:
            return
    raise AssertionError(f"the scorer never reached {phase!r}")
