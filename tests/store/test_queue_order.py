"""`next_queued_item` serves the oldest unfinished batch first, without walking finished ones,
and still sees an item that an undo puts back into a finished batch."""

from __future__ import annotations

from pathlib import Path

from hnbooks.store.db import Store
from hnbooks.store.records import NewAnswer
from tests.helpers import publish, store_with_texts


def answer(store: Store, item_id: int, annotator: str = "ann") -> None:
    store.record_answer(item_id, NewAnswer(annotator, "reject"))


def test_the_oldest_unfinished_batch_comes_first_and_undo_reopens_a_finished_one(
    db_path: Path,
) -> None:
    store, ids = store_with_texts(db_path, [f"comment number {n}" for n in range(9)])
    for first in (0, 3, 6):
        publish(store, ids[first : first + 3])
    for item_id in ids[:3]:
        answer(store, item_id)
    queued = store.next_queued_item("ann")
    assert queued is not None and queued.item.id == ids[3]
    answer(store, ids[3])
    queued = store.next_queued_item("ann")
    assert queued is not None and queued.item.id == ids[4]
    # Another annotator's queue starts at the first batch: progress is per annotator.
    other = store.next_queued_item("other")
    assert other is not None and other.item.id == ids[0]

    # An undo from another connection (another terminal) puts an item of batch 1 back.
    with Store(db_path, create=False) as elsewhere:
        elsewhere.undo_last("ann")
    queued = store.next_queued_item("ann")
    assert queued is not None and queued.item.id == ids[3]
    store.close()


def test_claimed_answered_and_skipped_items_are_passed_over(db_path: Path) -> None:
    store, ids = store_with_texts(db_path, [f"comment number {n}" for n in range(6)])
    publish(store, ids[:3])
    publish(store, ids[3:])
    answer(store, ids[0])
    with Store(db_path, create=False) as other_session:
        claimed = other_session.next_queued_item("ann", session="other-session")
        assert claimed is not None and claimed.item.id == ids[1]
        mine = store.next_queued_item("ann", session="my-session", skip_item_ids=[ids[2]])
        assert mine is not None and mine.item.id == ids[3]
        # Claimed, not done: batch 1 is still unfinished and served first once the claim is gone.
        other_session.release_claims("other-session")
        again = store.next_queued_item("ann", session="my-session", skip_item_ids=[ids[3]])
        assert again is not None and again.item.id == ids[1]
    for item_id in ids:
        answer(store, item_id)
    assert store.next_queued_item("ann") is None
    store.close()
