"""The annotate screen: one item at a time from the published batches, answered and marked by keyboard.

Items are fetched ahead (`PREFETCH_COUNT`) by a thread worker. An answering key press hands the
answer to the writer thread and the next (already fetched) item shows the moment the commit lands —
a millisecond or so — so what the screen moved past is always on disk. Keys pressed during that
commit wait and act in order. When the queue is empty the screen says so and checks every
`poll_interval_s` whether another connection (the scorer) published a batch.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from hnbooks.store.db import StoreError
from hnbooks.tui.app import AnnotateApp, AnswerSaved, AnswerUndone, WriteFailed
from hnbooks.tui.item_text import ItemText
from hnbooks.tui.marking import SpanMarker
from hnbooks.tui.render import item_text, label_style, one_line, wrapped_row
from hnbooks.tui.session import (
    PREFETCH_COUNT,
    QUEUE_KEY_PREFIX,
    AnswerToWrite,
    SessionTally,
    ShownItem,
    UndoToWrite,
    shown_from_queue,
)

LABEL_KEYS = "123456789"
# Actions about the item on screen: hidden from the footer (and inert) while the queue is empty.
ITEM_ACTIONS = frozenset(
    [
        "answer",
        "mark",
        "candidate",
        "move",
        "extend",
        "delete_span",
        "clear_selection",
        "toggle_context",
    ]
)


@dataclass
class ItemsFetched(Message, bubble=False):
    """Items of the queue, ready to show, in queue order."""

    items: tuple[ShownItem, ...]
    data_version: int
    """The database's data_version read before the queue was, to tell later whether it changed."""
    exhausted: bool
    """Fewer items than asked for were left: the queue is (for now) empty beyond these."""


@dataclass
class FetchFailed(Message, bubble=False):
    """Reading the queue failed; `error` says why."""

    error: str


class AnnotateScreen(Screen[None]):
    """Answer and mark the items of the published batches."""

    AUTO_FOCUS = None
    BINDINGS = [
        Binding("a", "answer('accept')", "Accept", id="accept"),
        Binding("x", "answer('reject')", "Reject", id="reject"),
        Binding("space", "answer('ignore')", "Ignore", id="ignore", key_display="space"),
        Binding("u", "undo", "Undo", id="undo"),
        Binding("backspace", "undo", "Undo", id="undo-backspace", show=False),
        Binding("enter", "mark", "Mark", id="mark", key_display="⏎"),
        Binding("tab", "candidate(1)", "Next candidate", id="next-candidate", show=False),
        Binding(
            "shift+tab", "candidate(-1)", "Previous candidate", id="previous-candidate", show=False
        ),
        Binding("left,h", "move(-1)", "Word left", id="word-left", show=False),
        Binding("right,l", "move(1)", "Word right", id="word-right", show=False),
        Binding(
            "shift+left,H", "extend(-1)", "Extend selection left", id="extend-left", show=False
        ),
        Binding(
            "shift+right,L", "extend(1)", "Extend selection right", id="extend-right", show=False
        ),
        Binding("d", "delete_span", "Delete span under cursor", id="delete-span", show=False),
        Binding(
            "escape", "clear_selection", "Clear the selection", id="clear-selection", show=False
        ),
        *[
            Binding(key, f"choose_label({n})", f"Label {key}", id=f"label-{key}", show=False)
            for n, key in enumerate(LABEL_KEYS)
        ],
        Binding("p", "toggle_context", "Parent / story", id="context", show=False),
        Binding("up,k", "scroll(-1)", "Scroll up", id="scroll-up", show=False),
        Binding("down,j", "scroll(1)", "Scroll down", id="scroll-down", show=False),
        Binding("pageup", "page(-1)", "Page up", id="page-up", show=False),
        Binding("pagedown", "page(1)", "Page down", id="page-down", show=False),
        Binding("slash", "search", "Search", id="search", key_display="/"),
        Binding("r", "review", "Review", id="review", show=False),
        Binding("s", "stats", "Stats", id="stats", show=False),
        Binding("question_mark", "help", "Help", id="help", key_display="?"),
    ]

    current_label: var[str] = var("BOOK")
    """The label `enter` gives a marked span (chosen with 1-9)."""
    show_context: var[bool] = var(False)
    """Whether the parent comment / story title panel is open."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: ShownItem | None = None
        """The item on screen, or None while the queue is empty."""
        self.marker: SpanMarker | None = None
        self.upcoming: deque[ShownItem] = deque()
        """Items fetched ahead, next first."""
        self.pending_answers: dict[str, ShownItem] = {}
        """Answers given but not yet committed, by client key."""
        self.write_in_flight = False
        """An answer or undo is being committed; the screen moves on only once it is."""
        self.keys_waiting: deque[str | None] = deque()
        """Answers (and undos, None) pressed meanwhile: they are meant for the item the commit will
        show, so they wait for it instead of acting on the item still on screen."""
        self.queue_exhausted = False
        self.fetch_in_flight = False
        self.queue_read = False
        """Whether the queue has been read once (until then the screen says it is loading)."""
        self.seen_data_version: int | None = None

    @property
    def annotate_app(self) -> AnnotateApp:
        assert isinstance(self.app, AnnotateApp)
        return self.app

    def compose(self) -> ComposeResult:
        with Vertical(id="top"):
            yield Static(id="why")
            yield Static(id="progress")
        yield Static(id="context")
        with VerticalScroll(id="text-scroll", can_focus=False):
            yield ItemText(id="item-text")
            yield Static(id="waiting")
        yield Static(id="marking")
        yield Footer()

    def on_mount(self) -> None:
        self.current_label = self.annotate_app.labels[0]
        self.watch(self.app, "tally", self.render_progress)
        self.set_interval(self.annotate_app.poll_interval_s, self.poll_for_items)
        self.add_class("-waiting")
        self.show(None)
        self.query_one("#waiting", Static).update("Loading the queue…")
        self.request_items()

    # -- the queue --------------------------------------------------------------------------------

    def request_items(self, *, only_if_changed: bool = False) -> None:
        """Top up the items fetched ahead; one fetch at a time, the next one asked for when it ends."""
        if self.fetch_in_flight:
            return
        wanted = PREFETCH_COUNT + (1 if self.shown is None else 0) - len(self.upcoming)
        if wanted <= 0:
            return
        self.fetch_in_flight = True
        self.fetch_items(self.known_item_ids(), wanted, only_if_changed, self.seen_data_version)

    def known_item_ids(self) -> frozenset[int]:
        """Items on screen, fetched ahead or answered and not yet committed: never fetched again."""
        ids = {item.item_id for item in self.upcoming}
        ids.update(item.item_id for item in self.pending_answers.values())
        if self.shown is not None:
            ids.add(self.shown.item_id)
        return frozenset(ids)

    # Not exclusive: a cancelled fetch would have to start over, and under fast key presses the
    # queue could run dry. `fetch_in_flight` keeps it to one at a time instead.
    @work(thread=True, group="fetch", exit_on_error=False)
    def fetch_items(
        self,
        skip_item_ids: frozenset[int],
        wanted: int,
        only_if_changed: bool,
        seen_data_version: int | None,
    ) -> None:
        app = self.annotate_app
        try:
            data_version = app.store.data_version()
            if only_if_changed and data_version == seen_data_version:
                self.post_message(ItemsFetched((), data_version, exhausted=True))
                return
            skip = set(skip_item_ids)
            items: list[ShownItem] = []
            while len(items) < wanted and not get_current_worker().is_cancelled:
                queued = app.store.next_queued_item(app.annotator, skip_item_ids=skip)
                if queued is None:
                    break
                skip.add(queued.item.id)
                items.append(shown_from_queue(app.store, queued))
            self.post_message(ItemsFetched(tuple(items), data_version, len(items) < wanted))
        except StoreError as error:
            self.post_message(FetchFailed(str(error)))

    @on(ItemsFetched)
    def take_items(self, event: ItemsFetched) -> None:
        self.fetch_in_flight = False
        self.seen_data_version = event.data_version
        self.queue_exhausted = event.exhausted
        known = self.known_item_ids()
        self.upcoming.extend(item for item in event.items if item.item_id not in known)
        if self.shown is None and self.upcoming:
            self.show(self.upcoming.popleft())
        elif self.shown is None and not self.queue_read:
            self.show(None)  # from "loading" to "nothing left"
        self.queue_read = True
        if not event.exhausted:
            self.request_items()

    @on(FetchFailed)
    def report_fetch_failure(self, event: FetchFailed) -> None:
        self.fetch_in_flight = False
        self.queue_exhausted = True
        self.seen_data_version = None  # the next poll reads the queue again
        self.notify(
            event.error,
            title="could not read the queue",
            severity="error",
            timeout=10,
            markup=False,
        )

    def poll_for_items(self) -> None:
        """Every poll interval while the queue is empty: read it again if the database changed."""
        if self.queue_exhausted and not self.fetch_in_flight:
            self.request_items(only_if_changed=True)

    # -- showing ----------------------------------------------------------------------------------

    def show(self, shown: ShownItem | None) -> None:
        """Put `shown` on screen (None: the queue is empty) with a fresh marking state."""
        was_waiting = self.shown is None
        self.shown = shown
        if was_waiting != (shown is None):
            self.set_class(shown is None, "-waiting")
            self.refresh_bindings()
        if shown is None:
            self.marker = None
            self.query_one("#waiting", Static).update(self.waiting_message())
        else:
            self.marker = SpanMarker(
                shown.words,
                [(c.start, c.end) for c in shown.candidates],
                spans=list(shown.spans),
            )
            scroller = self.query_one("#text-scroll", VerticalScroll)
            if scroller.scroll_y:
                scroller.scroll_home(animate=False)
        self.render_item()
        self.render_marking()
        self.render_why()
        self.render_progress()
        self.render_context()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in ITEM_ACTIONS and self.shown is None)

    def on_screen_resume(self) -> None:
        """Back from search or review: drop queued items answered there meanwhile."""
        answered = self.annotate_app.take_items_answered_elsewhere()
        if not answered:
            return
        self.upcoming = deque(item for item in self.upcoming if item.item_id not in answered)
        if self.shown is not None and self.shown.item_id in answered:
            self.show(self.upcoming.popleft() if self.upcoming else None)
        self.request_items()

    def waiting_message(self) -> Text:
        app = self.annotate_app
        return Text.assemble(
            ("Nothing left to annotate", "bold"),
            f" for {one_line(app.annotator, 40)}: every published batch is done.\n\n",
            "Watching for the next batch (checked every "
            f"{app.poll_interval_s:g} s); it shows here as soon as `hnbooks-score` or "
            "`hnbooks seed` publishes one.\n\n",
            ("/", "bold"),
            " search   ",
            ("r", "bold"),
            " review   ",
            ("s", "bold"),
            " stats   ",
            ("q", "bold"),
            " quit",
        )

    def render_item(self) -> None:
        text_widget = self.query_one("#item-text", ItemText)
        if self.shown is None or self.marker is None:
            text_widget.show_text(Text(), "")
            return
        styled = item_text(
            self.shown.display_text,
            candidates=self.marker.candidates,
            spans=self.marker.spans,
            labels=self.annotate_app.labels,
            selection=self.marker.selection(),
        )
        text_widget.show_text(styled, self.shown.display_text)

    def render_why(self) -> None:
        shown = self.shown
        why = Text(no_wrap=True, overflow="ellipsis")
        if shown is None:
            why.append("hnbooks", "bold")
            why.append(f" · {one_line(Path(self.annotate_app.store.path).name, 60)}")
        else:
            why.append(f"{one_line(shown.label, 20)}? ", "bold")
            if shown.batch_id is not None:
                why.append(f"batch {shown.batch_id}")
                if shown.position is not None and shown.batch_size:
                    why.append(f" · item {shown.position + 1}/{shown.batch_size}")
                why.append(" · ")
            why.append(one_line(shown.strategy, 20), "bold")
            if shown.score is not None:
                why.append(f" · score {shown.score:.3f}")
            if shown.rank is not None:
                why.append(f" · rank {shown.rank}")
            why.append(f" · {one_line(shown.source_id, 30)}")
            if shown.context:
                why.append(" · p parent", "dim")
        self.query_one("#why", Static).update(why, layout=False)

    def render_progress(self, tally: SessionTally | None = None) -> None:
        app = self.annotate_app
        tally = app.tally if tally is None else tally
        progress = Text(no_wrap=True, overflow="ellipsis")
        progress.append(f"{tally.answers} answered", "bold")
        progress.append(f" · {tally.positives} positive · {tally.rate_per_hour(app.clock()):.0f}/h")
        progress.append(" · label ")
        progress.append(
            f" {one_line(self.current_label, 20)} ",
            label_style(app.labels, self.current_label),
        )
        if len(app.labels) > 1:
            progress.append(
                f" ({app.labels.index(self.current_label) + 1}-{len(app.labels)})", "dim"
            )
        saving = len(self.pending_answers)
        if saving:
            progress.append(f" · saving {saving}", "dim")
        self.query_one("#progress", Static).update(progress, layout=False)

    def render_context(self) -> None:
        context = self.query_one("#context", Static)
        visible = self.show_context and self.shown is not None
        if context.display != visible:
            context.display = visible
        if not visible or self.shown is None:
            return
        panel = Text(overflow="ellipsis")
        panel.append("parent / story: ", "bold")
        panel.append(one_line(self.shown.context, 400) if self.shown.context else "none stored")
        context.update(panel)

    def render_marking(self) -> None:
        marker = self.marker
        line = Text(no_wrap=True, overflow="ellipsis")
        if marker is None or self.shown is None:
            self.query_one("#marking", Static).update(line, layout=False)
            return
        display = self.shown.display_text
        selection = marker.selection()
        if marker.candidate_index is not None:
            start, end = marker.candidates[marker.candidate_index]
            line.append(f"candidate {marker.candidate_index + 1}/{len(marker.candidates)} ", "bold")
            line.append(one_line(display[start:end], 40), "bold #98c379")
            line.append(f" {self.shown.candidates[marker.candidate_index].rule} · ⏎ mark")
        elif selection is not None:
            line.append("selection ", "bold")
            line.append(one_line(display[selection[0] : selection[1]], 40), "bold #98c379")
            line.append(" · ⏎ mark · d delete")
        elif marker.candidates:
            count = len(marker.candidates)
            line.append(f"{count} candidate{'s' if count > 1 else ''}", "#61afef")
            line.append(" · tab to pick · ←/→ words")
        else:
            line.append("←/→ words · shift+←/→ extend · ⏎ mark", "dim")
        if marker.spans:
            line.append(" │ ")
            for n, span in enumerate(marker.spans):
                if n:
                    line.append(" ")
                line.append(
                    one_line(display[span.start : span.end], 30),
                    label_style(self.annotate_app.labels, span.label),
                )
        self.query_one("#marking", Static).update(line, layout=False)

    def scroll_to_selection(self) -> None:
        if self.shown is None or self.marker is None:
            return
        selection = self.marker.selection()
        if selection is None:
            return
        text_widget = self.query_one("#item-text", ItemText)
        scroller = self.query_one("#text-scroll", VerticalScroll)
        row = wrapped_row(self.shown.display_text, selection[0], text_widget.content_size.width)
        height = scroller.scrollable_content_region.height
        if row < scroller.scroll_y:
            scroller.scroll_to(y=row, animate=False)
        elif height and row >= scroller.scroll_y + height:
            scroller.scroll_to(y=row - height + 1, animate=False)

    def watch_show_context(self) -> None:
        self.render_context()

    def watch_current_label(self) -> None:
        if self.is_mounted:
            self.render_progress()

    # -- answering --------------------------------------------------------------------------------

    def action_answer(self, answer: str) -> None:
        """Answer the item on screen; the next one shows as soon as the answer is committed."""
        if self.write_in_flight:
            self.keys_waiting.append(answer)
            return
        shown = self.shown
        if shown is None or self.marker is None:
            return
        request = AnswerToWrite(
            item_id=shown.item_id,
            answer=answer,
            label=shown.label,
            # A reject or ignore says nothing about titles; spans go with an accept only.
            spans=tuple(self.marker.spans) if answer == "accept" else (),
            client_key=f"{QUEUE_KEY_PREFIX}{shown.instance}",
            batch_id=shown.batch_id,
            strategy=shown.strategy,
            score=shown.score,
            reply_to=self,
        )
        self.pending_answers[request.client_key] = shown
        self.write_in_flight = True
        self.annotate_app.submit_write(request)

    def action_undo(self) -> None:
        """Take back the latest answer (after any answer still being committed)."""
        if self.write_in_flight:
            self.keys_waiting.append(None)
            return
        self.write_in_flight = True
        self.annotate_app.submit_write(UndoToWrite(reply_to=self))

    def write_finished(self) -> None:
        """The commit is done and its item shown: keys pressed meanwhile act now, in order."""
        self.write_in_flight = False
        while self.keys_waiting and not self.write_in_flight:
            answer = self.keys_waiting.popleft()
            if answer is None:
                self.action_undo()
            else:
                self.action_answer(answer)

    @on(AnswerSaved)
    def answer_committed(self, event: AnswerSaved) -> None:
        answered = self.pending_answers.pop(event.request.client_key, None)
        if (
            answered is not None
            and self.shown is not None
            and self.shown.instance == answered.instance
        ):
            self.show(self.upcoming.popleft() if self.upcoming else None)
            # Fetching ahead starts a thread: after the paint, so the next item is not kept waiting.
            self.call_after_refresh(self.request_items)
        else:
            self.render_progress()
        self.write_finished()

    @on(WriteFailed)
    def answer_not_committed(self, event: WriteFailed) -> None:
        # Nothing was stored: the item stays on screen so the answer can be given again.
        if isinstance(event.request, AnswerToWrite):
            self.pending_answers.pop(event.request.client_key, None)
            self.render_progress()
        self.keys_waiting.clear()
        self.write_finished()

    @on(AnswerUndone)
    def show_undone_item(self, event: AnswerUndone) -> None:
        if event.answer is None:
            self.notify("nothing to undo", timeout=2)
            self.write_finished()
            return
        if event.shown is None:
            # Committed, but the item could not be read back to show it.
            self.notify(f"undid {event.answer.answer} of item {event.answer.item_id}", timeout=3)
            self.write_finished()
            return
        undone = event.shown
        self.upcoming = deque(item for item in self.upcoming if item.item_id != undone.item_id)
        if self.shown is not None and self.shown.item_id != undone.item_id:
            self.upcoming.appendleft(self.shown)
        self.show(undone)
        self.notify(
            f"undid {event.answer.answer} of {one_line(undone.source_id, 30)}",
            timeout=2,
            markup=False,
        )
        self.write_finished()

    # -- span marking -----------------------------------------------------------------------------

    def after_marking_change(self) -> None:
        self.render_item()
        self.render_marking()
        self.scroll_to_selection()

    def action_move(self, step: int) -> None:
        if self.marker is not None:
            self.marker.move(step)
            self.after_marking_change()

    def action_extend(self, step: int) -> None:
        if self.marker is not None:
            self.marker.extend(step)
            self.after_marking_change()

    def action_candidate(self, step: int) -> None:
        if self.marker is None:
            return
        if not self.marker.cycle_candidate(step):
            self.notify("no candidates in this text: mark words with ←/→ and shift+←/→", timeout=2)
        self.after_marking_change()

    def action_mark(self) -> None:
        if self.marker is None:
            return
        if self.marker.mark(self.current_label) is None:
            self.notify("nothing selected: move with ←/→ or pick a candidate with tab", timeout=2)
        self.after_marking_change()

    def action_delete_span(self) -> None:
        if self.marker is not None:
            self.marker.delete_at_cursor()
            self.after_marking_change()

    def action_clear_selection(self) -> None:
        if self.marker is not None:
            self.marker.clear_selection()
            self.after_marking_change()

    def action_choose_label(self, position: int) -> None:
        labels = self.annotate_app.labels
        if position < len(labels):
            self.current_label = labels[position]

    def action_toggle_context(self) -> None:
        self.show_context = not self.show_context

    def action_scroll(self, lines: int) -> None:
        scroller = self.query_one("#text-scroll", VerticalScroll)
        scroller.scroll_relative(y=lines, animate=False)

    def action_page(self, pages: int) -> None:
        scroller = self.query_one("#text-scroll", VerticalScroll)
        scroller.scroll_relative(
            y=pages * max(1, scroller.scrollable_content_region.height - 1), animate=False
        )

    # -- other screens ----------------------------------------------------------------------------

    def action_help(self) -> None:
        from hnbooks.tui.help import HelpScreen

        self.app.push_screen(HelpScreen())

    def action_search(self) -> None:
        from hnbooks.tui.search import SearchScreen

        self.app.push_screen(SearchScreen())

    def action_review(self) -> None:
        from hnbooks.tui.review import ReviewScreen

        self.app.push_screen(ReviewScreen())

    def action_stats(self) -> None:
        from hnbooks.tui.stats import StatsScreen

        self.app.push_screen(StatsScreen())
