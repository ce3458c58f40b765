"""Each annotator's progress, read from the answers themselves: what the TUI's progress line shows,
the same after a restart and across every session of the annotator."""

from __future__ import annotations

import time
from datetime import datetime

from hnbooks.store.queue import QueueQueries
from hnbooks.store.records import SPAN_TASK_KEY, AnnotatorProgress

MIN_RATE_SPAN_S = 300.0
"""The rate is counted over at least this long: three answers in a minute are not 180 an hour."""


def local_day_start(now: float) -> float:
    """The local midnight that began the day holding `now` (seconds since the epoch)."""
    moment = datetime.fromtimestamp(now)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def rate_per_hour(count: int, first_at: float | None, now: float) -> float:
    """`count` answers given from `first_at` to `now`, per hour (0 with none)."""
    if count == 0 or first_at is None:
        return 0.0
    return count * 3600.0 / max(MIN_RATE_SPAN_S, now - first_at)


class ProgressQueries(QueueQueries):
    """Progress reads the queue (what remains), so it builds on the queue's queries."""

    def annotator_progress(
        self, annotator: str, *, day_start: float, now: float | None = None
    ) -> AnnotatorProgress:
        """The annotator's answers in force (all, and since `day_start`), their positives, their
        rate today and what remains for them in the queue (see `remaining_for`)."""
        # One lock for every read, so the figures belong together and `read_at` orders readings.
        with self._lock:
            read_at = time.time() if now is None else now
            row = self._one(
                "SELECT COUNT(*) AS answers,"
                " SUM(created_at >= ?) AS today,"
                " MIN(CASE WHEN created_at >= ? THEN created_at END) AS first_today_at,"
                " COUNT(DISTINCT CASE WHEN answer = 'accept'"
                " AND (task_key != ? OR spans != '[]') THEN item_id END) AS positives"
                " FROM current_answers WHERE annotator = ?",
                (day_start, day_start, SPAN_TASK_KEY, annotator),
            )
            remaining = self.remaining_for(annotator, now=read_at)
        assert row is not None
        today = int(row["today"] or 0)
        first_today_at = None if row["first_today_at"] is None else float(row["first_today_at"])
        return AnnotatorProgress(
            annotator=annotator,
            answers=int(row["answers"] or 0),
            today=today,
            positives=int(row["positives"] or 0),
            remaining=remaining,
            rate_per_hour=rate_per_hour(today, first_today_at, read_at),
            first_today_at=first_today_at,
            read_at=read_at,
        )
