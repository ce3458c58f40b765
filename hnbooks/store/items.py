"""Items and labels: storing imported texts, reading them back, search, and the parent context."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import regex

from hnbooks.store.connection import Connection, StoreError, process_is_gone
from hnbooks.store.ingest import (
    ChunkOutcome,
    IngestOutcome,
    PreparedItem,
    UnstorableRecord,
    remapped_answers,
    write_answers,
    write_chunk,
    write_incoming,
)
from hnbooks.store.records import IncomingItem, Item, NewAnswer, SearchHit

LABEL_PATTERN = r"[A-Za-z0-9_\-]{1,40}"
T = TypeVar("T")
DISCARD_CHUNK = 5000
"""Rows of an abandoned import deleted per write transaction, so annotators never wait long."""
IMPORT_CACHE_KIB = 256 * 1024
"""SQLite's page cache while an import writes (a bound, whatever the file's size)."""


def visible(alias: str = "items") -> str:
    """SQL that is true for an item readers may see: not written by an import still in progress."""
    return (
        f"({alias}.import_id IS NULL"
        f" OR {alias}.import_id NOT IN (SELECT id FROM imports_in_progress))"
    )


SEARCH_RANKED_MATCHES = 5000
"""A keyword search ranks this many of its newest matches (or `limit`, if more): the best 50 of
the last 5,000 texts that match, in about the same time at any pool size."""

HIDDEN_ITEM_IDS = (
    "SELECT id FROM items WHERE id >= (SELECT MIN(first_item_id) FROM imports_in_progress)"
    " AND import_id IN (SELECT id FROM imports_in_progress)"
)
"""Ids of the items imports in progress have written (a range scan from the oldest one's first id)."""


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


BM25_K1 = 1.2
BM25_B = 0.75


def rank_matches(matches: list[tuple[int, str]], words: list[str]) -> list[int]:
    """Ids of (id, text) keyword matches, best first: BM25 over `words` with every word weighted
    alike (each match holds every word, so within them no word is rarer), length in characters,
    newest first among equals.

    A word's occurrences are counted as substrings of the lower-cased text (`str.count`, ~20x
    faster than a word-bounded regular expression, and close enough to rank by), at least once
    each: the index folds diacritics, which the count does not."""
    if not matches:
        return []
    lowered = [word.lower() for word in words]
    mean_length = sum(len(text) for _, text in matches) / len(matches)
    scored = []
    for item_id, text in matches:
        norm = BM25_K1 * (1 - BM25_B + BM25_B * len(text) / mean_length)
        folded = text.lower()
        score = 0.0
        for word in lowered:
            count = max(1, folded.count(word))
            score += count * (BM25_K1 + 1) / (count + norm)
        scored.append((-score, -item_id))
    return [-negative_id for _, negative_id in sorted(scored)]


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


@dataclass
class PublishOutcome:
    answers_added: int = 0
    answers_present: int = 0
    labels_added: list[str] = field(default_factory=list)
    labels_refused: dict[str, str] = field(default_factory=dict)


class StagedImport:
    """An import written a chunk at a time, each chunk its own short write transaction, and hidden
    from every reader until `publish` shows all of it at once (see `ItemQueries.staging_import`).

    The answers the import carries are kept in memory and written by `publish`, in its one
    transaction: an answer must not count (in stats, export, the scorer) before its file is in."""

    def __init__(self, store: ItemQueries, import_id: int, source: str) -> None:
        self._store = store
        self.import_id = import_id
        self._source = source
        self._answers: list[tuple[int, int, list[NewAnswer]]] = []
        """(line, item id, answers moved onto the stored text) of each record with answers."""
        self.published = False

    def write(self, records: Sequence[IncomingItem | PreparedItem]) -> list[ChunkOutcome]:
        """Store one chunk (merging duplicates) in one write transaction; its answers wait."""
        with self._store._transaction() as conn:
            outcomes = write_chunk(conn, records, self._source, self.import_id)
        for record, outcome in zip(records, outcomes):
            if record.answers:
                self._answers.append(
                    (
                        record.line,
                        outcome.item_id,
                        remapped_answers(record.answers, record.text, outcome.stored_text),
                    )
                )
        return outcomes

    def publish(self, labels: Iterable[str] = ()) -> PublishOutcome:
        """Write the answers, register `labels`, and show the import's items, in one transaction."""
        outcome = PublishOutcome()
        with self._store._transaction() as conn:
            for line, item_id, answers in self._answers:
                try:
                    added, present = write_answers(conn, item_id, answers)
                except (UnicodeEncodeError, OverflowError) as error:
                    raise UnstorableRecord(line, error) from None
                outcome.answers_added += added
                outcome.answers_present += present
            writer = ItemWriter(conn, self._source)
            for label in labels:
                try:
                    if writer.add_label(label):
                        outcome.labels_added.append(label)
                except StoreError as refused:
                    outcome.labels_refused[label] = str(refused)
            conn.execute("DELETE FROM imports_in_progress WHERE id = ?", (self.import_id,))
        self.published = True
        self._answers = []
        return outcome


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

    def imports_in_progress(self) -> bool:
        """Whether an import has items written and not yet published (hidden from readers)."""
        return self._one("SELECT 1 FROM imports_in_progress LIMIT 1") is not None

    def item_count(self) -> int:
        """Items readers may see (an import in progress has written more)."""
        if not self.imports_in_progress():
            return self._count("SELECT COUNT(*) FROM items")
        return self._count(
            f"SELECT (SELECT COUNT(*) FROM items) - (SELECT COUNT(*) FROM ({HIDDEN_ITEM_IDS}))"
        )

    def max_item_id(self) -> int:
        if not self.imports_in_progress():
            return self._count("SELECT COALESCE(MAX(id), 0) FROM items")
        return self._count(
            f"SELECT COALESCE((SELECT id FROM items WHERE {visible()} ORDER BY id DESC LIMIT 1), 0)"
        )

    def item_ids(self) -> list[int]:
        """Every item id readers may see, ascending, read without the texts."""
        if not self.imports_in_progress():
            return [row[0] for row in self._query("SELECT id FROM items ORDER BY id")]
        return [
            row[0] for row in self._query(f"SELECT id FROM items WHERE {visible()} ORDER BY id")
        ]

    @contextmanager
    def staging_import(self, source: str) -> Iterator[StagedImport]:
        """An import that commits chunk by chunk, its items hidden until `StagedImport.publish`.

        Imports abandoned by a killed process are cleared first; while another import is running
        this one is refused (`StoreError`). An exception (or leaving without
        publishing) deletes what the import wrote; a kill leaves it hidden, for the next import to
        clear."""
        self.discard_abandoned_imports()
        with self._transaction() as conn:
            running = conn.execute(
                "SELECT source, host, pid FROM imports_in_progress LIMIT 1"
            ).fetchone()
            if running is not None:
                # One at a time: two imports staging together would interleave their ids, and a
                # scorer that has read past the first one's published ids would miss the other's.
                raise StoreError(
                    f"{self.path}: another import ({running['source']}, process {running['pid']}"
                    f" on {running['host']}) is writing into this database; run this one when it"
                    " has finished"
                )
            cursor = conn.execute(
                "INSERT INTO imports_in_progress (source, host, pid, started_at, first_item_id)"
                " VALUES (?, ?, ?, ?, (SELECT COALESCE(MAX(id), 0) + 1 FROM items))",
                (source, socket.gethostname(), os.getpid(), time.time()),
            )
            import_id = int(cursor.lastrowid or 0)
        staged = StagedImport(self, import_id, source)
        cache_pages = self._conn.execute("PRAGMA cache_size").fetchone()[0]
        # The text-key and external-id indexes take inserts in random order: with SQLite's 2 MB
        # default cache each chunk rereads their pages, ~15% of the writing at 300k items.
        self._conn.execute(f"PRAGMA cache_size = -{IMPORT_CACHE_KIB}")
        try:
            yield staged
        finally:
            self._conn.execute(f"PRAGMA cache_size = {int(cache_pages)}")
            if not staged.published:
                self.discard_import(import_id)

    def discard_abandoned_imports(self) -> int:
        """Delete what imports whose process is gone (killed) left staged; return how many."""
        rows = self._query("SELECT id, host, pid FROM imports_in_progress")
        gone = [
            int(row["id"]) for row in rows if process_is_gone(str(row["host"]), int(row["pid"]))
        ]
        for import_id in gone:
            self.discard_import(import_id)
        return len(gone)

    def discard_import(self, import_id: int) -> None:
        """Delete an unpublished import's items, a few thousand per transaction, then its row.

        Its items stay hidden throughout (the row goes last), and a kill midway leaves the rest for
        the next import to clear."""
        row = self._one("SELECT first_item_id FROM imports_in_progress WHERE id = ?", (import_id,))
        if row is None:
            return
        while True:
            with self._transaction() as conn:
                deleted = conn.execute(
                    "DELETE FROM items WHERE id IN (SELECT id FROM items"
                    " WHERE id >= ? AND import_id = ? LIMIT ?)",
                    (int(row[0]), import_id, DISCARD_CHUNK),
                ).rowcount
                if deleted < DISCARD_CHUNK:
                    conn.execute("DELETE FROM imports_in_progress WHERE id = ?", (import_id,))
                    return

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
                f"SELECT id, text FROM items WHERE id > ? AND {visible()} ORDER BY id LIMIT ?",
                (last, chunk),
            )
            if not rows:
                return
            for row in rows:
                yield row["id"], row["text"]
            last = rows[-1]["id"]

    def texts_for(self, item_ids: list[int]) -> dict[int, str]:
        return {item.id: item.text for item in self.items_by_ids(item_ids)}

    def parent_context(self, item: Item, depth: int = 5) -> str | None:
        """The thread above the item, one line per ancestor we hold, nearest first (its parent,
        then that one's parent, up to `depth`), or the story title when we hold none."""
        title = item.meta.get("story_title") or item.meta.get("title")
        ancestors: list[str] = []
        parent = item.meta.get("parent")
        seen = {item.external_id}
        while parent is not None and len(ancestors) < depth:
            external_id = f"hn:{parent}"
            if external_id in seen:  # a loop in hand-edited data
                break
            seen.add(external_id)
            row = self._one("SELECT text, meta FROM items WHERE external_id = ?", (external_id,))
            if row is None:
                break
            ancestors.append(" ".join(str(row["text"]).split()))
            parent = json.loads(row["meta"]).get("parent")
        if ancestors:
            return "\n".join(ancestors)
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
            # The newest `SEARCH_RANKED_MATCHES` matches, ranked here (`rank_matches`): FTS5
            # finds matches in rowid order and stops at the limit (~15 ms for a common word in
            # 10M texts), but its bm25 rank first counts every text holding each word (~150 ms).
            newest = self._query(
                "SELECT i.id, i.text FROM items_fts f JOIN items i ON i.id = f.rowid"
                f" WHERE items_fts MATCH ? AND {visible('i')} ORDER BY f.rowid DESC LIMIT ?",
                (match, max(SEARCH_RANKED_MATCHES, limit)),
            )
            words = re.findall(r"\w+", query, flags=re.UNICODE)
            pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)
            ranked = rank_matches([(row[0], row[1]) for row in newest], words)
            items = self.items_by_ids(ranked[:limit])
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
