"""The spans marked in the answers in force, one record per span, for the titles list.

An accept counts, a reject's or an ignore's spans never do; an answer undone or re-answered is not
in force (`current_answers`, migration m002), so each item and annotator counts once per task.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from hnbooks.store.connection import Connection
from hnbooks.store.items import visible
from hnbooks.store.records import spans_from_json

SPAN_MENTIONS_SQL = (
    "SELECT a.id AS answer_id, a.item_id, a.annotator, a.spans, a.created_at,"
    " i.external_id, i.meta, i.text"
    " FROM current_answers a JOIN items i ON i.id = a.item_id"
    f" WHERE a.answer = 'accept' AND a.spans != '[]' AND {visible('i')}"
    " ORDER BY a.created_at, a.id"
)


@dataclass(frozen=True)
class SpanMention:
    """One marked span of an accepted answer in force, with the item it lies in."""

    answer_id: int
    item_id: int
    external_id: str
    hn_id: str | None
    """The Hacker News id: from an `hn:` external id, else the item's meta `id` / `objectID`."""
    annotator: str
    label: str
    start: int
    end: int
    text: str
    """The span's text as marked (not normalised)."""
    created_at: float


def hn_id_of(external_id: str, meta: dict[str, object]) -> str | None:
    if external_id.startswith("hn:"):
        return external_id.removeprefix("hn:")
    value = meta.get("id", meta.get("objectID"))
    return None if value is None else str(value)


class TitleQueries(Connection):
    def span_mentions(self, label: str | None = None) -> list[SpanMention]:
        """Every span of the accepted answers in force (of `label` only, when given), oldest
        first."""
        mentions: list[SpanMention] = []
        for row in self._query(SPAN_MENTIONS_SQL):
            meta = json.loads(row["meta"])
            hn_id = hn_id_of(row["external_id"], meta if isinstance(meta, dict) else {})
            text = row["text"]
            for span in spans_from_json(row["spans"]):
                if label is not None and span.label != label:
                    continue
                mentions.append(
                    SpanMention(
                        answer_id=int(row["answer_id"]),
                        item_id=int(row["item_id"]),
                        external_id=row["external_id"],
                        hn_id=hn_id,
                        annotator=row["annotator"],
                        label=span.label,
                        start=span.start,
                        end=span.end,
                        text=text[span.start : span.end],
                        created_at=float(row["created_at"]),
                    )
                )
        return mentions
