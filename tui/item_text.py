"""`ItemText`: an item's styled text inside a vertical scroll container.

A zero-width character (a combining mark, U+200B…) with no character before it on its line is drawn
on a visible base, U+25CC ◌: a terminal puts such a character on the cell before it, which at the
start of a line is the padding beside the text — never redrawn by Textual, so the mark would stay
there over every later item. A text of zero-width characters only is shown as a placeholder naming
them. Only the widget's copy changes: offsets (spans, candidates) stay those of the stored text.

The mouse: a press, a drag and a click on the text are posted as messages carrying the offset
(into the item's text) of the character under the pointer, so the screen marks by mouse with the
same `SpanMarker` calls its keys use.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.message import Message
from textual.widgets import Static

from hnbooks.tui.render import offset_at, wrapped_row, wrapped_row_count

VISIBLE_BASE = "\u25cc"
BASE_STYLE = "dim"
PLACEHOLDER_STYLE = "dim italic"


def is_zero_width(char: str) -> bool:
    return char != "\n" and cell_len(char) == 0


def base_positions(text: str) -> list[int]:
    """Offsets of the zero-width characters that start a run with no base: at the start of the
    text or of a line, or after a space (where a wrapped line may start)."""
    return [
        n for n, char in enumerate(text) if is_zero_width(char) and (n == 0 or text[n - 1] in " \n")
    ]


def shows_nothing(text: str) -> bool:
    """Non-empty, and nothing in it takes a cell but spaces and line breaks."""
    return bool(text) and all(is_zero_width(char) or char.isspace() for char in text)


def nothing_visible(text: str) -> Text:
    """What stands for a text that shows nothing: how many zero-width characters, and which."""
    codes = sorted({f"U+{ord(char):04X}" for char in text if is_zero_width(char)})
    count = sum(1 for char in text if is_zero_width(char))
    return Text(
        f"(nothing visible: {count} zero-width character{'s' if count != 1 else ''}, "
        f"{' '.join(codes[:8])}{' …' if len(codes) > 8 else ''})",
        style=PLACEHOLDER_STYLE,
    )


def with_visible_bases(styled: Text) -> tuple[Text, list[int]]:
    """`styled` with a visible base before each unbased zero-width run, and where they went."""
    plain = styled.plain
    if shows_nothing(plain):
        return nothing_visible(plain), []
    positions = base_positions(plain)
    if not positions:
        return styled, []
    based = styled.blank_copy()
    for n, piece in enumerate(styled.divide(positions)):
        if n:
            based.append(VISIBLE_BASE, BASE_STYLE)
        based.append_text(piece)
    return based, positions


class ItemText(Static):
    """The item's text. One that fits the scroll viewport is boxed to the viewport's height (class
    `-fits`), so the next text that also fits replaces it without a screen layout: most comments fit,
    and the layout is most of the cost of showing the next item."""

    DEFAULT_CSS = """
    ItemText {
        width: 1fr;
        height: auto;
    }
    ItemText.-fits {
        height: 1fr;
    }
    """

    @dataclass
    class Pressed(Message):
        """The mouse button went down over the character at `offset`."""

        offset: int

    @dataclass
    class Dragged(Message):
        """The pointer, button held since a press here, moved over the character at `offset`."""

        offset: int

    @dataclass
    class Clicked(Message):
        """A press and release on one character, `chain` clicks in a row (2: a double-click)."""

        offset: int
        chain: int

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.pointer_enabled = False
        """Whether mouse presses are posted (only while a real text is shown, not in jump mode)."""
        self._pressed_at: int | None = None
        self._dragged_to: int | None = None
        self._last_press_dragged = False
        self.display_text = ""
        """The text drawn, bases and placeholder included (what the wrapping is computed on)."""
        self.bases: list[int] = []
        """Offsets (into the item's text) before which a visible base was drawn."""

    def show_text(self, styled: Text, display_text: str) -> None:
        """Show `styled` (the styled `display_text`), with a layout only when the box must change."""
        styled, self.bases = with_visible_bases(styled)
        display_text = styled.plain if display_text else ""
        self.display_text = display_text
        fits = self.fits(display_text)
        needs_layout = not fits or not self.has_class("-fits")
        self.set_class(fits, "-fits")
        self.update(styled, layout=needs_layout)

    def fits(self, display_text: str) -> bool:
        width = self.content_size.width
        parent = self.parent
        if not width or parent is None or not display_text:
            return False
        viewport_rows: int = parent.scrollable_content_region.height  # type: ignore[attr-defined]
        return wrapped_row_count(display_text, width) <= viewport_rows - 1

    def row_of(self, offset: int) -> int:
        """The row on which the character at `offset` of the item's text is drawn."""
        shifted = offset + sum(1 for base in self.bases if base <= offset)
        return wrapped_row(self.display_text, shifted, self.content_size.width)

    def text_offset_at(self, x: int, y: int) -> int:
        """The offset, into the item's text, of the character drawn at widget cell (`x`, `y`)."""
        display_offset = offset_at(self.display_text, max(0, y), max(0, x), self.content_size.width)
        # Each base drawn before `base` (i bases before it) sits at display offset base + i.
        shift = 0
        for n, base in enumerate(self.bases):
            if base + n < display_offset:
                shift += 1
        return max(0, display_offset - shift)

    def on_mouse_down(self, event: events.MouseDown) -> None:
        if not self.pointer_enabled or event.button != 1:
            return
        offset = self.text_offset_at(event.x, event.y)
        self._pressed_at, self._dragged_to = offset, None
        self.capture_mouse()
        self.post_message(self.Pressed(offset))

    def on_mouse_move(self, event: events.MouseMove) -> None:
        # Captured since the press: every move until the release drags.
        if self._pressed_at is None:
            return
        offset = self.text_offset_at(event.x, event.y)
        if offset != (self._dragged_to if self._dragged_to is not None else self._pressed_at):
            self._dragged_to = offset
            self.post_message(self.Dragged(offset))

    def on_mouse_up(self, event: events.MouseUp) -> None:
        if self._pressed_at is None:
            return
        self.release_mouse()
        self._last_press_dragged = self._dragged_to is not None
        self._pressed_at = self._dragged_to = None

    def on_click(self, event: events.Click) -> None:
        # After the release of a press here: a drag selected already, so it is no click.
        if not self.pointer_enabled or self._last_press_dragged:
            return
        offset = self.text_offset_at(event.x, event.y)
        self.post_message(self.Clicked(offset, max(1, event.chain)))

    def on_resize(self) -> None:
        # Laid out for the first time, or the terminal changed size: decide again. Each state is
        # stable (a box that fits has no scrollbar, one that does not keeps it), so this settles.
        self.set_class(self.fits(self.display_text), "-fits")
