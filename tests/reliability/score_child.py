"""The real `hnbooks-score` command, run with the fake encoder, reporting its phases and killable at
exact points — a child process for the reliability tests.

    python -m tests.reliability.score_child --db X.db [hnbooks-score options]

Environment:
- HNBOOKS_TEST_MARKER_FD: a file descriptor to write one line per phase to ("embed N", "train",
  "publish"), so the parent can kill it at a chosen phase from outside.
- HNBOOKS_TEST_KILL_AT: a point where the process SIGKILLs itself:
  "cache-mark" (vectors of a chunk flushed, the mask not yet marked), "cache-grow" (the vectors file
  grown and renamed, the mask not yet), "publish-insert" (inside the publishing transaction, the batch
  row written, its items being written), "publish-commit" (all written, COMMIT not yet run).
- HNBOOKS_TEST_EMBED_CHUNK: texts per embedding chunk (default 128: several chunks to be killed in).
- HNBOOKS_TEST_CACHE_CAPACITY: rows of a new embedding cache (small: growth happens, and is killed).
"""

from __future__ import annotations

import functools
import os
import signal


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install_markers_and_kill_points() -> None:
    import hnbooks.scoring.embed as embed
    import hnbooks.scoring.head as head
    import hnbooks.scoring.job as job
    from hnbooks.scoring.cache import EmbeddingCache
    from hnbooks.store.db import Store

    marker_fd = int(os.environ.get("HNBOOKS_TEST_MARKER_FD", "-1"))
    kill_at = os.environ.get("HNBOOKS_TEST_KILL_AT", "")

    def mark(phase: str) -> None:
        if marker_fd >= 0:
            os.write(marker_fd, f"{phase}\n".encode())

    if "HNBOOKS_TEST_CACHE_CAPACITY" in os.environ:
        import hnbooks.scoring.cache as cache

        cache.INITIAL_CAPACITY = int(os.environ["HNBOOKS_TEST_CACHE_CAPACITY"])
    chunk = int(os.environ.get("HNBOOKS_TEST_EMBED_CHUNK", "128"))
    embed.embed_missing = functools.partial(embed.embed_missing, chunk=chunk)  # type: ignore[assignment]

    original_write = EmbeddingCache.write
    writes = 0

    def write(self: EmbeddingCache, item_ids: object, vectors: object) -> None:
        nonlocal writes
        mark(f"embed {writes}")
        original_write(self, item_ids, vectors)  # type: ignore[arg-type]
        writes += 1

    EmbeddingCache.write = write  # type: ignore[method-assign]

    if kill_at == "cache-mark":

        def mark_filled(self: EmbeddingCache, filled: object, ids: object) -> None:
            die()

        EmbeddingCache._mark_filled = mark_filled  # type: ignore[method-assign]
    if kill_at == "cache-grow":
        original_grow = EmbeddingCache._grow

        def grow(self: EmbeddingCache, capacity: int) -> None:
            self._grow_mask = lambda new_capacity: die()  # type: ignore[method-assign]
            original_grow(self, capacity)

        EmbeddingCache._grow = grow  # type: ignore[method-assign]

    original_train = head.train_head

    def train_head(*args: object, **kwargs: object) -> object:
        mark("train")
        return original_train(*args, **kwargs)

    head.train_head = train_head  # type: ignore[assignment]
    job.train_head = train_head  # type: ignore[attr-defined]

    original_publish = Store.publish_batch

    def publish_batch(self: Store, *args: object, **kwargs: object) -> int:
        mark("publish")
        if kill_at in ("publish-insert", "publish-commit"):
            seen_items = False

            def trace(statement: str) -> None:
                nonlocal seen_items
                if statement.startswith("INSERT INTO batch_items"):
                    seen_items = True
                    if kill_at == "publish-insert":
                        die()
                if kill_at == "publish-commit" and seen_items and statement.startswith("COMMIT"):
                    die()

            self._conn.set_trace_callback(trace)
        return original_publish(self, *args, **kwargs)  # type: ignore[arg-type]

    Store.publish_batch = publish_batch  # type: ignore[method-assign]


def main() -> None:
    from tests.reliability import fakes

    fakes.install()
    install_markers_and_kill_points()
    from hnbooks.scoring.cli import main as score_main

    score_main(prog_name="hnbooks-score")


if __name__ == "__main__":
    main()
