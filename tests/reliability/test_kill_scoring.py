"""kill -9 while scoring: the real `hnbooks-score` command (fake encoder) killed while embedding,
training and publishing — from outside at a random moment after the phase begins, and from inside at
the exact points where a torn write would hurt (vectors flushed but not marked, the vectors file grown
but not the mask, the batch row written but not its items, everything written but not committed).

After every kill: the batches, their items and the rounds are exactly as before (a reader polling the
file while the scorer runs never sees a batch with some of its items), and a copy of the embedding
cache opens without being rebuilt, every row it marks holding that text's vector. The rerun after the
kills reuses every cached vector, embeds only the rest, and publishes exactly one batch.
"""

from __future__ import annotations

import random
import shutil
import signal
from pathlib import Path

import numpy as np

from hnbooks.importing import import_file
from hnbooks.scoring.cache import EmbeddingCache, cache_paths
from hnbooks.store.db import Store
from hnbooks.store.records import NewAnswer
from hnbooks.store.reports import RoundReport
from tests.helpers import store_with_texts, write_jsonl
from tests.reliability import fakes
from tests.reliability.conftest import LedgerLine
from tests.reliability.processes import read_rows, table_dump
from tests.reliability.scorer import BOOK_WORDS, run_scorer, synthetic_texts

BATCH_SIZE = 20
FIRST_ITEMS = 400
ITEMS_PER_TRIAL = 150
# Where a run is killed, by phase. From outside: (phase marker, longest delay after it). From
# inside: the exact points where a torn write would hurt.
KILL_POINTS = {
    "embedding": [
        ("outside", "embed", 0.3),
        ("inside", "cache-mark", 0.0),
        ("inside", "cache-grow", 0.0),
    ],
    "training": [("outside", "train", 0.15)],
    "publishing": [
        ("outside", "publish", 0.005),
        ("inside", "publish-insert", 0.0),
        ("inside", "publish-commit", 0.0),
    ],
}


def batch_tables(db_path: Path) -> dict[str, list[tuple[object, ...]]]:
    dump = table_dump(db_path)
    return {table: dump[table] for table in ("batches", "batch_items", "rounds")}


def assert_one_more_batch(
    before: dict[str, list[tuple[object, ...]]], after: dict[str, list[tuple[object, ...]]]
) -> None:
    """`after` holds what `before` held plus exactly one whole batch and its round."""
    for table in ("batches", "batch_items", "rounds"):
        assert after[table][: len(before[table])] == before[table], f"{table} rows changed"
    assert len(after["batches"]) == len(before["batches"]) + 1, "exactly one batch must be added"
    assert len(after["rounds"]) == len(before["rounds"]) + 1
    assert len(after["batch_items"]) == len(before["batch_items"]) + BATCH_SIZE


def check_cache_copy(db_path: Path, scratch: Path) -> int:
    """Open a copy of the cache as a rerun would: never rebuilt, every marked row right; return the
    number of vectors it holds."""
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir()
    copy_db = scratch / db_path.name
    for source, target in zip(cache_paths(db_path), cache_paths(copy_db), strict=True):
        if source.exists():
            shutil.copy2(source, target)
    if not cache_paths(copy_db)[2].exists():
        return 0  # killed before the cache was first written
    cache = EmbeddingCache.open(copy_db, fakes.MODEL_HASH, fakes.DIMENSION)
    try:
        assert cache.reset_reason is None, f"the cache was damaged: {cache.reset_reason}"
        filled = cache.filled_ids()
        texts = dict(read_rows(db_path, "SELECT id, text FROM items"))
        assert set(filled.tolist()) <= set(texts), "the cache marks rows of items that do not exist"
        if filled.size:
            expected = fakes.FakeEncoder().embed([texts[int(i)] for i in filled])
            np.testing.assert_allclose(cache.vectors(filled), expected, atol=2e-3)
        return int(filled.size)
    finally:
        cache.close()


def test_kill_9_while_scoring_never_shows_a_partial_batch_nor_damages_the_cache(
    tmp_path: Path, rng: random.Random, slow: bool, ledger: LedgerLine
) -> None:
    db_path = tmp_path / "score.db"
    store, ids = store_with_texts(db_path, synthetic_texts(rng, FIRST_ITEMS, 0))
    texts = store.texts_for(ids)
    for item_id in ids[:60]:
        book = any(word in texts[item_id] for word in BOOK_WORDS)
        store.record_answer(item_id, NewAnswer("ann", "accept" if book else "reject"))
    store.close()

    # Each trial adds texts, kills one run in each phase (in phase order, so each kill finds its
    # phase still to do), then reruns to the end. The long variant kills twice per phase.
    trials, kills_per_phase = (8, 2) if slow else (2, 1)
    added = FIRST_ITEMS
    scratch = tmp_path / "copy"
    for trial in range(trials):
        if trial:
            with Store(db_path) as store:
                source = write_jsonl(
                    tmp_path / f"more{trial}.jsonl",
                    [{"text": t} for t in synthetic_texts(rng, ITEMS_PER_TRIAL, added)],
                )
                import_file(store, source, fmt="jsonl")
            added += ITEMS_PER_TRIAL
        cached = check_cache_copy(db_path, scratch)
        plan = [
            rng.choice(points) for points in KILL_POINTS.values() for _ in range(kills_per_phase)
        ]
        for kill in plan:
            before = batch_tables(db_path)
            returncode, log = run_scorer(db_path, rng, kill, batch_size=BATCH_SIZE)
            assert "Traceback" not in log, log
            if returncode == 0:
                # The run ended before the kill came: it published its one batch.
                ledger.add("runs that finished before their kill")
                assert_one_more_batch(before, batch_tables(db_path))
                cached = check_cache_copy(db_path, scratch)
                continue
            assert returncode == -signal.SIGKILL, log
            ledger.add(f"kills {kill[0]} at {kill[1]}")
            after = batch_tables(db_path)
            if after != before and kill[0] == "outside":
                # The kill came a moment after the commit: the whole batch is there, once.
                assert_one_more_batch(before, after)
                ledger.add("kills landing just after the commit")
            else:
                assert after == before, f"a killed run ({kill}) changed the published batches"
            now_cached = check_cache_copy(db_path, scratch)
            assert now_cached >= cached, "vectors cached before the kill were lost"
            cached = now_cached

        before = batch_tables(db_path)
        returncode, log = run_scorer(db_path, rng, batch_size=BATCH_SIZE)
        assert returncode == 0, log
        assert "rebuilt" not in log and "Traceback" not in log, log
        after = batch_tables(db_path)
        assert_one_more_batch(before, after)
        report = RoundReport.from_json(after["rounds"][-1][-1])
        assert report.mode == "model" and report.embedding is not None
        assert report.embedding.already_cached == cached, (
            "the rerun did not reuse every cached vector"
        )
        assert report.embedding.embedded == added - cached
        assert check_cache_copy(db_path, scratch) == added
        ledger.add("reruns publishing exactly one batch")
    ledger.add("partial batches seen", 0)
    ledger.add("damaged caches", 0)
    ledger.add("cached vectors lost", 0)
