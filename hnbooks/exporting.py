"""Export current answers as Prodigy-compatible JSONL or CSV.

One record per answer in force (undone answers are left out). Field names follow Prodigy so spaCy /
Prodigy pipelines read the file as they would `prodigy db-out`, and `hnbooks import` reads it back
to the same items and answers. What an import kept of a task that hnbooks does not model (tokens,
options, accept, relations, span token offsets, unknown fields) is written back as it was read; a
span answer made in hnbooks is a `ner_manual` task, with tokens and token offsets. NaN and
infinities (from a table's metadata, say) are written as null: JSON has no such numbers.

`export_to_path` writes a file (`-`: stdout) so that a failed export never truncates a good one, and never
replaces what is not a regular file: a symbolic link is followed, a FIFO or a character device is
written to as the stream it is.
"""

from __future__ import annotations

import csv
import json
import os
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any, TextIO

from hnbooks.printable import inert_json, printable
from hnbooks.prodigy import prodigy_tokens, task_hash, token_bounds
from hnbooks.store.db import Store
from hnbooks.store.records import SPAN_VIEWS, AnswerWithItem, Span, without_non_finite

STDOUT_NAME = "-"

CSV_COLUMNS = (
    "item_id",
    "external_id",
    "hn_id",
    "annotator",
    "answer",
    "label",
    "spans",
    "strategy",
    "score",
    "timestamp",
    "text",
)


def prodigy_record(entry: AnswerWithItem) -> dict[str, Any]:
    """The Prodigy task of one answer in force.

    An imported answer gets back every field its task had: its view id and label as they were,
    its passthrough fields (tokens, options, accept, relations, `_is_binary`, `_session_id`, any
    unknown field) and its spans' extra fields (token offsets, source, input hash). An answer with
    spans, or of a span view, carries tokens (rebuilt from the text when the task had none) and
    token offsets on its spans. A span answer made in hnbooks (its passthrough is None) is a
    `ner_manual` task without a top-level label: the spans carry the labels.
    """
    answer, item = entry.answer, entry.item
    made_here = answer.passthrough is None
    passthrough = dict(answer.passthrough or {})
    span_fields = passthrough.pop("spans", None) or []
    is_span_task = bool(answer.spans) or answer.view_id in SPAN_VIEWS
    view_id = answer.view_id or ("ner_manual" if answer.spans else "classification")
    if made_here and answer.spans and view_id not in SPAN_VIEWS:
        view_id = "ner_manual"
    tokens = passthrough.pop("tokens", None)
    if tokens is None and is_span_task:
        tokens = prodigy_tokens(item.text)
    record: dict[str, Any] = {"text": item.text, "meta": item.meta}
    if tokens is not None:
        record["tokens"] = tokens
    if answer.label is not None and not (made_here and is_span_task):
        record["label"] = answer.label
    record["spans"] = [span_record(span, item.text, tokens, span_fields) for span in answer.spans]
    if made_here and view_id == "ner_manual":
        passthrough.setdefault("_is_binary", False)
    record.update(passthrough)
    record.update(
        {
            "answer": answer.answer,
            "_input_hash": item.input_hash,
            "_view_id": view_id,
            "_annotator_id": answer.annotator,
            "_timestamp": int(answer.created_at),
        }
    )
    if answer.task_hash is None:
        # Hashed as Prodigy hashes the task it streams: a classification task has no "spans".
        hashed = {k: v for k, v in record.items() if k != "spans" or v}
        record["_task_hash"] = task_hash(hashed, item.input_hash)
    else:
        record["_task_hash"] = answer.task_hash
    if answer.strategy and answer.strategy != "import":
        # Why hnbooks served the item; Prodigy ignores unknown top-level keys, the importer reads it.
        record["_hnbooks"] = {"strategy": answer.strategy, "score": answer.score}
    return record


def span_record(
    span: Span, text: str, tokens: list[dict[str, Any]] | None, span_fields: list[dict[str, Any]]
) -> dict[str, Any]:
    """A span as Prodigy writes it: offsets, text and label, the extra fields the imported span
    had, and token offsets (rebuilt when it had none and the span falls on token boundaries)."""
    record = span.to_json(text)
    same_range = [
        f for f in span_fields if (f.get("start"), f.get("end")) == (span.start, span.end)
    ]
    # The span's own fields; by its range alone when the label was renamed since the import.
    matched = [f for f in same_range if f.get("label") == span.label] or (
        same_range if len(same_range) == 1 else []
    )
    if matched:
        record.update({k: v for k, v in matched[0].items() if k not in ("start", "end", "label")})
    if tokens is not None and "token_start" not in record:
        bounds = token_bounds(tokens, span.start, span.end)
        if bounds is not None:
            record["token_start"], record["token_end"] = bounds
    return record


def json_line(record: dict[str, Any]) -> str:
    """The record as one line of valid JSON: a NaN or an infinity (JSON has none) becomes null.
    C1 and bidirectional controls are escaped, so an export sent to a terminal shows them as \\u
    escapes instead of obeying them."""
    try:
        return inert_json(record, allow_nan=False)
    except ValueError:
        return inert_json(without_non_finite(record), allow_nan=False)


def iter_prodigy_lines(store: Store) -> Iterator[str]:
    for entry in store.current_answers_with_items():
        yield json_line(prodigy_record(entry))


def write_jsonl(store: Store, out: TextIO) -> int:
    count = 0
    for line in iter_prodigy_lines(store):
        out.write(line + "\n")
        count += 1
    return count


def write_csv(store: Store, out: TextIO) -> int:
    """CSV, exact; on a terminal every field is made printable first, since CSV has no escape for a
    control character and the terminal would act on one from an imported text."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    to_terminal = out.isatty()
    count = 0
    for entry in store.current_answers_with_items():
        answer, item = entry.answer, entry.item
        row = (
            item.id,
            item.external_id,
            item.meta.get("id", ""),
            answer.annotator,
            answer.answer,
            answer.label or "",
            json.dumps([s.to_json(item.text) for s in answer.spans], ensure_ascii=False),
            answer.strategy or "",
            "" if answer.score is None else answer.score,
            int(answer.created_at),
            item.text,
        )
        writer.writerow([printable(str(field)) for field in row] if to_terminal else row)
        count += 1
    return count


Writer = Callable[[Store, TextIO], int]


class ExportTargetError(Exception):
    """The export cannot be written where it was asked to go; the message says why."""


def kind_of_file(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def export_to_path(store: Store, output: str | os.PathLike[str], writer: Writer) -> int:
    """Write the export to `output` (`-`: stdout); return the number of answers written.

    A regular file (or a new one) is written beside itself and renamed over, so a failed export
    leaves the previous one whole. A symbolic link is followed and the file it points to replaced
    the same way; the link stays. A FIFO or a character device (`/dev/stdout`, a pipe another
    program reads) is written to directly: renaming over it would replace it with a regular file.
    Anything else (a block device, a socket, a directory) is refused.
    """
    name = os.fspath(output)
    if name == STDOUT_NAME:
        return writer(store, sys.stdout)
    try:
        mode: int | None = os.stat(name).st_mode  # the file a link points to, not the link
    except FileNotFoundError:
        mode = None
    except OSError as error:
        raise ExportTargetError(
            f"{name}: cannot write the export ({error.strerror or error})"
        ) from None
    if mode is not None and (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
        try:
            with open(name, "w", encoding="utf-8", newline="") as handle:
                return writer(store, handle)
        except OSError as error:
            raise ExportTargetError(
                f"{name}: cannot write the export ({error.strerror or error})"
            ) from None
    if mode is not None and not stat.S_ISREG(mode):
        raise ExportTargetError(f"{name} is {kind_of_file(mode)}; name a file to export to")
    # Renaming over a link would replace the link: the file it points to is replaced instead.
    target = Path(os.path.realpath(name)) if os.path.islink(name) else Path(name)
    partial = target.with_name(target.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as handle:
            count = writer(store, handle)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            # The new export takes the place of the old one, permissions included.
            os.chmod(partial, stat.S_IMODE(mode))
        partial.replace(target)
    except OSError as error:
        with suppress(OSError):
            partial.unlink(missing_ok=True)
        raise ExportTargetError(
            f"{name}: cannot write the export ({error.strerror or error}); {name} is unchanged"
        ) from None
    return count
