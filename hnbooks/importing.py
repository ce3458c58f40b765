"""Importers: Prodigy JSONL, plain JSONL, CSV/TSV, Parquet, Hacker News items and plain text lines.

Each file is read into `ParsedRecord`s, then written in one transaction: a fault anywhere in a file
(`ImportFault`, naming the file and line) rolls the whole file back, so nothing is half imported.
Texts are merged on their whitespace-normalised form; answers already stored are not added again.
In JSON lines each line is read for what it is (a Prodigy task, an HN item, a plain text), never
by what the first line was.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hnbooks.hn_html import clean_comment_html
from hnbooks.store.db import Store, StoreError
from hnbooks.store.ingest import ItemConflict
from hnbooks.store.ingest import remap_spans as remap_spans  # re-exported for parsers' users
from hnbooks.store.ingest import stable_hash as stable_hash
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
        return f"{self.path} [{self.format}]: " + ", ".join(parts)


# -- reading lines -------------------------------------------------------------------------------


def read_lines(path: Path, progress: Progress | None) -> Iterator[tuple[int, str]]:
    """(line number, decoded line) for each non-blank line; bad bytes and huge lines are faults."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
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
    path: Path, annotator: str | None, progress: Progress | None
) -> Iterator[ParsedRecord | Skipped]:
    for number, line in read_lines(path, progress):
        yield prodigy_line(path, number, parse_json_line(path, number, line), annotator)


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


def parse_plain_jsonl(
    path: Path, text_field: str, progress: Progress | None
) -> Iterator[ParsedRecord | Skipped]:
    for number, line in read_lines(path, progress):
        yield plain_line(path, number, parse_json_line(path, number, line), text_field)


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


def parse_hn_jsonl(path: Path, progress: Progress | None) -> Iterator[ParsedRecord | Skipped]:
    for number, line in read_lines(path, progress):
        yield from hn_lines(path, number, parse_json_line(path, number, line))


def hn_lines(path: Path, number: int, record: dict[str, Any]) -> Iterator[ParsedRecord | Skipped]:
    if "hits" in record and isinstance(record["hits"], list):
        # An Algolia search response saved whole: one line, many items.
        for hit in record["hits"]:
            if isinstance(hit, dict):
                yield hn_record(path, number, hit)
        return
    yield hn_record(path, number, record)


def parse_json_lines(
    path: Path,
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
    base: str | None = None
    for number, line in read_lines(path, progress):
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
    path: Path, delimiter: str, progress: Progress | None
) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        raw = path.read_bytes()
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
    path: Path, progress: Progress | None
) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq  # imported here: only Parquet imports pay for pyarrow

    try:
        parquet = pq.ParquetFile(path)
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
    path: Path, fmt: str, text_field: str, hn: bool, progress: Progress | None
) -> Iterator[ParsedRecord | Skipped]:
    rows = (
        read_parquet_rows(path, progress)
        if fmt == "parquet"
        else read_table_rows(path, "\t" if fmt == "tsv" else ",", progress)
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


def parse_text_lines(path: Path, progress: Progress | None) -> Iterator[ParsedRecord | Skipped]:
    for number, line in read_lines(path, progress):
        text = require_text(path, number, line)
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
    """Import one file in one transaction; raise ImportFault (and store nothing) on bad input."""
    path = Path(path)
    if not path.exists():
        raise ImportFault(str(path), None, "no such file")
    if path.is_dir():
        raise ImportFault(str(path), None, "is a directory; name the files inside it")
    if fmt not in FORMATS:
        raise ImportFault(str(path), None, f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    resolved = detect_format(path) if fmt == "auto" else fmt
    flavours: dict[str, None] = {}
    if resolved == "hn" and path.suffix.lower() in (".csv", ".tsv", ".parquet"):
        table_fmt = "parquet" if path.suffix.lower() == ".parquet" else path.suffix.lower()[1:]
        records: Iterator[ParsedRecord | Skipped] = parse_table(
            path, table_fmt, text_field, True, progress
        )
    elif resolved == "json":
        records = parse_json_lines(path, text_field, annotator, progress, flavours)
    elif resolved == "hn":
        records = parse_hn_jsonl(path, progress)
    elif resolved == "prodigy":
        records = parse_prodigy(path, annotator, progress)
    elif resolved == "jsonl":
        records = parse_plain_jsonl(path, text_field, progress)
    elif resolved in ("csv", "tsv", "parquet"):
        records = parse_table(path, resolved, text_field, False, progress)
    else:
        records = parse_text_lines(path, progress)
    summary = ImportSummary(path=str(path), format=resolved)
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
    except UnicodeError as error:
        raise ImportFault(str(path), None, f"cannot decode: {error}") from None
    except OSError as error:
        raise ImportFault(str(path), None, f"cannot read: {error.strerror or error}") from None
    except StoreError as error:
        raise ImportFault(str(path), None, str(error)) from None
    if resolved == "json":
        summary.format = "+".join(flavours) or "jsonl"
    return summary
