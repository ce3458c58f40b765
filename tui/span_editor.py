"""Span marking keys and mouse, shared by the annotate screen and `SpanEditScreen` (review, search).

`SpanMarking` is a mixin for a screen that holds a `SpanMarker` (`self.marker`), shows the item in an
`ItemText` and has a find input (`find_input()`, id "find"): it gives the marking actions (words,
candidates, both ends of a selection, jump mode, incremental find) and turns `ItemText`'s mouse
messages into the same `SpanMarker` calls. The host says what to redraw (`after_marking_change`),
which label a mark takes (`marking_label`) and the text marked (`marking_text`).

Jump mode (`f`): every word shows a hint label (`jump_hints`); typing one places the span's start,
then the words from there on are labelled again and typing one places its end. While jump mode is on
the hint letters are read here, before any binding (so `a` or `x` is a hint, never an answer).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Static

from hnbooks.store.records import Span
from hnbooks.tui.item_text import ItemText
from hnbooks.tui.marking import HINT_LETTERS, SpanMarker
from hnbooks.tui.render import item_text, label_style, one_line, with_jump_hints

MARKING_ACTIONS = frozenset(
    [
        "mark",
        "candidate",
        "move",
        "extend",
        "extend_start",
        "delete_span",
        "clear_selection",
        "jump",
        "find",
    ]
)


def marking_bindings(prefix: str = "") -> list[Binding]:
    """The marking keys; `prefix` keeps binding ids unique per screen."""
    return [
        Binding("enter", "mark", "Mark", id=f"{prefix}mark", key_display="⏎"),
        Binding("tab", "candidate(1)", "Next candidate", id=f"{prefix}next-candidate", show=False),
        Binding(
            "shift+tab",
            "candidate(-1)",
            "Previous candidate",
            id=f"{prefix}previous-candidate",
            show=False,
        ),
        Binding("left,h", "move(-1)", "Word left", id=f"{prefix}word-left", show=False),
        Binding("right,l", "move(1)", "Word right", id=f"{prefix}word-right", show=False),
        Binding(
            "shift+left,H",
            "extend(-1)",
            "Extend selection left",
            id=f"{prefix}extend-left",
            show=False,
        ),
        Binding(
            "shift+right,L",
            "extend(1)",
            "Extend selection right",
            id=f"{prefix}extend-right",
            show=False,
        ),
        Binding(
            "less_than_sign,ctrl+shift+left",
            "extend_start(-1)",
            "Other end of the selection a word left",
            id=f"{prefix}other-end-left",
            show=False,
        ),
        Binding(
            "greater_than_sign,ctrl+shift+right",
            "extend_start(1)",
            "Other end of the selection a word right",
            id=f"{prefix}other-end-right",
            show=False,
        ),
        Binding(
            "f",
            "jump",
            "Jump: type the hint at the start, then at the end",
            id=f"{prefix}jump",
            show=False,
        ),
        Binding(
            "ctrl+f,apostrophe",
            "find",
            "Find in the text (again: next match)",
            id=f"{prefix}find",
            show=False,
        ),
        Binding(
            "d", "delete_span", "Delete span under cursor", id=f"{prefix}delete-span", show=False
        ),
        Binding(
            "escape",
            "clear_selection",
            "Clear the selection",
            id=f"{prefix}clear-selection",
            show=False,
        ),
    ]


def find_input() -> Input:
    """The find box a `SpanMarking` screen composes (hidden until ctrl+f)."""
    find = Input(placeholder="find in the text: ⏎ keeps the match, esc goes back", id="find")
    # Disabled while hidden: never focused by the screen, so keys reach the bindings.
    find.display = False
    find.disabled = True
    return find


def marked_text(
    display_text: str,
    marker: SpanMarker,
    labels: Sequence[str],
) -> Text:
    """The item's text as a marking screen draws it: candidates, spans, the selection, and in jump
    mode the hint labels."""
    styled = item_text(
        display_text,
        candidates=marker.candidates,
        spans=marker.spans,
        labels=labels,
        selection=marker.selection(),
    )
    targets = marker.jump_targets()
    if not targets:
        return styled
    return with_jump_hints(
        styled, [(marker.words[index], label) for index, label in targets], marker.jump_typed
    )


def jump_line(marker: SpanMarker) -> Text:
    """The marking line in jump mode: which end the hints place."""
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(" jump ", "bold reverse")
    if marker.jump_stage == "start":
        line.append(" type the hint at the span's start · esc leaves")
    else:
        line.append(" type the hint at the span's end · ⏎ marks the start word alone · esc leaves")
    if marker.jump_typed:
        line.append(f" · {marker.jump_typed}…", "bold")
    return line


def spans_line(line: Text, display_text: str, spans: Sequence[Span], labels: Sequence[str]) -> None:
    """Append the marked spans, each in its label's colour, to a marking line."""
    if not spans:
        return
    line.append(" │ ")
    for n, span in enumerate(spans):
        if n:
            line.append(" ")
        line.append(
            one_line(display_text[span.start : span.end], 30), label_style(labels, span.label)
        )


class SpanMarking:
    """Marking actions and mouse marking for a screen holding `marker` (see the module's doc)."""

    marker: SpanMarker | None

    # -- what the host says -----------------------------------------------------------------------

    def marking_label(self) -> str:
        raise NotImplementedError

    def marking_text(self) -> str:
        """The text marked (the printable copy shown: same offsets as the stored text)."""
        raise NotImplementedError

    def after_marking_change(self) -> None:
        raise NotImplementedError

    # -- keys -------------------------------------------------------------------------------------

    def action_move(self, step: int) -> None:
        if self.marker is not None:
            self.marker.move(step)
            self.after_marking_change()

    def action_extend(self, step: int) -> None:
        if self.marker is not None:
            self.marker.extend(step)
            self.after_marking_change()

    def action_extend_start(self, step: int) -> None:
        if self.marker is not None:
            self.marker.extend_start(step)
            self.after_marking_change()

    def action_candidate(self, step: int) -> None:
        if self.marker is None:
            return
        if not self.marker.cycle_candidate(step):
            self.notify(  # type: ignore[attr-defined]
                "no candidates in this text: mark words with ←/→ and shift+←/→, or f to jump",
                timeout=2,
            )
        self.after_marking_change()

    def action_mark(self) -> None:
        if self.marker is None:
            return
        self.marker.end_jump()
        if self.marker.mark(self.marking_label()) is None:
            self.notify(  # type: ignore[attr-defined]
                "nothing selected: move with ←/→, pick a candidate with tab, or f to jump",
                timeout=2,
            )
        self.after_marking_change()

    def action_delete_span(self) -> None:
        if self.marker is not None:
            self.marker.delete_at_cursor()
            self.after_marking_change()

    def action_clear_selection(self) -> None:
        if self.marker is not None:
            self.marker.clear_selection()
            self.after_marking_change()

    def action_jump(self) -> None:
        if self.marker is not None and self.marker.begin_jump():
            self.after_marking_change()

    def on_key(self, event: events.Key) -> None:
        """In jump mode the hint letters (and esc) are read here, before any binding sees them."""
        marker = self.marker
        if marker is not None and marker.jump_stage is not None:
            if event.key == "escape":
                marker.end_jump()
            elif event.key == "backspace":
                marker.jump_typed = ""
            elif event.character is not None and event.character in HINT_LETTERS:
                if not marker.jump_key(event.character):
                    self.app.bell()  # type: ignore[attr-defined]
            else:
                # Another key (⏎ marks, a digit picks a label, an arrow moves): it leaves jump
                # mode and does what it does.
                if not event.key.isdigit():
                    marker.end_jump()
                    self.after_marking_change()
                return
            event.stop()
            event.prevent_default()
            self.after_marking_change()
            return
        find = self.find_box()
        if find.display and event.key == "escape":
            self.close_find(keep=False)
            event.stop()
            event.prevent_default()

    # -- find -------------------------------------------------------------------------------------

    find_saved: tuple[int | None, int | None, int | None] = (None, None, None)
    find_from: int = 0

    def find_box(self) -> Input:
        return self.query_one("#find", Input)  # type: ignore[attr-defined,no-any-return]

    def action_find(self) -> None:
        marker = self.marker
        if marker is None:
            return
        find = self.find_box()
        if find.display:
            # Again while finding: the next match after the one selected.
            selection = marker.selection()
            self.find_from = selection[1] if selection is not None else 0
            self.find_again(find.value)
            return
        self.find_saved = (marker.cursor, marker.anchor, marker.candidate_index)
        selection = marker.selection()
        self.find_from = selection[0] if selection is not None else 0
        find.value = ""
        find.disabled = False
        find.display = True
        find.focus()

    def find_again(self, query: str) -> None:
        marker = self.marker
        if marker is None:
            return
        found = marker.find(self.marking_text(), query, self.find_from)
        if not found:
            marker.cursor, marker.anchor, marker.candidate_index = self.find_saved
        self.find_box().set_class(bool(query) and not found, "-no-match")
        self.after_marking_change()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "find" and event.input.display:
            self.find_again(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "find":
            event.stop()
            self.close_find(keep=True)

    def close_find(self, *, keep: bool) -> None:
        """Hide the find box; the match stays selected (`keep`) or the selection before it returns."""
        find = self.find_box()
        find.display = False
        find.disabled = True
        self.set_focus(None)  # type: ignore[attr-defined]
        if not keep and self.marker is not None:
            self.marker.cursor, self.marker.anchor, self.marker.candidate_index = self.find_saved
        self.after_marking_change()

    # -- mouse ------------------------------------------------------------------------------------

    drag_from_word: int | None = None

    def on_item_text_pressed(self, event: ItemText.Pressed) -> None:
        if self.marker is not None and self.marker.words:
            self.drag_from_word = self.marker.word_from(event.offset)

    def on_item_text_dragged(self, event: ItemText.Dragged) -> None:
        marker = self.marker
        if marker is None or self.drag_from_word is None:
            return
        marker.end_jump()
        to_word = marker.word_at(event.offset)
        if to_word < self.drag_from_word:
            to_word = marker.word_from(event.offset)
        marker.select_words(self.drag_from_word, to_word)
        self.after_marking_change()

    def on_item_text_clicked(self, event: ItemText.Clicked) -> None:
        """A click on a candidate marks it; on another word it puts the cursor there; a
        double-click marks the word (the candidate it lies in was marked by its first click)."""
        marker = self.marker
        if marker is None:
            return
        marker.end_jump()
        candidate = marker.candidate_at(event.offset)
        word = marker.word_index_at(event.offset)
        if candidate is not None:
            if event.chain == 1:
                marker.pick_candidate(candidate)
                marker.mark(self.marking_label())
        elif word is not None:
            if event.chain >= 2:
                marker.select_words(word, word)
                marker.mark(self.marking_label())
            else:
                marker.candidate_index = None
                marker.anchor = None
                marker.cursor = word
        self.after_marking_change()


class SpanEditScreen(SpanMarking, ModalScreen[tuple[Span, ...] | None]):
    """Mark the spans of one text (review, search, titles): `ctrl+s` keeps them (a picked candidate or a
    selection too), `q` leaves without a change. Dismissed with the spans kept, or None."""

    BINDINGS = [
        Binding("ctrl+s", "keep", "Keep these spans", id="edit-keep"),
        Binding("q", "cancel", "Back, no change", id="edit-cancel"),
        *marking_bindings("edit-"),
        # One line in the help for the nine: which label each key is depends on the database.
        *[
            Binding(
                key,
                f"choose_label({n})",
                "Label: 1-9, the database's labels in order" if n == 0 else "",
                id=f"edit-label-{key}",
                show=False,
            )
            for n, key in enumerate("123456789")
        ],
    ]

    def __init__(
        self,
        title: str,
        display_text: str,
        words: Sequence[tuple[int, int]],
        candidates: Sequence[tuple[int, int]],
        spans: Sequence[Span],
        labels: Sequence[str],
        label: str,
    ) -> None:
        super().__init__()
        self.title_text = title
        self.display_text = display_text
        self.labels = tuple(labels)
        self.label = label if label in labels else labels[0]
        self.marker = SpanMarker(words, candidates, spans=list(spans))

    def compose(self) -> ComposeResult:
        yield Static(id="edit-title")
        with VerticalScroll(id="edit-text-scroll", can_focus=False):
            yield ItemText(id="edit-text")
        yield Static(id="edit-marking")
        yield find_input()
        yield Footer()

    def on_mount(self) -> None:
        self.after_marking_change()

    def marking_label(self) -> str:
        return self.label

    def marking_text(self) -> str:
        return self.display_text

    def after_marking_change(self) -> None:
        marker = self.marker
        assert marker is not None
        title = Text(no_wrap=True, overflow="ellipsis")
        title.append("mark spans ", "bold")
        title.append(one_line(self.title_text, 60))
        title.append(" · label ")
        title.append(f" {one_line(self.label, 20)} ", label_style(self.labels, self.label))
        title.append(" · ctrl+s keep · q back", "dim")
        self.query_one("#edit-title", Static).update(title)
        styled = marked_text(self.display_text, marker, self.labels)
        text_widget = self.query_one("#edit-text", ItemText)
        # In jump mode the hints move the letters: a click could not say which one it meant.
        text_widget.pointer_enabled = marker.jump_stage is None
        text_widget.show_text(styled, styled.plain)
        if marker.jump_stage is not None:
            line = jump_line(marker)
        else:
            line = Text(no_wrap=True, overflow="ellipsis")
            selection = marker.selection()
            if selection is not None:
                line.append("selection ", "bold")
                line.append(
                    one_line(self.display_text[selection[0] : selection[1]], 40), "bold #98c379"
                )
                line.append(" · ⏎ mark · d delete")
            else:
                line.append("←/→ words · tab candidates · f jump · ctrl+f find · ⏎ mark", "dim")
            spans_line(line, self.display_text, marker.spans, self.labels)
        self.query_one("#edit-marking", Static).update(line)

    def action_choose_label(self, position: int) -> None:
        if position < len(self.labels):
            self.label = self.labels[position]
            self.after_marking_change()

    def action_keep(self) -> None:
        assert self.marker is not None
        self.marker.end_jump()
        self.dismiss(tuple(self.marker.spans_with_pending(self.label)))

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_clear_selection(self) -> None:
        # esc with nothing selected leaves, as on the other sub-screens.
        marker = self.marker
        if marker is not None and marker.selection() is None:
            self.dismiss(None)
            return
        super().action_clear_selection()
