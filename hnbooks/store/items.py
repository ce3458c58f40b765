"""Items and labels: storing imported texts, reading them back, search, and the parent context."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

import regex

from hnbooks.store.connection import Connection, StoreError
from hnbooks.store.ingest import IngestOutcome, write_incoming
from hnbooks.store.records import IncomingItem, Item, SearchHit

LABEL_PATTERN = r"[A-Za-z0-9_\-]{1,40}"
T = TypeVar("T")


def item_from_row(row: sqlite3.Row) -> Item:
    return Item(
        id=row["id"],
        external_id=row["external_id"],
        text=row["text"],
        meta=json.loads(row["meta"]),
        input_hash=row["input_hash"],
    )


def fts_query(user_query: str) -> str:
    """Turn what a user typed into a safe FTS5 query: every word must match, as a literal."""
    words = re.findall(r"\w+", user_query, flags=re.UNICODE)
    return " ".join('"' + w.replace('"', '""') + '"' for w in words)


def match_ranges(
    text: str, pattern: re.Pattern[str], limit: int = 50
) -> tuple[tuple[int, int], ...]:
    ranges = []
    for match in pattern.finditer(text):
        if match.end() > match.start():
            ranges.append((match.start(), match.end()))
        if len(ranges) >= limit:
            break
    return tuple(ranges)


def regex_match_ranges(
    text: str, pattern: Any, limit: int = 50, *, timeout: float | None = None
) -> tuple[tuple[int, int], ...]:
    """`match_ranges` for a `regex` pattern, within `timeout` seconds."""
    ranges = []
    for match in pattern.finditer(text, concurrent=True, timeout=timeout):
        if match.end() > match.start():
            ranges.append((match.start(), match.end()))
        if len(ranges) >= limit:
            break
    return tuple(ranges)


class SearchStopped(StoreError):
    """A regular-expression search ran out of time or was cancelled."""


class BoundedSearch:
    """The time left to a regular-expression search, handed to each match as its timeout."""

    def __init__(self, timeout_s: float | None, cancelled: Callable[[], bool] | None) -> None:
        self.timeout_s = timeout_s
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.cancelled = cancelled

    def left(self) -> float | None:
        if self.cancelled is not None and self.cancelled():
            raise SearchStopped("search cancelled")
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.stopped()
        return left

    def stopped(self) -> SearchStopped:
        return SearchStopped(
            f"search stopped after {self.timeout_s:g} s: the pattern backtracks; simplify it"
        )

    def run(self, match: Callable[..., T]) -> T:
        """`match(timeout=...)` given the time left."""
        timeout = self.left()
        try:
            return match(timeout=timeout)
        except TimeoutError:
            raise self.stopped() from None


def hit_of(item: Item, ranges: tuple[tuple[int, int], ...]) -> SearchHit:
    return SearchHit(item=item, snippet=snippet_around(item.text, ranges), match_ranges=ranges)


def snippet_around(text: str, ranges: tuple[tuple[int, int], ...], width: int = 160) -> str:
    start = max(0, ranges[0][0] - width // 3) if ranges else 0
    snippet = text[start : start + width].replace("\n", " ")
    return ("…" if start else "") + snippet + ("…" if start + width < len(text) else "")


def check_label_name(name: str) -> None:
    if not re.fullmatch(LABEL_PATTERN, name):
        raise StoreError(f"label {name!r}: use 1-40 letters, digits, '_' or '-'")


class ItemWriter:
    """Adds incoming items inside one open write transaction (see `ItemQueries.writing_items`)."""

    def __init__(self, conn: sqlite3.Connection, source: str) -> None:
        self._conn = conn
        self._source = source

    def add(self, incoming: IncomingItem) -> IngestOutcome:
        """Store `incoming` (or merge it into the stored text it duplicates) and its new answers."""
        return write_incoming(self._conn, incoming, self._source)

    def add_label(self, name: str) -> bool:
        """Register label `name` in the same transaction; True when it is new. A name the labels
        table cannot hold raises `StoreError` saying what a name may be."""
        check_label_name(name)
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO labels (name, position) "
            "VALUES (?, (SELECT COALESCE(MAX(position), -1) + 1 FROM labels))",
            (name,),
        )
        return cursor.rowcount == 1


class ItemQueries(Connection):
    # -- labels -----------------------------------------------------------------------------------

    def labels(self) -> list[str]:
        return [r["name"] for r in self._query("SELECT name FROM labels ORDER BY position, name")]

    def default_label(self) -> str:
        """The label a question is about when none is named: the database's first."""
        labels = self.labels()
        if not labels:
            raise StoreError(
                f"{self.path}: the database defines no label; add one with `hnbooks labels add NAME`"
            )
        return labels[0]

    def add_label(self, name: str) -> None:
        check_label_name(name)
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO labels (name, position) "
                "VALUES (?, (SELECT COALESCE(MAX(position), -1) + 1 FROM labels))",
                (name,),
            )

    # -- items ------------------------------------------------------------------------------------

    def item(self, item_id: int) -> Item:
        row = self._one("SELECT * FROM items WHERE id = ?", (item_id,))
        if row is None:
            raise StoreError(f"no item with id {item_id}")
        return item_from_row(row)

    def items_by_ids(self, item_ids: list[int]) -> list[Item]:
        found: dict[int, Item] = {}
        for start in range(0, len(item_ids), 500):
            chunk = item_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._query(f"SELECT * FROM items WHERE id IN ({marks})", chunk):
                found[row["id"]] = item_from_row(row)
        return [found[i] for i in item_ids if i in found]

    def item_count(self) -> int:
        return self._count("SELECT COUNT(*) FROM items")

    def max_item_id(self) -> int:
        return self._count("SELECT COALESCE(MAX(id), 0) FROM items")

    def item_ids(self) -> list[int]:
        """Every item id, ascending, read without the texts."""
        return [row[0] for row in self._query("SELECT id FROM items ORDER BY id")]

    @contextmanager
    def writing_items(self, source: str) -> Iterator[ItemWriter]:
        """One write transaction adding items: everything added inside commits together, or nothing
        does (an exception rolls the whole of it back)."""
        with self._transaction() as conn:
            yield ItemWriter(conn, source)

    def add_items(self, incoming: Iterable[IncomingItem], source: str) -> list[int]:
        """Store items (and their answers) as `hnbooks import` does, in one transaction; return
        the id each incoming item ended up with (an existing one for a duplicate text)."""
        with self.writing_items(source) as writer:
            return [writer.add(item).item_id for item in incoming]

    def iter_item_texts(self, after_id: int = 0, chunk: int = 2000) -> Iterator[tuple[int, str]]:
        """(id, text) for every item with id > after_id, in id order, read in chunks."""
        last = after_id
        while True:
            rows = self._query(
                "SELECT id, text FROM items WHERE id > ? ORDER BY id LIMIT ?", (last, chunk)
            )
            if not rows:
                return
            for row in rows:
                yield row["id"], row["text"]
            last = rows[-1]["id"]

    def texts_for(self, item_ids: list[int]) -> dict[int, str]:
        return {item.id: item.text for item in self.items_by_ids(item_ids)}

    def parent_context(self, item: Item) -> str | None:
        """The parent comment's text or the story title, when the item's meta names one we hold."""
        title = item.meta.get("story_title") or item.meta.get("title")
        parent = item.meta.get("parent")
        if parent is not None:
            row = self._one("SELECT text FROM items WHERE external_id = ?", (f"hn:{parent}",))
            if row is not None:
                return str(row["text"])
        return str(title) if title else None

    # -- search -----------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        mode: str = "fts",
        limit: int = 50,
        timeout_s: float | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> list[SearchHit]:
        """Keyword (FTS5, every word must match) or regular-expression search over all texts.

        A regular expression runs on the `regex` package, not `re`: `re` cannot be stopped inside
        a match and holds the GIL throughout, so one pattern that backtracks (`(\\w+\\s?)*!`) would
        freeze the whole program. Here the match releases the GIL, the whole search stops with a
        `SearchStopped` after `timeout_s`, and `cancelled()` is asked between texts (a search
        cancelled stops with a `SearchStopped` too).
        """
        if mode == "fts":
            match = fts_query(query)
            if not match:
                return []
            rows = self._query(
                "SELECT i.* FROM items_fts f JOIN items i ON i.id = f.rowid"
                " WHERE items_fts MATCH ? ORDER BY f.rank LIMIT ?",
                (match, limit),
            )
            words = re.findall(r"\w+", query, flags=re.UNICODE)
            pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)
            items = [item_from_row(r) for r in rows]
        elif mode == "regex":
            try:
                compiled = regex.compile(query, regex.IGNORECASE)
            except regex.error as error:
                raise StoreError(f"invalid regular expression {query!r}: {error}") from None
            clock = BoundedSearch(timeout_s, cancelled)
            matching_ids = []
            for item_id, text in self.iter_item_texts():
                if clock.run(partial(compiled.search, text, concurrent=True)):
                    matching_ids.append(item_id)
                    if len(matching_ids) >= limit:
                        break
            items = self.items_by_ids(matching_ids)
            return [
                hit_of(item, clock.run(partial(regex_match_ranges, item.text, compiled)))
                for item in items
            ]
        else:
            raise StoreError(f"unknown search mode {mode!r} (use fts or regex)")
        return [hit_of(item, match_ranges(item.text, pattern)) for item in items]
