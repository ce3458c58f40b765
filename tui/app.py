"""`AnnotateApp`: the Textual application behind `hnbooks-tui`.

The app is the session (`AnnotationSession`): it owns the store connection, the annotator's name,
the labels, the session id its claims are held under and the one `AnswerWriter`, and it makes the
screens. Every answer and undo goes through `submit_write`; the writer reports each write once, to
the app, which counts it in the tally and hands the report on to the screen that asked for the
write. Every `poll_interval_s` a worker reads the scorer's state, the feed mode and (when the
database changed) the annotator's progress; the writer reads the progress after its own writes.

In a terminal, SIGTERM and SIGHUP quit the app as `q` does (every answer given saved, the terminal
restored); ctrl+z suspends it until `fg`; and it quits when its terminal goes away.

Given a `scorer_command`, the app starts it as a child when no scorer holds the database, and
stops it on quit (`ScorerProcess`). `hnbooks-tui` passes `hnbooks-score --watch`; by default (as in
tests) no scorer is started.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from textual import events, on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.driver import Driver
from textual.reactive import var
from textual.screen import Screen
from textual.theme import Theme

from hnbooks.store.claims import CLAIM_TTL_S, new_session_id
from hnbooks.store.db import Store, StoreError
from hnbooks.store.progress import local_day_start
from hnbooks.store.records import AnnotatorProgress, FeedMode
from hnbooks.tui.annotate import HELP_NOTE, LABEL_KEYS, AnnotateScreen, annotate_bindings
from hnbooks.tui.messages import (
    AnsweredElsewhere,
    AnswerSaved,
    AnswerUndone,
    ProgressRead,
    StatusRead,
    WriteFailed,
    WriteReport,
)
from hnbooks.tui.preferences import read_preferences, write_preference
from hnbooks.tui.scorer_process import (
    STOP_TIMEOUT_S,
    ScorerProcess,
    ScorerStatus,
    scorer_log_path,
)
from hnbooks.tui.session import QUEUE_KEY_PREFIX, AnswerToWrite, SessionTally, WriteRequest
from hnbooks.tui.writer import AnswerWriter

ESCAPE_CHORD = re.compile(r"alt\+(shift\+)?([a-z0-9])")


def escape_chord_key(event: events.Key) -> events.Key | None:
    """The key pressed after Esc, for an alt+letter / alt+digit event; None for any other key."""
    match = ESCAPE_CHORD.fullmatch(event.key)
    if match is None:
        return None
    character = match[2].upper() if match[1] else match[2]
    return events.Key(character, character)


PROGRESS_REFRESH_S = 30.0
"""The progress is read again at least this often (the rate changes with time alone)."""
TERMINAL_CHECK_S = 0.5
"""How often the app looks whether its terminal is still there."""
QUIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class AnnotateApp(App[None]):
    """Keyboard annotation over one hnbooks database, as one annotator."""

    CSS_PATH = "app.tcss"
    TITLE = "hnbooks"
    # ctrl+p: the app's commands (below) beside Textual's own (theme, keys, screenshot, quit).
    COMMAND_PALETTE_BINDING = "ctrl+p"
    BINDINGS = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("ctrl+q", "quit", "Quit", id="quit-anywhere", show=False, priority=True),
        Binding(
            "ctrl+z",
            "suspend_process",
            "Suspend (fg resumes)",
            id="suspend",
            show=False,
            priority=True,
        ),
    ]

    tally: var[SessionTally] = var(SessionTally(started_at=0.0), init=False)
    """This session's answers and positives (replaced, never mutated, so screens can watch it)."""
    progress: var[AnnotatorProgress | None] = var(None, init=False)
    """The annotator's progress as the database holds it; None until first read."""
    scorer_status: var[ScorerStatus] = var(ScorerStatus(), init=False)
    feed: var[FeedMode] = var("overlap", init=False)

    def __init__(
        self,
        db_path: str | Path,
        annotator: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        poll_interval_s: float = 1.0,
        scorer_command: Sequence[str] | None = None,
        feed: FeedMode | None = None,
        claim_ttl_s: float = CLAIM_TTL_S,
        scorer_stop_timeout_s: float = STOP_TIMEOUT_S,
        preferences_path: Path | None = None,
    ) -> None:
        super().__init__()
        self.preferences_path = preferences_path
        """Where the chosen theme is remembered (tui/preferences.py); None: not remembered."""
        if not annotator:
            raise StoreError("an annotator name is needed (--annotator NAME)")
        self.store = Store(db_path, create=False)
        try:
            if feed is not None and self.store.feed_mode() != feed:
                self.store.set_feed_mode(feed)
            self.labels = self.store.labels()
            default_label = self.store.default_label()
            self.set_reactive(AnnotateApp.feed, self.store.feed_mode())
        except StoreError:
            self.store.close()
            raise
        self.annotator = annotator
        self.clock = clock
        self.poll_interval_s = poll_interval_s
        self.session_id = new_session_id()
        self.claim_ttl_s = claim_ttl_s
        self.closing = False
        self.set_reactive(AnnotateApp.tally, SessionTally(started_at=clock()))
        self.scorer: ScorerProcess | None = None
        """The scorer child to start when no scorer holds the database (None: never start one)."""
        if scorer_command is not None:
            self.scorer = ScorerProcess(
                scorer_command, scorer_log_path(db_path), stop_timeout_s=scorer_stop_timeout_s
            )
            self.set_reactive(
                AnnotateApp.scorer_status, ScorerStatus(log_name=self.scorer.log_path.name)
            )
        self._signals_handled: list[signal.Signals] = []
        """The quit signals this app handles (removed again on unmount)."""
        self._status_in_flight = False
        self._progress_data_version: int | None = None
        self._progress_read_at = float("-inf")
        self.writer = AnswerWriter(
            self.store,
            annotator,
            default_label,
            self.post_message,
            session=self.session_id,
            claim_ttl_s=claim_ttl_s,
            on_progress=lambda progress: self.post_message(ProgressRead(progress)),
        )
        self._items_answered_elsewhere: set[int] = set()
        # A fresh screen per visit (`push_screen(name)`): what a screen shows is read when it opens.
        self.screen_makers: dict[str, Callable[[], Screen[Any]]] = {
            "help": self.make_help_screen,
            "search": self.make_search_screen,
            "review": self.make_review_screen,
            "stats": self.make_stats_screen,
            "titles": self.make_titles_screen,
        }

    def get_driver_class(self) -> type[Driver]:
        driver_class = super().get_driver_class()
        # Only the plain Linux driver is replaced (not Windows', nor one named by TEXTUAL_DRIVER).
        if driver_class.__name__ != "LinuxDriver":
            return driver_class
        from hnbooks.tui.terminal import TerminalDriver

        return TerminalDriver

    def on_mount(self) -> None:
        self.restore_theme()
        self.theme_changed_signal.subscribe(self, self.remember_theme)
        self.set_interval(self.poll_interval_s, self.poll_status)
        self.poll_status()
        if self.scorer is not None:
            self.start_scorer_unless_one_runs()
        if not self.is_headless and threading.current_thread() is threading.main_thread():
            self.handle_quit_signals()
            self.set_interval(TERMINAL_CHECK_S, self.check_terminal)
            # Back from ctrl+z (`fg`): the terminal was the shell's meanwhile, so draw everything.
            self.app_resume_signal.subscribe(self, self.redraw_after_resume)

    # -- keys -------------------------------------------------------------------------------------

    async def on_event(self, event: events.Event) -> None:
        """Esc then a letter or digit typed within the escape delay arrive as one alt+key (Textual
        reads ESC as the start of an escape sequence for `ESCDELAY` ms); no key of this app uses
        alt, so it acts as both keys, in order: clear the selection or leave a screen, then the key."""
        if isinstance(event, events.Key) and not event.is_forwarded:
            pressed = escape_chord_key(event)
            if pressed is not None:
                await super().on_event(events.Key("escape", "\x1b"))
                await super().on_event(pressed)
                return
        await super().on_event(event)

    # -- theme and command palette ---------------------------------------------------------------

    def restore_theme(self) -> None:
        """Use the theme chosen in an earlier session (one no longer known is left aside)."""
        if self.preferences_path is None:
            return
        theme = read_preferences(self.preferences_path).get("theme")
        if theme is not None and theme in self.available_themes:
            self.theme = theme

    def remember_theme(self, theme: Theme) -> None:
        if self.preferences_path is None:
            return
        try:
            write_preference(self.preferences_path, "theme", theme.name)
        except OSError as error:
            self.notify(
                f"theme not remembered: {error}", severity="warning", timeout=5, markup=False
            )

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Textual's commands (theme, keys, screenshot, quit), and on the annotate screen its own:
        answers, undo, labels, the other screens and a round now."""
        yield from super().get_system_commands(screen)
        if not isinstance(screen, AnnotateScreen):
            return
        actions = [
            ("Accept", "Accept the item on screen (a)", "answer('accept')"),
            ("Reject", "Reject the item on screen (x)", "answer('reject')"),
            ("Ignore", "Ignore the item on screen (space)", "answer('ignore')"),
            ("Undo", "Take back the latest answer (u)", "undo"),
            ("Search", "Search every text and answer hits (/)", "search"),
            ("Review", "Past answers, newest first; change one (r)", "review"),
            ("Stats", "How the scoring rounds went (s)", "stats"),
            ("Titles", "The titles marked so far, and the items naming each (t)", "titles"),
            ("Jump", "Mark by hints: type the one at the span's start, then its end (f)", "jump"),
            ("Find in the text", "Move to a match as it is typed (ctrl+f)", "find"),
            ("Help", "Every key of every screen (?)", "help"),
            ("Request a batch", "Ask the scorer for a round now (n)", "score_now"),
            (
                "Parent / story",
                "Show or hide the parent comment or story title (p)",
                "toggle_context",
            ),
        ]
        for n, label in enumerate(self.labels[: len(LABEL_KEYS)]):
            actions.append(
                (
                    f"Label {label}",
                    f"Mark spans as {label} ({LABEL_KEYS[n]})",
                    f"choose_label({n})",
                )
            )
        for title, help_text, action in actions:
            yield SystemCommand(title, help_text, partial(screen.run_action, action))

    # -- signals and the terminal -----------------------------------------------------------------

    def handle_quit_signals(self) -> None:
        """SIGTERM and SIGHUP quit as `q` does: the answers given are saved, the terminal restored.
        A SIGHUP ignored when the app started (nohup) stays ignored; the terminal check covers a
        terminal that goes away then."""
        loop = asyncio.get_running_loop()
        for signum in QUIT_SIGNALS:
            if signal.getsignal(signum) is signal.SIG_IGN:
                continue
            loop.add_signal_handler(signum, self.quit_on_signal)
            self._signals_handled.append(signum)

    def redraw_after_resume(self, _app: object) -> None:
        self.refresh(layout=True)

    def quit_on_signal(self) -> None:
        if not self.closing:
            self.closing = True
            self.call_later(self.action_quit)

    def check_terminal(self) -> None:
        """Quit once the terminal is gone: nothing can be shown or typed any more, and Textual's
        input thread would spin on its end-of-file."""
        from hnbooks.tui.terminal import TerminalDriver, terminal_is_gone

        if self.closing:
            return
        driver = self._driver
        output_failed = isinstance(driver, TerminalDriver) and driver.output.failed
        if output_failed or terminal_is_gone(sys.__stdin__.fileno()):
            self.closing = True
            self.call_later(self.action_quit)

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

    def make_titles_screen(self) -> Screen[None]:
        from hnbooks.tui.titles import TitlesScreen

        return TitlesScreen(self)

    def make_help_screen(self) -> Screen[None]:
        from hnbooks.tui.help import HelpScreen, HelpSection
        from hnbooks.tui.review import ReviewScreen
        from hnbooks.tui.search import SearchScreen
        from hnbooks.tui.span_editor import SpanEditScreen
        from hnbooks.tui.stats import StatsScreen
        from hnbooks.tui.titles import TitlesScreen

        return HelpScreen(
            [
                HelpSection(
                    "Annotate", [*annotate_bindings(self.labels), *self.BINDINGS], HELP_NOTE
                ),
                HelpSection("Search  (/)", SearchScreen.BINDINGS),
                HelpSection("Review  (r)", ReviewScreen.BINDINGS),
                HelpSection("Stats  (s)", StatsScreen.BINDINGS),
                HelpSection("Titles  (t)", TitlesScreen.BINDINGS),
                HelpSection(
                    "Mark spans  (e in review and search, ⏎ on a title's item)",
                    SpanEditScreen.BINDINGS,
                ),
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

    @on(AnsweredElsewhere)
    def skip_answered_elsewhere(self, event: AnsweredElsewhere) -> None:
        self.hand_on(event)

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
        """Quit once every answer given is in the database (and the scorer it started stopped)."""
        self.closing = True
        if self.writes_in_flight:
            self.notify("saving the last answers…", timeout=2)
        await self.wait_for_writes()
        if self.scorer is not None and self.scorer.state == "running":
            self.notify("stopping the scorer…", timeout=5)
            await asyncio.to_thread(self.scorer.stop)
        self.exit()

    def on_unmount(self) -> None:
        self.closing = True
        loop = asyncio.get_running_loop()
        for signum in self._signals_handled:
            loop.remove_signal_handler(signum)
        # The writer outlives the app's message loop: it makes every write still queued, releases
        # the session's claims, then closes the store.
        self.writer.close()
        self.stop_scorer()

    def stop_scorer(self) -> None:
        """Stop the scorer this session started, if it did (waits for it; idempotent)."""
        if self.scorer is not None:
            self.scorer.stop()

    # -- progress and the scorer ------------------------------------------------------------------

    def poll_status(self) -> None:
        """Every poll interval: read the scorer's state (and the progress when it may have changed)."""
        if not self._status_in_flight and not self.closing:
            self._status_in_flight = True
            self.read_status()

    @work(thread=True, group="status", exit_on_error=False)
    def read_status(self) -> None:
        scorer = self.scorer
        child = scorer.state if scorer is not None else "none"
        log_name = scorer.log_path.name if scorer is not None else None
        progress: AnnotatorProgress | None = None
        feed = self.feed
        try:
            lease = self.store.scorer_lease()
            feed = self.store.feed_mode()
            data_version = self.store.data_version()
            now = time.monotonic()
            if (
                data_version != self._progress_data_version
                or now - self._progress_read_at >= PROGRESS_REFRESH_S
            ):
                progress = self.store.annotator_progress(
                    self.annotator, day_start=local_day_start(time.time())
                )
                self._progress_data_version = data_version
                self._progress_read_at = now
            status = ScorerStatus(lease=lease, child=child, log_name=log_name)
        except Exception as error:  # noqa: BLE001 - the header says so; the next poll reads again
            status = ScorerStatus(child=child, log_name=log_name, error=str(error))
        if scorer is not None and scorer.start_error is not None:
            status = ScorerStatus(
                lease=status.lease, child="failed", log_name=log_name, error=scorer.start_error
            )
        self.post_message(StatusRead(status, feed, progress))

    @on(StatusRead)
    def take_status(self, event: StatusRead) -> None:
        self._status_in_flight = False
        self.scorer_status = event.scorer
        self.feed = event.feed
        if event.progress is not None:
            self.take_progress_reading(event.progress)

    @on(ProgressRead)
    def take_progress(self, event: ProgressRead) -> None:
        self.take_progress_reading(event.progress)

    def take_progress_reading(self, progress: AnnotatorProgress) -> None:
        """Keep the later of two readings (the writer's and the poll's may arrive out of order)."""
        if self.progress is None or progress.read_at >= self.progress.read_at:
            self.progress = progress

    @work(thread=True, group="scorer", exit_on_error=False)
    def start_scorer_unless_one_runs(self) -> None:
        """Start the scorer child when no live scorer holds the database."""
        try:
            lease = self.store.scorer_lease()
        except StoreError:
            lease = None  # the child will say what is wrong with the database in its log
        if lease is not None and lease.held:
            return
        # Started from the UI (main) thread: the child's death signal follows the thread that forks.
        self.call_from_thread(self.start_scorer)

    def start_scorer(self) -> None:
        if self.scorer is None or self.closing:
            return
        self.scorer.start()
        self.poll_status()
