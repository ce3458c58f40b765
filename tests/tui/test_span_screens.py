"""Spans outside the annotate screen, through Pilot: edited in review, marked on search hits (and
undone), and the titles screen listing what was marked, from which an item opens."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.text import Text
from textual.widgets import Static

from hnbooks.store.db import Store
from hnbooks.store.records import NewAnswer, Span
from hnbooks.tui.render import label_style
from hnbooks.tui.review import ReviewScreen
from hnbooks.tui.search import SearchScreen
from hnbooks.tui.span_editor import SpanEditScreen
from hnbooks.tui.titles import TitlesScreen
from tests.tui.conftest import TEXTS, make_app, screen_text, settle, wait_until

HOBBIT = Span(16, 26, "BOOK")  # "The Hobbit" in TEXTS[0]


def spans_in_force(store: Store, item_id: int) -> list[tuple[str, tuple[Span, ...], str | None]]:
    return [(a.answer, a.spans, a.strategy) for a in store.answers_of_item(item_id, "ann")]


def test_review_edits_an_answers_spans_as_a_new_row(
    db_path: Path, store: Store, batch: int, item_ids: list[int]
) -> None:
    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("tab", "a")  # The Hobbit, kept by a
            await settle(pilot)
            await pilot.press("r")
            await settle(pilot)
            assert isinstance(app.screen, ReviewScreen)
            await pilot.press("e")
            await settle(pilot)
            assert isinstance(app.screen, SpanEditScreen)
            # Drop the span (d on it), mark "last winter" instead: jump to last, then to winter.
            marker = app.screen.marker
            assert marker is not None
            await pilot.press("tab", "d", "escape")
            assert marker.spans == []
            await pilot.press("f")
            await pilot.press(*dict(marker.jump_targets())[5])  # last
            await pilot.press(*dict(marker.jump_targets())[6])  # winter
            await pilot.press("ctrl+s")
            await settle(pilot)
            assert isinstance(app.screen, ReviewScreen)

    asyncio.run(scenario())
    assert spans_in_force(store, item_ids[0]) == [("accept", (Span(28, 39, "BOOK"),), "top")]


def test_review_edit_left_with_q_writes_nothing(
    db_path: Path, store: Store, batch: int, item_ids: list[int]
) -> None:
    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("tab", "enter", "a")
            await settle(pilot)
            await pilot.press("r")
            await settle(pilot)
            await pilot.press("e", "right", "enter", "q")
            await settle(pilot)
            assert isinstance(app.screen, ReviewScreen)

    asyncio.run(scenario())
    assert spans_in_force(store, item_ids[0]) == [("accept", (HOBBIT,), "top")]


def marked_in_hit_pane(screen: object) -> list[tuple[int, int]]:
    """Where the search screen's hit pane draws a span in the BOOK label's colour."""
    assert isinstance(screen, SearchScreen)
    content = screen.query_one("#hit-text", Static).content
    assert isinstance(content, Text)
    style = label_style(screen.session.labels, "BOOK")
    return [(s.start, s.end) for s in content.spans if str(s.style) == style]


def test_search_hits_are_marked_and_undone(
    db_path: Path, store: Store, item_ids: list[int]
) -> None:
    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("slash", *"hobbit", "enter")
            await settle(pilot)
            assert isinstance(app.screen, SearchScreen)
            await pilot.press("e")
            assert isinstance(app.screen, SpanEditScreen)
            # The candidate picked with tab is kept by ctrl+s without ⏎.
            await pilot.press("tab", "ctrl+s")
            await settle(pilot)
            assert isinstance(app.screen, SearchScreen)
            assert "✓ I finally read" in screen_text(app)
            assert spans_in_force(store, item_ids[0]) == [("accept", (HOBBIT,), "search")]
            # The answer moved on to the next hit; back on this one, its span is drawn.
            assert marked_in_hit_pane(app.screen) == []
            await pilot.press("up")
            await settle(pilot)
            assert marked_in_hit_pane(app.screen) == [(HOBBIT.start, HOBBIT.end)]
            await pilot.press("u")
            await settle(pilot)
            assert "undid accept" in screen_text(app)
            assert "✓ I finally read" not in screen_text(app)
            assert marked_in_hit_pane(app.screen) == []
            # A new search shows the spans of the answers in force on its hits.
            await pilot.press("e", "tab", "ctrl+s")
            await settle(pilot)
            await pilot.press("slash", *"hobbit", "enter")
            await settle(pilot)
            assert marked_in_hit_pane(app.screen) == [(HOBBIT.start, HOBBIT.end)]
            await pilot.press("u")
            await settle(pilot)

    asyncio.run(scenario())
    assert spans_in_force(store, item_ids[0]) == []


def test_titles_screen_lists_titles_and_opens_an_item(
    db_path: Path, store: Store, item_ids: list[int]
) -> None:
    for n, marked in ((0, "The Hobbit"), (5, "The_Hobbit"), (1, "Dune")):
        start = TEXTS[n].index(marked)
        span = Span(start, start + len(marked), "BOOK")
        store.record_answer(item_ids[n], NewAnswer(annotator="ann", answer="accept", spans=(span,)))

    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            await pilot.press("t")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, TitlesScreen)
            # "The Hobbit" and "The_Hobbit" are two titles (an underscore is no space).
            assert "3 titles" in screen_text(app)
            assert sorted(t.title for t in screen.titles) == ["Dune", "The Hobbit", "The_Hobbit"]
            hobbit_row = next(n for n, t in enumerate(screen.titles) if t.title == "The Hobbit")
            for _ in range(hobbit_row):
                await pilot.press("down")
            await pilot.press("enter")  # the title: its items
            await pilot.press("enter")  # the item: opens in the span editor
            await settle(pilot)
            editor = app.screen
            assert isinstance(editor, SpanEditScreen) and editor.marker is not None
            assert editor.marker.spans == [HOBBIT]
            # Add "last winter" by find, keep: a new accept with both spans.
            await pilot.press("ctrl+f", *"last w", "enter", "ctrl+s")
            await settle(pilot)
            assert isinstance(app.screen, TitlesScreen)
            await wait_until(pilot, lambda: "4 titles" in screen_text(app))
            await pilot.press("escape")
            await settle(pilot)

    asyncio.run(scenario())
    assert spans_in_force(store, item_ids[0]) == [
        ("accept", (HOBBIT, Span(28, 39, "BOOK")), "titles")
    ]
