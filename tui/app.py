"""`AnnotateApp`: the Textual application behind `hnbooks-tui`.

The app is the session (`AnnotationSession`): it owns the store connection, the annotator's name,
the labels and the one `AnswerWriter`, and it makes the screens. Every answer and undo goes through
`submit_write`; the writer reports each write once, to the app, which counts it in the tally and
hands the report on to the screen that asked for the write.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import on
from textual.app import App
from textual.binding import Binding
from textual.reactive import var
from textual.screen import Screen

from hnbooks.store.db import Store, StoreError
from hnbooks.tui.annotate import HELP_NOTE, AnnotateScreen
from hnbooks.tui.messages import AnswerSaved, AnswerUndone, WriteFailed, WriteReport
from hnbooks.tui.session import QUEUE_KEY_PREFIX, AnswerToWrite, SessionTally, WriteRequest
from hnbooks.tui.writer import AnswerWriter


class AnnotateApp(App[None]):
    """Keyboard annotation over one hnbooks database, as one annotator."""

    CSS_PATH = "app.tcss"
    TITLE = "hnbooks"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("ctrl+q", "quit", "Quit", id="quit-anywhere", show=False, priority=True),
    ]

    tally: var[SessionTally] = var(SessionTally(started_at=0.0), init=False)
    """This session's answers and positives (replaced, never mutated, so screens can watch it)."""

    def __init__(
        self,
        db_path: str | Path,
        annotator: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        poll_interval_s: float = 1.0,
    ) -> None:
        super().__init__()
        if not annotator:
            raise StoreError("an annotator name is needed (--annotator NAME)")
        self.store = Store(db_path, create=False)
        try:
            self.labels = self.store.labels()
            default_label = self.store.default_label()
        except StoreError:
            self.store.close()
            raise
        self.annotator = annotator
        self.clock = clock
        self.poll_interval_s = poll_interval_s
        self.set_reactive(AnnotateApp.tally, SessionTally(started_at=clock()))
        self.writer = AnswerWriter(self.store, annotator, default_label, self.post_message)
        self._items_answered_elsewhere: set[int] = set()
        # A fresh screen per visit (`push_screen(name)`): what a screen shows is read when it opens.
        self.screen_makers: dict[str, Callable[[], Screen[Any]]] = {
            "help": self.make_help_screen,
            "search": self.make_search_screen,
            "review": self.make_review_screen,
            "stats": self.make_stats_screen,
        }

    # -- screens ----------------------------------------------------------------------------------

    def get_default_screen(self) -> Screen[None]:
        return AnnotateScreen(self)

    def get_screen(self, screen: Screen[Any] | str, screen_class: Any = None) -> Any:
        maker = self.screen_makers.get(screen) if isinstance(screen, str) else None
        return super().get_screen(screen if maker is None else maker(), screen_class)

    # The other screens are imported when first opened: start-up only pays for the annotate screen.
    def make_search_screen(self) -> Screen[None]:
        from hnbooks.tui.search import SearchScreen

        return SearchScreen(self)

    def make_review_screen(self) -> Screen[None]:
        from hnbooks.tui.review import ReviewScreen

        return ReviewScreen(self)

    def make_stats_screen(self) -> Screen[None]:
        from hnbooks.tui.stats import StatsScreen

        return StatsScreen(self)

    def make_help_screen(self) -> Screen[None]:
        from hnbooks.tui.help import HelpScreen, HelpSection
        from hnbooks.tui.review import ReviewScreen
        from hnbooks.tui.search import SearchScreen
        from hnbooks.tui.stats import StatsScreen

        return HelpScreen(
            [
                HelpSection("Annotate", [*AnnotateScreen.BINDINGS, *self.BINDINGS], HELP_NOTE),
                HelpSection("Search  (/)", SearchScreen.BINDINGS),
                HelpSection("Review  (r)", ReviewScreen.BINDINGS),
                HelpSection("Stats  (s)", StatsScreen.BINDINGS),
            ]
        )

    # -- writing ----------------------------------------------------------------------------------

    @property
    def writes_in_flight(self) -> int:
        """Writes queued or being made."""
        return self.writer.in_flight

    def submit_write(self, request: WriteRequest) -> None:
        """Queue a write; it is made after every write queued before it, off the UI thread."""
        if isinstance(request, AnswerToWrite) and not request.client_key.startswith(
            QUEUE_KEY_PREFIX
        ):
            self._items_answered_elsewhere.add(request.item_id)
        self.writer.submit(request)

    def take_items_answered_elsewhere(self) -> set[int]:
        """Items answered on the search or review screen since the last call (the queue drops them)."""
        taken, self._items_answered_elsewhere = self._items_answered_elsewhere, set()
        return taken

    def hand_on(self, report: WriteReport) -> None:
        """Pass the writer's report to the screen that asked for the write."""
        reply_to = report.request.reply_to
        if reply_to is not None:
            reply_to.post_message(report)

    @on(AnswerSaved)
    def count_answer(self, event: AnswerSaved) -> None:
        self.hand_on(event)
        self.tally = self.tally.counted(event.answer_id, event.request.answer.answer)

    @on(AnswerUndone)
    def uncount_answer(self, event: AnswerUndone) -> None:
        self.hand_on(event)
        if event.answer is not None:
            self.tally = self.tally.uncounted(event.answer.id)

    @on(WriteFailed)
    def report_failed_write(self, event: WriteFailed) -> None:
        self.hand_on(event)
        self.notify(
            f"not saved: {event.error}",
            title="write failed",
            severity="error",
            timeout=10,
            markup=False,
        )

    async def wait_for_writes(self) -> None:
        """Return once every queued write is made (or has failed) and its report posted."""
        await self.writer.idle()

    async def action_quit(self) -> None:
        """Quit once every answer given is in the database."""
        if self.writes_in_flight:
            self.notify("saving the last answers…", timeout=2)
        await self.wait_for_writes()
        self.exit()

    def on_unmount(self) -> None:
        # The writer outlives the app's message loop: it makes every write still queued, then
        # closes the store.
        self.writer.close()
