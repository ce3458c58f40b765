"""The titles found: the distinct spans marked in accepted answers, normalised, counted, with the
items that mention them (what `hnbooks titles` and the TUI's titles screen list).

Two spans are one title when they are equal after normalisation: Unicode compatibility forms
folded (NFKC), surrounding quotes, brackets and punctuation taken off, whitespace runs made one
space, case folded. The title shown is the form marked most often (the earliest on a tie).
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from hnbooks.printable import inert_json, printable
from hnbooks.store.titles import SpanMention, TitleQueries

HN_ITEM_URL = "https://news.ycombinator.com/item?id={}"
# Quotes of every script, brackets, and the punctuation a title is written between or after.
SURROUNDING = "\"'`“”‘’„‟‚‛«»‹›「」『』()[]{}<>*_~.,;:!?¿¡-–—/\\|"
WHITESPACE_RUN = re.compile(r"\s+")
CSV_COLUMNS = ("title", "label", "items", "mentions", "first_seen", "last_seen", "hn_ids", "links")


def normalised_form(text: str) -> str:
    """`text` without surrounding quotes and punctuation, whitespace runs one space (case kept)."""
    folded = unicodedata.normalize("NFKC", text)
    return WHITESPACE_RUN.sub(" ", folded).strip().strip(SURROUNDING + " ").strip()


def title_key(text: str) -> str:
    """What two spans share when they name one title."""
    return normalised_form(text).casefold()


@dataclass(frozen=True)
class TitleItem:
    """An item that mentions a title."""

    item_id: int
    external_id: str
    hn_id: str | None
    ranges: tuple[tuple[int, int], ...] = ()
    """Where in the item's text the title was marked (start, end), each place once."""

    @property
    def link(self) -> str | None:
        """The item on Hacker News, when its id is known."""
        return HN_ITEM_URL.format(self.hn_id) if self.hn_id and self.hn_id.isdigit() else None


@dataclass(frozen=True)
class FoundTitle:
    """One distinct title of one label, and where it was marked."""

    title: str
    key: str
    label: str
    mentions: int
    """Spans marked (an item marked by two annotators counts twice)."""
    items: tuple[TitleItem, ...]
    """The items mentioning it, in the order they were first marked."""
    first_seen: float
    last_seen: float
    """When the earliest and latest of those answers were given (seconds since the epoch)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "label": self.label,
            "items": len(self.items),
            "mentions": self.mentions,
            "first_seen": iso_time(self.first_seen),
            "last_seen": iso_time(self.last_seen),
            "mentioned_in": [
                {
                    "item_id": item.item_id,
                    "external_id": item.external_id,
                    "hn_id": item.hn_id,
                    "link": item.link,
                }
                for item in self.items
            ],
        }


def iso_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="seconds")


def aggregate_titles(mentions: Iterable[SpanMention]) -> list[FoundTitle]:
    """The distinct titles of `mentions`, most items first (then most mentions, then by name)."""
    groups: dict[tuple[str, str], list[SpanMention]] = {}
    for mention in mentions:
        key = title_key(mention.text)
        if key:
            groups.setdefault((mention.label, key), []).append(mention)
    titles = []
    for (label, key), group in groups.items():
        forms = Counter(normalised_form(m.text) for m in group)
        first_form: dict[str, float] = {}
        for m in sorted(group, key=lambda m: m.created_at):
            first_form.setdefault(normalised_form(m.text), m.created_at)
        title = min(forms, key=lambda form: (-forms[form], first_form[form], form))
        places: dict[int, list[SpanMention]] = {}
        for m in sorted(group, key=lambda m: (m.created_at, m.answer_id)):
            places.setdefault(m.item_id, []).append(m)
        items = {
            item_id: TitleItem(
                item_id,
                marked[0].external_id,
                marked[0].hn_id,
                tuple(sorted({(m.start, m.end) for m in marked})),
            )
            for item_id, marked in places.items()
        }
        titles.append(
            FoundTitle(
                title=title,
                key=key,
                label=label,
                mentions=len(group),
                items=tuple(items.values()),
                first_seen=min(m.created_at for m in group),
                last_seen=max(m.created_at for m in group),
            )
        )
    return sorted(titles, key=lambda t: (-len(t.items), -t.mentions, t.key, t.label))


def titles_found(store: TitleQueries, label: str | None = None) -> list[FoundTitle]:
    """The titles marked in `store`'s accepted answers in force (of `label` only, when given)."""
    return aggregate_titles(store.span_mentions(label))


def write_titles_jsonl(titles: Sequence[FoundTitle], out: TextIO) -> int:
    for title in titles:
        out.write(inert_json(title.to_json()) + "\n")
    return len(titles)


def write_titles_csv(titles: Sequence[FoundTitle], out: TextIO) -> int:
    """CSV with the HN ids and links space-separated; made printable on a terminal (CSV has no
    escape for a control character, and the terminal would act on one)."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    to_terminal = out.isatty()
    for title in titles:
        row = (
            title.title,
            title.label,
            len(title.items),
            title.mentions,
            iso_time(title.first_seen),
            iso_time(title.last_seen),
            " ".join(item.hn_id or item.external_id for item in title.items),
            " ".join(item.link or "" for item in title.items if item.link),
        )
        writer.writerow([printable(str(field)) for field in row] if to_terminal else row)
    return len(titles)
