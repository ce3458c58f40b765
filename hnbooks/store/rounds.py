"""Scoring rounds: each round's report, stored with the batch it published or on its own."""

from __future__ import annotations

import time

from hnbooks.store.connection import Connection
from hnbooks.store.queue import insert_round
from hnbooks.store.records import Round
from hnbooks.store.reports import RoundReport


class RoundQueries(Connection):
    def record_round(self, report: RoundReport) -> int:
        """Store a round's report when it published no batch (e.g. nothing left to choose)."""
        now = time.time()
        with self._transaction() as conn:
            return insert_round(conn, report, now, now)

    def rounds(self) -> list[Round]:
        rows = self._query("SELECT * FROM rounds ORDER BY id")
        return [
            Round(
                r["id"],
                r["started_at"],
                r["finished_at"],
                r["label"],
                RoundReport.from_json(r["report"]),
            )
            for r in rows
        ]
