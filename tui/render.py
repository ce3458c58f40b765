"""Item text as Rich `Text`, always literal: no markup parsing, no control character reaches the terminal.

The text shown is `printable`'s copy (hnbooks.printable, shared with the CLI): equal length, so every
offset computed on the stored text — spans, candidates, search matches — is valid on the copy shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# rich's own line breaker, which Textual's Content uses to wrap: the same breaks, so the cursor's
# row computed here is the row shown.
from rich._wrap import divide_line
from rich.cells import cell_len
from rich.text import Text

# Re-exported: the screens take `printable` from here with the rest of the rendering.
from hnbooks.printable import printable as printable
from hnbooks.store.records import Span

CANDIDATE_STYLE = "underline #61afef"
ACTIVE_STYLE = "bold black on #98c379"
CURSOR_STYLE = "reverse"
# A query's matches: coloured and underlined, never filled, so a marked span (filled in its
# label's colour) still shows where it covers a match.
MATCH_STYLE = "bold underline #e5c07b"
HINT_STYLE = "bold black on #e06c75"
HINT_TYPED_STYLE = "black on #5c6370"
# One style per label, by the label's position in the database's label list.
LABEL_STYLES = (
    "bold black on #e5c07b",
    "bold black on #c678dd",
    "bold black on #56b6c2",
    "bold black on #e06c75",
    "bold black on #d19a66",
    "bold black on #abb2bf",
)


def one_line(text: str, limit: int) -> str:
    """A printable single-line preview of at most `limit` characters."""
    flat = " ".join(printable(text).split())
    return flat if len(flat) <= limit else flat[: max(0, limit - 1)] + "…"


def label_style(labels: Sequence[str], label: str) -> str:
    position = labels.index(label) if label in labels else len(labels)
    return LABEL_STYLES[position % len(LABEL_STYLES)]


def item_text(
    display_text: str,
    *,
    matches: Iterable[tuple[int, int]] = (),
    candidates: Iterable[tuple[int, int]] = (),
    spans: Iterable[Span] = (),
    labels: Sequence[str] = (),
    selection: tuple[int, int] | None = None,
) -> Text:
    """The item's (already printable) text with a query's matches and candidates underlined,
    marked spans filled in their label's colour over them and the selection on top."""
    text = Text(display_text, no_wrap=False, overflow="fold")
    for start, end in matches:
        text.stylize(MATCH_STYLE, start, end)
    for start, end in candidates:
        text.stylize(CANDIDATE_STYLE, start, end)
    for span in spans:
        text.stylize(label_style(labels, span.label), span.start, span.end)
    if selection is not None:
        text.stylize(ACTIVE_STYLE, selection[0], selection[1])
    return text


def with_jump_hints(
    styled: Text,
    targets: Iterable[tuple[tuple[int, int], str]],
    typed: str = "",
) -> Text:
    """`styled` with each target word's hint label drawn over its first letters (a word shorter
    than its label is covered whole, the label's rest inserted after it). Only labels starting
    with `typed` show; their typed letters are dimmed. Jump mode only: offsets change."""
    shown = styled.blank_copy()
    position = 0
    for (start, end), label in sorted(targets):
        if start < position or not label.startswith(typed):
            continue
        shown.append_text(styled[position:start])
        shown.append(label[: len(typed)], HINT_TYPED_STYLE)
        shown.append(label[len(typed) :], HINT_STYLE)
        position = min(end, start + len(label))
    shown.append_text(styled[position:])
    return shown


def snippet_with_matches(text: str, ranges: Sequence[tuple[int, int]], width: int = 200) -> Text:
    """A one-line window of `text` around its first match, matches highlighted."""
    first = ranges[0][0] if ranges else 0
    start = max(0, first - width // 3)
    end = min(len(text), start + width)
    window = printable(text[start:end]).replace("\n", " ")
    snippet = Text("…" if start else "", overflow="ellipsis", no_wrap=True)
    offset = len(snippet)
    snippet.append(window)
    for match_start, match_end in ranges:
        if match_end > start and match_start < end:
            snippet.stylize(
                MATCH_STYLE,
                offset + max(match_start, start) - start,
                offset + min(match_end, end) - start,
            )
    if end < len(text):
        snippet.append("…")
    return snippet


def wrapped_row(display_text: str, offset: int, width: int) -> int:
    """The row (0-based) on which character `offset` lands when the text is wrapped to `width`."""
    if width <= 0:
        return 0
    row = 0
    line_start = 0
    for line in display_text.split("\n"):
        line_end = line_start + len(line)
        breaks = divide_line(line, width, fold=True)
        if offset <= line_end:
            column = offset - line_start
            return row + sum(1 for position in breaks if position <= column)
        row += len(breaks) + 1
        line_start = line_end + 1
    return row


def wrapped_row_count(display_text: str, width: int) -> int:
    """How many rows the text takes when wrapped to `width`."""
    return wrapped_row(display_text, len(display_text), width) + 1


def offset_at(display_text: str, row: int, column: int, width: int) -> int:
    """The offset of the character drawn at (`row`, `column`) when the text is wrapped to `width`
    (the inverse of `wrapped_row`); a point past a row's end gives that row's last character, one
    below the text its last character."""
    if width <= 0 or not display_text:
        return 0
    current_row = 0
    line_start = 0
    for line in display_text.split("\n"):
        starts = [0, *divide_line(line, width, fold=True)]
        if row < current_row + len(starts):
            part = max(0, row - current_row)
            begin = starts[part]
            finish = starts[part + 1] if part + 1 < len(starts) else len(line)
            cells = 0
            for index in range(begin, finish):
                cells += cell_len(line[index])
                if cells > column:
                    return line_start + index
            return line_start + max(begin, finish - 1) if finish > begin else line_start + begin
        current_row += len(starts)
        line_start += len(line) + 1
    return max(0, len(display_text) - 1)
