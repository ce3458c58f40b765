"""Importers: Prodigy JSONL, plain JSONL, CSV/TSV, Parquet, Hacker News items and plain text lines.

Each file is read into `ParsedRecord`s, written a chunk per short write transaction (annotators'
answers get in between) and hidden from every reader until the last chunk is in: a fault anywhere
in a file (`ImportFault`, naming the file and line) or a kill leaves nothing of it visible.
Texts are merged on their whitespace-normalised form; answers already stored are not added again.
In JSON lines each line is read for what it is (a Prodigy task, an HN item, a plain text), never
by what the first line was. A Prodigy task's fields that hnbooks does not model (tokens, options,
accept, relations, span token offsets, unknown fields) are kept with its answer for the export.

`-` is stdin. A stream (stdin, a FIFO, `/dev/stdin`, `<(cmd)`) is read once: its first record is
read ahead to tell the format, then read again from that buffer, so nothing of it is lost.
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing
import os
import re
import stat
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from hnbooks.hn_dumps import (
    DEFAULT_TYPES,
    JsonDocumentReader,
    ShapeError,
    flag_set,
    hn_int,
    hn_items_in,
    is_hn_table,
    item_type,
    json_layout,
    present,
    read_chunks,
)
from hnbooks.hn_html import clean_comment_html
from hnbooks.store.db import Store, StoreError
from hnbooks.store.ingest import ItemConflict, PreparedItem, UnstorableRecord, prepare_item
from hnbooks.store.ingest import remap_spans as remap_spans  # re-exported for parsers' users
from hnbooks.store.ingest import text_key as text_key
from hnbooks.store.items import StagedImport
from hnbooks.store.records import ANSWER_VALUES, IncomingItem, NewAnswer, Span

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

# Names the parsers have always used for what they yield.
ParsedAnswer = NewAnswer
ParsedRecord = IncomingItem

FORMATS = ("auto", "prodigy", "jsonl", "csv", "tsv", "parquet", "hn", "text")
MAX_TEXT_CHARS = 1_000_000
MAX_LINE_BYTES = 4 * MAX_TEXT_CHARS
DEFAULT_IMPORT_ANNOTATOR = "imported"
PRODIGY_KEYS = ("_input_hash", "_task_hash", "_view_id", "answer", "spans")
MODELLED_TASK_KEYS = frozenset(
    {
        "text",
        "meta",
        "label",
        "spans",
        "answer",
        "_input_hash",
        "_task_hash",
        "_view_id",
        "_annotator_id",
        "_timestamp",
        "_hnbooks",
    }
)
"""A Prodigy task's fields that become an item's or an answer's own; any other is passthrough."""
MODELLED_SPAN_KEYS = frozenset({"start", "end", "label", "text"})
STDIN_NAME = "-"
STREAM_PREFIXES = ("/dev/", "/proc/")
"""Names of streams (`/dev/stdin`, `/dev/fd/63` from `<(cmd)`): their format is read from their
content, never from the name."""
HN_KEYS = ("by", "objectID", "comment_text", "parent_id", "story_id", "author")
JSON_SUFFIXES = (".jsonl", ".json", ".ndjson", ".jl")

PROGRESS_STEP_BYTES = 1 << 20
IMPORT_CHUNK_RECORDS = 5000
"""Records per write transaction: a fraction of a second of writing, the longest an annotator's
answer waits behind an import."""

Progress = Callable[[int], None]


class ImportFault(Exception):
    """Bad input that stops a file's import; the message names the file and line."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line
        self.message = message


@dataclass
class Skipped:
    line: int
    reason: str


@dataclass
class ImportSummary:
    path: str
    format: str
    new_items: int = 0
    merged: int = 0
    answers: int = 0
    answers_already_present: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    first_skips: list[Skipped] = field(default_factory=list)
    labels_added: list[str] = field(default_factory=list)
    """Labels met in the answers (a task's label, span labels) that were new to the database."""
    labels_refused: dict[str, str] = field(default_factory=dict)
    """Labels met that the database cannot hold, with why; their answers are imported all the same."""

    def line(self) -> str:
        parts = [
            f"{self.new_items} new",
            f"{self.merged} merged",
            f"{self.answers} answers",
        ]
        if self.answers_already_present:
            parts.append(f"{self.answers_already_present} answers already present")
        if self.skipped:
            reasons = ", ".join(f"{n} {reason}" for reason, n in self.skipped.most_common())
            parts.append(f"skipped {sum(self.skipped.values())} ({reasons})")
        if self.labels_added:
            parts.append(f"new labels {', '.join(self.labels_added)}")
        return f"{self.path} [{self.format}]: " + ", ".join(parts)

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "new_items": self.new_items,
            "merged": self.merged,
            "answers": self.answers,
            "answers_already_present": self.answers_already_present,
            "skipped": dict(self.skipped.most_common()),
            "first_skips": [{"line": s.line, "reason": s.reason} for s in self.first_skips],
            "labels_added": self.labels_added,
            "labels_refused": self.labels_refused,
        }


# -- sources -------------------------------------------------------------------------------------


@dataclass
class Source:
    """What an import reads: a named regular file (read by its path), or a stream read once (`-`
    for stdin, a FIFO, `/dev/stdin`, `<(cmd)`), whose lines read ahead to tell its format are kept
    in `head` and read again before the rest."""

    path: Path
    """The name in messages (`<stdin>` for `-`)."""
    stream: BinaryIO | None = None
    head: list[bytes] = field(default_factory=list)

    def raw_lines(self) -> Iterator[bytes]:
        """The lines as bytes; one over `MAX_LINE_BYTES` is cut there (and refused by the reader),
        so a huge line never has to fit in memory."""
        if self.stream is None:
            with self.path.open("rb") as handle:
                yield from iter(partial(handle.readline, MAX_LINE_BYTES + 1), b"")
            return
        while self.head:
            yield self.head.pop(0)
        yield from iter(partial(self.stream.readline, MAX_LINE_BYTES + 1), b"")

    def read_bytes(self) -> bytes:
        if self.stream is None:
            return self.path.read_bytes()
        head, self.head = b"".join(self.head), []
        return head + self.stream.read()

    def first_line(self) -> bytes:
        """The stream's first non-blank line (read ahead into `head`); b"" when there is none."""
        assert self.stream is not None
        while True:
            raw = self.stream.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return b""
            self.head.append(raw)
            if raw.strip() or len(raw) > MAX_LINE_BYTES:
                return raw


def as_source(path: Path | Source) -> Source:
    return path if isinstance(path, Source) else Source(path)


def is_stream_name(name: str) -> bool:
    return name == STDIN_NAME or name.startswith(STREAM_PREFIXES)


def open_source(name: str, stack: ExitStack) -> Source:
    """The source named `name`: `-` is stdin; a FIFO, a device or a name under /dev or /proc is
    opened as a stream (closed with `stack`); any other name is a file read by path."""
    if name == STDIN_NAME:
        return Source(Path("<stdin>"), sys.stdin.buffer)
    path = Path(name)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ImportFault(name, None, "no such file") from None
    except OSError as error:
        raise ImportFault(name, None, f"cannot read: {error.strerror or error}") from None
    if stat.S_ISDIR(mode):
        raise ImportFault(name, None, "is a directory; name the files inside it")
    if stat.S_ISREG(mode) and not is_stream_name(name):
        return Source(path)
    try:
        stream = stack.enter_context(path.open("rb"))
    except OSError as error:
        raise ImportFault(name, None, f"cannot read: {error.strerror or error}") from None
    return Source(path, stream)


def sniff_format(first_line: bytes) -> str:
    """The format of a stream by its first line: a JSON object starts JSON lines (each line then
    read for what it is), Parquet's magic bytes a Parquet file; anything else is text lines. A
    CSV stream is named with --format."""
    head = first_line.lstrip(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith((b"{", b"[")):
        return "json"
    return "text"


# -- reading lines -------------------------------------------------------------------------------


def read_lines(path: Path | Source, progress: Progress | None) -> Iterator[tuple[int, str]]:
    """(line number, decoded line) for each non-blank line; bad bytes and huge lines are faults.

    Progress is reported every `PROGRESS_STEP_BYTES` (and at the end), not per line: a progress
    bar's update costs more than reading a short line."""
    source = as_source(path)
    for number, raw in bounded_raw_lines(source, progress):
        line = decode_line(source.path, number, raw)
        if line is not None:
            yield number, line


def decode_line(path: Path, number: int, raw: bytes) -> str | None:
    """Line `number` as text without its line end, None when blank; bad UTF-8 is a fault."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ImportFault(
            str(path), number, f"not valid UTF-8 (byte {error.start} of the line)"
        ) from None
    if number == 1:
        line = line.lstrip("\ufeff")
    if line and not line.isspace():
        return line.rstrip("\r\n")
    return None


def bounded_raw_lines(source: Source, progress: Progress | None) -> Iterator[tuple[int, bytes]]:
    """(line number, raw bytes) of each line; a line over `MAX_LINE_BYTES` is a fault naming it.
    Progress is reported every `PROGRESS_STEP_BYTES` and once at the end."""
    unreported = 0
    try:
        for number, raw in enumerate(source.raw_lines(), start=1):
            unreported += len(raw)
            if progress and unreported >= PROGRESS_STEP_BYTES:
                progress(unreported)
                unreported = 0
            if len(raw) > MAX_LINE_BYTES:
                raise ImportFault(
                    str(source.path),
                    number,
                    # Not its size: a long line is cut while reading, so only the limit is known.
                    f"line is over the {MAX_LINE_BYTES / 1e6:.0f} MB limit",
                )
            yield number, raw
    finally:
        if progress and unreported:
            progress(unreported)


def parse_json_line(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ImportFault(
            str(path), number, f"invalid JSON: {error.msg} (column {error.colno})"
        ) from None
    except RecursionError:
        raise ImportFault(str(path), number, "JSON nested too deeply") from None
    if not isinstance(record, dict):
        raise ImportFault(str(path), number, f"expected a JSON object, got {type(record).__name__}")
    return record


def require_text(path: Path, number: int, value: Any, field_name: str = "text") -> str:
    if not isinstance(value, str):
        got = "nothing" if value is None else type(value).__name__
        raise ImportFault(str(path), number, f'"{field_name}" must be a string, got {got}')
    if len(value) > MAX_TEXT_CHARS:
        raise ImportFault(
            str(path),
            number,
            f"text has {len(value):,} characters, over the {MAX_TEXT_CHARS:,} limit",
        )
    if "\x00" in value:
        raise ImportFault(str(path), number, "text contains a NUL character")
    return value


def optional_int(path: Path, number: int, record: dict[str, Any], key: str) -> int | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ImportFault(
            str(path), number, f'"{key}" must be an integer, got {type(value).__name__}'
        )
    if not -(2**63) <= value < 2**63:
        raise ImportFault(str(path), number, f'"{key}" does not fit in 64 bits')
    return value


def optional_number(path: Path, number: int, value: Any, key: str) -> float | None:
    """A finite number (JSON as Python reads it also has NaN, Infinity and integers of any size)."""
    if value is None:
        return None
    if not isinstance(value, (int, float)):
        raise ImportFault(str(path), number, f'"{key}" must be a number')
    try:
        result = float(value)
    except OverflowError:
        result = math.inf
    if not math.isfinite(result):
        raise ImportFault(str(path), number, f'"{key}" must be a finite number, not {value!r:.20}')
    return result


def parse_spans(path: Path, number: int, raw: Any, text: str) -> list[Span]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ImportFault(str(path), number, f'"spans" must be a list, got {type(raw).__name__}')
    spans = []
    for position, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise ImportFault(str(path), number, f"span {position} is not an object")
        start, end, label = entry.get("start"), entry.get("end"), entry.get("label")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
            raise ImportFault(str(path), number, f"span {position} needs integer start and end")
        if not isinstance(label, str) or not label:
            raise ImportFault(str(path), number, f"span {position} needs a label")
        assert isinstance(start, int) and isinstance(end, int)
        if not 0 <= start < end <= len(text):
            raise ImportFault(
                str(path),
                number,
                f"span {position} ({start}-{end}) lies outside the text (length {len(text)})",
            )
        spans.append(Span(start, end, label))
    return spans


# -- formats -------------------------------------------------------------------------------------


def parse_prodigy(
    path: Path | Source, annotator: str | None, progress: Progress | None
) -> Iterator[ParsedRecord | PreparedItem | Skipped]:
    return json_file_records(
        as_source(path), JsonLineReader("prodigy", annotator=annotator), progress
    )


def prodigy_line(
    path: Path, number: int, record: dict[str, Any], annotator: str | None
) -> ParsedRecord | Skipped:
    text = require_text(path, number, record.get("text"))
    if not text.strip():
        return Skipped(number, "empty text")
    meta = record.get("meta") or {}
    if not isinstance(meta, dict):
        raise ImportFault(str(path), number, '"meta" must be an object')
    answers = []
    answer = record.get("answer")
    if answer is not None:
        if answer not in ANSWER_VALUES:
            raise ImportFault(
                str(path), number, f'"answer" must be accept, reject or ignore, not {answer!r}'
            )
        label = record.get("label")
        if label is not None and not isinstance(label, str):
            raise ImportFault(str(path), number, '"label" must be a string')
        view_id = record.get("_view_id")
        who = record.get("_annotator_id") or record.get("_session_id") or annotator
        timestamp = optional_number(path, number, record.get("_timestamp"), "_timestamp")
        served = record.get("_hnbooks") if isinstance(record.get("_hnbooks"), dict) else {}
        score = served.get("score")
        if isinstance(score, (int, float)):
            score = optional_number(path, number, score, "_hnbooks.score")
        answers.append(
            ParsedAnswer(
                annotator=str(who or DEFAULT_IMPORT_ANNOTATOR),
                answer=answer,
                label=label,
                view_id=view_id if isinstance(view_id, str) else None,
                spans=tuple(parse_spans(path, number, record.get("spans"), text)),
                task_hash=optional_int(path, number, record, "_task_hash"),
                created_at=timestamp,
                strategy=str(served.get("strategy") or "import"),
                score=float(score) if isinstance(score, (int, float)) else None,
                passthrough=task_passthrough(record),
            )
        )
    elif record.get("spans") is not None:
        parse_spans(path, number, record.get("spans"), text)
    return ParsedRecord(
        line=number,
        text=text,
        meta=meta,
        input_hash=optional_int(path, number, record, "_input_hash"),
        answers=answers,
    )


def task_passthrough(record: dict[str, Any]) -> dict[str, Any]:
    """The task's fields hnbooks does not model, verbatim, for the export to write back; under
    `spans`, each span's fields beyond start, end, label and text (token offsets, source, ...),
    with the start, end and label that find the span again."""
    kept = {key: value for key, value in record.items() if key not in MODELLED_TASK_KEYS}
    span_fields = [
        {"start": span["start"], "end": span["end"], "label": span["label"], **extra}
        for span in record.get("spans") or []
        if (extra := {k: v for k, v in span.items() if k not in MODELLED_SPAN_KEYS})
    ]
    if span_fields:
        kept["spans"] = span_fields
    return kept


def parse_plain_jsonl(
    path: Path | Source, text_field: str, progress: Progress | None
) -> Iterator[ParsedRecord | PreparedItem | Skipped]:
    return json_file_records(
        as_source(path), JsonLineReader("jsonl", text_field=text_field), progress
    )


def plain_line(
    path: Path, number: int, record: dict[str, Any], text_field: str
) -> ParsedRecord | Skipped:
    text = require_text(path, number, record.get(text_field), text_field)
    if not text.strip():
        return Skipped(number, "empty text")
    meta = record.get("meta")
    if meta is None:
        meta = {k: v for k, v in record.items() if k != text_field and is_scalar(v)}
    if not isinstance(meta, dict):
        raise ImportFault(str(path), number, '"meta" must be an object')
    return ParsedRecord(line=number, text=text, meta=meta)


def is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


HN_META_FIELDS = (
    ("by", "by"),
    ("author", "by"),
    ("time", "time"),
    ("created_at_i", "time"),
    ("parent", "parent"),
    ("parent_id", "parent"),
    ("story_id", "story_id"),
    ("story_title", "story_title"),
    ("url", "url"),
    ("score", "score"),
    ("points", "score"),
)
"""(field in the dump, key in meta): the first present value wins."""
HN_INT_META = frozenset({"parent", "story_id", "time", "score"})


def hn_record(
    path: Path, number: int, raw: dict[str, Any], types: frozenset[str] | None = None
) -> ParsedRecord | Skipped:
    """One Hacker News item (API, Algolia, BigQuery or dataframe field names) as a record, or
    why it is skipped: deleted, dead, a type not in `types` (default `DEFAULT_TYPES`), no text."""
    if truthy(raw.get("deleted")):
        return Skipped(number, "deleted")
    if truthy(raw.get("dead")):
        return Skipped(number, "dead")
    kind = item_type(raw)
    if kind not in (DEFAULT_TYPES if types is None else types):
        return Skipped(number, f"{kind[:20]} not in --types")
    item_id = raw.get("id", raw.get("objectID"))
    if present(item_id) is None:
        raise ImportFault(str(path), number, "Hacker News item without an id")
    html = present(raw.get("text"))
    if html is None:
        html = present(raw.get("comment_text")) or present(raw.get("story_text"))
    if html is not None and not isinstance(html, str):
        raise ImportFault(str(path), number, f'"text" must be a string, got {type(html).__name__}')
    title = present(raw.get("title")) or ""
    if not isinstance(title, str):
        title = str(title)
    body = clean_comment_html(html) if html else ""
    text = "\n\n".join(part for part in (title.strip(), body) if part)
    text = require_text(path, number, text)
    if not text.strip():
        return Skipped(number, "empty text")
    meta: dict[str, Any] = {"id": to_int_or_str(item_id)}
    for source_key, meta_key in HN_META_FIELDS:
        value = raw.get(source_key)
        if value is None or meta_key in meta or (value := present(value)) is None:
            continue
        meta[meta_key] = hn_int(value) if meta_key in HN_INT_META else json_safe(value)
    # Algolia gives a story's own id as its parent and story: the story has no parent.
    if meta.get("parent") == meta["id"]:
        del meta["parent"]
    meta["type"] = kind
    if title:
        meta["title"] = title
    return ParsedRecord(line=number, text=text, meta=meta, external_id=f"hn:{meta['id']}")


def truthy(value: Any) -> bool:
    """A dump's `dead`/`deleted` flag: see `hn_dumps.flag_set`."""
    return flag_set(value)


def to_int_or_str(value: Any) -> int | str:
    """An HN id as an int where it is one (123, 123.0, "123", "123.0"), else as text."""
    number = hn_int(value)
    return str(value) if number is None else number


def parse_hn_jsonl(
    path: Path | Source, progress: Progress | None, types: frozenset[str] | None = None
) -> Iterator[ParsedRecord | PreparedItem | Skipped]:
    return json_file_records(as_source(path), JsonLineReader("hn", types=types), progress)


def hn_lines(
    path: Path, number: int, record: dict[str, Any], types: frozenset[str] | None = None
) -> Iterator[ParsedRecord | Skipped]:
    """The items of one JSON record: itself, an Algolia response's hits, or every node of an
    Algolia `/items/:id` tree."""
    for item in hn_items_in(record):
        yield hn_record(path, number, item, types)


def json_document_file_records(
    source: Source, progress: Progress | None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, object) for each object of a JSON document (an array, or pretty-printed objects),
    read in chunks (`hn_dumps`)."""
    if source.stream is not None:
        chunks = read_chunks(source.stream, source.head)
        yield from json_document_records(source.path, chunks, progress)
        return
    with source.path.open("rb") as handle:
        yield from json_document_records(source.path, read_chunks(handle, []), progress)


def json_document_records(
    path: Path, chunks: Iterator[bytes], progress: Progress | None
) -> Iterator[tuple[int, dict[str, Any]]]:
    def counted() -> Iterator[bytes]:
        for chunk in chunks:
            if progress:
                progress(len(chunk))
            yield chunk

    try:
        yield from JsonDocumentReader(counted()).records()
    except ShapeError as error:
        raise ImportFault(str(path), error.line, error.message) from None


def first_json_line(source: Source) -> bytes:
    """The first non-blank line, read ahead (a stream keeps it in `head` to be read again)."""
    if source.stream is not None:
        if not any(line.strip() for line in source.head):
            source.first_line()
        return next((line for line in source.head if line.strip()), b"")
    try:
        with source.path.open("rb") as handle:
            while raw := handle.readline(MAX_LINE_BYTES + 1):
                if raw.strip():
                    return raw
    except OSError:
        pass  # the reader that follows names the fault
    return b""


def parse_json_lines(
    path: Path | Source,
    text_field: str,
    annotator: str | None,
    progress: Progress | None,
    flavours: dict[str, None],
    types: frozenset[str] | None = None,
    parse_workers: int = 0,
) -> Iterator[ParsedRecord | PreparedItem | Skipped]:
    """JSON lines of any flavour, each line read as what it is: files get concatenated, exports
    mixed with plain texts, so the first line cannot speak for the rest. A line that carries
    Prodigy's fields is a Prodigy task (its answer imported as an answer), one with Hacker News
    fields an HN item; any other line is a plain text, or, in a file that began with HN items, an
    HN item too (a deleted one has only id, type and time). A JSON array or pretty-printed
    objects are read the same way, record by record. The flavours met are added to `flavours`
    in order."""
    reader = JsonLineReader("json", text_field=text_field, annotator=annotator, types=types)
    return json_file_records(as_source(path), reader, progress, flavours, parse_workers)


@dataclass(frozen=True)
class JsonLineReader:
    """How one JSON record of a file becomes records to store. Plain data, so that a parser
    process can be handed one with a block of lines (`parse_json_block`)."""

    fmt: str
    """"json" (each record read as what it is, see `parse_json_lines`), "hn", "prodigy" or "jsonl"."""
    text_field: str = "text"
    annotator: str | None = None
    types: frozenset[str] | None = None
    first_flavour: str | None = None
    """For "json": the flavour of the file's first record (set by whoever reads it)."""

    def read(
        self, path: Path, number: int, record: dict[str, Any]
    ) -> tuple[str, list[ParsedRecord | Skipped]]:
        """(the record's flavour, the records it becomes)."""
        flavour = self.fmt
        if flavour == "json":
            flavour = json_flavour(record)
            if flavour == "jsonl" and self.first_flavour == "hn":
                flavour = "hn"
        if flavour == "prodigy":
            return flavour, [prodigy_line(path, number, record, self.annotator)]
        if flavour == "hn":
            return flavour, list(hn_lines(path, number, record, self.types))
        return flavour, [plain_line(path, number, record, self.text_field)]

    def knows_first(self) -> bool:
        """Whether every record can be read without the file's first (true but for "json")."""
        return self.fmt != "json" or self.first_flavour is not None

    def knowing_first(self, record: dict[str, Any]) -> JsonLineReader:
        """This reader once the file's first record is `record`."""
        if self.fmt != "json" or self.first_flavour is not None:
            return self
        return replace(self, first_flavour=json_flavour(record))


def default_parse_workers() -> int:
    """Parser processes for a large import: one per core but the writer's, at most four (the
    writer keeps up with about that many)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(0, min(4, cores - 1))


PARSE_BLOCK_LINES = 2000
"""Lines a parser process is handed at a time: big enough that handing over costs little."""
SERIAL_HEAD_LINES = 20_000
"""Lines parsed in this process before parser processes start: a small file is done sooner than
a process pool starts (~0.3 s)."""


def json_file_records(
    source: Source,
    reader: JsonLineReader,
    progress: Progress | None,
    flavours: dict[str, None] | None = None,
    parse_workers: int = 0,
) -> Iterator[ParsedRecord | PreparedItem | Skipped]:
    """The records of a file of JSON records (JSON lines, an array, pretty-printed objects), read
    by `reader`; the flavours met are added to `flavours`. With `parse_workers`, JSON lines past
    the first `SERIAL_HEAD_LINES` are parsed by that many processes (`parallel_json_records`)."""
    path = source.path
    met = {} if flavours is None else flavours
    if json_layout(first_json_line(source)) != "lines":
        for number, record in json_document_file_records(source, progress):
            reader, records = read_json_record(reader, path, number, record, met)
            yield from records
        return
    raw_lines = bounded_raw_lines(source, progress)
    for number, raw in raw_lines:
        reader, records = read_json_line(reader, path, number, raw, met)
        yield from records
        if parse_workers > 0 and number >= SERIAL_HEAD_LINES and reader.knows_first():
            yield from parallel_json_records(path, raw_lines, reader, met, parse_workers)
            return


def read_json_line(
    reader: JsonLineReader, path: Path, number: int, raw: bytes, flavours: dict[str, None]
) -> tuple[JsonLineReader, list[ParsedRecord | Skipped]]:
    """`read_json_record` of line `number` (none for a blank line)."""
    line = decode_line(path, number, raw)
    if line is None:
        return reader, []
    return read_json_record(reader, path, number, parse_json_line(path, number, line), flavours)


def read_json_record(
    reader: JsonLineReader,
    path: Path,
    number: int,
    record: dict[str, Any],
    flavours: dict[str, None],
) -> tuple[JsonLineReader, list[ParsedRecord | Skipped]]:
    """(the reader for the records after this one, what `record` becomes); its flavour is added
    to `flavours`."""
    reader = reader.knowing_first(record)
    flavour, records = reader.read(path, number, record)
    flavours.setdefault(flavour)
    return reader, records


@dataclass(frozen=True)
class BlockFault:
    """Why a parser process stopped in its block: the line and what is wrong with it."""

    line: int | None
    message: str


@dataclass(frozen=True)
class ParsedBlock:
    """What a parser process made of a block of lines: the records, ready to write, up to the
    first fault, the flavours met (in order), and the fault, if any."""

    records: list[PreparedItem | Skipped]
    flavours: list[str]
    fault: BlockFault | None = None


def parse_json_block(
    path_name: str, first_number: int, lines: list[bytes], reader: JsonLineReader
) -> ParsedBlock:
    """Lines `first_number`... of a file read with `reader`, their rows prepared, in a parser
    process; a fault ends the block."""
    path = Path(path_name)
    flavours: dict[str, None] = {}

    def records() -> Iterator[ParsedRecord | Skipped]:
        for number, raw in enumerate(lines, start=first_number):
            yield from read_json_line(reader, path, number, raw, flavours)[1]

    return prepared_block(records(), flavours)


def prepared_block(
    records: Iterator[ParsedRecord | Skipped], flavours: dict[str, None] | None = None
) -> ParsedBlock:
    """The records with their rows prepared (text key, input hash, meta JSON) up to the first
    fault, which ends the block; `flavours` as the records left them."""
    prepared: list[PreparedItem | Skipped] = []
    fault = None
    try:
        for record in records:
            prepared.append(record if isinstance(record, Skipped) else prepare_item(record))
    except ImportFault as stopped:
        fault = BlockFault(stopped.line, stopped.message)
    except UnstorableRecord as unstorable:
        fault = BlockFault(unstorable.line, str(unstorable))
    return ParsedBlock(prepared, list(flavours or ()), fault)


def parallel_json_records(
    path: Path,
    raw_lines: Iterator[tuple[int, bytes]],
    reader: JsonLineReader,
    flavours: dict[str, None],
    parse_workers: int,
) -> Iterator[PreparedItem | Skipped]:
    """The records of `raw_lines` (numbered JSON lines), parsed by `parse_workers` processes in
    blocks of `PARSE_BLOCK_LINES` (`parsed_in_processes`)."""
    blocks = (
        partial(parse_json_block, str(path), first_number, lines, reader)
        for first_number, lines in numbered_blocks(raw_lines, PARSE_BLOCK_LINES)
    )
    return parsed_in_processes(path, blocks, parse_workers, flavours)


def parsed_in_processes(
    path: Path,
    blocks: Iterator[Callable[[], ParsedBlock]],
    parse_workers: int,
    flavours: dict[str, None] | None = None,
) -> Iterator[PreparedItem | Skipped]:
    """The records of `blocks` (each a picklable call that parses one block of the file), run by
    `parse_workers` processes and given back in file order; a bounded number of blocks is in
    flight, so memory stays flat. A fault is raised where the file order meets it: one met while
    reading the next block (a line too long) waits for the blocks before it, whose own faults
    come first.

    Processes rather than threads: parsing (JSON, HTML, hashing) holds the GIL, and on a machine
    of N cores N - 1 parsers keep the writer, which mostly waits on SQLite, busy."""
    # Two blocks per parser, plus two write chunks' worth: the writer takes a chunk at a time, and
    # the parsers must not run dry while it writes one.
    in_flight_limit = 2 * parse_workers + 2 * -(-IMPORT_CHUNK_RECORDS // PARSE_BLOCK_LINES)
    context = multiprocessing.get_context("forkserver")
    pool = ProcessPoolExecutor(parse_workers, mp_context=context)
    pending: deque[Future[ParsedBlock]] = deque()

    def handed_back(block: Future[ParsedBlock]) -> Iterator[PreparedItem | Skipped]:
        try:
            parsed = block.result()
        except BrokenProcessPool:
            raise ImportFault(str(path), None, "a parser process died (out of memory?)") from None
        if flavours is not None:
            for flavour in parsed.flavours:
                flavours.setdefault(flavour)
        yield from parsed.records
        if parsed.fault is not None:
            raise ImportFault(str(path), parsed.fault.line, parsed.fault.message)

    try:
        try:
            for block in blocks:
                pending.append(pool.submit(block))
                if len(pending) >= in_flight_limit:
                    yield from handed_back(pending.popleft())
        except ImportFault:
            while pending:
                yield from handed_back(pending.popleft())
            raise
        while pending:
            yield from handed_back(pending.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def numbered_blocks(
    raw_lines: Iterator[tuple[int, bytes]], size: int
) -> Iterator[tuple[int, list[bytes]]]:
    """(first line number, up to `size` consecutive lines) of numbered lines."""
    first = 0
    block: list[bytes] = []
    for number, raw in raw_lines:
        if not block:
            first = number
        block.append(raw)
        if len(block) >= size:
            yield first, block
            block = []
    if block:
        yield first, block


def json_flavour(record: dict[str, Any]) -> str:
    # Prodigy first: an answer must never be mistaken for metadata.
    if any(key in record for key in PRODIGY_KEYS):
        return "prodigy"
    if "hits" in record or any(key in record for key in HN_KEYS):
        return "hn"
    return "jsonl"


def read_table_rows(
    path: Path | Source, delimiter: str, progress: Progress | None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) of a CSV/TSV file, read a line at a time, so memory stays flat whatever
    the file's size; a line over `MAX_LINE_BYTES` (a whole file on one line) is refused naming it."""
    source = as_source(path)
    path = source.path
    csv.field_size_limit(MAX_LINE_BYTES)
    reader = csv.DictReader(table_text_lines(source, progress), delimiter=delimiter, strict=True)
    try:
        for row in reader:
            if None in row:
                raise ImportFault(str(path), reader.line_num, "more fields than the header has")
            yield reader.line_num, row
    except csv.Error as error:
        raise ImportFault(str(path), reader.line_num, f"malformed CSV: {error}") from None


LONE_CARRIAGE_RETURN = re.compile(r"(?<=\r)(?!\n)")


def table_text_lines(source: Source, progress: Progress | None) -> Iterator[str]:
    """The file's text as the csv module reads it (`newline=""`: lines end at "\n", "\r\n" or a
    lone "\r", endings kept), decoded line by line; bad bytes are a fault naming their line."""
    path = source.path
    try:
        for number, raw in bounded_raw_lines(source, progress):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise ImportFault(str(path), number, "not valid UTF-8") from None
            if "\r" in line:
                yield from (part for part in LONE_CARRIAGE_RETURN.split(line) if part)
            else:
                yield line
    except OSError as error:
        raise ImportFault(str(path), None, f"cannot read: {error.strerror}") from None


def read_parquet_rows(
    path: Path | Source, progress: Progress | None
) -> Iterator[tuple[int, dict[str, Any]]]:
    for first_number, batch in parquet_batches(as_source(path), progress):
        yield from enumerate(batch.to_pylist(), start=first_number)


def open_parquet(source: Source) -> pq.ParquetFile:
    import pyarrow.parquet as pq  # imported here: only Parquet imports pay for pyarrow

    path = source.path
    if source.stream is not None and not source.stream.seekable():
        raise ImportFault(
            str(path),
            None,
            "Parquet cannot be read from a pipe (its index is at the end of the file); pass the"
            " file's name, or save the stream to a file first",
        )
    if source.stream is not None:
        source.stream.seek(0)
    try:
        return pq.ParquetFile(source.stream if source.stream is not None else path)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise ImportFault(str(path), None, f"not a readable Parquet file ({error})") from None


PARQUET_BATCH_ROWS = 10_000


def parquet_batches(
    source: Source, progress: Progress | None, parquet: pq.ParquetFile | None = None
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """(first row number, batch of `PARQUET_BATCH_ROWS` rows) of a Parquet file: a batch at a
    time, so memory stays flat."""
    parquet = parquet or open_parquet(source)
    first_number = 1
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        yield first_number, batch
        first_number += batch.num_rows
        if progress:
            progress(batch.nbytes)


def table_columns(path: Path, fmt: str) -> set[str]:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return set(pq.ParquetFile(path).schema_arrow.names)
        except Exception as error:
            raise ImportFault(str(path), None, f"not a readable Parquet file ({error})") from None
    delimiter = "\t" if fmt == "tsv" else ","
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as handle:
        header = handle.readline()
    return {c.strip() for c in next(csv.reader([header], delimiter=delimiter), [])}


def parse_table(
    path: Path | Source,
    fmt: str,
    text_field: str,
    hn: bool,
    progress: Progress | None,
    types: frozenset[str] | None = None,
    parse_workers: int = 0,
) -> Iterator[ParsedRecord | PreparedItem | Skipped]:
    """The records of a CSV, TSV or Parquet file (`hn`: of Hacker News items). With
    `parse_workers`, a Parquet file of more than `SERIAL_HEAD_LINES` rows is parsed by that many
    processes, a batch each (`parsed_in_processes`)."""
    source = as_source(path)
    path = source.path
    if fmt == "parquet":
        parquet = open_parquet(source)
        if not hn:
            require_column(path, text_field, parquet.schema_arrow.names)
        if parse_workers > 0 and parquet.metadata.num_rows > SERIAL_HEAD_LINES:
            blocks = (
                partial(parse_table_block, str(path), first, batch, text_field, hn, types)
                for first, batch in parquet_batches(source, progress, parquet)
            )
            yield from parsed_in_processes(path, blocks, parse_workers)
            return
        rows: Iterator[tuple[int, dict[str, Any]]] = (
            (number, row)
            for first, batch in parquet_batches(source, progress, parquet)
            for number, row in enumerate(batch.to_pylist(), start=first)
        )
    else:
        rows = read_table_rows(source, "\t" if fmt == "tsv" else ",", progress)
    first_row = True
    for number, row in rows:
        if first_row and not hn:
            require_column(path, text_field, row)
        first_row = False
        yield table_record(path, number, row, text_field, hn, types, fmt)


def require_column(path: Path, text_field: str, columns: Iterable[Any]) -> None:
    names = {str(column) for column in columns}
    if text_field not in names:
        listed = ", ".join(sorted(names)) or "none"
        raise ImportFault(
            str(path), None, f'no "{text_field}" column (columns: {listed}); use --text-field'
        )


def table_record(
    path: Path,
    number: int,
    row: dict[str, Any],
    text_field: str,
    hn: bool,
    types: frozenset[str] | None,
    fmt: str,
) -> ParsedRecord | Skipped:
    """Row `number` of a table (`hn`: a Hacker News item) as a record, or why it is skipped."""
    if hn:
        return hn_record(path, number, row, types)
    value = row.get(text_field)
    text = require_text(path, number, "" if value is None else value, text_field)
    if not text.strip():
        label = "row" if fmt == "parquet" else "line"
        return Skipped(number, f"empty text ({label} {number})")
    meta = {k: v for k, v in row.items() if k != text_field and v not in (None, "")}
    return ParsedRecord(line=number, text=text, meta={k: json_safe(v) for k, v in meta.items()})


def parse_table_block(
    path_name: str,
    first_number: int,
    batch: pa.RecordBatch,
    text_field: str,
    hn: bool,
    types: frozenset[str] | None,
) -> ParsedBlock:
    """Rows `first_number`... of a Parquet file (one batch) as records with their rows prepared,
    in a parser process; a fault ends the block."""
    path = Path(path_name)
    return prepared_block(
        table_record(path, number, row, text_field, hn, types, "parquet")
        for number, row in enumerate(batch.to_pylist(), start=first_number)
    )


def json_safe(value: Any) -> Any:
    return value if is_scalar(value) else str(value)


def parse_text_lines(
    path: Path | Source, progress: Progress | None
) -> Iterator[ParsedRecord | Skipped]:
    source = as_source(path)
    for number, line in read_lines(source, progress):
        text = require_text(source.path, number, line)
        yield ParsedRecord(line=number, text=text, meta={"line": number})


# -- format detection ----------------------------------------------------------------------------


def detect_format(path: Path) -> str:
    """The format of a file by its extension and, for tables, its columns. JSON lines are "json":
    each line's flavour is decided on that line (`json_flavour`)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return "hn" if is_hn_table(table_columns(path, "parquet")) else "parquet"
    if suffix in (".csv", ".tsv"):
        fmt = suffix[1:]
        return "hn" if is_hn_table(table_columns(path, fmt)) else fmt
    if suffix in JSON_SUFFIXES:
        return "json"
    return "text"


# -- writing -------------------------------------------------------------------------------------


def import_file(
    store: Store,
    path: str | Path,
    *,
    fmt: str = "auto",
    text_field: str = "text",
    annotator: str | None = None,
    progress: Progress | None = None,
    types: frozenset[str] | None = None,
    chunk_records: int = 0,
    parse_workers: int = 0,
) -> ImportSummary:
    """Import one file (`-`: stdin), all or nothing; raise ImportFault (and show nothing) on bad
    input. Labels its answers name (a task's label, span labels) are registered too.
    `types`: the Hacker News item types kept (default `hn_dumps.DEFAULT_TYPES`).
    `parse_workers`: processes that parse a large file of JSON lines (`hnbooks import` gives
    `default_parse_workers()`); 0, the default, parses in this process. They are started with
    multiprocessing's forkserver, so a script that asks for them needs the
    `if __name__ == "__main__":` guard.

    The file is written `chunk_records` records (default `IMPORT_CHUNK_RECORDS`) per write
    transaction, so an annotator's answer meanwhile waits for one chunk at most; the items stay
    hidden from every reader until the last chunk is in, then show at once
    (`Store.staging_import`)."""
    name = os.fspath(path)
    with ExitStack() as stack:
        source = open_source(name, stack)
        if fmt not in FORMATS:
            raise ImportFault(
                str(source.path), None, f"unknown format {fmt!r} (one of {', '.join(FORMATS)})"
            )
        if fmt != "auto":
            resolved = fmt
        elif source.stream is not None:
            resolved = sniff_format(source.first_line())
        else:
            resolved = detect_format(source.path)
        return import_source(
            store,
            source,
            resolved,
            text_field,
            annotator,
            progress,
            types,
            chunk_records,
            parse_workers,
        )
    raise AssertionError("unreachable")  # ExitStack swallows no exception


def import_source(
    store: Store,
    source: Source,
    resolved: str,
    text_field: str,
    annotator: str | None,
    progress: Progress | None,
    types: frozenset[str] | None = None,
    chunk_records: int = 0,
    parse_workers: int = 0,
) -> ImportSummary:
    chunk_records = chunk_records or IMPORT_CHUNK_RECORDS
    path = source.path
    suffix = path.suffix.lower() if source.stream is None else ""
    flavours: dict[str, None] = {}
    if resolved == "hn" and suffix in (".csv", ".tsv", ".parquet"):
        table_fmt = "parquet" if suffix == ".parquet" else suffix[1:]
        records: Iterator[ParsedRecord | PreparedItem | Skipped] = parse_table(
            source, table_fmt, text_field, True, progress, types, parse_workers
        )
    elif resolved == "json":
        records = parse_json_lines(
            source, text_field, annotator, progress, flavours, types, parse_workers
        )
    elif resolved in ("hn", "prodigy", "jsonl"):
        reader = JsonLineReader(resolved, text_field=text_field, annotator=annotator, types=types)
        records = json_file_records(source, reader, progress, None, parse_workers)
    elif resolved in ("csv", "tsv", "parquet"):
        records = parse_table(
            source, resolved, text_field, False, progress, parse_workers=parse_workers
        )
    else:
        records = parse_text_lines(source, progress)
    summary = ImportSummary(path=str(path), format=resolved)
    labels_met: dict[str, None] = {}
    try:
        with store.staging_import(path.name) as staged:
            with ChunkWriter(staged, path, summary) as writer:
                chunk: list[ParsedRecord | PreparedItem] = []
                for record in records:
                    if isinstance(record, Skipped):
                        summary.skipped[record.reason.split(" (")[0]] += 1
                        if len(summary.first_skips) < 5:
                            summary.first_skips.append(record)
                        continue
                    chunk.append(record)
                    for answer in record.answers:
                        labels_met.update(dict.fromkeys(answer_labels(answer)))
                    if len(chunk) >= chunk_records:
                        writer.write(chunk)
                        chunk = []
                writer.write(chunk)
            try:
                published = staged.publish(labels_met)
            except UnstorableRecord as unstorable:
                raise ImportFault(str(path), unstorable.line, str(unstorable)) from None
    except UnicodeError as error:
        raise ImportFault(str(path), None, f"cannot decode: {error}") from None
    except OSError as error:
        raise ImportFault(str(path), None, f"cannot read: {error.strerror or error}") from None
    except StoreError as error:
        raise ImportFault(str(path), None, str(error)) from None
    summary.answers = published.answers_added
    summary.answers_already_present = published.answers_present
    summary.labels_added = published.labels_added
    summary.labels_refused = published.labels_refused
    if resolved == "json":
        summary.format = "+".join(flavours) or "jsonl"
    return summary


def write_chunk(
    staged: StagedImport, chunk: list[ParsedRecord | PreparedItem], path: Path
) -> tuple[int, int]:
    """Write one chunk of a file's records (one short write transaction); (new, merged)."""
    try:
        outcomes = staged.write(chunk)
    except ItemConflict as conflict:
        raise ImportFault(str(path), conflict.line, str(conflict)) from None
    except UnstorableRecord as unstorable:
        raise ImportFault(str(path), unstorable.line, str(unstorable)) from None
    new_items = sum(outcome.new_item for outcome in outcomes)
    return new_items, len(outcomes) - new_items


class ChunkWriter:
    """Writes a file's chunks on a second thread while the caller parses the next one.

    SQLite releases the GIL while it inserts, maintains the FTS index and syncs the commit, so
    on two cores the writing overlaps the parsing (JSON, HTML) instead of following it. A thread
    rather than a process: parsing in another process would need each parser's state (a file's
    first flavour, multi-line JSON documents) split across processes and every record pickled
    back, while the writer is a plain function of a chunk. One chunk is in flight at most, so
    memory stays flat; leaving waits for it, so a fault or an interrupt never leaves a write
    running. A fault the writer met is raised before one the parser met later in the file."""

    def __init__(self, staged: StagedImport, path: Path, summary: ImportSummary) -> None:
        self._staged = staged
        self._path = path
        self._summary = summary
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-writer")
        self._in_flight: Future[tuple[int, int]] | None = None

    def write(self, chunk: list[ParsedRecord | PreparedItem]) -> None:
        """Hand `chunk` over once the one before it is written (raising that one's fault)."""
        self._collect()
        if chunk:
            self._in_flight = self._executor.submit(write_chunk, self._staged, chunk, self._path)

    def _collect(self) -> None:
        if self._in_flight is None:
            return
        in_flight, self._in_flight = self._in_flight, None
        new_items, merged = in_flight.result()
        self._summary.new_items += new_items
        self._summary.merged += merged

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: Any
    ) -> None:
        try:
            if kind is None:
                self._collect()
            elif self._in_flight is not None:
                written = self._in_flight.exception()  # waits for the chunk in flight
                if isinstance(written, ImportFault) and isinstance(error, ImportFault):
                    raise written from None
        finally:
            self._executor.shutdown(wait=True)


def answer_labels(answer: ParsedAnswer) -> list[str]:
    """The labels an answer names: its task's label, then its spans' labels."""
    named = [answer.label] if answer.label else []
    return named + [span.label for span in answer.spans]
