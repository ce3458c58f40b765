"""Help, search, review and stats screens, the CLI, and the pure helpers they rest on."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from hnbooks.store.db import Store
from hnbooks.store.records import BatchEntry
from hnbooks.store.reports import BatchYieldReport, EstimateReport, RoundReport
from hnbooks.tui.annotate import AnnotateScreen, annotate_bindings
from hnbooks.tui.cli import main
from hnbooks.tui.help import HelpScreen, key_label
from hnbooks.tui.marking import SpanMarker
from hnbooks.tui.render import printable, wrapped_row
from hnbooks.tui.review import ReviewScreen
from hnbooks.tui.search import SearchScreen
from hnbooks.tui.stats import (
    format_counts,
    format_prevalence,
    format_recall,
    positives_per_strategy,
)
from tests.tui.conftest import TEXTS, insert_items, make_app, publish, screen_text, settle


def test_help_lists_every_annotate_binding(db_path: Path, batch: int) -> None:
    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(120, 60)) as pilot:
            await settle(pilot)
            await pilot.press("question_mark")
            await settle(pilot)
            assert isinstance(app.screen, HelpScreen)
            shown = screen_text(app)
            # The keys 1-9 are named after the database's labels (only BOOK here).
            for binding in annotate_bindings(app.labels):
                assert binding.description in shown  # type: ignore[union-attr]
            assert "Label BOOK" in shown and "Label 1" not in shown
            await pilot.press("j", "k", "question_mark")
            assert isinstance(app.screen, AnnotateScreen)

    asyncio.run(scenario())


def test_search_answers_in_place_with_strategy_search(
    db_path: Path, store: Store, item_ids: list[int]
) -> None:
    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("slash")
            assert isinstance(app.screen, SearchScreen)
            await pilot.press(*"hobbit", "enter")
            await settle(pilot)
            assert "2 hits for 'hobbit'" in screen_text(app)
            await pilot.press("a", "a", "x")  # a second a on the same hit writes nothing more
            await settle(pilot)
            assert "✓ I finally read" in screen_text(app)
            assert "✗ see https://www.goodreads.com" in screen_text(app)
            # Regex mode, a new query, an ignore.
            await pilot.press("ctrl+t", "slash", *"ctrl+a ctrl+k".split(), *"Post[a-z]+", "enter")
            await settle(pilot)
            assert " regex  1 hits" in screen_text(app)
            await pilot.press("space", "escape")
            await settle(pilot)
            assert isinstance(app.screen, AnnotateScreen)

    asyncio.run(scenario())
    saved = store.current_answers()
    assert [(store.item(a.item_id).text, a.answer, a.strategy, a.batch_id) for a in saved] == [
        (TEXTS[0], "accept", "search", None),
        (TEXTS[5], "reject", "search", None),
        (TEXTS[4], "ignore", "search", None),
    ]


def test_items_answered_in_search_leave_the_queue(
    db_path: Path, store: Store, item_ids: list[int]
) -> None:
    publish(store, item_ids[:2])

    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("slash", *"hobbit", "enter")
            await settle(pilot)
            await pilot.press("a", "escape")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, AnnotateScreen) and screen.shown is not None
            assert screen.shown.item.text == TEXTS[1]

    asyncio.run(scenario())


def test_review_changes_an_answer_as_a_new_row(db_path: Path, store: Store, batch: int) -> None:
    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("tab", "enter", "a", "x")
            await settle(pilot)
            await pilot.press("r")
            await settle(pilot)
            assert isinstance(app.screen, ReviewScreen)
            shown = screen_text(app)
            assert "reject  top" in shown and "accept  top" in shown
            await pilot.press("f", "f")  # answer filter: accept, then reject
            await settle(pilot)
            assert "answer: reject" in screen_text(app)
            assert "accept  top" not in screen_text(app)
            await pilot.press(
                "f",
                "f",
                "w",
                "t",
                "g",
                "g",
                "g",
                "g",
                "right_square_bracket",
                "left_square_bracket",
            )
            await settle(pilot)
            assert "who: all" in screen_text(app)
            assert "strategy: top" in screen_text(app)
            # The strategies are those of the answers in force: all, then top, then all again.
            await pilot.press("w", "t")
            await settle(pilot)
            assert "strategy: all" in screen_text(app)
            # Newest first: the reject of item 2, then the accept of item 1 (with its span).
            await pilot.press("down", "x")
            await settle(pilot)
            assert "reject  top" in screen_text(app)
            await pilot.press("escape")

    asyncio.run(scenario())
    current = [
        (store.item(a.item_id).text, a.answer, a.strategy, len(a.spans))
        for a in store.current_answers()
    ]
    assert current == [(TEXTS[1], "reject", "top", 0), (TEXTS[0], "reject", "top", 0)]
    # The accept is kept as history: three rows for two items.
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT answer FROM answers ORDER BY id").fetchall()
    assert [answer for (answer,) in rows] == ["accept", "reject", "reject"]


def test_stats_screen_shows_rounds_from_reports(
    db_path: Path, store: Store, item_ids: list[int]
) -> None:
    store.record_round(RoundReport(mode="seed", label="BOOK"))
    store.publish_batch(
        [BatchEntry(item_ids[0], "top", 0.9, 1)],
        source="score",
        round_report=RoundReport(
            mode="model",
            label="BOOK",
            answers=40,
            positives=5,
            last_batch=BatchYieldReport(1, {"top": 30, "random": 10}, {"top": 4, "random": 1}),
            prevalence=EstimateReport(0.0002, 0.0001, 0.0004, 50),
            recall=EstimateReport(0.4, 0.2, 0.7, 50),
        ),
    )

    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            await pilot.press("s")
            await settle(pilot)
            shown = screen_text(app)
            assert "2 rounds" in shown
            assert "top 13 random 10" in shown  # positives per 100 labels
            assert "1/5k (2.5k–10k)" in shown
            assert "40% (20–70)" in shown
            assert "positives per 100 labels" in shown
            await pilot.press("g", "escape")

    asyncio.run(scenario())


def test_report_values_are_formatted_and_absent_ones_shown_as_a_dash() -> None:
    assert format_prevalence(None) == "–"
    assert format_prevalence(EstimateReport()) == "–"
    assert format_prevalence(EstimateReport(0.0002)) == "1/5k"
    assert format_prevalence(EstimateReport(0.0002, 0.0001, 0.0004, 50)) == "1/5k (2.5k–10k)"
    assert format_prevalence(EstimateReport(0.0, 0.0, 0.001)) == "0"
    assert format_recall(None) == "–"
    assert format_recall(EstimateReport(0.5, 0.25, 0.75)) == "50% (25–75)"
    assert format_recall(EstimateReport(0.5, low=0.25)) == "50%"
    yielded = RoundReport(
        mode="model", label="BOOK", last_batch=BatchYieldReport(3, {"top": 9}, {"top": 3})
    )
    assert positives_per_strategy(yielded) == {"top": 3}
    assert positives_per_strategy(RoundReport(mode="seed", label="BOOK")) == {}
    assert format_counts({"top": 3, "random": 1, "other": 2}) == "top 3 random 1 other 2"
    assert format_counts({}) == "–"


def test_scroll_keys_move_a_long_text(db_path: Path, store: Store) -> None:
    long_text = (
        "\n".join(f"line {n} of a long comment" for n in range(60)) + ' and "Dune" at the end'
    )
    publish(store, insert_items(store, [long_text]))

    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert "line 0 of" in screen_text(app)
            await pilot.press("pagedown", "j", "down")
            assert "line 0 of" not in screen_text(app)
            await pilot.press("pageup", "k", "up")
            assert "line 0 of" in screen_text(app)
            await pilot.press("tab")  # the candidate at the end scrolls into view
            await settle(pilot)
            assert 'and "Dune" at the end' in screen_text(app)

    asyncio.run(scenario())


def test_cli_refuses_a_missing_database(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--db", str(tmp_path / "missing.db"), "--annotator", "ann"])
    assert result.exit_code == 1
    assert "no database here" in result.output


def test_cli_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    not_a_db = tmp_path / "notes.db"
    not_a_db.write_bytes(b"this is not sqlite" * 100)
    result = CliRunner().invoke(main, ["--db", str(not_a_db)], env={"USER": "ann"})
    assert result.exit_code == 1
    assert "not an hnbooks database" in result.output


def test_cli_reads_the_database_from_the_environment(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, [], env={"HNBOOKS_DB": str(tmp_path / "env.db"), "USER": "ann"}
    )
    assert result.exit_code == 1
    assert "env.db" in result.output


def test_printable_keeps_length_and_offsets() -> None:
    text = "a\x1b[31mb\x07\tc\r\n\x9b\u202ed é 😀"
    shown = printable(text)
    assert len(shown) == len(text)
    assert shown == "a␛[31mb␇ c \n··d é 😀"


@pytest.mark.parametrize(
    ("text", "offset", "width", "row"),
    [
        ("aaa bbb ccc", 8, 7, 1),
        ("aaa bbb ccc", 4, 7, 0),
        ("aaa\nbbb ccc ddd", 12, 7, 2),
        ("x" * 25, 21, 10, 2),
        ("", 0, 10, 0),
    ],
)
def test_wrapped_row(text: str, offset: int, width: int, row: int) -> None:
    assert wrapped_row(text, offset, width) == row


def test_span_marker_selection_and_spans() -> None:
    marker = SpanMarker(words=[(0, 1), (2, 5), (6, 9)], candidates=[(2, 9)])
    assert marker.selection() is None and marker.mark("BOOK") is None
    marker.move(1)
    marker.extend(1)
    assert marker.selection() == (0, 5)
    assert marker.cycle_candidate(1) and marker.selection() == (2, 9)
    marker.extend(-1)  # from a candidate: shrink it by a word
    assert marker.selection() == (2, 5)
    span = marker.mark("BOOK")
    assert span is not None and (span.start, span.end) == (2, 5)
    marker.move(1)
    marker.mark("AUTHOR")
    assert [(s.start, s.end, s.label) for s in marker.spans] == [(2, 5, "BOOK"), (6, 9, "AUTHOR")]
    assert [s.label for s in marker.delete_at_cursor()] == ["AUTHOR"]
    marker.clear_selection()
    assert marker.selection() is None


def test_key_labels() -> None:
    assert key_label("shift+left,H") == "shift+← H"
    assert key_label("question_mark") == "?"


def test_a_text_that_fits_until_a_resize_still_scrolls_after_it(
    db_path: Path, store: Store
) -> None:
    text = " ".join(f"word{n}" for n in range(300)) + ' and "Dune" at the end'
    publish(store, insert_items(store, [text]))

    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(160, 50)) as pilot:
            await settle(pilot)
            assert "at the end" in screen_text(app)
            await pilot.resize_terminal(60, 20)
            await settle(pilot)
            assert "at the end" not in screen_text(app)
            await pilot.press("tab")
            await settle(pilot)
            assert 'and "Dune" at the end' in screen_text(app)

    asyncio.run(scenario())
