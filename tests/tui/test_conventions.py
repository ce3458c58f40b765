"""CLI and Textual conventions of the TUI: labels on keys, q in sub-screens, the command palette,
a remembered theme, and the screens at 80×24."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from textual.command import CommandPalette
from textual.pilot import Pilot

from hnbooks.cli import cli
from hnbooks.store.db import Store
from hnbooks.tui.annotate import AnnotateScreen
from hnbooks.tui.cli import main as tui_main
from tests.tui.conftest import make_app, screen_text, settle, wait_until


def run_async(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test body in its own event loop (pytest sees a plain test with its fixtures)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def test_tui_version_and_short_help() -> None:
    runner = CliRunner()
    version = runner.invoke(tui_main, ["--version"])
    assert version.exit_code == 0, version.output
    assert "hnbooks-tui, version" in version.output
    short_help = runner.invoke(tui_main, ["-h"])
    assert short_help.exit_code == 0, short_help.output
    assert "Examples:" in short_help.output and "hnbooks-tui --db books.db" in short_help.output


@run_async
async def test_label_added_by_the_cli_is_offered_on_a_key(
    db_path: Path, store: Store, batch: int
) -> None:
    result = CliRunner().invoke(cli, ["labels", "add", "MOVIE", "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    app = make_app(db_path)
    async with app.run_test(size=(100, 60)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AnnotateScreen)
        await pilot.press("2")
        assert screen.current_label == "MOVIE"
        assert "label  MOVIE " in screen_text(app)
        await pilot.press("question_mark")
        await pilot.pause()
        help_shown = screen_text(app)
        assert "Label MOVIE" in help_shown and "Label BOOK" in help_shown
        # A key with no label behind it is left out of the help, and does nothing.
        assert "Label 3" not in help_shown
        await pilot.press("escape")
        await pilot.press("3")
        assert screen.current_label == "MOVIE"


@run_async
async def test_q_in_a_sub_screen_goes_back_to_annotate(
    db_path: Path, store: Store, batch: int
) -> None:
    app = make_app(db_path)
    async with app.run_test() as pilot:
        await settle(pilot)
        for key in ("r", "s", "question_mark"):
            await pilot.press(key)
            await settle(pilot)
            assert not isinstance(app.screen, AnnotateScreen)
            await pilot.press("q")
            await settle(pilot)
            assert isinstance(app.screen, AnnotateScreen), key
            assert app.is_running
        # Search: the query box takes `q` as a letter; esc leaves it, then q goes back.
        await pilot.press("slash")
        await settle(pilot)
        await pilot.press("q")
        assert not isinstance(app.screen, AnnotateScreen)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, AnnotateScreen)
        assert app.is_running
        await pilot.press("q")
        await pilot.pause()
    assert not app.is_running


@run_async
async def test_command_palette_lists_the_app_commands(
    db_path: Path, store: Store, batch: int
) -> None:
    app = make_app(db_path)
    async with app.run_test() as pilot:
        await settle(pilot)
        screen = app.screen
        titles = [command.title for command in app.get_system_commands(screen)]
        for title in ("Accept", "Reject", "Undo", "Search", "Stats", "Request a batch", "Theme"):
            assert title in titles
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"reject")
        await wait_until(pilot, lambda: "Reject the item on screen" in screen_text(app))
        await pilot.press("down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, AnnotateScreen)
    answers = store.current_answers()
    assert [a.answer for a in answers] == ["reject"]


@run_async
async def test_a_chosen_theme_is_remembered_by_the_next_session(
    db_path: Path, store: Store, batch: int, tmp_path: Path
) -> None:
    preferences = tmp_path / "config" / "tui.json"
    first = make_app(db_path, preferences_path=preferences)
    async with first.run_test() as pilot:
        await settle(pilot)
        assert first.theme != "nord"
        first.theme = "nord"
        await pilot.pause()
    assert json.loads(preferences.read_text())["theme"] == "nord"
    second = make_app(db_path, preferences_path=preferences)
    async with second.run_test() as pilot:
        await settle(pilot)
        assert second.theme == "nord"


@run_async
async def test_a_theme_chosen_in_the_palette_is_remembered(
    db_path: Path, store: Store, batch: int, tmp_path: Path
) -> None:
    preferences = tmp_path / "tui.json"
    app = make_app(db_path, preferences_path=preferences)
    async with app.run_test() as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.press(*"theme")
        await wait_until(pilot, lambda: "Change the current theme" in screen_text(app))
        await pilot.press("down", "enter")
        await pilot.pause()
        await pilot.press(*"gruvbox")
        await wait_until(pilot, lambda: "gruvbox" in screen_text(app))
        await pilot.press("down", "enter")
        await settle(pilot)
        assert app.theme == "gruvbox"
    assert json.loads(preferences.read_text())["theme"] == "gruvbox"


def test_textual_reads_esc_then_a_letter_as_one_alt_key() -> None:
    """Why the app splits alt+letter: Textual's parser joins Esc and a key typed within ESCDELAY."""
    from textual._xterm_parser import XTermParser

    parser = XTermParser()
    keys = [event.key for event in [*parser.feed("\x1bx"), *parser.feed("")]]
    assert keys == ["alt+x"]


async def type_from_terminal(pilot: Pilot[None], data: str) -> None:
    """Send `data` as a terminal would: through Textual's own input parser, into the app."""
    from textual._xterm_parser import XTermParser

    parser = XTermParser()
    for event in [*parser.feed(data), *parser.feed("")]:
        event.set_sender(pilot.app)
        pilot.app.post_message(event)
    await pilot.pause()


@run_async
async def test_esc_then_a_key_quickly_acts_as_both(db_path: Path, store: Store, batch: int) -> None:
    app = make_app(db_path)
    async with app.run_test() as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AnnotateScreen)
        await pilot.press("tab")
        assert screen.marker is not None and screen.marker.selection() is not None
        item_on_screen = screen.shown
        await type_from_terminal(pilot, "\x1bx")  # Esc (clear the selection), then x (reject)
        await settle(pilot)
        assert screen.shown is not item_on_screen
        # From a sub-screen: Esc goes back, then the key acts on the annotate screen.
        await pilot.press("r")
        await settle(pilot)
        await type_from_terminal(pilot, "\x1ba")
        await settle(pilot)
        assert isinstance(app.screen, AnnotateScreen)
    assert sorted(a.answer for a in store.current_answers()) == ["accept", "reject"]
    assert all(not a.spans for a in store.current_answers())
