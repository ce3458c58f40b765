"""The shapes Hacker News data comes in, each read as plain HN items.

- HN API items (`id`, `by`, `time`, `text`, `parent`, `type`, `dead`, `deleted`), one per line, in
  a JSON array, or pretty-printed one after another.
- Algolia: search responses (`hits`) and `/items/:id` trees, whose `children` nest the comments.
- BigQuery `bigquery-public-data.hacker_news.full` and the older `comments` table, as CSV or
  Parquet, and dataframe-written dumps (Hugging Face), whose missing values are NaN and whose flags
  are `1.0`, `True`, `"Y"` or `"true"`.

JSON documents are read in chunks with `json.JSONDecoder.raw_decode`, one array element or one
object at a time, so memory follows the largest record, not the file: this needs no extra
package (ijson's pure-Python backend is slower than the standard decoder, its C backend a
compiled dependency for no gain here).
"""

from __future__ import annotations

import codecs
import json
import math
import re
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

KNOWN_TYPES = ("comment", "story", "poll", "pollopt", "job")
DEFAULT_TYPES = frozenset({"comment", "story"})
"""What an HN import keeps unless told otherwise: comments and stories (a story's text is its
title and its own text); polls, poll options and job ads are left out."""
FLAG_WORDS = frozenset({"1", "1.0", "true", "t", "yes", "y"})
MISSING_WORDS = frozenset({"nan", "none", "null", "nat", "<na>"})
"""How dataframes write a missing value into a text column."""
INTEGER_TEXT = re.compile(r"-?[0-9]{1,30}(?:\.0*)?")
JSON_SPACE = re.compile(r"[ \t\r\n]*")
READ_CHUNK = 1 << 20
MAX_JSON_VALUE_CHARS = 256 << 20
"""One record (an array element, an Algolia tree) must fit in memory; a bigger one is a fault."""


class ShapeError(Exception):
    """Bad input found while reading a shape: `line` is where the record at fault starts."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


# -- values ---------------------------------------------------------------------------------------


def present(value: Any) -> Any:
    """The value, or None where a dump means "no value": None, NaN, "", "nan", "None"."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str) and (not value.strip() or value.strip().lower() in MISSING_WORDS):
        return None
    return value


def flag_set(value: Any) -> bool:
    """Whether a `dead`/`deleted` flag is set, as any dump writes it: True, 1, 1.0, "true",
    "Y"/"y", "1.0" are set; False, 0, 0.0, NaN, None, "" and "false" are not."""
    if isinstance(value, str):
        return value.strip().lower() in FLAG_WORDS
    if isinstance(value, float) and math.isnan(value):
        return False
    return bool(value)


def hn_int(value: Any) -> int | str | None:
    """An HN id (or time, score) as an int where it is one, written as 123, 123.0 or "123.0" (a
    dataframe column with gaps is float); None where missing; other text as it is."""
    value = present(value)
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else str(value)
    text = str(value).strip()
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses, and "١٢", which
    # would silently become another id. Longer numbers than any HN id stay text.
    if INTEGER_TEXT.fullmatch(text):
        return int(text.split(".")[0])
    return text


def parse_types(text: str) -> frozenset[str]:
    """The item types named in `--types` ("comment,story"); ValueError naming the known ones."""
    names = {name.strip().lower() for name in text.split(",") if name.strip()}
    unknown = sorted(names - set(KNOWN_TYPES))
    if unknown or not names:
        raise ValueError(
            f"unknown item type {', '.join(unknown) or '(none given)'}; "
            f"use a comma-separated list of {', '.join(KNOWN_TYPES)}"
        )
    return frozenset(names)


def item_type(raw: dict[str, Any]) -> str:
    """The item's type: its `type`, Algolia's `_tags`, else what its fields say (the BigQuery
    `comments` table has no type column: its rows are comments)."""
    kind = present(raw.get("type"))
    if isinstance(kind, str):
        return kind.strip().lower()
    tags = raw.get("_tags")
    if isinstance(tags, list):
        for tag in tags:
            if tag in KNOWN_TYPES:
                return str(tag)
    if present(raw.get("comment_text")) is not None:
        return "comment"
    if present(raw.get("parent", raw.get("parent_id"))) is None and (
        present(raw.get("title")) is not None or present(raw.get("story_text")) is not None
    ):
        return "story"
    return "comment"


# -- nested shapes --------------------------------------------------------------------------------


def hn_items_in(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The HN items one JSON record holds: an Algolia search response's hits, every node of an
    Algolia `/items/:id` tree (parents before their children, each child's `parent_id` set from
    the tree), or the record itself."""
    hits = record.get("hits")
    if isinstance(hits, list):
        yield from (hit for hit in hits if isinstance(hit, dict))
        return
    if not isinstance(record.get("children"), list):
        yield record
        return
    # An explicit stack, not recursion: a long thread nests deeper than Python recurses.
    pending: list[tuple[dict[str, Any], Any]] = [(record, None)]
    while pending:
        node, parent_id = pending.pop()
        item = {key: value for key, value in node.items() if key != "children"}
        if parent_id is not None and present(item.get("parent_id")) is None:
            item["parent_id"] = parent_id
        yield item
        children = node.get("children")
        if isinstance(children, list):
            pending.extend(
                (child, item.get("id")) for child in reversed(children) if isinstance(child, dict)
            )


def is_hn_table(columns: Iterable[str]) -> bool:
    """Whether a table's columns are an HN dump's: the API's fields (BigQuery `full`, most
    Hugging Face dumps) or BigQuery's older `comments` table (id, by, author, time, time_ts,
    text, parent, deleted, dead, ranking)."""
    names = set(columns)
    if {"id", "by", "time", "text", "type"} <= names:
        return True
    return {"id", "text", "parent"} <= names and bool(names & {"by", "author"})


# -- JSON documents -------------------------------------------------------------------------------


def json_layout(first_line: bytes) -> str:
    """The layout "document" when a file's first non-blank line opens a JSON array or a pretty-printed
    object (its line ends before the object does); "lines" for JSON lines (and anything else,
    which the lines reader then names)."""
    try:
        line = first_line.decode("utf-8").lstrip("\ufeff").strip()
    except UnicodeDecodeError:
        return "lines"
    if line.startswith("["):
        return "document"
    if not line.startswith("{"):
        return "lines"
    try:
        json.loads(line)
    except json.JSONDecodeError as error:
        # Cut off at the end of the line (`{`, `{"id": 1,`): the object goes on below. An error
        # inside the line (a broken line of JSON lines) is for the lines reader to name.
        return "document" if error.pos >= len(line) else "lines"
    except RecursionError:
        return "lines"
    return "lines"


def read_chunks(stream: BinaryIO, head: list[bytes]) -> Iterator[bytes]:
    """`head` (lines already read ahead), then the stream in chunks of `READ_CHUNK` bytes."""
    while head:
        yield head.pop(0)
    while chunk := stream.read(READ_CHUNK):
        yield chunk


class JsonDocumentReader:
    """JSON objects from a stream of bytes: the elements of a top-level array, or objects one
    after another (pretty-printed or not), each with the line it starts on."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = iter(chunks)
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.json = json.JSONDecoder()
        self.buffer = ""
        self.pos = 0
        self.line = 1
        """The line `pos` is on."""
        self.bytes_lines = 0
        """Newlines in the bytes decoded so far (to name the line of a bad byte)."""
        self.eof = False
        self.started = False

    def records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        while self.skip_space():
            if self.buffer[self.pos] != "[":
                yield self.object_at()
                continue
            array_line = self.line
            self.advance(1)
            if self.skip_space() and self.buffer[self.pos] == "]":
                self.advance(1)
            else:
                yield from self.array_elements(array_line)
            if self.skip_space():
                raise ShapeError(
                    array_line,
                    f"more follows (line {self.line}) the JSON array that starts here; a file"
                    " holds one array, or objects one after another",
                )

    def array_elements(self, array_line: int) -> Iterator[tuple[int, dict[str, Any]]]:
        never_closed = ShapeError(array_line, "the JSON array that starts here is never closed")
        while True:
            yield self.object_at()
            if not self.skip_space():
                raise never_closed
            separator = self.buffer[self.pos]
            self.advance(1)
            if separator == "]":
                return
            if separator != ",":
                raise ShapeError(
                    self.line,
                    f"invalid JSON: expected ',' or ']' after an array element, got {separator!r}",
                )
            if not self.skip_space():
                raise never_closed

    def object_at(self) -> tuple[int, dict[str, Any]]:
        start_line = self.line
        value = self.value()
        if not isinstance(value, dict):
            raise ShapeError(start_line, f"expected a JSON object, got {type(value).__name__}")
        return start_line, value

    def value(self) -> Any:
        start_line = self.line
        while True:
            try:
                value, end = self.json.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError as error:
                cut_off = error.pos >= len(self.buffer) - 6 or error.msg.startswith("Unterminated")
                if self.eof or not cut_off:
                    where = start_line + self.buffer.count("\n", self.pos, error.pos)
                    raise ShapeError(
                        start_line,
                        f"invalid JSON in the record starting here: {error.msg} (line {where})",
                    ) from None
                if len(self.buffer) - self.pos > MAX_JSON_VALUE_CHARS:
                    raise ShapeError(
                        start_line,
                        f"one JSON record is over {MAX_JSON_VALUE_CHARS >> 20} MB characters",
                    ) from None
                self.fill(at_least=len(self.buffer) - self.pos)
                continue
            except RecursionError:
                raise ShapeError(start_line, "JSON nested too deeply") from None
            self.advance(end - self.pos)
            return value

    def advance(self, count: int) -> None:
        self.line += self.buffer.count("\n", self.pos, self.pos + count)
        self.pos += count

    def skip_space(self) -> bool:
        """Move past white space; whether anything follows it."""
        while True:
            match = JSON_SPACE.match(self.buffer, self.pos)
            assert match is not None
            self.advance(match.end() - self.pos)
            if self.pos < len(self.buffer):
                return True
            if self.eof:
                return False
            self.fill()

    def fill(self, at_least: int = 1) -> None:
        """Read on until at least `at_least` more characters are buffered, or the end."""
        self.buffer = self.buffer[self.pos :]
        self.pos = 0
        wanted = len(self.buffer) + at_least
        parts = [self.buffer]
        size = len(self.buffer)
        while size < wanted:
            chunk = next(self.chunks, None)
            if chunk is None:
                try:
                    tail = self.decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    raise ShapeError(self.bytes_lines + 1, "not valid UTF-8") from None
                parts.append(tail)
                self.eof = True
                break
            try:
                text = self.decoder.decode(chunk)
            except UnicodeDecodeError as error:
                line = self.bytes_lines + chunk[: max(0, error.start)].count(b"\n") + 1
                raise ShapeError(line, "not valid UTF-8") from None
            self.bytes_lines += chunk.count(b"\n")
            if not self.started:
                text = text.lstrip("\ufeff")
                self.started = bool(text)
            parts.append(text)
            size += len(text)
        self.buffer = "".join(parts)
