"""Fast span marking on the annotate screen, driven through Pilot and checked on the database: `a`
keeps a picked candidate, jump mode, the other end of a selection, find, and the mouse."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hnbooks.store.db import Store
from hnbooks.tui.annotate import AnnotateScreen
from hnbooks.tui.app import AnnotateApp
from hnbooks.tui.marking import SpanMarker, jump_hints
from tests.tui.conftest import TEXTS, make_app, publish, screen_text, settle

HOBBIT = (16, 26, "BOOK")  # "The Hobbit" in TEXTS[0]


def marker_of(app: AnnotateApp) -> SpanMarker:
    screen = app.screen
    assert isinstance(screen, AnnotateScreen) and screen.marker is not None
    return screen.marker


def spans_answered(store: Store) -> list[tuple[str, tuple[tuple[int, int, str], ...]]]:
    return [
        (a.answer, tuple((s.start, s.end, s.label) for s in a.spans))
        for a in store.current_answers(annotator="ann")
    ]


def run(db_path: Path, *steps: object) -> None:
    """Open the app, settle, then for each step: a tuple of keys is pressed, a callable is awaited
    with the pilot; settle again at the end."""

    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            for step in steps:
                if isinstance(step, tuple):
                    await pilot.press(*step)
                else:
                    await step(pilot)  # type: ignore[operator]
            await settle(pilot)

    asyncio.run(scenario())


def test_a_keeps_the_candidate_picked_with_tab(db_path: Path, store: Store, batch: int) -> None:
    # Item 1 has one candidate ("The Hobbit"): tab picks it, a accepts with it, no enter needed.
    run(db_path, ("tab", "a"))
    assert spans_answered(store) == [("accept", (HOBBIT,))]


def test_a_keeps_a_selection_but_not_a_bare_cursor(db_path: Path, store: Store, batch: int) -> None:
    # Item 1: the cursor moved, nothing selected: no span. Item 2: "Frank Herbert" selected.
    run(db_path, ("right", "right", "a", "right", "l", "l", "shift+right", "a"))
    assert spans_answered(store) == [("accept", ()), ("accept", ((8, 21, "BOOK"),))]


def test_reject_drops_a_picked_candidate(db_path: Path, store: Store, batch: int) -> None:
    run(db_path, ("tab", "x"))
    assert spans_answered(store) == [("reject", ())]


def test_jump_marks_a_span_by_two_hints(db_path: Path, store: Store, batch: int) -> None:
    words = 11  # I finally read "The Hobbit" last winter and loved it.
    start_hint = jump_hints(words)[3]  # The
    end_hint = jump_hints(words - 3)[1]  # Hobbit, relabelled from The onward

    async def check_hints(pilot: object) -> None:
        app = pilot.app  # type: ignore[attr-defined]
        assert "jump" in screen_text(app) and marker_of(app).jump_stage == "end"

    run(db_path, ("f", *start_hint), check_hints, (*end_hint, "enter", "a"))
    assert spans_answered(store) == [("accept", (HOBBIT,))]


def test_jump_hint_letters_are_not_answer_keys(db_path: Path, store: Store, batch: int) -> None:
    # In jump mode a and x are hint letters; esc leaves jump mode with the start word selected,
    # and a keeps that selection.
    hints = jump_hints(11)
    a_word = hints.index("a")
    run(db_path, ("f", "a"), ("escape", "a"))
    start, end = marker_words(TEXTS[0])[a_word]
    assert spans_answered(store) == [("accept", ((start, end, "BOOK"),))]


def marker_words(text: str) -> list[tuple[int, int]]:
    from hnbooks.suggest import word_spans

    return word_spans(text)


def test_the_other_end_of_the_selection_moves_with_angle_brackets(
    db_path: Path, store: Store, batch: int
) -> None:
    # From "The" extended to "last", then the start brought back a word (<) and on two (> >).
    keys = ("right",) * 4 + ("shift+right", "shift+right", "less_than_sign")
    run(db_path, keys, ("greater_than_sign", "greater_than_sign", "enter", "a"))
    assert spans_answered(store) == [("accept", ((20, 32, "BOOK"),))]


def test_find_moves_to_the_match_as_it_is_typed(db_path: Path, store: Store, batch: int) -> None:
    async def check(pilot: object) -> None:
        app = pilot.app  # type: ignore[attr-defined]
        selection = marker_of(app).selection()
        assert selection is not None and TEXTS[0][selection[0] : selection[1]] == "Hobbit"

    run(db_path, ("ctrl+f", "h", "o", "b"), check, ("enter", "shift+left", "enter", "a"))
    assert spans_answered(store) == [("accept", (HOBBIT,))]


def test_esc_in_find_goes_back_to_the_selection_before(
    db_path: Path, store: Store, batch: int
) -> None:
    run(db_path, ("right", "ctrl+f", "w", "i", "n", "escape", "enter", "a"))
    assert spans_answered(store) == [("accept", ((0, 1, "BOOK"),))]


def test_mouse_drag_selects_words_and_a_keeps_them(db_path: Path, store: Store, batch: int) -> None:
    # One row of text from column 0: the column is the offset. Drag from "The" to "Hobbit".
    async def drag(pilot: object) -> None:
        await pilot.mouse_down("#item-text", offset=(17, 0))  # type: ignore[attr-defined]
        await pilot.hover("#item-text", offset=(22, 0))  # type: ignore[attr-defined]
        await pilot.mouse_up("#item-text", offset=(23, 0))  # type: ignore[attr-defined]
        await pilot.pause()  # type: ignore[attr-defined]
        selection = marker_of(pilot.app).selection()  # type: ignore[attr-defined]
        assert selection == HOBBIT[:2]

    run(db_path, drag, ("a",))
    assert spans_answered(store) == [("accept", (HOBBIT,))]


def test_a_click_on_a_candidate_marks_it_and_a_double_click_marks_a_word(
    db_path: Path, store: Store, item_ids: list[int]
) -> None:
    publish(store, [item_ids[0]])

    async def clicks(pilot: object) -> None:
        await pilot.click("#item-text", offset=(21, 0))  # type: ignore[attr-defined]
        await pilot.click("#item-text", offset=(5, 0))  # finally: the cursor only
        await pilot.pause()  # type: ignore[attr-defined]
        marker = marker_of(pilot.app)  # type: ignore[attr-defined]
        assert marker.cursor == 1 and len(marker.spans) == 1
        await pilot.double_click("#item-text", offset=(35, 0))  # type: ignore[attr-defined]
        await pilot.pause()  # type: ignore[attr-defined]

    run(db_path, clicks, ("a",))
    assert spans_answered(store) == [("accept", (HOBBIT, (33, 39, "BOOK")))]


def test_every_new_marking_key_runs_and_t_opens_the_titles(
    db_path: Path, store: Store, item_ids: list[int]
) -> None:
    publish(store, item_ids)
    keys = (
        "f", "escape", "less_than_sign", "greater_than_sign", "ctrl+shift+left", "ctrl+shift+right",
        "ctrl+f", "x", "ctrl+f", "escape", "apostrophe", "enter", "f", "backspace", "1", "enter",
    )  # fmt: skip

    async def titles_and_back(pilot: object) -> None:
        from hnbooks.tui.titles import TitlesScreen

        app = pilot.app  # type: ignore[attr-defined]
        await pilot.press("t")  # type: ignore[attr-defined]
        await settle(pilot)  # type: ignore[arg-type]
        assert isinstance(app.screen, TitlesScreen)
        await pilot.press("f", "escape")  # type: ignore[attr-defined]
        await settle(pilot)  # type: ignore[arg-type]
        assert isinstance(app.screen, AnnotateScreen)

    run(db_path, keys, titles_and_back, ("x",))
    # Nothing but the x at the end answered (the x in the find box was typed, not an answer).
    assert [answer for answer, _ in spans_answered(store)] == ["reject"]


def test_a_double_click_on_a_wrapped_row_marks_the_word_drawn_there(
    db_path: Path, store: Store, item_ids: list[int]
) -> None:
    # 40 columns: the text box is 36 wide, so "Motorcycle Maintenance? Worth it?" is the second
    # row (Motorcycle Maintenance lies in a candidate; Worth does not).
    publish(store, [item_ids[3]])

    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(40, 24)) as pilot:
            await settle(pilot)
            assert app.screen.query_one("#item-text").content_size.width == 36
            await pilot.double_click("#item-text", offset=(25, 1))
            await pilot.press("a")
            await settle(pilot)

    asyncio.run(scenario())
    start = TEXTS[3].index("Worth")
    assert spans_answered(store) == [("accept", ((start, start + len("Worth"), "BOOK"),))]
