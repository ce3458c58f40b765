"""`ItemText`: an item's styled text inside a vertical scroll container."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from hnbooks.tui.render import wrapped_row_count


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

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.display_text = ""
        """The printable text shown (what the wrapping is computed on)."""

    def show_text(self, styled: Text, display_text: str) -> None:
        """Show `styled` (the styled `display_text`), with a layout only when the box must change."""
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

    def on_resize(self) -> None:
        # Laid out for the first time, or the terminal changed size: decide again. Each state is
        # stable (a box that fits has no scrollbar, one that does not keeps it), so this settles.
        self.set_class(self.fits(self.display_text), "-fits")
