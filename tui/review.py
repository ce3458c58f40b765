"""The `r` review screen: page through answers in force, filter them, change one.

A change is a new answer row (by this annotator); the old row stays, so history and undo keep working.
`e` opens the answer's spans in the span editor: what it keeps is a new accept with those spans.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.reactive import var
from textual.widgets import DataTable, Footer, Static
from textual.worker import get_current_worker

from hnbooks.store.db import StoreError
from hnbooks.store.records import AnswerValue, AnswerWithItem, NewAnswer, Span
from hnbooks.suggest import suggest_candidates, word_spans
from hnbooks.tui.base import SessionScreen
from hnbooks.tui.context import AnnotationSession
from hnbooks.tui.messages import AnswerSaved, PageFailed, PageLoaded, ReviewFilters
from hnbooks.tui.render import item_text, one_line, printable
from hnbooks.tui.session import AnswerToWrite, client_key
from hnbooks.tui.span_editor import SpanEditScreen

PAGE_SIZE = 50
ANSWER_FILTERS: tuple[str | None, ...] = (None, "accept", "reject", "ignore")
DISAGREEMENT_FILTERS: tuple[str | None, ...] = (None, "accepted-low", "rejected-high", "any")


def next_in(options: tuple[str | None, ...], current: str | None) -> str | None:
    return (
        options[(options.index(current) + 1) % len(options)] if current in options else options[0]
    )


class ReviewScreen(SessionScreen):
    """Past answers, newest first."""

    AUTO_FOCUS = "#answers"
    BINDINGS = [
        Binding("escape", "close", "Back", id="review-back"),
        Binding("q", "close", "Back", id="review-back-q", show=False),
        Binding("a", "change('accept')", "Accept", id="review-accept"),
        Binding("x", "change('reject')", "Reject", id="review-reject"),
        Binding("space", "change('ignore')", "Ignore", id="review-ignore", key_display="space"),
        Binding("e", "edit_spans", "Edit spans", id="review-edit-spans"),
        # The filter line names f, w, t and g with their state: the footer leaves them out (80 columns).
        Binding("f", "cycle_answer", "Answer filter", id="review-answer-filter", show=False),
        Binding("w", "toggle_annotator", "Mine/all", id="review-annotator-filter", show=False),
        Binding("t", "cycle_strategy", "Strategy filter", id="review-strategy-filter", show=False),
        Binding(
            "g", "cycle_disagreement", "Disagreement filter", id="review-disagreement", show=False
        ),
        Binding(
            "right_square_bracket",
            "page(1)",
            "Next page",
            id="review-next",
            key_display="]",
            show=False,
        ),
        Binding(
            "left_square_bracket",
            "page(-1)",
            "Previous page",
            id="review-previous",
            key_display="[",
            show=False,
        ),
    ]

    filters: var[ReviewFilters] = var(ReviewFilters())
    """The filters and page shown (changing them reloads the page)."""

    def __init__(self, session: AnnotationSession) -> None:
        super().__init__(session)
        self.rows: tuple[AnswerWithItem, ...] = ()
        self.strategies: tuple[str | None, ...] = (None,)
        """What `t` cycles through: all, then each strategy that served an answer in force."""

    def compose(self) -> ComposeResult:
        yield Static(id="review-filters")
        yield DataTable(id="answers", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="review-text-scroll", can_focus=False):
            yield Static(id="review-text")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#answers", DataTable)
        table.add_column("id", key="id")
        table.add_column("who", key="who")
        table.add_column("answer", key="answer")
        table.add_column("strategy", key="strategy")
        table.add_column("score", key="score")
        table.add_column("spans", key="spans")
        table.add_column("text", key="text")
        self.filters = ReviewFilters(annotator=self.session.annotator)

    def watch_filters(self, filters: ReviewFilters) -> None:
        self.render_filters()
        self.load_page(filters)

    def render_filters(self) -> None:
        filters = self.filters
        line = Text(no_wrap=True, overflow="ellipsis")
        for key, name, value in (
            ("f", "answer", filters.answer),
            ("w", "who", one_line(filters.annotator, 16) if filters.annotator else None),
            ("t", "strategy", filters.strategy),
            ("g", "model disagrees", filters.disagreement),
        ):
            line.append(f"{key} ", "bold #e5c07b")
            line.append(f"{name}: ")
            line.append(value or "all", "bold" if value else "dim")
            line.append("  ")
        line.append(f"page {filters.page + 1}", "dim")
        self.query_one("#review-filters", Static).update(line)

    # Exclusive: a newer filter makes an older page irrelevant.
    @work(thread=True, exclusive=True, group="review", exit_on_error=False)
    def load_page(self, filters: ReviewFilters) -> None:
        store = self.session.store
        try:
            rows = store.review_answers(
                answer=filters.answer,
                annotator=filters.annotator,
                strategy=filters.strategy,
                disagreement=filters.disagreement,
                limit=PAGE_SIZE,
                offset=filters.page * PAGE_SIZE,
            )
            strategies = store.answer_strategies()
        except StoreError as error:
            self.post_message(PageFailed(str(error)))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(PageLoaded(filters, tuple(rows), tuple(strategies)))

    @on(PageLoaded)
    def show_page(self, event: PageLoaded) -> None:
        self.strategies = (None, *event.strategies)
        if event.filters != self.filters:
            return
        table = self.query_one("#answers", DataTable)
        highlighted_row = table.cursor_row
        self.rows = event.rows
        table.clear()
        # The text column takes what the others leave, so the table never scrolls sideways.
        text_width = max(12, self.size.width - 52)
        for row in self.rows:
            answer = row.answer
            # Cells from the data are Text: a plain str cell would be read as Rich markup (an
            # item's "[/s]" would stop the app, its "[link=...]" would become a link).
            table.add_row(
                str(answer.id),
                Text(one_line(answer.annotator, 10)),
                Text(
                    answer.answer,
                    style={"accept": "bold green", "reject": "bold red"}.get(answer.answer, "dim"),
                ),
                Text(one_line(answer.strategy or "", 10)),
                "" if answer.score is None else f"{answer.score:.2f}",
                str(len(answer.spans)) if answer.spans else "",
                Text(one_line(row.item.text, text_width)),
                key=str(answer.id),
            )
        if self.rows:
            table.move_cursor(row=min(highlighted_row, len(self.rows) - 1))
        self.show_answer_text()

    @on(PageFailed)
    def show_failure(self, event: PageFailed) -> None:
        self.notify(event.error, title="could not load answers", severity="error", markup=False)

    @on(DataTable.RowHighlighted, "#answers")
    def row_highlighted(self) -> None:
        self.show_answer_text()

    def selected(self) -> AnswerWithItem | None:
        table = self.query_one("#answers", DataTable)
        if not self.rows or not 0 <= table.cursor_row < len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def show_answer_text(self) -> None:
        row = self.selected()
        text_widget = self.query_one("#review-text", Static)
        if row is None:
            text_widget.update(Text("no answers match these filters", style="dim"))
            return
        text_widget.update(
            item_text(printable(row.item.text), spans=row.answer.spans, labels=self.session.labels)
        )

    def action_edit_spans(self) -> None:
        """Mark the highlighted answer's spans again; kept, they are a new accept."""
        row = self.selected()
        if row is None:
            return
        text = row.item.text
        labels = self.session.labels
        label = next((span.label for span in row.answer.spans), row.answer.label or labels[0])

        def keep(spans: tuple[Span, ...] | None) -> None:
            if spans is None:
                return
            if spans == row.answer.spans and row.answer.answer == "accept":
                self.notify("spans unchanged: nothing saved", timeout=2)
                return
            self.write_answer(row, "accept", spans)

        self.app.push_screen(
            SpanEditScreen(
                f"answer {row.answer.id}",
                printable(text),
                word_spans(text),
                [(c.start, c.end) for c in suggest_candidates(text)],
                row.answer.spans,
                labels,
                label,
            ),
            keep,
        )

    def action_change(self, answer: AnswerValue) -> None:
        row = self.selected()
        if row is None:
            return
        old = row.answer
        if old.answer == answer and old.annotator == self.session.annotator:
            self.notify(f"already {answer}", timeout=2)
            return
        self.write_answer(row, answer, old.spans if answer == "accept" else ())

    def write_answer(
        self, row: AnswerWithItem, answer: AnswerValue, spans: tuple[Span, ...]
    ) -> None:
        """A new answer row by this annotator, as `row`'s was served (label, view, batch)."""
        old = row.answer
        self.session.submit_write(
            AnswerToWrite(
                old.item_id,
                NewAnswer(
                    annotator=self.session.annotator,
                    answer=answer,
                    label=old.label,
                    spans=spans,
                    view_id=old.view_id,
                    batch_id=old.batch_id,
                    strategy=old.strategy,
                    score=old.score,
                    client_key=client_key("review:", self.session.session_id, uuid.uuid4().hex),
                ),
                reply_to=self,
            )
        )

    @on(AnswerSaved)
    def answer_changed(self, event: AnswerSaved) -> None:
        self.notify(f"recorded {event.request.answer.answer} (answer {event.answer_id})", timeout=2)
        self.load_page(self.filters)

    def action_cycle_answer(self) -> None:
        self.filters = replace(
            self.filters, answer=next_in(ANSWER_FILTERS, self.filters.answer), page=0
        )

    def action_toggle_annotator(self) -> None:
        mine = None if self.filters.annotator else self.session.annotator
        self.filters = replace(self.filters, annotator=mine, page=0)

    def action_cycle_strategy(self) -> None:
        self.filters = replace(
            self.filters, strategy=next_in(self.strategies, self.filters.strategy), page=0
        )

    def action_cycle_disagreement(self) -> None:
        disagreement = next_in(DISAGREEMENT_FILTERS, self.filters.disagreement)
        self.filters = replace(self.filters, disagreement=disagreement, page=0)

    def action_page(self, step: int) -> None:
        if step > 0 and len(self.rows) < PAGE_SIZE:
            return
        page = max(0, self.filters.page + step)
        if page != self.filters.page:
            self.filters = replace(self.filters, page=page)

    def action_close(self) -> None:
        self.dismiss()
