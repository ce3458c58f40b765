"""Keyboard span marking over one item's text: a word cursor, a selection, candidates and spans.

Plain Python, no Textual: the annotate screen owns one `SpanMarker` per shown item and calls these
methods from its key bindings, then renders `selection()` and `spans`.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

from hnbooks.store.records import Span


@dataclass
class SpanMarker:
    """The marking state of one item. Offsets are `str` offsets, end exclusive."""

    words: Sequence[tuple[int, int]]
    candidates: Sequence[tuple[int, int]]
    spans: list[Span] = field(default_factory=list)
    cursor: int | None = None
    """Index into `words` of the cursor word; None until the user moves it."""
    anchor: int | None = None
    """Index into `words` where a shift-extension started; None when not extending."""
    candidate_index: int | None = None
    """Index into `candidates` of the candidate picked with tab; None when none is."""

    def selection(self) -> tuple[int, int] | None:
        """The character range enter would mark: the picked candidate, or cursor..anchor words."""
        if self.candidate_index is not None:
            return self.candidates[self.candidate_index]
        if self.cursor is None:
            return None
        first, last = sorted((self.cursor if self.anchor is None else self.anchor, self.cursor))
        return self.words[first][0], self.words[last][1]

    def word_at(self, offset: int) -> int:
        """Index of the word containing `offset`, or the last word starting before it."""
        starts = [start for start, _ in self.words]
        return max(0, bisect_right(starts, offset) - 1)

    def _leave_candidate(self) -> None:
        """Turn a picked candidate into a plain word selection covering the same words."""
        if self.candidate_index is None:
            return
        start, end = self.candidates[self.candidate_index]
        self.anchor = self.word_at(start)
        self.cursor = max(self.anchor, self.word_at(max(start, end - 1)))
        self.candidate_index = None

    def move(self, step: int) -> None:
        """Move the cursor `step` words (negative: left) and drop any selection."""
        if not self.words:
            return
        if self.candidate_index is not None:
            self._leave_candidate()
            assert self.cursor is not None and self.anchor is not None
            self.cursor = self.anchor if step < 0 else self.cursor
            step = 0
        if self.cursor is None:
            self.cursor = 0 if step >= 0 else len(self.words) - 1
        else:
            self.cursor = min(len(self.words) - 1, max(0, self.cursor + step))
        self.anchor = None

    def extend(self, step: int) -> None:
        """Grow or shrink the selection by `step` words from its moving end."""
        if not self.words:
            return
        self._leave_candidate()
        if self.cursor is None:
            self.cursor = 0 if step >= 0 else len(self.words) - 1
            self.anchor = self.cursor
            return
        if self.anchor is None:
            self.anchor = self.cursor
        self.cursor = min(len(self.words) - 1, max(0, self.cursor + step))

    def cycle_candidate(self, step: int) -> bool:
        """Pick the next (or previous) candidate after the cursor; False when there is none."""
        if not self.candidates:
            return False
        if self.candidate_index is not None:
            self.candidate_index = (self.candidate_index + step) % len(self.candidates)
        else:
            here = self.words[self.cursor][0] if self.cursor is not None and self.words else -1
            after = [i for i, (start, _) in enumerate(self.candidates) if start > here]
            before = [i for i, (start, _) in enumerate(self.candidates) if start <= here]
            if step > 0:
                self.candidate_index = after[0] if after else 0
            else:
                self.candidate_index = before[-1] if before else len(self.candidates) - 1
        start, _ = self.candidates[self.candidate_index]
        self.cursor = self.word_at(start) if self.words else None
        self.anchor = None
        return True

    def mark(self, label: str) -> Span | None:
        """Mark the selection with `label`, replacing spans it overlaps; None without a selection."""
        selection = self.selection()
        if selection is None:
            return None
        start, end = selection
        span = Span(start, end, label)
        self.spans = sorted(
            [s for s in self.spans if s.end <= start or s.start >= end] + [span],
            key=lambda s: (s.start, s.end),
        )
        if self.candidate_index is not None:
            self.cursor = self.word_at(max(start, end - 1)) if self.words else None
        self.candidate_index = None
        self.anchor = None
        return span

    def delete_at_cursor(self) -> list[Span]:
        """Remove the spans under the cursor (or overlapping the selection); return them."""
        selection = self.selection()
        if selection is None:
            return []
        start, end = selection
        removed = [s for s in self.spans if s.start < end and start < s.end]
        self.spans = [s for s in self.spans if s not in removed]
        return removed

    def clear_selection(self) -> None:
        self.anchor = None
        self.candidate_index = None
        self.cursor = None


HINT_LETTERS = "asdfghjklqwertyuiopzxcvbnm"
"""Jump-mode hint letters, home row first: the nearest targets get the easiest keys."""


def jump_hints(count: int, letters: str = HINT_LETTERS) -> list[str]:
    """Hint labels for `count` jump targets, in target order: prefix-free (typing one label never
    starts another) and shortest first, so the first targets take one key and the rest two (three
    beyond `len(letters)` squared).

    Jump marking uses it twice: once over every word for the span's start, then over the words from
    the start onward for its end, so a short title's end usually takes one key."""
    if count <= 0:
        return []
    base = len(letters)
    if count <= base:
        return list(letters[:count])
    # k letters stay single; each of the other base - k letters prefixes a block of longer labels.
    prefixes = base
    singles = 0
    for singles in range(base - 1, -1, -1):
        prefixes = base - singles
        if singles + prefixes * base >= count:
            break
    else:
        singles, prefixes = 0, base
    rest = count - singles
    per_prefix = -(-rest // prefixes)
    labels = list(letters[:singles])
    for prefix in letters[singles : singles + prefixes]:
        take = min(per_prefix, count - len(labels))
        labels.extend(prefix + tail for tail in jump_hints(take, letters))
    return labels[:count]
