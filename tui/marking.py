"""Keyboard span marking over one item's text: a word cursor, a selection, candidates and spans.

Plain Python, no Textual: the annotate screen owns one `SpanMarker` per shown item and calls these
methods from its key bindings, then renders `selection()` and `spans`.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from hnbooks.store.records import Span

JumpStage = Literal["start", "end"]
"""Which end of the span the jump-mode hints place next."""


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
    last_candidate: int | None = None
    """The candidate picked last (kept after it is marked or left): tab goes on from it."""
    jump_stage: JumpStage | None = None
    """In jump mode, which end the hints place next; None outside jump mode."""
    jump_typed: str = ""
    """The hint letters typed so far in jump mode (a prefix of a two-letter label)."""

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
        """Pick the next (or previous) candidate in the order given (ranked: the likeliest
        first), wherever the cursor is: the first tab picks the first candidate, each further tab
        the one after the candidate picked last (also after that one was marked); shift+tab
        from none picked, the last. False when there is none."""
        if not self.candidates:
            return False
        current = self.candidate_index if self.candidate_index is not None else self.last_candidate
        if current is None:
            self.candidate_index = 0 if step > 0 else len(self.candidates) - 1
        else:
            self.candidate_index = (current + step) % len(self.candidates)
        self.last_candidate = self.candidate_index
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
        """Drop the selection and start the candidates over (the next tab picks the first)."""
        self.anchor = None
        self.candidate_index = None
        self.last_candidate = None
        self.cursor = None
        self.jump_stage = None
        self.jump_typed = ""

    def pending_selection(self) -> tuple[int, int] | None:
        """What an accept keeps without enter: a picked candidate, or a selection of explicit
        extent (shift-extended, jumped, dragged or found). A bare cursor is not one."""
        if self.candidate_index is not None or self.anchor is not None:
            return self.selection()
        return None

    def spans_with_pending(self, label: str) -> list[Span]:
        """The spans an accept stores: the marked ones, and the pending selection marked with
        `label` (as enter would), so a picked candidate is never dropped. Changes nothing."""
        pending = self.pending_selection()
        if pending is None:
            return list(self.spans)
        start, end = pending
        return sorted(
            [s for s in self.spans if s.end <= start or s.start >= end] + [Span(start, end, label)],
            key=lambda s: (s.start, s.end),
        )

    def extend_start(self, step: int) -> None:
        """Move the selection's other end (the one shift+arrows leave alone) by `step` words;
        never past the moving end, so the selection keeps at least one word."""
        if not self.words:
            return
        self._leave_candidate()
        if self.cursor is None:
            self.extend(step)
            return
        if self.anchor is None:
            self.anchor = self.cursor
        if self.anchor <= self.cursor:
            self.anchor = min(self.cursor, max(0, self.anchor + step))
        else:
            self.anchor = max(self.cursor, min(len(self.words) - 1, self.anchor + step))

    def select_words(self, first: int, last: int) -> None:
        """Select words `first`..`last` (in either order): the anchor at `first`, the cursor at
        `last`, as a drag or a jump leaves them."""
        if not self.words:
            return
        top = len(self.words) - 1
        self.candidate_index = None
        self.anchor = min(top, max(0, first))
        self.cursor = min(top, max(0, last))

    def pick_candidate(self, index: int) -> None:
        """Pick candidate `index` (as tab would when it is the next one)."""
        self.candidate_index = self.last_candidate = index
        start, _ = self.candidates[index]
        self.cursor = self.word_at(start) if self.words else None
        self.anchor = None

    def candidate_at(self, offset: int) -> int | None:
        """Index of the candidate covering character `offset`, or None."""
        for index, (start, end) in enumerate(self.candidates):
            if start <= offset < end:
                return index
        return None

    def word_index_at(self, offset: int) -> int | None:
        """Index of the word covering character `offset`; None between words."""
        if not self.words:
            return None
        index = self.word_at(offset)
        start, end = self.words[index]
        return index if start <= offset < end else None

    # -- jump mode --------------------------------------------------------------------------------

    def begin_jump(self) -> bool:
        """Enter jump mode: hints over every word place the span's start; False without words."""
        if not self.words:
            return False
        self.jump_stage = "start"
        self.jump_typed = ""
        return True

    def end_jump(self) -> None:
        """Leave jump mode, keeping whatever selection it made."""
        self.jump_stage = None
        self.jump_typed = ""

    def jump_first_word(self) -> int:
        """The word the current hints start at: 0 for the start, the span's start for its end."""
        if self.jump_stage == "end" and self.anchor is not None:
            return self.anchor
        return 0

    def jump_targets(self) -> list[tuple[int, str]]:
        """(word index, hint label) of each word the next hint may pick; empty outside jump mode."""
        if self.jump_stage is None:
            return []
        first = self.jump_first_word()
        labels = jump_hints(len(self.words) - first)
        return [(first + n, label) for n, label in enumerate(labels)]

    def jump_key(self, letter: str) -> bool:
        """Type one hint letter in jump mode. A complete label places the start (then the end
        hints show) or the end (then jump mode ends with start..end selected); a label's first
        letter waits for the second. False for a letter no label starts with (nothing changes)."""
        if self.jump_stage is None:
            return False
        typed = self.jump_typed + letter
        targets = self.jump_targets()
        hit = next((index for index, label in targets if label == typed), None)
        if hit is None:
            if any(label.startswith(typed) for _, label in targets):
                self.jump_typed = typed
                return True
            return False
        self.jump_typed = ""
        if self.jump_stage == "start":
            self.select_words(hit, hit)
            self.jump_stage = "end"
        else:
            assert self.anchor is not None
            self.select_words(self.anchor, hit)
            self.jump_stage = None
        return True

    # -- find -------------------------------------------------------------------------------------

    def find(self, text: str, query: str, from_offset: int = 0) -> bool:
        """Select the words of the first case-insensitive match of `query` in `text` at or after
        `from_offset` (wrapping round to the start); False, changing nothing, when there is none."""
        if not query or not self.words:
            return False
        folded, needle = text.casefold(), query.casefold()
        # casefold can change lengths (ß → ss): search the original when it does.
        if len(folded) != len(text) or len(needle) != len(query):
            folded, needle = text.lower(), query.lower()
            if len(folded) != len(text):
                folded, needle = text, query
        found = folded.find(needle, from_offset)
        if found < 0:
            found = folded.find(needle)
        if found < 0:
            return False
        self.select_words(self.word_from(found), self.word_at(max(found, found + len(needle) - 1)))
        return True

    def word_from(self, offset: int) -> int:
        """Index of the word containing `offset`, or the first one after it (the last word when
        none follows)."""
        for index, (_, end) in enumerate(self.words):
            if end > offset:
                return index
        return len(self.words) - 1


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
