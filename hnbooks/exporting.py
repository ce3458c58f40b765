"""Export current answers as Prodigy-compatible JSONL or CSV.

One record per answer in force (undone answers are left out). Field names follow Prodigy so spaCy /
Prodigy pipelines read the file as they would `prodigy db-out`, and `hnbooks import` reads it back
to the same items and answers.

`export_to_path` writes a file so that a failed export never truncates a good one, and never
replaces what is not a regular file: a symbolic link is followed, a FIFO or a character device is
written to as the stream it is.
"""

from __future__ import annotations

import csv
import json
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any, TextIO

from hnbooks.printable import inert_json, printable
from hnbooks.store.db import Store
from hnbooks.store.ingest import stable_hash
from hnbooks.store.records import AnswerWithItem

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
    answer, item = entry.answer, entry.item
    spans = [s.to_json(item.text) for s in answer.spans]
    task_hash = answer.task_hash
    if task_hash is None:
        task_hash = stable_hash(str(item.input_hash), answer.label or "", json.dumps(spans))
    record: dict[str, Any] = {"text": item.text, "meta": item.meta}
    if answer.label is not None:
        record["label"] = answer.label
    record["spans"] = spans
    record.update(
        {
            "answer": answer.answer,
            "_input_hash": item.input_hash,
            "_task_hash": task_hash,
            "_view_id": answer.view_id or "classification",
            "_annotator_id": answer.annotator,
            "_timestamp": int(answer.created_at),
        }
    )
    if answer.strategy and answer.strategy != "import":
        # Why hnbooks served the item; Prodigy ignores unknown top-level keys, the importer reads it.
        record["_hnbooks"] = {"strategy": answer.strategy, "score": answer.score}
    return record


def iter_prodigy_lines(store: Store) -> Iterator[str]:
    for entry in store.current_answers_with_items():
        # The same JSON as json.dumps, with C1 and bidirectional controls escaped: an export sent
        # to a terminal shows them as \u escapes instead of obeying them.
        yield inert_json(prodigy_record(entry))


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
    """Write the export to `output`; return the number of answers written.

    A regular file (or a new one) is written beside itself and renamed over, so a failed export
    leaves the previous one whole. A symbolic link is followed and the file it points to replaced
    the same way; the link stays. A FIFO or a character device (`/dev/stdout`, a pipe another
    program reads) is written to directly: renaming over it would replace it with a regular file.
    Anything else (a block device, a socket, a directory) is refused.
    """
    name = os.fspath(output)
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
