"""The annotate screen: one item at a time from the published batches, answered and marked by keyboard.

Items are fetched ahead (`PREFETCH_COUNT`) by a thread worker, which claims each for this session
in the transaction that picks it, so another session (of this annotator; of anyone in split mode)
is not served it; a timer renews the claims. An answering key press hands the answer to the writer
thread and the next (already fetched) item shows the moment the commit lands — a millisecond or
so — so what the screen moved past is always on disk. Keys pressed during that commit, or before
the next items are fetched, wait and act in order. When the queue is empty the screen says so and
checks every `poll_interval_s` whether another connection (the scorer) published a batch.

The header's third line is the session's status, read by the app's poll: the feed mode and what
the scorer is doing; `n` asks the scorer for a round now.

What is shown, fetched ahead, being saved or typed ahead is an `AnnotationQueue` (tui/queue.py); this
screen feeds it key presses and reports, and renders what it says changed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.reactive import var
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from hnbooks.store.db import StoreError
from hnbooks.store.records import AnswerValue, QueuedItem, Span
from hnbooks.tui.base import SessionScreen
from hnbooks.tui.context import AnnotationSession
from hnbooks.tui.item_text import ItemText
from hnbooks.tui.marking import SpanMarker
from hnbooks.tui.messages import (
    AnsweredElsewhere,
    AnswerSaved,
    AnswerUndone,
    ClaimsLost,
    FetchFailed,
    ItemsFetched,
    RoundRequested,
    RoundRequestFailed,
    WriteFailed,
)
from hnbooks.tui.queue import AnnotationQueue, FetchRequest, Step
from hnbooks.tui.render import label_style, one_line
from hnbooks.tui.session import ShownItem, shown_from_queue
from hnbooks.tui.span_editor import (
    MARKING_ACTIONS,
    SpanMarking,
    find_input,
    jump_line,
    marked_text,
    marking_bindings,
    spans_line,
)

LABEL_KEYS = "123456789"
# Actions about the item on screen: hidden from the footer (and inert) while the queue is empty.
ITEM_ACTIONS = frozenset(["answer", "toggle_context", *MARKING_ACTIONS])
FOOTER_PALETTE_FROM = 100
"""Columns from which the footer names ctrl+p beside the keys."""
HELP_NOTE = (
    "  Candidates are underlined; marked spans are filled in their label's colour.\n"
    "  Accepting stores the marked spans with the answer, and the candidate picked with tab or\n"
    "  the words selected (shift+arrows, f, ctrl+f, the mouse) even without ⏎.\n"
    "  f: every word shows a hint; type the one at the span's start, then the one at its end.\n"
    "  Mouse: drag selects words, a click on a candidate marks it, a double-click marks a word.\n"
    "  ctrl+p opens the command palette: every command by name, and the themes (remembered).\n"
    "  q and esc leave a sub-screen; q quits only from here.\n"
)
"""Shown under the annotate screen's keys on the help screen."""


def label_bindings(labels: Sequence[str]) -> list[Binding]:
    """The keys 1-9, each described by the label it chooses (no description: no label there, so the
    help screen leaves the key out and it does nothing)."""
    return [
        Binding(
            key,
            f"choose_label({n})",
            f"Label {one_line(labels[n], 30)}" if n < len(labels) else "",
            id=f"label-{key}",
            show=False,
        )
        for n, key in enumerate(LABEL_KEYS)
    ]


def annotate_bindings(labels: Sequence[str]) -> list[BindingType]:
    """The annotate screen's bindings with the database's label names on the keys 1-9."""
    named = {binding.key: binding for binding in label_bindings(labels)}
    return [
        named.get(binding.key, binding) if isinstance(binding, Binding) else binding
        for binding in AnnotateScreen.BINDINGS
    ]


class AnnotateScreen(SpanMarking, SessionScreen):
    """Answer and mark the items of the published batches."""

    AUTO_FOCUS = None
    BINDINGS = [
        Binding("a", "answer('accept')", "Accept", id="accept"),
        Binding("x", "answer('reject')", "Reject", id="reject"),
        Binding("space", "answer('ignore')", "Ignore", id="ignore", key_display="space"),
        Binding("u", "undo", "Undo", id="undo"),
        Binding("backspace", "undo", "Undo", id="undo-backspace", show=False),
        *marking_bindings(),
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
        Binding("t", "titles", "Titles found", id="titles", show=False),
        Binding("n", "score_now", "Ask the scorer for a round now", id="score-now", show=False),
        Binding("question_mark", "help", "Help", id="help", key_display="?"),
    ]

    current_label: var[str] = var("")
    """The label `enter` gives a marked span (chosen with 1-9); the database's first to begin with."""
    show_context: var[bool] = var(False)
    """Whether the parent comment / story title panel is open."""

    def __init__(self, session: AnnotationSession) -> None:
        super().__init__(session)
        # The keys 1-9 named after this database's labels, for the help screen and the palette.
        for binding in label_bindings(session.labels):
            self._bindings.key_to_bindings[binding.key] = [binding]
        self.set_reactive(AnnotateScreen.current_label, session.labels[0])
        self.queue = AnnotationQueue(session.annotator, reply_to=self, session=session.session_id)
        self.marker: SpanMarker | None = None
        """The marking of the item on screen; None while there is none."""

    @property
    def shown(self) -> ShownItem | None:
        """The item on screen, or None while the queue is empty."""
        return self.queue.shown

    def compose(self) -> ComposeResult:
        with Vertical(id="top"):
            yield Static(id="why")
            yield Static(id="progress")
            yield Static(id="status")
        yield Static(id="context")
        with VerticalScroll(id="text-scroll", can_focus=False):
            yield ItemText(id="item-text")
            yield Static(id="waiting")
        yield Static(id="marking")
        yield find_input()
        yield Footer(show_command_palette=False)

    def on_resize(self) -> None:
        # At 80 columns the answer keys and `q Quit` fill the footer; ctrl+p is named in the help.
        footer = self.query_one(Footer)
        footer.show_command_palette = self.size.width >= FOOTER_PALETTE_FROM

    def on_mount(self) -> None:
        self.watch(self.app, "progress", self.render_progress)
        self.watch(self.app, "scorer_status", self.render_status)
        self.watch(self.app, "feed", self.render_status)
        self.set_interval(self.session.poll_interval_s, self.poll_for_items)
        # Renewed well within their time to live: a late renewal must not let another session in.
        self.set_interval(max(0.05, self.session.claim_ttl_s / 4), self.renew_claims)
        self.add_class("-waiting")
        self.render_shown()
        self.render_status()
        self.query_one("#waiting", Static).update("Loading the queue…")
        self.request_items()

    def apply(self, step: Step, *, top_up_after_paint: bool = False) -> None:
        """Do what a transition of the queue says: render, write, fetch ahead."""
        if step.shown_changed:
            self.render_shown()
        elif step.saving_changed:
            self.render_progress()
        for request in step.writes:
            self.session.submit_write(request)
        if step.refused:
            keys = "key" if step.refused == 1 else "keys"
            self.notify(
                f"nothing left to answer: {step.refused} answer {keys} typed ahead not used",
                timeout=3,
            )
        if step.top_up:
            if top_up_after_paint:
                # Fetching ahead starts a thread: after the paint, so the next item is not kept waiting.
                self.call_after_refresh(self.request_items)
            else:
                self.request_items()

    # -- the queue --------------------------------------------------------------------------------

    def request_items(self) -> None:
        """Top up the items fetched ahead."""
        self.start_fetch(self.queue.start_fetch())

    def poll_for_items(self) -> None:
        """Every poll interval while the queue is empty: read it again if the database changed."""
        self.start_fetch(self.queue.poll())

    def start_fetch(self, request: FetchRequest | None) -> None:
        if request is not None:
            self.fetch_items(request)

    # Not exclusive: a cancelled fetch would have to start over, and under fast key presses the
    # queue could run dry. The queue keeps it to one fetch at a time instead.
    @work(thread=True, group="fetch", exit_on_error=False)
    def fetch_items(self, request: FetchRequest) -> None:
        session = self.session
        try:
            data_version = session.store.data_version()
            if request.only_if_changed and data_version == request.seen_data_version:
                self.post_message(ItemsFetched((), data_version, exhausted=True))
                return
            done_elsewhere = frozenset(
                session.store.answered_item_ids(session.annotator, request.skip_item_ids)
            )
            skip = set(request.skip_item_ids)
            items: list[ShownItem] = []
            while len(items) < request.wanted and not get_current_worker().is_cancelled:
                queued = self.next_item(skip)
                if queued is None:
                    break
                skip.add(queued.item.id)
                items.append(shown_from_queue(session.store, queued))
            self.post_message(
                ItemsFetched(
                    tuple(items), data_version, len(items) < request.wanted, done_elsewhere
                )
            )
        except StoreError as error:
            self.post_message(FetchFailed(str(error)))

    def next_item(self, skip: set[int]) -> QueuedItem | None:
        """The next queue item, claimed for this session. Where no claim can be written (a
        read-only database, a full disk) the item is read unclaimed: the annotator still sees the
        queue, and the write of the answer says what is wrong."""
        session = self.session
        if not session.closing:
            try:
                return session.store.next_queued_item(
                    session.annotator,
                    session=session.session_id,
                    skip_item_ids=skip,
                    claim_ttl_s=session.claim_ttl_s,
                )
            except StoreError:
                pass
        return session.store.next_queued_item(session.annotator, skip_item_ids=skip)

    @on(ItemsFetched)
    def take_items(self, event: ItemsFetched) -> None:
        self.apply(
            self.queue.fetched(
                event.items, event.data_version, event.exhausted, event.done_elsewhere
            )
        )

    def renew_claims(self) -> None:
        """On a timer: extend this session's claims to what it holds now (and only that)."""
        if not self.session.closing:
            self.write_claims(self.queue.held())

    @work(thread=True, group="claims", exit_on_error=False)
    def write_claims(self, held: list[tuple[int, int]]) -> None:
        session = self.session
        try:
            lost = session.store.renew_claims(
                session.session_id, session.annotator, held, ttl_s=session.claim_ttl_s
            )
        except StoreError:
            return  # a read-only database or a busy one: the next renewal tries again
        if lost:
            self.post_message(ClaimsLost(frozenset(lost)))

    @on(ClaimsLost)
    def give_up_items(self, event: ClaimsLost) -> None:
        self.apply(self.queue.given_up(event.item_ids))

    @on(FetchFailed)
    def report_fetch_failure(self, event: FetchFailed) -> None:
        self.apply(self.queue.fetch_failed())
        self.notify(
            event.error,
            title="could not read the queue",
            severity="error",
            timeout=10,
            markup=False,
        )

    def worker_failed(self, group: str, error: str) -> None:
        if group == "fetch":
            # The next poll reads the queue again.
            self.apply(self.queue.fetch_failed())

    # -- showing ----------------------------------------------------------------------------------

    def render_shown(self) -> None:
        """Put the queue's shown item on screen (none: the queue is empty) with a fresh marking."""
        shown = self.queue.shown
        if self.has_class("-waiting") != (shown is None) or shown is None:
            # While the next items load, the answer keys stay bound: keys typed ahead wait for them.
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
        if action == "answer" and self.queue.loading:
            return True
        return not (action in ITEM_ACTIONS and self.queue.shown is None)

    def on_screen_resume(self) -> None:
        """Back from search or review: drop queued items answered there meanwhile."""
        self.apply(self.queue.answered_elsewhere(self.session.take_items_answered_elsewhere()))

    def waiting_message(self) -> Text:
        app = self.session
        if self.queue.loading:
            return Text("Loading the queue…")
        scorer = app.scorer_status
        text = Text.assemble(
            ("Nothing left to annotate", "bold"),
            f" for {one_line(app.annotator, 40)}: every published batch is done.\n\n",
        )
        if scorer.preparing:
            doing = one_line(scorer.describe(time.time()).removeprefix("scorer: "), 120)
            text.append(
                f"The scorer is preparing the next batch ({doing}); it shows here as soon as it "
                f"is published (checked every {app.poll_interval_s:g} s).\n\n"
            )
        else:
            text.append(
                f"Watching for the next batch (checked every {app.poll_interval_s:g} s). No scorer "
                "is running: start one with `hnbooks-score --watch` in another shell, or publish "
                "a batch with `hnbooks seed`.\n\n"
            )
        for key, what in (("n", "score now"), ("/", "search"), ("r", "review"), ("s", "stats")):
            text.append(key, "bold")
            text.append(f" {what}   ")
        text.append("q", "bold")
        text.append(" quit")
        return text

    def render_item(self) -> None:
        text_widget = self.query_one("#item-text", ItemText)
        if self.shown is None or self.marker is None:
            text_widget.show_text(Text(), "")
            return
        styled = marked_text(self.shown.display_text, self.marker, self.session.labels)
        text_widget.pointer_enabled = self.marker.jump_stage is None
        text_widget.show_text(styled, self.shown.display_text)

    def render_why(self) -> None:
        shown = self.shown
        why = Text(no_wrap=True, overflow="ellipsis")
        if shown is None:
            why.append("hnbooks", "bold")
            why.append(f" · {one_line(Path(self.session.store.path).name, 60)}")
        else:
            why.append(f"{one_line(shown.label, 20)}? ", "bold")
            if shown.batch_id is not None:
                why.append(f"batch {shown.batch_id}")
                if shown.position is not None and shown.batch_size:
                    why.append(f" · item {shown.position + 1}/{shown.batch_size}")
                why.append(" · ")
            why.append(one_line(shown.strategy, 20), "bold")
            if shown.near_duplicate_of is not None:
                why.append(f" · near-duplicate of accepted item {shown.near_duplicate_of}", "bold")
            if shown.score is not None:
                why.append(f" · score {shown.score:.3f}")
            if shown.rank is not None:
                why.append(f" · rank {shown.rank}")
            why.append(f" · {one_line(shown.source_id, 30)}")
            if shown.context:
                why.append(" · p parent", "dim")
        self.query_one("#why", Static).update(why, layout=False)

    def render_progress(self) -> None:
        app = self.session
        progress = app.progress
        line = Text(no_wrap=True, overflow="ellipsis")
        if progress is None:
            line.append("reading progress…", "dim")
        else:
            line.append(f"{progress.answers} answered", "bold")
            line.append(
                f" · {progress.today} today · {progress.positives} positive"
                f" · {progress.rate_per_hour:.0f}/h · {progress.remaining} left"
            )
        line.append(" · label ")
        line.append(
            f" {one_line(self.current_label, 20)} ",
            label_style(app.labels, self.current_label),
        )
        if len(app.labels) > 1:
            line.append(f" ({app.labels.index(self.current_label) + 1}-{len(app.labels)})", "dim")
        saving = self.queue.saving
        if saving:
            line.append(f" · saving {saving}", "dim")
        self.query_one("#progress", Static).update(line, layout=False)

    def render_status(self) -> None:
        """The feed mode and the scorer's state (the waiting text too, which names the scorer)."""
        app = self.session
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(f"feed {app.feed}", "bold" if app.feed == "split" else "")
        line.append(" · ")
        # Lease fields and the log's name (the database's) are data: shown as pictures, not bytes.
        line.append(one_line(app.scorer_status.describe(time.time()), 200))
        self.query_one("#status", Static).update(line, layout=False)
        if self.queue.waiting:
            self.query_one("#waiting", Static).update(self.waiting_message())

    def render_context(self) -> None:
        context = self.query_one("#context", Static)
        visible = self.show_context and self.shown is not None
        if context.display != visible:
            context.display = visible
        if not visible or self.shown is None:
            return
        panel = Text(overflow="ellipsis")
        panel.append("parent / story: ", "bold")
        # The store gives one line per ancestor, nearest first: each the parent of the one above.
        ancestors = self.shown.context.splitlines() if self.shown.context else ["none stored"]
        for depth, ancestor in enumerate(ancestors):
            if depth:
                panel.append("\n" + "  " * depth + "↑ ", "dim")
            panel.append(one_line(ancestor, 400 if len(ancestors) == 1 else 150))
        context.update(panel)

    def render_marking(self) -> None:
        marker = self.marker
        line = Text(no_wrap=True, overflow="ellipsis")
        if marker is None or self.shown is None:
            self.query_one("#marking", Static).update(line, layout=False)
            return
        display = self.shown.display_text
        selection = marker.selection()
        if marker.jump_stage is not None:
            self.query_one("#marking", Static).update(jump_line(marker), layout=False)
            return
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
            line.append("←/→ words · shift+←/→ extend · f jump · ⏎ mark", "dim")
        spans_line(line, display, marker.spans, self.session.labels)
        self.query_one("#marking", Static).update(line, layout=False)

    def scroll_to_selection(self) -> None:
        if self.shown is None or self.marker is None:
            return
        selection = self.marker.selection()
        if selection is None:
            return
        text_widget = self.query_one("#item-text", ItemText)
        scroller = self.query_one("#text-scroll", VerticalScroll)
        row = text_widget.row_of(selection[0])
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

    def action_answer(self, answer: AnswerValue) -> None:
        """Answer the item on screen; the next one shows as soon as the answer is committed."""
        marker = self.marker
        if marker is None:
            spans: Sequence[Span] = ()
        elif answer == "accept":
            # A picked candidate or a selection not yet marked is kept, never silently dropped.
            spans = marker.spans_with_pending(self.current_label)
        else:
            spans = marker.spans
        self.apply(self.queue.press(answer, spans))

    def action_undo(self) -> None:
        """Take back the latest answer (after any answer still being committed)."""
        self.apply(self.queue.press_undo())

    @on(AnswerSaved)
    def answer_committed(self, event: AnswerSaved) -> None:
        self.apply(self.queue.committed(event.request.client_key), top_up_after_paint=True)

    @on(AnsweredElsewhere)
    def answer_not_needed(self, event: AnsweredElsewhere) -> None:
        self.apply(self.queue.answered_by_other(event.request.client_key), top_up_after_paint=True)
        where = (
            "by another annotator or session (split feed)"
            if self.session.feed == "split"
            else "in another session"
        )
        self.notify(f"already answered {where}: skipped, nothing saved", timeout=3)

    @on(WriteFailed)
    def answer_not_committed(self, event: WriteFailed) -> None:
        # Nothing was stored: the item stays on screen so the answer can be given again.
        self.apply(self.queue.failed(event.request))

    @on(AnswerUndone)
    def show_undone_item(self, event: AnswerUndone) -> None:
        answer, undone = event.answer, event.shown
        self.apply(self.queue.undone(answer, undone))
        if answer is None:
            self.notify("nothing to undo", timeout=2)
        elif undone is None:
            # Committed, but the item could not be read back to show it.
            self.notify(f"undid {answer.answer} of item {answer.item_id}", timeout=3)
        else:
            self.notify(
                f"undid {answer.answer} of {one_line(undone.source_id, 30)}",
                timeout=2,
                markup=False,
            )

    # -- span marking -----------------------------------------------------------------------------

    def after_marking_change(self) -> None:
        self.render_item()
        self.render_marking()
        self.scroll_to_selection()

    def marking_label(self) -> str:
        return self.current_label

    def marking_text(self) -> str:
        return self.shown.display_text if self.shown is not None else ""

    def action_choose_label(self, position: int) -> None:
        labels = self.session.labels
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

    # -- the scorer -------------------------------------------------------------------------------

    def action_score_now(self) -> None:
        """Ask the scorer for a round now (it acts on the request when it next looks)."""
        self.ask_for_round()

    @work(thread=True, group="score-now", exit_on_error=False)
    def ask_for_round(self) -> None:
        try:
            request_id = self.session.store.request_round(self.session.annotator)
        except StoreError as error:
            self.post_message(RoundRequestFailed(str(error)))
            return
        self.post_message(RoundRequested(request_id))

    @on(RoundRequested)
    def round_requested(self, event: RoundRequested) -> None:
        if self.session.scorer_status.preparing:
            self.notify("round requested", timeout=3)
        else:
            self.notify(
                "round requested: no scorer is running yet (start `hnbooks-score --watch`)",
                timeout=5,
            )

    @on(RoundRequestFailed)
    def round_not_requested(self, event: RoundRequestFailed) -> None:
        self.notify(event.error, title="could not ask for a round", severity="error", markup=False)

    # -- other screens ----------------------------------------------------------------------------

    def action_help(self) -> None:
        self.app.push_screen("help")

    def action_search(self) -> None:
        self.app.push_screen("search")

    def action_review(self) -> None:
        self.app.push_screen("review")

    def action_stats(self) -> None:
        self.app.push_screen("stats")

    def action_titles(self) -> None:
        self.app.push_screen("titles")
