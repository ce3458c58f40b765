"""The `t` titles screen: the distinct titles marked so far (as `hnbooks titles` lists them), and
the items that mention each; an item opens in the span editor (a change is a new accept).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from hnbooks.store.db import StoreError
from hnbooks.store.records import NewAnswer, Span
from hnbooks.suggest import suggest_candidates, word_spans
from hnbooks.titles import FoundTitle, TitleItem, iso_time, titles_found
from hnbooks.tui.base import SessionScreen
from hnbooks.tui.context import AnnotationSession
from hnbooks.tui.messages import AnswerSaved
from hnbooks.tui.render import one_line, printable, snippet_with_matches
from hnbooks.tui.session import AnswerToWrite, client_key
from hnbooks.tui.span_editor import SpanEditScreen


@dataclass(frozen=True)
class ItemToOpen:
    """An item opened from the titles list, with this annotator's spans on it."""

    item_id: int
    source: str
    text: str
    spans: tuple[Span, ...]
    label: str | None
    view_id: str | None
    """The latest answer's (a span answer stays one, so the new answer replaces it)."""


class TitlesScreen(SessionScreen):
    """Every title marked, most items first; the items mentioning the one highlighted."""

    AUTO_FOCUS = "#titles"
    BINDINGS = [
        Binding("escape", "close", "Back", id="titles-back"),
        Binding("q", "close", "Back", id="titles-back-q", show=False),
        Binding("f", "cycle_label", "Label filter", id="titles-label-filter"),
        Binding("o", "open_link", "Open on HN", id="titles-open-link"),
        Binding("tab", "switch_list", "Titles / items", id="titles-switch", show=False),
    ]

    @dataclass
    class TitlesLoaded(Message, bubble=False):
        """The titles read, with the text of every item they mention."""

        label: str | None
        titles: tuple[FoundTitle, ...]
        texts: dict[int, str]

    @dataclass
    class ItemRead(Message, bubble=False):
        item: ItemToOpen

    @dataclass
    class ReadFailed(Message, bubble=False):
        error: str

    def __init__(self, session: AnnotationSession) -> None:
        super().__init__(session)
        self.label: str | None = None
        """The label shown (None: every label), cycled with f."""
        self.titles: tuple[FoundTitle, ...] = ()
        self.texts: dict[int, str] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="titles-status")
        yield DataTable(id="titles", cursor_type="row", zebra_stripes=True)
        yield OptionList(id="title-items")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#titles", DataTable)
        for column in ("title", "label", "items", "mentions", "last seen"):
            table.add_column(column, key=column)
        self.render_status("reading the titles…")
        self.load_titles(self.label)

    def render_status(self, message: str) -> None:
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append("f ", "bold #e5c07b")
        line.append("label: ")
        line.append(
            one_line(self.label, 20) if self.label else "all", "bold" if self.label else "dim"
        )
        line.append(f"  {message}")
        self.query_one("#titles-status", Static).update(line)

    @work(thread=True, exclusive=True, group="titles", exit_on_error=False)
    def load_titles(self, label: str | None) -> None:
        store = self.session.store
        try:
            titles = titles_found(store, label)
            item_ids = sorted({item.item_id for title in titles for item in title.items})
            texts = store.texts_for(item_ids)
        except StoreError as error:
            self.post_message(self.ReadFailed(str(error)))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(self.TitlesLoaded(label, tuple(titles), texts))

    @on(TitlesLoaded)
    def show_titles(self, event: TitlesLoaded) -> None:
        if event.label != self.label:
            return
        self.titles, self.texts = event.titles, event.texts
        table = self.query_one("#titles", DataTable)
        row = table.cursor_row
        table.clear()
        title_width = max(12, self.size.width - 40)
        for title in self.titles:
            table.add_row(
                Text(one_line(title.title, title_width)),
                Text(one_line(title.label, 12)),
                str(len(title.items)),
                str(title.mentions),
                iso_time(title.last_seen)[:10],
            )
        count = len(self.titles)
        self.render_status(
            f"{count} title{'s' if count != 1 else ''} · ⏎ its items · ⏎ on an item opens it"
            if count
            else "no titles marked yet: accept an item with a span marked"
        )
        if self.titles:
            table.move_cursor(row=min(row, count - 1))
        self.show_items()

    @on(ReadFailed)
    def show_failure(self, event: ReadFailed) -> None:
        self.render_status(event.error)

    def highlighted_title(self) -> FoundTitle | None:
        table = self.query_one("#titles", DataTable)
        if not self.titles or not 0 <= table.cursor_row < len(self.titles):
            return None
        return self.titles[table.cursor_row]

    @on(DataTable.RowHighlighted, "#titles")
    def title_highlighted(self) -> None:
        self.show_items()

    def show_items(self) -> None:
        items = self.query_one("#title-items", OptionList)
        title = self.highlighted_title()
        items.set_options(
            [] if title is None else [Option(self.item_prompt(item)) for item in title.items]
        )

    def item_prompt(self, item: TitleItem) -> Text:
        prompt = Text(no_wrap=True, overflow="ellipsis")
        prompt.append(f"{one_line(item.hn_id or item.external_id, 14):<14} ", "bold")
        text = self.texts.get(item.item_id, "")
        prompt.append_text(snippet_with_matches(text, item.ranges))
        return prompt

    @on(DataTable.RowSelected, "#titles")
    def title_selected(self) -> None:
        items = self.query_one("#title-items", OptionList)
        if items.option_count:
            items.highlighted = 0
            items.focus()

    def action_switch_list(self) -> None:
        table = self.query_one("#titles", DataTable)
        items = self.query_one("#title-items", OptionList)
        (items if table.has_focus and items.option_count else table).focus()

    def highlighted_item(self) -> TitleItem | None:
        title = self.highlighted_title()
        items = self.query_one("#title-items", OptionList)
        if title is None:
            return None
        index = items.highlighted if items.has_focus else 0
        return title.items[index] if index is not None and index < len(title.items) else None

    def action_open_link(self) -> None:
        item = self.highlighted_item()
        if item is None or item.link is None:
            self.notify("no Hacker News id known for this item", timeout=2)
            return
        self.app.open_url(item.link)

    @on(OptionList.OptionSelected, "#title-items")
    def item_selected(self, event: OptionList.OptionSelected) -> None:
        title = self.highlighted_title()
        if title is not None and event.option_index < len(title.items):
            item = title.items[event.option_index]
            self.read_item(item.item_id, item.hn_id or item.external_id)

    @work(thread=True, group="titles-item", exit_on_error=False)
    def read_item(self, item_id: int, source: str) -> None:
        store = self.session.store
        try:
            text = store.item(item_id).text
            answers = store.answers_of_item(item_id, self.session.annotator)
        except StoreError as error:
            self.post_message(self.ReadFailed(str(error)))
            return
        latest = answers[-1] if answers else None
        spans = latest.spans if latest is not None and latest.answer == "accept" else ()
        self.post_message(
            self.ItemRead(
                ItemToOpen(
                    item_id,
                    source,
                    text,
                    spans,
                    latest.label if latest else None,
                    latest.view_id if latest else "classification",
                )
            )
        )

    @on(ItemRead)
    def open_item(self, event: ItemRead) -> None:
        item = event.item
        labels = self.session.labels
        label = self.label if self.label in labels else labels[0]

        def keep(spans: tuple[Span, ...] | None) -> None:
            if spans is not None:
                self.write_spans(item, spans)

        self.app.push_screen(
            SpanEditScreen(
                f"item {item.source}",
                printable(item.text),
                word_spans(item.text),
                [(c.start, c.end) for c in suggest_candidates(item.text)],
                item.spans,
                labels,
                label or labels[0],
            ),
            keep,
        )

    def write_spans(self, item: ItemToOpen, spans: tuple[Span, ...]) -> None:
        self.session.submit_write(
            AnswerToWrite(
                item.item_id,
                NewAnswer(
                    annotator=self.session.annotator,
                    answer="accept",
                    label=item.label,
                    spans=spans,
                    view_id=item.view_id,
                    strategy="titles",
                    client_key=client_key("titles:", self.session.session_id, uuid.uuid4().hex),
                ),
                reply_to=self,
            )
        )

    @on(AnswerSaved)
    def spans_saved(self, event: AnswerSaved) -> None:
        count = len(event.request.answer.spans)
        self.render_status(f"saved: accept with {count} span{'s' if count != 1 else ''}")
        self.load_titles(self.label)

    def action_cycle_label(self) -> None:
        options: list[str | None] = [None, *self.session.labels]
        self.label = options[(options.index(self.label) + 1) % len(options)]
        self.render_status("reading the titles…")
        self.load_titles(self.label)

    def action_close(self) -> None:
        self.dismiss()
