"""A whole round on a hand-built pool: train, score, select, publish; the seed channel; atomicity."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from hnbooks.scoring.job import RoundConfig, run_round
from hnbooks.scoring.pool import ArrayPool
from hnbooks.scoring.select import Mix
from hnbooks.store.db import Store
from hnbooks.store.records import NewAnswer
from tests.helpers import store_with_texts, table_counts

POOL_SIZE = 300
POSITIVE_IDS = range(1, 16)


def synthetic_pool(item_ids: list[int], seed: int = 0) -> ArrayPool:
    """Positives point one way, everything else elsewhere, with noise."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(len(item_ids), 32))
    direction = np.zeros(32)
    direction[0] = 6.0
    for row, item_id in enumerate(item_ids):
        if item_id in POSITIVE_IDS:
            vectors[row] += direction
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return ArrayPool(np.array(item_ids), vectors.astype(np.float32))


def build(db_path: Path) -> tuple[Store, list[int], ArrayPool]:
    texts = [
        ("a book i love " if n + 1 in POSITIVE_IDS else "other chatter ") + str(n)
        for n in range(POOL_SIZE)
    ]
    store, ids = store_with_texts(db_path, texts)
    assert ids == list(range(1, POOL_SIZE + 1))
    return store, ids, synthetic_pool(ids)


def test_round_trains_on_answers_and_publishes_a_mixed_batch(db_path: Path) -> None:
    store, ids, pool = build(db_path)
    for item_id in (1, 2, 3):
        store.record_answer(item_id, NewAnswer("ann", "accept"))
    for item_id in range(100, 110):
        store.record_answer(item_id, NewAnswer("ann", "reject"))
    result = run_round(store, pool, RoundConfig(label="BOOK", batch_size=20, random_seed=1))
    assert result.mode == "model" and result.batch_id is not None
    chosen = [e.item_id for e in result.entries]
    assert len(chosen) == len(set(chosen)) == 20
    assert not set(chosen) & {1, 2, 3, *range(100, 110)}
    by_strategy = result.report.picked_per_strategy
    # No query encoder here: the query strategy has no matches, and top fills its share.
    assert by_strategy == {"top": 14, "uncertain": 2, "novel": 2, "random": 2}
    top = {e.item_id for e in result.entries if e.strategy == "top"}
    assert len(top & set(POSITIVE_IDS)) >= 10  # the unlabelled positives rank first
    assert set(POSITIVE_IDS) - {1, 2, 3} <= set(chosen)  # all 12, one scored as uncertain
    randoms = [e for e in result.entries if e.strategy == "random"]
    assert all(e.inclusion_probability and 0 < e.inclusion_probability < 1 for e in randoms)
    queue = store.queue()
    assert {q.item_id for q in queue} == set(chosen)
    assert all(q.strategy in {"top", "uncertain", "novel", "random"} for q in queue)
    rounds = store.rounds()
    assert len(rounds) == 1 and rounds[0].report.batch_id == result.batch_id
    assert rounds[0].report.positives == 3


def test_second_round_never_repeats_queued_or_answered_items(db_path: Path) -> None:
    store, ids, pool = build(db_path)
    store.record_answer(1, NewAnswer("ann", "accept"))
    store.record_answer(200, NewAnswer("ann", "reject"))
    first = run_round(store, pool, RoundConfig(label="BOOK", batch_size=30, random_seed=1))
    second = run_round(store, pool, RoundConfig(label="BOOK", batch_size=30, random_seed=2))
    assert not {e.item_id for e in first.entries} & {e.item_id for e in second.entries}
    for entry in first.entries[:10]:
        store.record_answer(
            entry.item_id,
            NewAnswer(
                "ann",
                "accept" if entry.item_id in POSITIVE_IDS else "reject",
                batch_id=first.batch_id,
            ),
        )
    third = run_round(store, pool, RoundConfig(label="BOOK", batch_size=30, random_seed=3))
    served = {e.item_id for e in first.entries} | {e.item_id for e in second.entries}
    assert not {e.item_id for e in third.entries} & served
    assert (
        third.report.last_batch is not None and third.report.last_batch.batch_id == second.batch_id
    )


def test_without_positives_the_round_uses_the_seed_channel(db_path: Path) -> None:
    store, ids, pool = build(db_path)
    store.record_answer(250, NewAnswer("ann", "reject"))
    result = run_round(store, pool, RoundConfig(label="BOOK", batch_size=5, seed_query="book"))
    assert result.mode == "seed"
    assert "seed channel" in (result.report.note or "")
    assert [e.strategy for e in result.entries] == ["seed"] * 5
    assert {e.item_id for e in result.entries} <= set(POSITIVE_IDS)


KILLED_ROUND = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from tests.selection.test_round import synthetic_pool
    from hnbooks.scoring.job import RoundConfig, run_round
    from hnbooks.store.db import Store
    store = Store({db!r})
    def die_mid_publish(sql):
        if sql.startswith("INSERT INTO batch_items"):
            os.kill(os.getpid(), signal.SIGKILL)
    store._conn.set_trace_callback(die_mid_publish)  # the store's own connection: where the kill lands
    ids = list(range(1, {size} + 1))
    run_round(store, synthetic_pool(ids), RoundConfig(label="BOOK", batch_size=20, random_seed=1))
    """
)


def test_a_round_killed_while_publishing_leaves_no_partial_batch(db_path: Path) -> None:
    store, ids, pool = build(db_path)
    store.record_answer(1, NewAnswer("ann", "accept"))
    before = table_counts(db_path)
    root = str(Path(__file__).resolve().parents[2])
    script = KILLED_ROUND.format(root=root, db=str(db_path), size=POOL_SIZE)
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert process.returncode == -signal.SIGKILL, process.stderr
    assert table_counts(db_path) == before
    assert store.queue() == []
    rerun = run_round(Store(db_path), pool, RoundConfig(label="BOOK", batch_size=20, random_seed=1))
    assert rerun.batch_id is not None
    after = table_counts(db_path)
    assert (after["batches"], after["batch_items"], after["rounds"]) == (1, 20, 1)


def test_mix_of_only_top_fills_the_whole_batch_with_top(db_path: Path) -> None:
    store, ids, pool = build(db_path)
    store.record_answer(1, NewAnswer("ann", "accept"))
    result = run_round(
        store, pool, RoundConfig(label="BOOK", batch_size=10, mix=Mix.only("top"), random_seed=0)
    )
    assert [e.strategy for e in result.entries] == ["top"] * 10
    assert os.path.exists(db_path)
