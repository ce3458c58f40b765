"""Renaming and removing labels, and what uses each label (`hnbooks labels`).

A label is a name the user chose, so renaming one (a typo fixed, `BOOK` → `WORK_OF_ART`) carries over
to everything that names it: classification answers (their `label` and `task_key`), the spans of
span answers, batches and rounds, all in one transaction. Answers are history, but the history of
*which question was asked*, not of how it was spelled. Prodigy's `_task_hash` of an imported answer
is kept as imported (it identifies the original task).

Removing a label that answers, spans or batches use is refused unless forced: forcing removes the
label from the list the TUI offers and leaves every answer as it is (nothing given is deleted).
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass

from hnbooks.store.connection import Connection, StoreError
from hnbooks.store.records import task_key_for

LABEL_NAME_PATTERN = r"[A-Za-z0-9_\-]{1,40}"


@dataclass(frozen=True)
class LabelUsage:
    """One label and how much of the database names it."""

    name: str
    position: int
    answers: int
    """Classification answers (in force or not, undo rows aside) about this label."""
    spans: int
    """Spans with this label, over every stored span answer."""
    batches: int

    @property
    def used(self) -> bool:
        return bool(self.answers or self.spans or self.batches)


def count_spans_with(conn: sqlite3.Connection, label: str) -> int:
    count = 0
    for row in conn.execute(
        "SELECT spans FROM answers WHERE spans != '[]' AND instr(spans, ?) > 0",
        (json.dumps(label),),
    ):
        count += sum(1 for span in json.loads(row[0]) if span.get("label") == label)
    return count


class LabelQueries(Connection):
    def label_usage(self) -> list[LabelUsage]:
        """Every label in order, with the answers, spans and batches that name it."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT l.name, l.position,"
                " (SELECT COUNT(*) FROM answers a WHERE a.label = l.name AND a.answer != 'undo'),"
                " (SELECT COUNT(*) FROM batches b WHERE b.label = l.name)"
                " FROM labels l ORDER BY l.position, l.name"
            ).fetchall()
            return [
                LabelUsage(
                    name=str(row[0]),
                    position=int(row[1]),
                    answers=int(row[2]),
                    spans=count_spans_with(self._conn, str(row[0])),
                    batches=int(row[3]),
                )
                for row in rows
            ]

    def label_query(self, name: str) -> str | None:
        """The words the user gave for label `name` (None when none were, or the database is
        read as is from before label queries)."""
        row = self._one("SELECT * FROM labels WHERE name = ?", (name,))
        # A database opened read-only before its m010 migration has no such column.
        if row is None or "query" not in row.keys() or not row["query"]:
            return None
        return str(row["query"])

    def set_label_query(self, name: str, query: str | None) -> None:
        """Record `query` as label `name`'s words (None or blank clears them)."""
        text = " ".join(query.split()) if query else ""
        with self._transaction() as conn:
            changed = conn.execute(
                "UPDATE labels SET query = ? WHERE name = ?", (text or None, name)
            ).rowcount
        if not changed:
            raise StoreError(f"no label {name!r} (see `hnbooks labels list`)")

    def rename_label(self, old: str, new: str) -> int:
        """Rename label `old` to `new` everywhere it is named; returns the answers changed.

        Refused when `old` is not a label or `new` already is one (merging two labels is not a
        rename)."""
        if not re.fullmatch(LABEL_NAME_PATTERN, new):
            raise StoreError(f"label {new!r}: use 1-40 letters, digits, '_' or '-'")
        with self._transaction() as conn:
            names = {str(row[0]) for row in conn.execute("SELECT name FROM labels")}
            if old not in names:
                raise StoreError(f"no label {old!r} (see `hnbooks labels list`)")
            if new in names:
                raise StoreError(
                    f"label {new!r} exists already: rename {old!r} to a new name, or remove one"
                )
            conn.execute("UPDATE labels SET name = ? WHERE name = ?", (new, old))
            changed: set[int] = set()
            for answer_id, view_id, spans in conn.execute(
                "SELECT id, view_id, spans FROM answers WHERE label = ?", (old,)
            ).fetchall():
                conn.execute(
                    "UPDATE answers SET label = ?, task_key = ? WHERE id = ?",
                    (new, task_key_for(new, view_id, spans != "[]"), answer_id),
                )
                changed.add(int(answer_id))
            for answer_id, spans_json in conn.execute(
                "SELECT id, spans FROM answers WHERE spans != '[]' AND instr(spans, ?) > 0",
                (json.dumps(old),),
            ).fetchall():
                spans = json.loads(spans_json)
                renamed = [
                    {**span, "label": new} if span.get("label") == old else span for span in spans
                ]
                if renamed != spans:
                    conn.execute(
                        "UPDATE answers SET spans = ? WHERE id = ?",
                        (json.dumps(renamed), answer_id),
                    )
                    changed.add(int(answer_id))
            conn.execute("UPDATE batches SET label = ? WHERE label = ?", (new, old))
            conn.execute(
                "UPDATE rounds SET label = ?, report = json_set(report, '$.label', ?)"
                " WHERE label = ?",
                (new, new, old),
            )
            # The span models learned from this label's marks, and what they suggested.
            conn.execute("UPDATE span_models SET label = ? WHERE label = ?", (new, old))
            conn.execute("UPDATE span_suggestions SET label = ? WHERE label = ?", (new, old))
        return len(changed)

    def remove_label(self, name: str, *, force: bool = False) -> LabelUsage:
        """Remove label `name` from the database's labels; returns what used it.

        A label that answers, spans or batches name is refused unless `force`: then only the
        label goes (the TUI stops offering it); the answers stay as they were given. The last
        label is never removed (every question is about a label)."""
        usage = {u.name: u for u in self.label_usage()}
        if name not in usage:
            raise StoreError(f"no label {name!r} (see `hnbooks labels list`)")
        if len(usage) == 1:
            raise StoreError(
                f"{name!r} is the only label: add another first (`hnbooks labels add NAME`)"
            )
        used = usage[name]
        if used.used and not force:
            raise StoreError(
                f"label {name!r} is used by {used.answers} answers, {used.spans} spans and "
                f"{used.batches} batches: rename it instead (`hnbooks labels rename {name} NEW`), "
                "or remove it with --force (the answers are kept as given; the TUI stops "
                "offering the label)"
            )
        with self._transaction() as conn:
            conn.execute("DELETE FROM labels WHERE name = ?", (name,))
        return used
