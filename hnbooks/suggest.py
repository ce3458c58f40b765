"""BOOK span candidates from cheap rules, and the word tokens the span cursor moves over.

Everything here works on Python `str` offsets (code points), end exclusive, the same convention as
stored spans, so a candidate can be stored as a span without conversion for any Unicode text.
The rules are deliberately cheap: they run for every item shown, before any span model exists.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Words that may sit inside a Title-Case run without being capitalised ("The Lord of the Rings").
# "by" is left out: "<Title> by <Name>" is far more common than a title containing "by".
SMALL_WORDS = frozenset(
    "a an and as at but de del der des di du en et for from in into la le nor of on or over"
    " the to upon van von vs with without".split()
)
# The pronoun is capitalised everywhere, so it says nothing about a title.
PRONOUNS_I = frozenset(["I", "I'm", "I've", "I'd", "I'll", "I’m", "I’ve", "I’d", "I’ll"])
MAX_CANDIDATE_WORDS = 12
TRAILING_PUNCTUATION = ",.;:!?"

# Characters joined into one word when they sit between two word characters ("Catch-22", "Ender's");
# a period only between two letters or two digits ("U.S", "3.5"), so "5907.The_Hobbit" splits.
WORD_JOINERS = frozenset("'’-‐")
ZERO_WIDTH_JOINER = "\u200d"
EMOJI_MODIFIERS = frozenset(["\ufe0e", "\ufe0f", "\u20e3"])

QUOTED_PATTERNS = (
    re.compile(r'"([^"\n]{1,160})"'),
    re.compile(r"“([^“”\n]{1,160})”"),
    re.compile(r"«([^«»\n]{1,160})»"),
    # Single quotes double as apostrophes: open only after a non-word character, close only before one.
    re.compile(r"(?<!\w)‘((?:[^‘’\n]|’(?=\w)){1,160})’(?!\w)"),
    re.compile(r"(?<!\w)'((?:[^'\n]|'(?=\w)){1,160})'(?!\w)"),
)
ITALIC_PATTERNS = (
    re.compile(r"(?<![\w*])(\*{1,2})(?![\s*])([^*\n]{1,160}?)(?<![\s*])\1(?![\w*])"),
    re.compile(r"(?<![\w_])(_)(?![\s_])([^_\n]{1,160}?)(?<![\s_])_(?![\w_])"),
    re.compile(r"<(i|em|cite)>([^<\n]{1,160})</\1>", re.IGNORECASE),
)
URL_TAIL = r"[^\s<>\"'()\[\]]*"
LINK_PATTERNS = (
    re.compile(r"(?:https?://)?(?:www\.)?goodreads\.com/(?:[a-z]{2}/)?book/show/" + URL_TAIL, re.I),
    re.compile(
        r"(?:https?://)?(?:www\.|smile\.)?amazon\.[a-z.]{2,6}/(?:[^\s<>\"'()\[\]]*?/)?"
        r"(?:dp|gp/product)/[A-Z0-9]{10}" + URL_TAIL,
        re.I,
    ),
    re.compile(r"https?://amzn\.(?:to|com)/" + URL_TAIL, re.I),
)
ISBN_LABELLED = re.compile(r"\bISBN(?:-1[03])?:?\s*([0-9][0-9\- ]{8,16}[0-9Xx])(?![\w-])")
ISBN_BARE = re.compile(r"(?<![\w-])(97[89][0-9]{10})(?![\w-])")


@dataclass(frozen=True)
class Candidate:
    """A suggested span and the rule that proposed it."""

    start: int
    end: int
    rule: str


def word_spans(text: str) -> list[tuple[int, int]]:
    """Word tokens for the span cursor, as (start, end) offsets.

    Letters, digits and combining marks form words; an apostrophe, hyphen or period between two
    word characters stays inside the word. Each Han/kana character is a word of its own (those
    scripts put no spaces between words), and an emoji with its modifiers and ZWJ sequence is one.
    Punctuation and spaces separate words and are never part of one.
    """
    spans: list[tuple[int, int]] = []
    index, length = 0, len(text)
    while index < length:
        kind = char_kind(text[index])
        if kind == "word":
            start = index
            index += 1
            while index < length:
                following = char_kind(text[index])
                if following == "word" or following == "mark":
                    index += 1
                elif index + 1 < length and joins_words(text, index):
                    index += 2
                else:
                    break
            spans.append((start, index))
        elif kind == "ideograph":
            start = index
            index = skip_marks(text, index + 1)
            spans.append((start, index))
        elif kind == "symbol":
            start = index
            index = emoji_end(text, index)
            spans.append((start, index))
        elif kind == "mark":
            # A combining mark with nothing to combine with (text starting with one): its own word.
            start = index
            index = skip_marks(text, index + 1)
            spans.append((start, index))
        else:
            index += 1
    return spans


def joins_words(text: str, index: int) -> bool:
    """Whether text[index] glues the word before it to the word character after it."""
    char, before, after = text[index], text[index - 1], text[index + 1]
    if char_kind(after) != "word":
        return False
    if char in WORD_JOINERS:
        return True
    return char == "." and (
        before.isalpha() and after.isalpha() or before.isdigit() and after.isdigit()
    )


def char_kind(char: str) -> str:
    category = unicodedata.category(char)
    if category[0] == "M":
        return "mark"
    if category[0] in "LN":
        return "ideograph" if is_ideograph(char) else "word"
    if category == "So" or category == "Sk" and 0x1F3FB <= ord(char) <= 0x1F3FF:
        return "symbol"
    return "separator"


def is_ideograph(char: str) -> bool:
    code = ord(char)
    return (
        0x3040 <= code <= 0x30FF  # hiragana, katakana
        or 0x3400 <= code <= 0x4DBF
        or 0x4E00 <= code <= 0x9FFF
        or 0xF900 <= code <= 0xFAFF
        or 0x20000 <= code <= 0x2FA1F
    )


def skip_marks(text: str, index: int) -> int:
    while index < len(text) and unicodedata.category(text[index])[0] == "M":
        index += 1
    return index


def emoji_end(text: str, index: int) -> int:
    """End of the emoji sequence starting at `index`: modifiers, variation selectors, ZWJ parts."""
    index += 1
    while index < len(text):
        char = text[index]
        if (
            char in EMOJI_MODIFIERS
            or unicodedata.category(char)[0] == "M"
            or 0x1F3FB <= ord(char) <= 0x1F3FF
            or 0xE0020 <= ord(char) <= 0xE007F  # tag characters of flag sequences
        ):
            index += 1
        elif char == ZERO_WIDTH_JOINER and index + 1 < len(text):
            index += 2
        elif 0x1F1E6 <= ord(char) <= 0x1F1FF and 0x1F1E6 <= ord(text[index - 1]) <= 0x1F1FF:
            # The second regional indicator of a flag pair.
            index += 1
            break
        else:
            break
    return index


def trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    """(start, end) without surrounding spaces and trailing sentence punctuation; None if empty."""
    while start < end and text[start].isspace():
        start += 1
    while start < end and (text[end - 1].isspace() or text[end - 1] in TRAILING_PUNCTUATION):
        end -= 1
    return (start, end) if start < end else None


def word_count(text: str) -> int:
    return len(text.split())


def quoted_candidates(text: str) -> list[Candidate]:
    found = []
    for pattern in QUOTED_PATTERNS:
        for match in pattern.finditer(text):
            bounds = trimmed(text, match.start(1), match.end(1))
            if bounds and word_count(text[bounds[0] : bounds[1]]) <= MAX_CANDIDATE_WORDS:
                found.append(Candidate(bounds[0], bounds[1], "quoted"))
    return found


def italic_candidates(text: str) -> list[Candidate]:
    found = []
    for pattern in ITALIC_PATTERNS:
        for match in pattern.finditer(text):
            bounds = trimmed(text, match.start(2), match.end(2))
            if bounds and word_count(text[bounds[0] : bounds[1]]) <= MAX_CANDIDATE_WORDS:
                found.append(Candidate(bounds[0], bounds[1], "italic"))
    return found


def is_capitalised(word: str) -> bool:
    return word[0].isupper() and word not in PRONOUNS_I


def joined_by_spaces(text: str, end: int, next_start: int) -> bool:
    gap = text[end:next_start]
    return bool(gap) and gap.strip(" \t") == ""


def at_sentence_start(text: str, offset: int) -> bool:
    """Whether only spaces separate `offset` from the text's start, a line break or a full stop."""
    before = text[max(0, offset - 80) : offset]
    stripped = before.rstrip()
    if not stripped:
        return offset - len(before) == 0 or "\n" in before
    return stripped[-1] in ".!?" or "\n" in before[len(stripped) :]


def is_title_run(run_words: list[str]) -> bool:
    """2+ capitalised words, at most MAX_CANDIDATE_WORDS, not all of them acronyms."""
    capitalised = sum(1 for word in run_words if is_capitalised(word))
    return (
        capitalised >= 2
        and len(run_words) <= MAX_CANDIDATE_WORDS
        and any(is_capitalised(word) and any(c.islower() for c in word) for word in run_words)
    )


def title_case_candidates(text: str, words: list[tuple[int, int]]) -> list[Candidate]:
    """Runs of 2+ capitalised words, small lowercase words allowed inside, on one line.

    A run right after "by" is an author's name, not a title, so it is left out. A run starting a
    sentence may owe its first capital to the sentence ("Read Zen and the Art of ..."), so the run
    without its first word is proposed as well.
    """
    found = []
    index = 0
    while index < len(words):
        start, end = words[index]
        if not is_capitalised(text[start:end]):
            index += 1
            continue
        last_capitalised = index
        probe = index + 1
        while probe < len(words) and joined_by_spaces(text, words[probe - 1][1], words[probe][0]):
            word = text[words[probe][0] : words[probe][1]]
            if is_capitalised(word):
                last_capitalised = probe
            elif word not in SMALL_WORDS:
                break
            probe += 1
        run = words[index : last_capitalised + 1]
        run_words = [text[s:e] for s, e in run]
        after_by = (
            index > 0
            and text[words[index - 1][0] : words[index - 1][1]].lower() == "by"
            and joined_by_spaces(text, words[index - 1][1], start)
        )
        if is_title_run(run_words) and not after_by:
            found.append(Candidate(run[0][0], run[-1][1], "title-case"))
            if (
                at_sentence_start(text, run[0][0])
                and is_capitalised(run_words[1])
                and is_title_run(run_words[1:])
            ):
                found.append(Candidate(run[1][0], run[-1][1], "title-case"))
        index = last_capitalised + 1
    return found


def by_author_candidates(text: str, words: list[tuple[int, int]]) -> list[Candidate]:
    """ "<Title> by <Name>": the capitalised run just before "by" (one word is enough here)."""
    found = []
    for index in range(1, len(words) - 1):
        by_start, by_end = words[index]
        name_start, name_end = words[index + 1]
        if (
            text[by_start:by_end] != "by"
            or not is_capitalised(text[name_start:name_end])
            or not joined_by_spaces(text, by_end, name_start)
            or not joined_by_spaces(text, words[index - 1][1], by_start)
        ):
            continue
        first = last = index - 1
        if not is_capitalised(text[words[last][0] : words[last][1]]):
            continue
        probe = last - 1
        while probe >= 0 and joined_by_spaces(text, words[probe][1], words[probe + 1][0]):
            word = text[words[probe][0] : words[probe][1]]
            if is_capitalised(word):
                first = probe
            elif word not in SMALL_WORDS:
                break
            probe -= 1
        if last - first + 1 > MAX_CANDIDATE_WORDS:
            continue
        found.append(Candidate(words[first][0], words[last][1], "by-author"))
        second = words[first + 1] if first < last else None
        if (
            second is not None
            and at_sentence_start(text, words[first][0])
            and is_capitalised(text[second[0] : second[1]])
        ):
            found.append(Candidate(second[0], words[last][1], "by-author"))
    return found


def link_candidates(text: str) -> list[Candidate]:
    found = []
    for pattern in LINK_PATTERNS:
        for match in pattern.finditer(text):
            bounds = trimmed(text, match.start(), match.end())
            if bounds:
                found.append(Candidate(bounds[0], bounds[1], "link"))
    for match in ISBN_LABELLED.finditer(text):
        digits = re.sub(r"[\- ]", "", match.group(1))
        if len(digits) in (10, 13):
            found.append(Candidate(match.start(1), match.end(1), "isbn"))
    for match in ISBN_BARE.finditer(text):
        if isbn13_checksum_ok(match.group(1)):
            found.append(Candidate(match.start(1), match.end(1), "isbn"))
    return found


def isbn13_checksum_ok(digits: str) -> bool:
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(digits[:12]))
    return (10 - total % 10) % 10 == int(digits[12])


def suggest_candidates(text: str) -> list[Candidate]:
    """Every rule's candidates, sorted by position; one per (start, end), the first rule kept."""
    words = word_spans(text)
    links = link_candidates(text)
    # Capitalised words inside a URL ("/5907.The_Hobbit") are the link's, not a title of their own.
    word_rules = [
        candidate
        for candidate in title_case_candidates(text, words) + by_author_candidates(text, words)
        if not any(link.start < candidate.end and candidate.start < link.end for link in links)
    ]
    everything = quoted_candidates(text) + italic_candidates(text) + links + word_rules
    unique: dict[tuple[int, int], Candidate] = {}
    for candidate in everything:
        unique.setdefault((candidate.start, candidate.end), candidate)
    return [unique[key] for key in sorted(unique)]


def suggest_spans(text: str) -> list[tuple[int, int]]:
    """BOOK span candidates as sorted, de-duplicated (start, end) offsets, end exclusive."""
    return [(c.start, c.end) for c in suggest_candidates(text)]
