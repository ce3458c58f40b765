"""The `?` help screen: every key of every screen, from the bindings themselves (never out of date).

The app hands the screen each screen's bindings, so this module imports no other screen."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
    "less_than_sign": "<",
    "greater_than_sign": ">",
    "apostrophe": "'",
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


def bindings_table(title: str, bindings: Sequence[BindingType]) -> Text:
    table = Text()
    table.append(f"{title}\n", "bold underline")
    for binding in bindings:
        if not isinstance(binding, Binding) or not binding.description:
            continue
        table.append(f"  {key_label(binding.key):<16}", "bold #e5c07b")
        table.append(f"{binding.description}\n")
    return table


@dataclass(frozen=True)
class HelpSection:
    """One screen's keys: a title, its bindings, and a note shown under them."""

    title: str
    bindings: Sequence[BindingType]
    note: str = ""


def help_text(sections: Sequence[HelpSection]) -> Text:
    text = Text()
    text.append("hnbooks — keys", "bold")
    text.append("   (esc or ? closes)\n\n", "dim")
    for number, section in enumerate(sections):
        text.append_text(bindings_table(section.title, section.bindings))
        if section.note:
            text.append(section.note, "dim")
        if number < len(sections) - 1:
            text.append("\n")
    return text


class HelpScreen(ModalScreen[None]):
    """All the keys, by screen: the app hands in each screen's bindings."""

    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss", "Close help", id="help-close"),
        Binding("up,k", "scroll(-1)", "Scroll up", id="help-up", show=False),
        Binding("down,j", "scroll(1)", "Scroll down", id="help-down", show=False),
    ]

    def __init__(self, sections: Sequence[HelpSection]) -> None:
        super().__init__()
        self.sections = tuple(sections)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-scroll", can_focus=False):
            yield Static(help_text(self.sections), id="help-text")

    def action_scroll(self, lines: int) -> None:
        self.query_one("#help-scroll", VerticalScroll).scroll_relative(y=lines, animate=False)
