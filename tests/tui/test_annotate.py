"""The annotate screen driven through Pilot, checked on the database: answers, undo, spans, batches."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from hnbooks.store.db import Store, StoreError
from hnbooks.store.records import BatchEntry, NewAnswer
from hnbooks.tui.annotate import AnnotateScreen
from hnbooks.tui.app import AnnotateApp
from hnbooks.tui.session import AnswerToWrite
from tests.tui.conftest import (
    TEXTS,
    insert_items,
    make_app,
    publish,
    screen_text,
    settle,
    wait_until,
)


def annotate_screen(app: AnnotateApp) -> AnnotateScreen:
    screen = app.screen
    assert isinstance(screen, AnnotateScreen)
    return screen


def shown_text(app: AnnotateApp) -> str | None:
    shown = annotate_screen(app).shown
    return None if shown is None else shown.item.text


def answers(
    store: Store, annotator: str = "ann"
) -> list[tuple[str, str, tuple[tuple[int, int, str], ...]]]:
    """(text, answer, spans) of the answers in force, oldest first."""
    return [
        (store.item(a.item_id).text, a.answer, tuple((s.start, s.end, s.label) for s in a.spans))
        for a in store.current_answers(annotator=annotator)
    ]


def test_first_item_with_why_it_is_here(db_path: Path, batch: int) -> None:
    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert shown_text(app) == TEXTS[0]
            screen = screen_text(app)
            assert (
                f"BOOK? batch {batch} · item 1/4 · top · score 0.900 · rank 1 · hn:1000" in screen
            )
            assert "0 answered · 0 today · 0 positive · 0/h · 4 left" in screen
            assert 'I finally read "The Hobbit" last winter and loved it.' in screen

    asyncio.run(scenario())


def test_accept_reject_ignore_each_write_one_answer(
    db_path: Path, store: Store, batch: int
) -> None:
    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("a", "x", "space")
            await settle(pilot)
            assert shown_text(app) == TEXTS[3]
            assert "3 answered · 3 today · 1 positive · 36/h · 1 left" in screen_text(app)

    asyncio.run(scenario())
    assert answers(store) == [
        (TEXTS[0], "accept", ()),
        (TEXTS[1], "reject", ()),
        (TEXTS[2], "ignore", ()),
    ]
    saved = store.current_answers()
    assert {(a.batch_id, a.strategy) for a in saved} == {(batch, "top")}
    assert [a.score for a in saved] == [0.9, 0.89, 0.88]


def test_undo_with_u_and_backspace_shows_the_item_again(
    db_path: Path, store: Store, batch: int
) -> None:
    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("a", "x")
            await settle(pilot)
            await pilot.press("u")
            await settle(pilot)
            assert shown_text(app) == TEXTS[1]
            await pilot.press("backspace")
            await settle(pilot)
            assert shown_text(app) == TEXTS[0]
            assert "0 answered · 0 today · 0 positive" in screen_text(app)
            # Answered again after the undo: the queue goes on where it was.
            await pilot.press("x")
            await settle(pilot)
            assert shown_text(app) == TEXTS[1]

    asyncio.run(scenario())
    assert answers(store) == [(TEXTS[0], "reject", ())]


def test_undo_across_a_restart(db_path: Path, store: Store, batch: int) -> None:
    async def first_session() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("a", "x", "q")

    async def second_session() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert shown_text(app) == TEXTS[2]
            await pilot.press("u")
            await settle(pilot)
            assert shown_text(app) == TEXTS[1]
            await pilot.press("u")
            await settle(pilot)
            assert shown_text(app) == TEXTS[0]
            await pilot.press("u")  # nothing left to undo: says so, changes nothing
            await settle(pilot)
            assert shown_text(app) == TEXTS[0]

    asyncio.run(first_session())
    assert answers(store) == [(TEXTS[0], "accept", ()), (TEXTS[1], "reject", ())]
    asyncio.run(second_session())
    assert answers(store) == []


def test_undo_brings_back_the_spans_of_the_undone_answer(
    db_path: Path, store: Store, batch: int
) -> None:
    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("tab", "enter", "a", "u")
            await settle(pilot)
            marker = annotate_screen(app).marker
            assert marker is not None and [(s.start, s.end) for s in marker.spans] == [(16, 26)]
            await pilot.press("a")
            await settle(pilot)

    asyncio.run(scenario())
    assert answers(store) == [(TEXTS[0], "accept", ((16, 26, "BOOK"),))]


def test_a_double_key_press_cannot_double_an_answer(
    db_path: Path, store: Store, item_ids: list[int]
) -> None:
    publish(store, item_ids[:1])

    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            shown = annotate_screen(app).shown
            assert shown is not None
            await pilot.press("a", "a", "x")
            await settle(pilot)
            # The same showing written twice (a retried write) is stored once: one client key.
            request = AnswerToWrite(
                shown.item_id,
                NewAnswer("ann", "accept", label="BOOK", client_key=f"tui:{shown.instance}"),
            )
            app.submit_write(request)
            app.submit_write(request)
            await settle(pilot)

    asyncio.run(scenario())
    assert answers(store) == [(TEXTS[0], "accept", ())]
    assert len(store.answers_of_item(item_ids[0])) == 1


def test_quit_waits_for_the_answers_being_written(db_path: Path, store: Store, batch: int) -> None:
    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("a", "x", "space", "q")

    asyncio.run(scenario())
    assert [answer for _, answer, _ in answers(store)] == ["accept", "reject", "ignore"]


def test_mark_a_span_by_keyboard(db_path: Path, store: Store, batch: int) -> None:
    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            # I finally read "The Hobbit": the 4th word, then one word more.
            await pilot.press("right", "l", "l", "right", "shift+right", "enter")
            await pilot.press("l", "l", "L", "h", "H", "shift+left", "shift+right", "escape")
            await settle(pilot)
            assert "The Hobbit" in screen_text(app)
            await pilot.press("a")
            await settle(pilot)

    asyncio.run(scenario())
    assert answers(store) == [(TEXTS[0], "accept", ((16, 26, "BOOK"),))]


def test_mark_spans_by_candidate_and_delete_one(
    db_path: Path, store: Store, item_ids: list[int]
) -> None:
    publish(store, [item_ids[1], item_ids[3]])

    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            # "Dune by Frank Herbert ...": one candidate, the title before "by".
            await pilot.press("tab")
            assert "candidate 1/1 Dune by-author" in screen_text(app)
            await pilot.press("enter", "a")
            await settle(pilot)
            # "Has anyone tried Zen and the Art of Motorcycle Maintenance?": tab, shift+tab, enter;
            # then a word span marked and deleted again with d.
            await pilot.press("tab", "shift+tab", "enter", "right", "enter", "d")
            await settle(pilot)
            marker = annotate_screen(app).marker
            assert marker is not None and len(marker.spans) == 1
            await pilot.press("a")
            await settle(pilot)

    asyncio.run(scenario())
    zen = TEXTS[3].index("Zen")
    assert answers(store) == [
        (TEXTS[1], "accept", ((0, 4, "BOOK"),)),
        (
            TEXTS[3],
            "accept",
            ((zen, zen + len("Zen and the Art of Motorcycle Maintenance"), "BOOK"),),
        ),
    ]


def test_reject_and_ignore_store_no_spans(db_path: Path, store: Store, batch: int) -> None:
    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("tab", "enter", "x", "tab", "enter", "space")
            await settle(pilot)

    asyncio.run(scenario())
    assert answers(store) == [(TEXTS[0], "reject", ()), (TEXTS[1], "ignore", ())]


def test_labels_chosen_with_number_keys(db_path: Path, store: Store, batch: int) -> None:
    store.add_label("AUTHOR")

    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("tab", "enter", "a")  # BOOK (label 1) on the first item
            await pilot.press("2", "9")  # 9: no such label, AUTHOR stays
            assert "label  AUTHOR  (2-2)" in screen_text(app)
            await pilot.press("l", "l", "l", "L", "enter", "1", "tab", "enter", "a")
            await settle(pilot)

    asyncio.run(scenario())
    assert answers(store) == [
        (TEXTS[0], "accept", ((16, 26, "BOOK"),)),
        (TEXTS[1], "accept", ((0, 4, "BOOK"), (8, 21, "AUTHOR"))),
    ]


def test_every_binding_of_the_annotate_screen_runs(
    db_path: Path, store: Store, item_ids: list[int]
) -> None:
    """Each key once, in an order that keeps the app on the annotate screen; nothing may raise."""
    publish(store, item_ids)
    keys = [
        "l", "right", "L", "shift+right", "H", "shift+left", "h", "left", "tab", "shift+tab", "enter",
        "d", "escape", "1", "2", "3", "4", "5", "6", "7", "8", "9", "p", "p", "j", "down", "k", "up",
        "pagedown", "pageup", "a", "x", "space", "u", "backspace",
    ]  # fmt: skip

    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            for key in keys:
                await pilot.press(key)
            await settle(pilot)
            for key, closes_with in (
                ("question_mark", "escape"),
                ("slash", "escape"),
                ("r", "escape"),
                ("s", "escape"),
            ):
                await pilot.press(key)
                await settle(pilot)
                assert not isinstance(app.screen, AnnotateScreen)
                await pilot.press(closes_with)
                await settle(pilot)
                assert isinstance(app.screen, AnnotateScreen)
            await pilot.press("q")
        assert app.return_code == 0

    asyncio.run(scenario())
    # a, x, space answered three items; u and backspace took the last two back.
    assert [answer for _, answer, _ in answers(store)] == ["accept"]


def test_parent_comment_shown_with_p(db_path: Path, store: Store) -> None:
    ids = insert_items(
        store,
        ["The parent comment asks for book recommendations.", "Try Blindsight by Peter Watts."],
        metas=[{"id": 7}, {"id": 8, "parent": 7}],
    )
    publish(store, [ids[1]])

    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert "parent / story" not in screen_text(app)
            await pilot.press("p")
            assert (
                "parent / story: The parent comment asks for book recommendations."
                in screen_text(app)
            )
            await pilot.press("p")
            assert "parent / story" not in screen_text(app)

    asyncio.run(scenario())


def test_a_batch_published_during_the_session_shows_without_restart(
    db_path: Path, store: Store, item_ids: list[int]
) -> None:
    async def scenario() -> None:
        app = make_app(db_path, poll_interval_s=0.05)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert shown_text(app) is None
            assert "Nothing left to annotate for ann" in screen_text(app)
            published_at = time.monotonic()
            publish(store, item_ids[2:4])  # another connection, as the scorer would
            await wait_until(pilot, lambda: shown_text(app) is not None)
            assert time.monotonic() - published_at < 2.0
            assert shown_text(app) == TEXTS[2]
            await pilot.press("a", "a")
            await settle(pilot)
            assert shown_text(app) is None

    asyncio.run(scenario())
    assert [text for text, _, _ in answers(store)] == [TEXTS[2], TEXTS[3]]


def test_the_next_batch_follows_without_a_pause(
    db_path: Path, store: Store, item_ids: list[int]
) -> None:
    first = publish(store, item_ids[:2])
    second = publish(store, item_ids[2:4], strategy="random")

    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("x", "x")
            # Fetched ahead: the first item of the next batch is on screen at once.
            assert shown_text(app) == TEXTS[2]
            assert f"batch {second} · item 1/2 · random" in screen_text(app)
            await pilot.press("x", "x")
            await settle(pilot)
            assert shown_text(app) is None

    asyncio.run(scenario())
    assert [a.batch_id for a in store.current_answers()] == [first, first, second, second]


def test_two_annotators_each_get_their_own_queue_and_progress(
    db_path: Path, store: Store, batch: int
) -> None:
    async def session(annotator: str, keys: list[str], expect_first: str, total: int) -> None:
        app = make_app(db_path, annotator)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert shown_text(app) == expect_first
            await pilot.press(*keys)
            await settle(pilot)
            # The progress is the annotator's, read from the file: earlier sessions count.
            assert f"{total} answered · {total} today" in screen_text(app)

    async def together() -> None:
        # Both open at once on the same file, answering in turns.
        alice_app, bob_app = make_app(db_path, "alice"), make_app(db_path, "bob")
        async with (
            alice_app.run_test(size=(80, 24)) as alice,
            bob_app.run_test(size=(80, 24)) as bob,
        ):
            await settle(alice)
            await settle(bob)
            await alice.press("x")
            await bob.press("space")
            await settle(alice)
            await settle(bob)

    asyncio.run(session("alice", ["a", "x"], TEXTS[0], 2))
    asyncio.run(session("bob", ["x"], TEXTS[0], 1))
    asyncio.run(session("alice", ["space"], TEXTS[2], 3))
    asyncio.run(together())
    assert [a for _, a, _ in answers(store, "alice")] == ["accept", "reject", "ignore", "reject"]
    assert [a for _, a, _ in answers(store, "bob")] == ["reject", "ignore"]


def test_markup_escapes_and_control_characters_are_shown_literally(
    db_path: Path, store: Store
) -> None:
    hostile = '[bold red]not markup[/] \x1b[31mred\x1b[0m \x1b]0;owned\x07 tab\there \x9b2J \u202eevil "Dune" end'
    ids = insert_items(store, [hostile, "x" * 5000])
    publish(store, ids)

    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            screen = screen_text(app)
            assert "[bold red]not markup[/]" in screen
            assert "␛[31mred␛[0m ␛]0;owned␇ tab here ·2J ·evil" in screen
            assert not any(ch in screen for ch in "\x1b\x07\x9b\u202e\t")
            await pilot.press("tab", "enter", "a")
            await settle(pilot)
            # A 5000-character word folds inside the screen instead of widening it.
            assert all(len(line) <= 80 for line in screen_text(app).splitlines())
            await pilot.resize_terminal(60, 20)
            await settle(pilot)
            assert all(len(line) <= 60 for line in screen_text(app).splitlines())

    asyncio.run(scenario())
    start = hostile.index("Dune")
    assert answers(store)[0] == (hostile, "accept", ((start, start + 4, "BOOK"),))


def test_a_failed_write_brings_the_item_back(db_path: Path, store: Store, batch: int) -> None:
    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            record_queued_answer = app.store.record_queued_answer

            def disk_full(*args: object, **kwargs: object) -> int:
                raise StoreError("the disk is full; free space and retry (nothing was written)")

            app.store.record_queued_answer = disk_full  # type: ignore[method-assign]
            await pilot.press("a")
            await settle(pilot)
            assert shown_text(app) == TEXTS[0]
            app.store.record_queued_answer = record_queued_answer  # type: ignore[method-assign]
            await pilot.press("a")
            await settle(pilot)
            assert shown_text(app) == TEXTS[1]

    asyncio.run(scenario())
    assert answers(store) == [(TEXTS[0], "accept", ())]


def test_an_unexpected_error_reading_the_queue_is_shown_and_the_next_poll_reads_again(
    db_path: Path, batch: int
) -> None:
    async def scenario() -> None:
        app = make_app(db_path, poll_interval_s=0.05)
        notified: list[str] = []
        notify = app.notify

        def recording_notify(message: str, **kwargs: Any) -> None:
            notified.append(message)
            notify(message, **kwargs)

        app.notify = recording_notify  # type: ignore[method-assign]
        next_queued_item = app.store.next_queued_item
        raised: list[RuntimeError] = []

        def fails_once(*args: Any, **kwargs: Any) -> Any:
            if not raised:
                raised.append(RuntimeError("the queue index is gone"))
                raise raised[0]
            return next_queued_item(*args, **kwargs)

        app.store.next_queued_item = fails_once  # type: ignore[method-assign]
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: shown_text(app) is not None)
            assert raised, "the fetch never failed"
            assert "RuntimeError: the queue index is gone" in notified
            assert shown_text(app) == TEXTS[0]

    asyncio.run(scenario())


def test_a_near_duplicate_of_an_accepted_item_says_so(
    db_path: Path, store: Store, item_ids: list[int]
) -> None:
    store.record_answer(item_ids[5], NewAnswer(annotator="ann", answer="accept"))
    batch_id = store.publish_batch(
        [BatchEntry(item_ids[0], "top", 0.9, 0, near_duplicate_of=item_ids[5])], source="test"
    )

    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(120, 24)) as pilot:
            await settle(pilot)
            assert shown_text(app) == TEXTS[0]
            assert (
                f"batch {batch_id} · item 1/1 · top · near-duplicate of accepted item {item_ids[5]}"
                in screen_text(app)
            )

    asyncio.run(scenario())
