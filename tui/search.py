"""The `/` search screen: keyword (FTS5) or regex search over every text, answered in place.

This is the cold-start channel: before the scorer has a single positive, searching "novel by" or
"goodreads.com" finds the first ones. Answers given here carry the strategy "search". `e` marks
spans on the highlighted hit (the span editor) and accepts it with them; `u` takes back the latest
answer, as on the annotate screen.
"""

from __future__ import annotations

import threading
import uuid

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.reactive import var
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from hnbooks.store.db import StoreError
from hnbooks.store.records import AnswerValue, NewAnswer, SearchHit, Span
from hnbooks.suggest import suggest_candidates, word_spans
from hnbooks.tui.base import SessionScreen
from hnbooks.tui.context import AnnotationSession
from hnbooks.tui.messages import (
    AnswerSaved,
    AnswerUndone,
    SearchFailed,
    SearchFinished,
    WriteFailed,
)
from hnbooks.tui.render import (
    item_text,
    one_line,
    printable,
    snippet_with_matches,
)
from hnbooks.tui.session import AnswerToWrite, UndoToWrite, client_key
from hnbooks.tui.span_editor import SpanEditScreen

SEARCH_LIMIT = 100
SEARCH_TIMEOUT_S = 5.0
"""A regular-expression search stops after this long (a pattern that backtracks runs for ever)."""
ANSWER_MARKS = {
    "accept": ("✓ ", "bold green"),
    "reject": ("✗ ", "bold red"),
    "ignore": ("· ", "dim"),
}


class SearchScreen(SessionScreen):
    """Search every text; answer hits with a / x / space."""

    AUTO_FOCUS = "#query"
    BINDINGS = [
        Binding("escape", "close", "Back", id="search-back"),
        Binding("q", "close", "Back", id="search-back-q", show=False),
        Binding("ctrl+t", "toggle_mode", "FTS/regex", id="search-mode"),
        Binding("a", "answer('accept')", "Accept", id="search-accept"),
        Binding("x", "answer('reject')", "Reject", id="search-reject"),
        Binding("space", "answer('ignore')", "Ignore", id="search-ignore", key_display="space"),
        Binding("e", "mark_spans", "Mark spans, accept", id="search-mark-spans"),
        Binding("u", "undo", "Undo", id="search-undo"),
        Binding("slash", "focus_query", "New query", id="search-query", key_display="/"),
    ]

    mode: var[str] = var("fts")
    """How the query is read: "fts" (every word must appear) or "regex"."""

    def __init__(self, session: AnnotationSession) -> None:
        super().__init__(session)
        self.search_cancelled = threading.Event()
        """Set to stop the search running (a new query, or the screen closing)."""
        self.hits: tuple[SearchHit, ...] = ()
        self.answers: dict[int, str] = {}
        """This annotator's answer to each hit's item, as given (or being saved) here or before."""
        self.spans_given: dict[int, tuple[Span, ...]] = {}
        """The spans of the accepts given here, by item (the span editor opens with them)."""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="keywords, then ⏎   (ctrl+t: regex)", id="query")
        yield Static(id="search-status")
        yield OptionList(id="hits")
        with VerticalScroll(id="hit-scroll", can_focus=False):
            yield Static(id="hit-text")
        yield Footer()

    def on_mount(self) -> None:
        self.render_status("type a query and press ⏎")

    def render_status(self, message: str) -> None:
        status = Text(no_wrap=True, overflow="ellipsis")
        status.append(f" {self.mode} ", "bold reverse")
        status.append(f" {message}")
        self.query_one("#search-status", Static).update(status)

    def watch_mode(self) -> None:
        if self.is_mounted:
            self.render_status("mode changed: ⏎ to search again")

    def action_toggle_mode(self) -> None:
        self.mode = "regex" if self.mode == "fts" else "fts"

    def action_focus_query(self) -> None:
        self.query_one("#query", Input).focus()

    def action_close(self) -> None:
        self.cancel_search()
        self.dismiss()

    @on(Input.Submitted, "#query")
    def start_search(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            return
        self.render_status(f"searching {one_line(event.value, 50)!r}…")
        self.run_search(event.value, self.mode)

    def run_search(self, query: str, mode: str) -> None:
        """Search in a thread of its own, cancelling the search before it (only the latest
        query's results matter). A daemon thread, not a worker: quitting never waits for it."""
        self.cancel_search()
        cancelled = threading.Event()
        self.search_cancelled = cancelled
        threading.Thread(
            target=self.search_in_thread,
            args=(query, mode, cancelled),
            name="hnbooks-search",
            daemon=True,
        ).start()

    def cancel_search(self) -> None:
        self.search_cancelled.set()

    def on_unmount(self) -> None:
        self.cancel_search()

    def search_in_thread(self, query: str, mode: str, cancelled: threading.Event) -> None:
        session = self.session
        try:
            hits = session.store.search(
                query,
                mode=mode,
                limit=SEARCH_LIMIT,
                timeout_s=SEARCH_TIMEOUT_S,
                cancelled=cancelled.is_set,
            )
            answers: dict[int, str] = {}
            spans: dict[int, tuple[Span, ...]] = {}
            for hit in hits:
                current = session.store.answers_of_item(hit.item.id, session.annotator)
                if current:
                    answers[hit.item.id] = current[-1].answer
                    spans[hit.item.id] = current[-1].spans
        except Exception as error:  # noqa: BLE001 - whatever stops the search is shown, not raised
            if not cancelled.is_set():
                message = str(error) if isinstance(error, StoreError) else repr(error)
                self.post_message(SearchFailed(query, message))
            return
        if not cancelled.is_set():
            self.post_message(SearchFinished(query, mode, tuple(hits), answers, spans))

    @on(SearchFinished)
    def show_hits(self, event: SearchFinished) -> None:
        self.hits = event.hits
        self.answers = dict(event.answers)
        self.spans_given = dict(event.spans)
        hit_list = self.query_one("#hits", OptionList)
        hit_list.set_options(Option(self.hit_prompt(hit)) for hit in self.hits)
        more = "+" if len(self.hits) >= SEARCH_LIMIT else ""
        self.render_status(
            f"{len(self.hits)}{more} hits for {one_line(event.query, 40)!r}"
            " · a/x/space answer · e spans · u undo · / new query"
        )
        if self.hits:
            hit_list.highlighted = 0
            hit_list.focus()
        else:
            self.query_one("#hit-text", Static).update("")

    @on(SearchFailed)
    def show_failure(self, event: SearchFailed) -> None:
        self.render_status(event.error)

    def hit_prompt(self, hit: SearchHit) -> Text:
        mark, style = ANSWER_MARKS.get(self.answers.get(hit.item.id, ""), ("  ", ""))
        prompt = Text(mark, style=style, no_wrap=True, overflow="ellipsis")
        prompt.append_text(snippet_with_matches(hit.item.text, hit.match_ranges))
        return prompt

    @on(OptionList.OptionHighlighted, "#hits")
    def show_hit_text(self, event: OptionList.OptionHighlighted) -> None:
        self.show_hit(self.hits[event.option_index])
        self.query_one("#hit-scroll", VerticalScroll).scroll_home(animate=False)

    def show_hit(self, hit: SearchHit) -> None:
        """The hit's text: the query's matches highlighted, the spans marked here filled in."""
        text = item_text(
            printable(hit.item.text),
            matches=hit.match_ranges,
            spans=self.spans_given.get(hit.item.id, ()),
            labels=self.session.labels,
        )
        self.query_one("#hit-text", Static).update(text)

    def action_mark_spans(self) -> None:
        """Mark spans on the highlighted hit; kept, the hit is accepted with them."""
        hit_list = self.query_one("#hits", OptionList)
        index = hit_list.highlighted
        if index is None or not self.hits:
            return
        hit = self.hits[index]
        text = hit.item.text
        labels = self.session.labels

        def keep(spans: tuple[Span, ...] | None) -> None:
            if spans is not None:
                self.answer_hit(index, "accept", spans)

        self.app.push_screen(
            SpanEditScreen(
                f"search hit {index + 1}",
                printable(text),
                word_spans(text),
                [(c.start, c.end) for c in suggest_candidates(text)],
                self.spans_given.get(hit.item.id, ()),
                labels,
                labels[0],
            ),
            keep,
        )

    def action_undo(self) -> None:
        """Take back the latest answer (this screen's or the annotate screen's)."""
        self.session.submit_write(UndoToWrite(reply_to=self))

    @on(AnswerUndone)
    def answer_undone(self, event: AnswerUndone) -> None:
        undone = event.answer
        if undone is None:
            self.render_status("nothing to undo")
            return
        self.answers.pop(undone.item_id, None)
        self.spans_given.pop(undone.item_id, None)
        hit_list = self.query_one("#hits", OptionList)
        for index, hit in enumerate(self.hits):
            if hit.item.id == undone.item_id:
                hit_list.replace_option_prompt_at_index(index, self.hit_prompt(hit))
                if hit_list.highlighted == index:
                    self.show_hit(hit)
        self.render_status(f"undid {undone.answer} of item {undone.item_id}")

    def action_answer(self, answer: AnswerValue) -> None:
        hit_list = self.query_one("#hits", OptionList)
        index = hit_list.highlighted
        if index is None or not self.hits:
            return
        # Pressing the same answer again (a double press) writes nothing.
        if self.answers.get(self.hits[index].item.id) == answer:
            return
        self.answer_hit(index, answer, ())

    def answer_hit(self, index: int, answer: AnswerValue, spans: tuple[Span, ...]) -> None:
        hit_list = self.query_one("#hits", OptionList)
        hit = self.hits[index]
        self.answers[hit.item.id] = answer
        self.spans_given[hit.item.id] = spans
        self.session.submit_write(
            AnswerToWrite(
                hit.item.id,
                NewAnswer(
                    annotator=self.session.annotator,
                    answer=answer,
                    label=self.session.labels[0],
                    spans=spans,
                    strategy="search",
                    client_key=client_key("search:", self.session.session_id, uuid.uuid4().hex),
                ),
                reply_to=self,
            )
        )
        hit_list.replace_option_prompt_at_index(index, self.hit_prompt(hit))
        if index + 1 < len(self.hits):
            hit_list.highlighted = index + 1
        else:
            self.show_hit(hit)

    @on(AnswerSaved)
    def answer_saved(self, event: AnswerSaved) -> None:
        self.render_status(f"saved: {event.request.answer.answer} (answer {event.answer_id})")

    @on(WriteFailed)
    def answer_failed(self, event: WriteFailed) -> None:
        request = event.request
        if (
            isinstance(request, AnswerToWrite)
            and self.answers.get(request.item_id) == request.answer.answer
        ):
            del self.answers[request.item_id]
            for index, hit in enumerate(self.hits):
                if hit.item.id == request.item_id:
                    self.query_one("#hits", OptionList).replace_option_prompt_at_index(
                        index, self.hit_prompt(hit)
                    )
