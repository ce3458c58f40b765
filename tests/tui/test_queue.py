"""`AnnotationQueue` with plain objects: no Textual app, no database, milliseconds per test."""

from __future__ import annotations

from hnbooks.store.records import Answer, Item, Span
from hnbooks.tui.queue import AnnotationQueue, FetchRequest, Step
from hnbooks.tui.session import AnswerToWrite, ShownItem, UndoToWrite, WriteRequest

SPAN = Span(0, 4, "BOOK")


def item(item_id: int, spans: tuple[Span, ...] = ()) -> ShownItem:
    text = f"text of item {item_id}"
    return ShownItem(
        item=Item(item_id, f"hn:{item_id}", text, {}, item_id),
        label="BOOK",
        strategy="top",
        score=1 - item_id / 100,
        rank=item_id,
        batch_id=7,
        position=item_id - 1,
        batch_size=9,
        context=None,
        display_text=text,
        candidates=(),
        words=((0, 4), (5, 7)),
        spans=spans,
    )


def answer_of(shown: ShownItem, value: str = "accept", spans: tuple[Span, ...] = ()) -> Answer:
    """The stored answer an undo hands back."""
    return Answer(
        id=shown.item_id * 10,
        item_id=shown.item_id,
        annotator="ann",
        answer=value,
        task_key="label:BOOK",
        label="BOOK",
        view_id="classification",
        spans=spans,
        task_hash=None,
        batch_id=7,
        strategy="top",
        score=shown.score,
        created_at=0.0,
    )


def loaded(*item_ids: int) -> AnnotationQueue:
    """A queue whose first read found `item_ids` (and nothing more)."""
    queue = AnnotationQueue("ann", reply_to="screen")
    assert queue.start_fetch() is not None
    queue.fetched([item(n) for n in item_ids], data_version=1, exhausted=True)
    return queue


def described(writes: tuple[WriteRequest, ...]) -> list[tuple[int, str] | str]:
    return [
        (w.item_id, w.answer.answer) if isinstance(w, AnswerToWrite) else "undo" for w in writes
    ]


def only_write(step: Step) -> WriteRequest:
    assert len(step.writes) == 1
    return step.writes[0]


def shown_id(queue: AnnotationQueue) -> int | None:
    return None if queue.shown is None else queue.shown.item_id


def test_the_first_read_shows_the_first_item_and_asks_for_one_more_than_the_prefetch() -> None:
    queue = AnnotationQueue("ann", prefetch=4)
    assert not queue.read and not queue.waiting
    request = queue.start_fetch()
    assert request == FetchRequest(frozenset(), 5, only_if_changed=False, seen_data_version=None)
    assert queue.start_fetch() is None  # one fetch at a time
    step = queue.fetched([item(1), item(2)], data_version=3, exhausted=False)
    assert step.shown_changed and step.top_up
    assert shown_id(queue) == 1 and [i.item_id for i in queue.upcoming] == [2]
    assert queue.start_fetch() == FetchRequest(frozenset({1, 2}), 3, False, 3)


def test_an_answer_is_written_with_why_the_item_was_served() -> None:
    queue = loaded(1, 2)
    shown = queue.shown
    assert shown is not None
    request = only_write(queue.press("accept", [SPAN]))
    assert isinstance(request, AnswerToWrite)
    assert request.item_id == 1 and request.reply_to == "screen"
    new = request.answer
    assert (new.annotator, new.answer, new.label, new.spans) == ("ann", "accept", "BOOK", (SPAN,))
    assert (new.batch_id, new.strategy, new.score) == (7, "top", shown.score)
    assert new.client_key == f"tui:{shown.instance}"
    # The item stays on screen until the answer is committed.
    assert shown_id(queue) == 1 and queue.saving == 1 and queue.write_in_flight
    step = queue.committed(request.client_key)
    assert step.shown_changed and step.top_up and not step.writes
    assert shown_id(queue) == 2 and queue.saving == 0 and not queue.write_in_flight


def test_reject_and_ignore_carry_no_spans() -> None:
    queue = loaded(1, 2)
    rejected = only_write(queue.press("reject", [SPAN]))
    assert isinstance(rejected, AnswerToWrite) and rejected.answer.spans == ()
    queue.committed(rejected.client_key)
    ignored = only_write(queue.press("ignore", [SPAN]))
    assert isinstance(ignored, AnswerToWrite) and ignored.answer.spans == ()


def test_keys_typed_during_a_commit_act_in_order_on_the_item_the_commit_shows() -> None:
    queue = loaded(1, 2, 3)
    first = only_write(queue.press("accept"))
    # x, u, a typed before the first commit lands: each waits, none is dropped.
    assert queue.press("reject") == Step(queued=True)
    assert queue.press_undo() == Step(queued=True)
    assert queue.press("accept") == Step(queued=True)
    assert shown_id(queue) == 1

    assert isinstance(first, AnswerToWrite)
    step = queue.committed(first.client_key)
    assert step.shown_changed and described(step.writes) == [(2, "reject")]
    assert shown_id(queue) == 2 and len(queue.keys_waiting) == 2

    second = step.writes[0]
    assert isinstance(second, AnswerToWrite)
    step = queue.committed(second.client_key)
    assert shown_id(queue) == 3 and described(step.writes) == ["undo"]

    # The undo hands item 2 back: the accept typed after it answers item 2, not item 3.
    step = queue.undone(answer_of(item(2), "reject"), item(2))
    assert step.shown_changed and described(step.writes) == [(2, "accept")]
    assert shown_id(queue) == 2 and [i.item_id for i in queue.upcoming] == [3]
    assert not queue.keys_waiting


def test_undo_after_answers_shows_the_undone_item_with_its_spans_first() -> None:
    queue = loaded(1, 2, 3)
    for _ in range(2):
        request = only_write(queue.press("accept"))
        assert isinstance(request, AnswerToWrite)
        queue.committed(request.client_key)
    assert shown_id(queue) == 3
    assert isinstance(only_write(queue.press_undo()), UndoToWrite)
    again = item(2, spans=(SPAN,))
    step = queue.undone(answer_of(item(2), spans=(SPAN,)), again)
    assert step.shown_changed and not step.writes and not queue.write_in_flight
    assert queue.shown is again and [i.item_id for i in queue.upcoming] == [3]
    # The next undo takes back item 1; item 2 goes back to wait ahead of 3.
    queue.press_undo()
    queue.undone(answer_of(item(1)), item(1))
    assert shown_id(queue) == 1 and [i.item_id for i in queue.upcoming] == [2, 3]


def test_an_accept_typed_ahead_of_an_undo_keeps_the_undone_spans() -> None:
    queue = loaded(1, 2)
    request = only_write(queue.press("accept", [SPAN]))
    assert isinstance(request, AnswerToWrite)
    queue.committed(request.client_key)
    queue.press_undo()
    queue.press("accept")
    step = queue.undone(answer_of(item(1), spans=(SPAN,)), item(1, spans=(SPAN,)))
    again = only_write(step)
    assert isinstance(again, AnswerToWrite) and again.answer.spans == (SPAN,)


def test_nothing_to_undo_changes_nothing_and_the_keys_waiting_go_on() -> None:
    queue = loaded(1, 2)
    queue.press_undo()
    queue.press("reject")
    step = queue.undone(None, None)
    assert not step.shown_changed and described(step.writes) == [(1, "reject")]
    # An undo committed whose item could not be read back: the screen stays as it is.
    queue = loaded(1, 2)
    queue.press_undo()
    step = queue.undone(answer_of(item(5)), None)
    assert step == Step() and shown_id(queue) == 1 and not queue.write_in_flight


def test_a_failed_write_keeps_the_item_and_drops_the_keys_typed_after_it() -> None:
    queue = loaded(1, 2)
    request = only_write(queue.press("accept"))
    queue.press("reject")
    queue.press_undo()
    step = queue.failed(request)
    assert step.saving_changed and not step.shown_changed and not step.writes
    assert shown_id(queue) == 1 and queue.saving == 0
    assert not queue.keys_waiting and not queue.write_in_flight
    # Answered again: the same showing, so the same client key (stored once however often sent).
    retried = only_write(queue.press("accept"))
    assert isinstance(retried, AnswerToWrite) and isinstance(request, AnswerToWrite)
    assert retried.client_key == request.client_key


def test_a_failed_undo_keeps_the_screen_as_it_is() -> None:
    queue = loaded(1)
    undo = only_write(queue.press_undo())
    assert queue.failed(undo) == Step() and shown_id(queue) == 1 and not queue.write_in_flight


def test_fetched_items_already_shown_ahead_or_being_saved_are_dropped() -> None:
    queue = loaded(1, 2)
    request = only_write(queue.press("accept"))
    assert isinstance(request, AnswerToWrite)
    queue.committed(request.client_key)
    being_saved = only_write(queue.press("accept"))  # item 2, not committed yet
    assert queue.start_fetch() is not None
    assert queue.start_fetch() is None
    queue.fetched([item(2), item(3), item(3), item(4)], data_version=2, exhausted=True)
    assert [i.item_id for i in queue.upcoming] == [3, 4]
    assert isinstance(being_saved, AnswerToWrite)
    queue.committed(being_saved.client_key)
    assert shown_id(queue) == 3
    request_now = queue.start_fetch()
    assert request_now is not None and request_now.skip_item_ids == {3, 4}


def test_items_answered_elsewhere_leave_the_queue() -> None:
    queue = loaded(1, 2, 3, 4)
    assert queue.answered_elsewhere([]) == Step()
    step = queue.answered_elsewhere({3})
    assert not step.shown_changed and step.top_up
    assert shown_id(queue) == 1 and [i.item_id for i in queue.upcoming] == [2, 4]
    step = queue.answered_elsewhere({1, 2})
    assert step.shown_changed and shown_id(queue) == 4 and not queue.upcoming
    step = queue.answered_elsewhere({4})
    assert step.shown_changed and queue.shown is None and queue.waiting


def test_a_commit_of_an_item_no_longer_shown_only_updates_the_saving_count() -> None:
    queue = loaded(1, 2)
    request = only_write(queue.press("accept"))
    assert isinstance(request, AnswerToWrite)
    queue.answered_elsewhere({1})  # answered on the search screen meanwhile
    assert shown_id(queue) == 2
    step = queue.committed(request.client_key)
    assert step == Step(saving_changed=True) and shown_id(queue) == 2


def test_an_exhausted_queue_waits_and_polls_only_for_a_changed_database() -> None:
    queue = AnnotationQueue("ann")
    queue.start_fetch()
    step = queue.fetched([], data_version=5, exhausted=True)
    assert step.shown_changed and not step.top_up  # from "loading" to "nothing left"
    assert queue.waiting
    poll = queue.poll()
    assert poll is not None and poll.only_if_changed and poll.seen_data_version == 5
    assert queue.poll() is None  # that poll is still being read
    assert queue.fetched([], data_version=5, exhausted=True) == Step()
    queue.poll()
    step = queue.fetched([item(1)], data_version=6, exhausted=True)
    assert step.shown_changed and shown_id(queue) == 1 and not queue.waiting


def test_answering_the_last_item_leads_to_waiting() -> None:
    queue = loaded(1)
    request = only_write(queue.press("ignore"))
    assert isinstance(request, AnswerToWrite)
    queue.press("accept")  # typed ahead, but nothing comes after the last item
    step = queue.committed(request.client_key)
    assert step.shown_changed and not step.writes and queue.waiting
    assert not queue.keys_waiting and not queue.write_in_flight


def test_a_failed_fetch_lets_the_next_poll_read_the_queue_again() -> None:
    queue = loaded()
    queue.poll()
    assert queue.poll() is None
    assert queue.fetch_failed() == Step()
    poll = queue.poll()
    assert poll is not None and poll.seen_data_version is None


def test_an_answer_refused_as_done_elsewhere_moves_on_and_keys_typed_meanwhile_act_next() -> None:
    queue = loaded(1, 2, 3)
    request = only_write(queue.press("accept"))
    assert isinstance(request, AnswerToWrite)
    assert queue.press("reject").queued
    step = queue.answered_by_other(request.client_key)
    assert step.shown_changed and step.top_up and not queue.pending.get(request.client_key)
    # The key typed meanwhile answers the item now shown, not the one done elsewhere.
    assert described(step.writes) == [(2, "reject")]


def test_items_fetched_ahead_that_were_done_or_claimed_elsewhere_leave_the_queue() -> None:
    queue = loaded(1, 2, 3, 4)
    # The item on screen stays (its answer is checked when committed); the others go.
    request = queue.start_fetch()
    assert request is not None and request.skip_item_ids == {1, 2, 3, 4}
    step = queue.fetched([item(5)], data_version=2, exhausted=True, done_elsewhere={1, 3})
    assert shown_id(queue) == 1 and [i.item_id for i in queue.upcoming] == [2, 4, 5]
    assert not step.shown_changed
    assert queue.given_up([]) == Step()
    assert queue.given_up({1, 9}) == Step()
    assert queue.given_up({4}) == Step(top_up=True)
    assert shown_id(queue) == 1 and [i.item_id for i in queue.upcoming] == [2, 5]


def test_what_the_session_holds_is_what_its_claims_cover() -> None:
    queue = loaded(1, 2, 3)
    assert queue.held() == [(7, 1), (7, 2), (7, 3)]
    request = only_write(queue.press("ignore"))
    assert isinstance(request, AnswerToWrite)
    assert queue.held() == [(7, 1), (7, 2), (7, 3)]  # item 1 is being saved
    queue.committed(request.client_key)
    assert queue.held() == [(7, 2), (7, 3)]


def test_keys_typed_while_the_next_items_load_wait_for_them_and_act_in_order() -> None:
    queue = AnnotationQueue("ann", reply_to="screen", prefetch=1)
    assert queue.start_fetch() is not None
    queue.fetched([item(1)], data_version=1, exhausted=False)
    first = only_write(queue.press("accept"))
    assert isinstance(first, AnswerToWrite)
    for key in ("reject", "ignore"):
        assert queue.press(key).queued
    assert queue.press_undo().queued
    # Committed with nothing fetched ahead: the keys wait for the read under way.
    step = queue.committed(first.client_key)
    assert queue.shown is None and queue.loading and not step.writes and step.top_up
    assert queue.start_fetch() is not None
    step = queue.fetched([item(2), item(3)], data_version=2, exhausted=False)
    assert described(step.writes) == [(2, "reject")] and shown_id(queue) == 2


def test_answer_keys_typed_ahead_with_nothing_left_are_refused_and_an_undo_still_acts() -> None:
    queue = AnnotationQueue("ann", reply_to="screen", prefetch=1)
    assert queue.start_fetch() is not None
    queue.fetched([item(1)], data_version=1, exhausted=False)
    first = only_write(queue.press("accept"))
    queue.press("reject")
    queue.press_undo()
    queue.committed(first.client_key)
    assert queue.start_fetch() is not None
    step = queue.fetched([], data_version=2, exhausted=True)
    assert step.refused == 1 and described(step.writes) == ["undo"]
    assert step.shown_changed and queue.waiting and not queue.loading


def test_an_item_an_undo_brings_back_during_a_fetch_is_not_dropped_as_done_elsewhere() -> None:
    queue = AnnotationQueue("ann", reply_to="screen", prefetch=3)
    assert queue.start_fetch() is not None
    queue.fetched([item(1), item(2), item(3)], data_version=1, exhausted=False)
    first = only_write(queue.press("accept"))
    assert isinstance(first, AnswerToWrite)
    queue.committed(first.client_key)
    second = only_write(queue.press("accept"))
    assert isinstance(second, AnswerToWrite)
    # A fetch starts while item 2 is being saved: it reads item 2 as done elsewhere...
    assert queue.start_fetch() is not None
    queue.committed(second.client_key)
    # ...then two undos bring items 2 and 1 back before it is delivered.
    queue.press_undo()
    queue.undone(answer_of(item(2)), item(2))
    queue.press_undo()
    queue.undone(answer_of(item(1)), item(1))
    queue.fetched([item(4)], data_version=2, exhausted=False, done_elsewhere=[2])
    assert shown_id(queue) == 1 and [i.item_id for i in queue.upcoming] == [2, 3, 4]


def test_an_item_undone_and_answered_again_during_a_fetch_does_not_come_back_from_it() -> None:
    queue = AnnotationQueue("ann", reply_to="screen", prefetch=2)
    assert queue.start_fetch() is not None
    queue.fetched([item(1), item(2)], data_version=1, exhausted=False)
    first = only_write(queue.press("accept"))
    assert isinstance(first, AnswerToWrite)
    queue.committed(first.client_key)
    assert queue.start_fetch() is not None  # skips items 2 (shown) and nothing else
    queue.press_undo()
    queue.undone(answer_of(item(1)), item(1))  # the fetch then reads item 1 as waiting...
    again = only_write(queue.press("reject"))
    assert isinstance(again, AnswerToWrite)
    queue.committed(again.client_key)  # ...and item 1 is answered again before it is delivered
    queue.fetched([item(1), item(3)], data_version=2, exhausted=False)
    assert shown_id(queue) == 2 and [i.item_id for i in queue.upcoming] == [3]
