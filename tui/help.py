"""The `?` help screen: every key of every screen, from the bindings themselves (never out of date)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEY_SYMBOLS = {
    "left": "←",
    "right": "→",
    "up": "↑",
    "down": "↓",
    "enter": "⏎",
    "backspace": "⌫",
    "escape": "esc",
    "question_mark": "?",
    "slash": "/",
    "left_square_bracket": "[",
    "right_square_bracket": "]",
    "pageup": "PgUp",
    "pagedown": "PgDn",
}


def key_label(keys: str) -> str:
    """'shift+left,H' → 'shift+← H'."""
    shown = []
    for key in keys.split(","):
        parts = key.strip().split("+")
        shown.append("+".join(KEY_SYMBOLS.get(part, part) for part in parts))
    return " ".join(shown)


def bindings_table(title: str, bindings: list[BindingType]) -> Text:
    table = Text()
    table.append(f"{title}\n", "bold underline")
    for binding in bindings:
        if not isinstance(binding, Binding) or not binding.description:
            continue
        table.append(f"  {key_label(binding.key):<16}", "bold #e5c07b")
        table.append(f"{binding.description}\n")
    return table


class HelpScreen(ModalScreen[None]):
    """All the keys, by screen."""

    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss", "Close help", id="help-close"),
        Binding("up,k", "scroll(-1)", "Scroll up", id="help-up", show=False),
        Binding("down,j", "scroll(1)", "Scroll down", id="help-down", show=False),
    ]

    def compose(self) -> ComposeResult:
        # Imported here: the screens import this module for their own help.
        from hnbooks.tui.annotate import AnnotateScreen
        from hnbooks.tui.app import AnnotateApp
        from hnbooks.tui.review import ReviewScreen
        from hnbooks.tui.search import SearchScreen
        from hnbooks.tui.stats import StatsScreen

        help_text = Text()
        help_text.append("hnbooks — keys", "bold")
        help_text.append("   (esc or ? closes)\n\n", "dim")
        help_text.append_text(
            bindings_table("Annotate", [*AnnotateScreen.BINDINGS, *AnnotateApp.BINDINGS])
        )
        help_text.append(
            "  Candidates are underlined; marked spans are filled in their label's colour.\n"
            "  Accepting stores the marked spans with the answer.\n\n",
            "dim",
        )
        help_text.append_text(bindings_table("Search  (/)", SearchScreen.BINDINGS))
        help_text.append("\n")
        help_text.append_text(bindings_table("Review  (r)", ReviewScreen.BINDINGS))
        help_text.append("\n")
        help_text.append_text(bindings_table("Stats  (s)", StatsScreen.BINDINGS))
        with VerticalScroll(id="help-scroll", can_focus=False):
            yield Static(help_text, id="help-text")

    def action_scroll(self, lines: int) -> None:
        self.query_one("#help-scroll", VerticalScroll).scroll_relative(y=lines, animate=False)
