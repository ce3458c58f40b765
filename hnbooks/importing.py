"""Importers: Prodigy JSONL, plain JSONL, CSV/TSV, Parquet, Hacker News items and plain text lines.

Each file is read into `ParsedRecord`s, then written in one transaction: a fault anywhere in a file
(`ImportFault`, naming the file and line) rolls the whole file back, so nothing is half imported.
Texts are merged on their whitespace-normalised form; answers already stored are not added again.
In JSON lines each line is read for what it is (a Prodigy task, an HN item, a plain text), never
by what the first line was. A Prodigy task's fields that hnbooks does not model (tokens, options,
accept, relations, span token offsets, unknown fields) are kept with its answer for the export.

`-` is stdin. A stream (stdin, a FIFO, `/dev/stdin`, `<(cmd)`) is read once: its first record is
read ahead to tell the format, then read again from that buffer, so nothing of it is lost.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import stat
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from hnbooks.hn_html import clean_comment_html
from hnbooks.store.db import Store, StoreError
from hnbooks.store.ingest import ItemConflict
from hnbooks.store.ingest import remap_spans as remap_spans  # re-exported for parsers' users
from hnbooks.store.ingest import text_key as text_key
from hnbooks.store.records import ANSWER_VALUES, IncomingItem, NewAnswer, Span

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
HN_COLUMNS = {"id", "by", "time", "text", "type"}
JSON_SUFFIXES = (".jsonl", ".json", ".ndjson", ".jl")
INTEGER_TEXT = re.compile(r"-?[0-9]{1,30}")

Progress = Callable[[int], None]


class ImportFault(Exception):
    """Bad input that stops a file's import; the message names the file and line."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


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
        if self.stream is None:
            with self.path.open("rb") as handle:
                yield from handle
            return
        while self.head:
            yield self.head.pop(0)
        yield from self.stream

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
    if head.startswith(b"{"):
        return "json"
    return "text"


# -- reading lines -------------------------------------------------------------------------------


def read_lines(path: Path | Source, progress: Progress | None) -> Iterator[tuple[int, str]]:
    """(line number, decoded line) for each non-blank line; bad bytes and huge lines are faults."""
    source = as_source(path)
    path = source.path
    for number, raw in enumerate(source.raw_lines(), start=1):
        if progress:
            progress(len(raw))
        if len(raw) > MAX_LINE_BYTES:
            raise ImportFault(
                str(path),
                number,
                f"line is {len(raw) / 1e6:.1f} MB, over the {MAX_LINE_BYTES / 1e6:.0f} MB limit",
            )
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ImportFault(
                str(path), number, f"not valid UTF-8 (byte {error.start} of the line)"
            ) from None
        if number == 1:
            line = line.lstrip("\ufeff")
        if line.strip():
            yield number, line.rstrip("\r\n")


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
) -> Iterator[ParsedRecord | Skipped]:
    source = as_source(path)
    for number, line in read_lines(source, progress):
        record = parse_json_line(source.path, number, line)
        yield prodigy_line(source.path, number, record, annotator)


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
) -> Iterator[ParsedRecord | Skipped]:
    source = as_source(path)
    for number, line in read_lines(source, progress):
        record = parse_json_line(source.path, number, line)
        yield plain_line(source.path, number, record, text_field)


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


def hn_record(path: Path, number: int, raw: dict[str, Any]) -> ParsedRecord | Skipped:
    """One Hacker News item (API or Algolia field names) as a record, or why it is skipped."""
    if truthy(raw.get("deleted")):
        return Skipped(number, "deleted")
    if truthy(raw.get("dead")):
        return Skipped(number, "dead")
    item_id = raw.get("id", raw.get("objectID"))
    if item_id is None or str(item_id).strip() == "":
        raise ImportFault(str(path), number, "Hacker News item without an id")
    html = raw.get("text")
    if html is None:
        html = raw.get("comment_text") or raw.get("story_text")
    if html is not None and not isinstance(html, str):
        raise ImportFault(str(path), number, f'"text" must be a string, got {type(html).__name__}')
    title = raw.get("title") or ""
    if not isinstance(title, str):
        title = str(title)
    body = clean_comment_html(html) if html else ""
    text = "\n\n".join(part for part in (title.strip(), body) if part)
    text = require_text(path, number, text)
    if not text.strip():
        return Skipped(number, "empty text")
    meta: dict[str, Any] = {"id": to_int_or_str(item_id)}
    for source_key, meta_key in (
        ("by", "by"),
        ("author", "by"),
        ("time", "time"),
        ("created_at_i", "time"),
        ("parent", "parent"),
        ("parent_id", "parent"),
        ("story_id", "story_id"),
        ("story_title", "story_title"),
        ("type", "type"),
    ):
        value = raw.get(source_key)
        if value not in (None, "") and meta_key not in meta:
            meta[meta_key] = (
                to_int_or_str(value) if meta_key in ("parent", "story_id", "time") else value
            )
    if title:
        meta["title"] = title
    return ParsedRecord(line=number, text=text, meta=meta, external_id=f"hn:{meta['id']}")


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "t", "yes")
    return bool(value) and value == value  # NaN from a dataframe-written file is not True


def to_int_or_str(value: Any) -> int | str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = str(value).strip()
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses, and "١٢", which
    # would silently become another id. Longer numbers than any HN id stay text (int() refuses
    # over 4300 digits).
    return int(text) if INTEGER_TEXT.fullmatch(text) else text


def parse_hn_jsonl(
    path: Path | Source, progress: Progress | None
) -> Iterator[ParsedRecord | Skipped]:
    source = as_source(path)
    for number, line in read_lines(source, progress):
        yield from hn_lines(source.path, number, parse_json_line(source.path, number, line))


def hn_lines(path: Path, number: int, record: dict[str, Any]) -> Iterator[ParsedRecord | Skipped]:
    if "hits" in record and isinstance(record["hits"], list):
        # An Algolia search response saved whole: one line, many items.
        for hit in record["hits"]:
            if isinstance(hit, dict):
                yield hn_record(path, number, hit)
        return
    yield hn_record(path, number, record)


def parse_json_lines(
    path: Path | Source,
    text_field: str,
    annotator: str | None,
    progress: Progress | None,
    flavours: dict[str, None],
) -> Iterator[ParsedRecord | Skipped]:
    """JSON lines of any flavour, each line read as what it is: files get concatenated, exports
    mixed with plain texts, so the first line cannot speak for the rest. A line that carries
    Prodigy's fields is a Prodigy task (its answer imported as an answer), one with Hacker News
    fields an HN item; any other line is a plain text, or, in a file that began with HN items, an
    HN item too (a deleted one has only id, type and time). The flavours met are added to
    `flavours` in order."""
    source = as_source(path)
    path = source.path
    base: str | None = None
    for number, line in read_lines(source, progress):
        record = parse_json_line(path, number, line)
        flavour = json_flavour(record)
        if base is None:
            base = flavour
        if flavour == "jsonl" and base == "hn":
            flavour = "hn"
        flavours.setdefault(flavour)
        if flavour == "prodigy":
            yield prodigy_line(path, number, record, annotator)
        elif flavour == "hn":
            yield from hn_lines(path, number, record)
        else:
            yield plain_line(path, number, record, text_field)


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
    source = as_source(path)
    path = source.path
    try:
        raw = source.read_bytes()
    except OSError as error:
        raise ImportFault(str(path), None, f"cannot read: {error.strerror}") from None
    if progress:
        progress(len(raw))
    try:
        decoded = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ImportFault(str(path), line, "not valid UTF-8") from None
    csv.field_size_limit(MAX_LINE_BYTES)
    reader = csv.DictReader(io.StringIO(decoded, newline=""), delimiter=delimiter, strict=True)
    try:
        for row in reader:
            if None in row:
                raise ImportFault(str(path), reader.line_num, "more fields than the header has")
            yield reader.line_num, row
    except csv.Error as error:
        raise ImportFault(str(path), reader.line_num, f"malformed CSV: {error}") from None


def read_parquet_rows(
    path: Path | Source, progress: Progress | None
) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq  # imported here: only Parquet imports pay for pyarrow

    source = as_source(path)
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
        parquet = pq.ParquetFile(source.stream if source.stream is not None else path)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise ImportFault(str(path), None, f"not a readable Parquet file ({error})") from None
    row_number = 0
    for batch in parquet.iter_batches(batch_size=10_000):
        for row in batch.to_pylist():
            row_number += 1
            yield row_number, row
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
    path: Path | Source, fmt: str, text_field: str, hn: bool, progress: Progress | None
) -> Iterator[ParsedRecord | Skipped]:
    source = as_source(path)
    path = source.path
    rows = (
        read_parquet_rows(source, progress)
        if fmt == "parquet"
        else read_table_rows(source, "\t" if fmt == "tsv" else ",", progress)
    )
    label = "row" if fmt == "parquet" else "line"
    first = True
    for number, row in rows:
        if first and not hn and text_field not in row:
            columns = ", ".join(sorted(map(str, row))) or "none"
            raise ImportFault(
                str(path), None, f'no "{text_field}" column (columns: {columns}); use --text-field'
            )
        first = False
        if hn:
            yield hn_record(path, number, row)
            continue
        value = row.get(text_field)
        text = require_text(path, number, "" if value is None else value, text_field)
        if not text.strip():
            yield Skipped(number, f"empty text ({label} {number})")
            continue
        meta = {k: v for k, v in row.items() if k != text_field and v not in (None, "")}
        yield ParsedRecord(line=number, text=text, meta={k: json_safe(v) for k, v in meta.items()})


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
        return "hn" if HN_COLUMNS <= table_columns(path, "parquet") else "parquet"
    if suffix in (".csv", ".tsv"):
        fmt = suffix[1:]
        return "hn" if HN_COLUMNS <= table_columns(path, fmt) else fmt
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
) -> ImportSummary:
    """Import one file (`-`: stdin) in one transaction; raise ImportFault (and store nothing) on
    bad input. Labels its answers name (a task's label, span labels) are registered too."""
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
        return import_source(store, source, resolved, text_field, annotator, progress)
    raise AssertionError("unreachable")  # ExitStack swallows no exception


def import_source(
    store: Store,
    source: Source,
    resolved: str,
    text_field: str,
    annotator: str | None,
    progress: Progress | None,
) -> ImportSummary:
    path = source.path
    suffix = path.suffix.lower() if source.stream is None else ""
    flavours: dict[str, None] = {}
    if resolved == "hn" and suffix in (".csv", ".tsv", ".parquet"):
        table_fmt = "parquet" if suffix == ".parquet" else suffix[1:]
        records: Iterator[ParsedRecord | Skipped] = parse_table(
            source, table_fmt, text_field, True, progress
        )
    elif resolved == "json":
        records = parse_json_lines(source, text_field, annotator, progress, flavours)
    elif resolved == "hn":
        records = parse_hn_jsonl(source, progress)
    elif resolved == "prodigy":
        records = parse_prodigy(source, annotator, progress)
    elif resolved == "jsonl":
        records = parse_plain_jsonl(source, text_field, progress)
    elif resolved in ("csv", "tsv", "parquet"):
        records = parse_table(source, resolved, text_field, False, progress)
    else:
        records = parse_text_lines(source, progress)
    summary = ImportSummary(path=str(path), format=resolved)
    labels_met: dict[str, None] = {}
    try:
        with store.writing_items(path.name) as writer:
            for record in records:
                if isinstance(record, Skipped):
                    summary.skipped[record.reason.split(" (")[0]] += 1
                    if len(summary.first_skips) < 5:
                        summary.first_skips.append(record)
                    continue
                try:
                    outcome = writer.add(record)
                except ItemConflict as conflict:
                    raise ImportFault(str(path), record.line, str(conflict)) from None
                except (UnicodeEncodeError, OverflowError) as error:
                    # A value SQLite cannot store: a lone surrogate, an integer beyond 64 bits.
                    raise ImportFault(
                        str(path), record.line, f"cannot store this record ({error})"
                    ) from None
                summary.new_items += outcome.new_item
                summary.merged += not outcome.new_item
                summary.answers += outcome.answers_added
                summary.answers_already_present += outcome.answers_present
                for answer in record.answers:
                    labels_met.update(dict.fromkeys(answer_labels(answer)))
            for label in labels_met:
                try:
                    if writer.add_label(label):
                        summary.labels_added.append(label)
                except StoreError as refused:
                    summary.labels_refused[label] = str(refused)
    except UnicodeError as error:
        raise ImportFault(str(path), None, f"cannot decode: {error}") from None
    except OSError as error:
        raise ImportFault(str(path), None, f"cannot read: {error.strerror or error}") from None
    except StoreError as error:
        raise ImportFault(str(path), None, str(error)) from None
    if resolved == "json":
        summary.format = "+".join(flavours) or "jsonl"
    return summary


def answer_labels(answer: ParsedAnswer) -> list[str]:
    """The labels an answer names: its task's label, then its spans' labels."""
    named = [answer.label] if answer.label else []
    return named + [span.label for span in answer.spans]
