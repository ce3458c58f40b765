"""Feed modes, claims per annotator session and progress from the database, on a real SQLite file
with two connections standing for two sessions (two terminals, or two annotators)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hnbooks.store.claims import new_session_id, session_process_is_gone
from hnbooks.store.db import Store, StoreError
from hnbooks.store.progress import MIN_RATE_SPAN_S, local_day_start
from hnbooks.store.records import NewAnswer
from tests.helpers import publish, store_with_texts

ITEMS = 8


@pytest.fixture
def ids(db_path: Path) -> list[int]:
    """Eight items in two published batches of four."""
    store, item_ids = store_with_texts(db_path, [f"comment {n} on things" for n in range(ITEMS)])
    publish(store, item_ids[:4])
    publish(store, item_ids[4:])
    store.close()
    return item_ids


@pytest.fixture
def first(db_path: Path, ids: list[int]) -> Iterator[Store]:
    store = Store(db_path, create=False)
    yield store
    store.close()


@pytest.fixture
def second(db_path: Path, ids: list[int]) -> Iterator[Store]:
    store = Store(db_path, create=False)
    yield store
    store.close()


def take(store: Store, annotator: str, session: str, count: int, **kwargs: float) -> list[int]:
    """What a session fetching ahead claims: `count` items, each skipping the ones before."""
    taken: list[int] = []
    for _ in range(count):
        queued = store.next_queued_item(
            annotator, session=session, skip_item_ids=taken, claim_ttl_s=kwargs.get("ttl", 120.0)
        )
        if queued is None:
            break
        taken.append(queued.item.id)
    return taken


def answer(store: Store, annotator: str, item_id: int) -> int:
    """Answer as the TUI does: with the batch the item was served in."""
    batch_id = 1 if item_id <= 4 else 2
    return store.record_answer(item_id, NewAnswer(annotator, "reject", batch_id=batch_id))


def test_the_feed_mode_is_overlap_until_set_and_is_kept_in_the_database(
    first: Store, second: Store
) -> None:
    assert first.feed_mode() == "overlap"
    first.set_feed_mode("split")
    assert second.feed_mode() == "split"
    with pytest.raises(StoreError, match="overlap, split"):
        first.set_feed_mode("everyone")
    assert second.feed_mode() == "split"


def test_an_unknown_feed_mode_in_the_file_is_named(first: Store, db_path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(db_path)
    conn.execute("INSERT INTO settings (name, value) VALUES ('feed', 'round-robin')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="round-robin"):
        first.feed_mode()


def test_two_sessions_of_one_annotator_are_never_served_the_same_item(
    first: Store, second: Store, ids: list[int]
) -> None:
    one, two = new_session_id(), new_session_id()
    mine = take(first, "ann", one, 3)
    theirs = take(second, "ann", two, 3)
    assert mine == ids[:3]
    assert theirs == ids[3:6]
    # Answered in the first session: not served to the second either, once its claim is gone.
    answer(first, "ann", ids[0])
    first.release_claims(one)
    # Fetching again from scratch, the second session gets its own claims back and the rest.
    assert take(second, "ann", two, 8) == ids[1:]
    # Another annotator in overlap mode gets every item, claims or not.
    assert take(second, "bob", new_session_id(), 8) == ids


def test_in_split_mode_each_item_goes_to_one_annotator(
    first: Store, second: Store, ids: list[int]
) -> None:
    first.set_feed_mode("split")
    ann, bob = new_session_id(), new_session_id()
    assert take(first, "ann", ann, 3) == ids[:3]
    assert take(second, "bob", bob, 3) == ids[3:6]
    # What bob holds waits for bob: ann's queue and remaining leave it out.
    assert [e.item_id for e in first.queue("ann")] == [*ids[:3], ids[6], ids[7]]
    assert first.remaining_for("ann") == 5
    # Answered by anyone, an item is done for everyone.
    answer(second, "bob", ids[3])
    second.release_claims(bob)
    assert first.remaining_for("ann") == 7
    assert ids[3] not in take(first, "ann", ann, 8)
    assert first.answered_item_ids("ann", ids[:4]) == {ids[3]}
    assert first.batch_progress(1, "ann") == (4, 1)
    # Back in overlap mode bob's answer is his alone.
    first.set_feed_mode("overlap")
    assert first.remaining_for("ann") == ITEMS
    assert first.answered_item_ids("ann", ids[:4]) == set()


def test_a_claim_lapses_after_its_time_to_live(first: Store, second: Store, ids: list[int]) -> None:
    assert take(first, "ann", new_session_id(), 2, ttl=0.2) == ids[:2]
    assert take(second, "ann", new_session_id(), 1) == [ids[2]]
    time.sleep(0.3)
    assert take(second, "ann", new_session_id(), 1) == [ids[0]]


def test_a_dead_session_s_claims_come_back_at_once(
    first: Store, second: Store, ids: list[int]
) -> None:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                           capture_output=True, text=True)  # fmt: skip
    dead = f"{socket.gethostname()}:{int(child.stdout)}:{uuid.uuid4().hex}"
    assert session_process_is_gone(dead)
    assert not session_process_is_gone(new_session_id())
    assert not session_process_is_gone(f"another-host:{int(child.stdout)}:x")
    take(first, "ann", dead, 3)
    # The killed TUI's successor resumes at the first unanswered item.
    assert take(second, "ann", new_session_id(), 1) == [ids[0]]


def test_renewing_keeps_what_is_held_and_names_what_another_session_took(
    first: Store, second: Store, ids: list[int]
) -> None:
    one, two = new_session_id(), new_session_id()
    take(first, "ann", one, 3, ttl=0.2)
    # Renewed: what the session still holds is renewed (the first was answered); what it no longer
    # lists is left to lapse, since an item may be in flight between a fetch and the screen.
    answer(first, "ann", ids[0])
    held = [(1, ids[1]), (1, ids[2])]
    time.sleep(0.1)
    assert first.renew_claims(one, "ann", held, ttl_s=0.2) == set()
    assert first.claimed_item_ids(one) == {ids[0], ids[1], ids[2]}
    time.sleep(0.15)
    assert first.claimed_item_ids(one) == {ids[1], ids[2]}, "the unlisted claim did not lapse"
    time.sleep(0.1)
    # Lapsed: another session of the annotator claims one of them, the renewal gives it up.
    assert take(second, "ann", two, 1) == [ids[1]]
    assert first.renew_claims(one, "ann", held) == {ids[1]}
    assert first.claimed_item_ids(one) == {ids[2]}
    assert take(second, "ann", two, 2) == [ids[1], ids[3]]


def test_an_answer_from_the_queue_is_not_stored_when_the_item_was_done_meanwhile(
    first: Store, second: Store, ids: list[int]
) -> None:
    served = NewAnswer("ann", "accept", client_key="tui:one")
    assert second.record_queued_answer(ids[0], NewAnswer("ann", "reject")) is not None
    assert first.record_queued_answer(ids[0], served) is None
    # A repeated write of a stored answer still returns its id; another annotator may answer.
    stored = first.record_queued_answer(ids[1], served)
    assert stored is not None and first.record_queued_answer(ids[1], served) == stored
    assert first.record_queued_answer(ids[0], NewAnswer("bob", "accept")) is not None
    first.set_feed_mode("split")
    assert first.record_queued_answer(ids[2], NewAnswer("bob", "accept")) is not None
    assert first.record_queued_answer(ids[2], NewAnswer("ann", "accept")) is None
    # Undone, the item is open again.
    assert second.undo_last("bob") is not None
    assert first.record_queued_answer(ids[2], NewAnswer("ann", "accept")) is not None
    assert [a.annotator for a in first.answers_of_item(ids[2])] == ["ann"]


def test_an_undo_claims_its_item_back_for_the_undoing_session(
    first: Store, second: Store, ids: list[int]
) -> None:
    one, two = new_session_id(), new_session_id()
    assert take(first, "ann", one, 1) == [ids[0]]
    answer(first, "ann", ids[0])
    # The other terminal of the same annotator undoes it: the item is its own to answer again.
    undone = second.undo_last_claiming("ann", session=two)
    assert undone is not None and undone.item_id == ids[0]
    assert second.claimed_item_ids(two) == {ids[0]}
    assert first.claimed_item_ids(one) == set()
    assert take(first, "ann", one, 1) == [ids[1]]
    assert second.undo_last_claiming("ann", session=two) is None


def test_progress_is_read_from_the_answers_and_survives_a_restart(
    first: Store, db_path: Path, ids: list[int]
) -> None:
    # At least an hour into the local day, so the answers made "30 minutes ago" fall today at any
    # time of day the test runs; every answer says when it was made, relative to that `now`.
    day_start = local_day_start(time.time())
    now = max(time.time(), day_start + 3600)
    yesterday = day_start - 3600
    first.record_answer(ids[0], NewAnswer("ann", "accept", created_at=yesterday))
    first.record_answer(ids[1], NewAnswer("ann", "reject", created_at=now - 1800))
    first.record_answer(ids[2], NewAnswer("ann", "accept", created_at=now - 60))
    first.record_answer(ids[3], NewAnswer("bob", "accept", created_at=now))
    first.record_answer(ids[4], NewAnswer("ann", "ignore", created_at=now))
    assert first.undo_last("ann") is not None
    # A span answer accepted without spans says the item holds no title: not a positive.
    first.record_answer(ids[5], NewAnswer("ann", "accept", view_id="ner_manual", created_at=now))

    progress = first.annotator_progress("ann", day_start=day_start, now=now)
    assert (progress.answers, progress.today, progress.positives) == (4, 3, 2)
    assert progress.remaining == ITEMS - 4
    assert progress.first_today_at == pytest.approx(now - 1800)
    assert progress.rate_per_hour == pytest.approx(3 * 3600 / 1800)
    with Store(db_path, create=False) as reopened:
        again = reopened.annotator_progress("ann", day_start=day_start, now=now)
    assert again == progress
    fresh = first.annotator_progress("bob", day_start=day_start, now=now)
    # One answer a moment ago is not thousands an hour: the span counted is at least a few minutes.
    assert fresh.rate_per_hour == pytest.approx(3600 / MIN_RATE_SPAN_S)
    nobody = first.annotator_progress("cat", day_start=day_start, now=now)
    assert (nobody.answers, nobody.today, nobody.rate_per_hour) == (0, 0, 0.0)
    assert nobody.remaining == ITEMS


def test_the_local_day_starts_at_midnight() -> None:
    now = time.time()
    start = local_day_start(now)
    assert 0 <= now - start < 25 * 3600
    assert time.localtime(start)[3:6] == (0, 0, 0)


def test_a_session_id_names_this_host_and_process() -> None:
    host, pid, random_part = new_session_id().split(":")
    assert (host, int(pid)) == (socket.gethostname(), os.getpid())
    assert random_part != new_session_id().split(":")[2]
