"""The scorer's place in the database: one lease (who scores, alive until when, doing what) and the
rounds annotators ask for. `hnbooks-score` writes it; the TUI reads it and asks for rounds."""

from __future__ import annotations

import os
import socket
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Literal

from hnbooks.store.connection import Connection, process_is_gone

ScorerState = Literal[
    "starting", "idle", "embedding", "training", "publishing", "backing-off", "stopping"
]
LEASE_TTL_S = 30.0
"""How long a lease lasts without a heartbeat: a scorer killed with -9 frees the database after this."""


@dataclass(frozen=True)
class LeaseHolder:
    """Who asks for the lease: a scorer process."""

    holder: str
    host: str
    pid: int
    mode: str
    """"watch" or "once"."""

    @classmethod
    def this_process(cls, mode: str) -> LeaseHolder:
        return cls(
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
            socket.gethostname(),
            os.getpid(),
            mode,
        )

    def describe(self) -> str:
        return f"hnbooks-score {'--watch ' if self.mode == 'watch' else ''}(pid {self.pid} on {self.host})"


@dataclass(frozen=True)
class ScorerLease:
    """The lease as stored, read at `read_at`."""

    holder: LeaseHolder
    acquired_at: float
    heartbeat_at: float
    expires_at: float
    state: ScorerState
    progress: float | None
    """0..1 while embedding; None otherwise."""
    detail: str | None
    last_round_at: float | None
    answers_before_next_round: int | None
    """Answers still to come before the watching scorer starts a round on its own (None: unknown)."""
    read_at: float

    @property
    def alive(self) -> bool:
        return self.expires_at > self.read_at

    @property
    def held(self) -> bool:
        """A scorer holds the database: the lease is current and its process not seen gone."""
        return self.alive and not process_is_gone(self.holder.host, self.holder.pid)


def lease_from_row(row: sqlite3.Row, now: float) -> ScorerLease:
    return ScorerLease(
        holder=LeaseHolder(row["holder"], row["host"], row["pid"], row["mode"]),
        acquired_at=row["acquired_at"],
        heartbeat_at=row["heartbeat_at"],
        expires_at=row["expires_at"],
        state=row["state"],
        progress=row["progress"],
        detail=row["detail"],
        last_round_at=row["last_round_at"],
        answers_before_next_round=row["answers_before_next_round"],
        read_at=now,
    )


class ScorerQueries(Connection):
    def scorer_lease(self) -> ScorerLease | None:
        """The lease as stored (alive or expired), or None when no scorer ever held it."""
        row = self._one("SELECT * FROM scorer_lease WHERE id = 1")
        return None if row is None else lease_from_row(row, time.time())

    def acquire_scorer_lease(self, holder: LeaseHolder, ttl_s: float = LEASE_TTL_S) -> ScorerLease:
        """Take the lease if it is free, expired, already ours, or its holder's process is gone;
        return the lease in force afterwards (`.holder == holder` when it is ours)."""
        with self._transaction() as conn:
            now = time.time()
            row = conn.execute("SELECT * FROM scorer_lease WHERE id = 1").fetchone()
            if row is not None:
                current = lease_from_row(row, now)
                if current.held and current.holder.holder != holder.holder:
                    return current
            conn.execute(
                "INSERT OR REPLACE INTO scorer_lease (id, holder, host, pid, mode, acquired_at, heartbeat_at,"
                " expires_at, state) VALUES (1, ?, ?, ?, ?, ?, ?, ?, 'starting')",
                (holder.holder, holder.host, holder.pid, holder.mode, now, now, now + ttl_s),
            )
            taken = conn.execute("SELECT * FROM scorer_lease WHERE id = 1").fetchone()
            return lease_from_row(taken, now)

    def renew_scorer_lease(self, holder: LeaseHolder, ttl_s: float = LEASE_TTL_S) -> bool:
        """Extend our lease; False when it is no longer ours (another scorer took it over)."""
        with self._transaction() as conn:
            now = time.time()
            cursor = conn.execute(
                "UPDATE scorer_lease SET heartbeat_at = ?, expires_at = ? WHERE id = 1 AND holder = ?",
                (now, now + ttl_s, holder.holder),
            )
            return cursor.rowcount == 1

    def set_scorer_state(
        self,
        holder: LeaseHolder,
        state: ScorerState,
        *,
        progress: float | None = None,
        detail: str | None = None,
        answers_before_next_round: int | None = None,
        round_finished: bool = False,
    ) -> None:
        """Say what the scorer is doing, for the TUI's header (only while the lease is ours)."""
        with self._transaction() as conn:
            now = time.time()
            conn.execute(
                "UPDATE scorer_lease SET state = ?, progress = ?, detail = ?, answers_before_next_round = ?,"
                " last_round_at = CASE WHEN ? THEN ? ELSE last_round_at END WHERE id = 1 AND holder = ?",
                (
                    state,
                    progress,
                    detail,
                    answers_before_next_round,
                    round_finished,
                    now,
                    holder.holder,
                ),
            )

    def release_scorer_lease(self, holder: LeaseHolder) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM scorer_lease WHERE id = 1 AND holder = ?", (holder.holder,))

    def request_round(self, requested_by: str) -> int:
        """Ask the scorer for a round now; return the request's id."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO round_requests (requested_by, requested_at) VALUES (?, ?)",
                (requested_by, time.time()),
            )
            return int(cursor.lastrowid or 0)

    def pending_round_requests(self) -> list[int]:
        return [
            int(r[0])
            for r in self._query(
                "SELECT id FROM round_requests WHERE handled_at IS NULL ORDER BY id"
            )
        ]

    def mark_round_requests_handled(self, request_ids: list[int]) -> None:
        if not request_ids:
            return
        with self._transaction() as conn:
            conn.executemany(
                "UPDATE round_requests SET handled_at = ? WHERE id = ?",
                [(time.time(), i) for i in request_ids],
            )

    def latest_answer_id(self) -> int:
        """The newest answer row's id (0 with none): "answers since" a round are the rows above it."""
        return self._count("SELECT COALESCE(MAX(id), 0) FROM answers")

    def answers_since(self, answer_id: int) -> int:
        """Answers in force given after the answer row `answer_id`."""
        return self._count("SELECT COUNT(*) FROM effective_answers WHERE id > ?", (answer_id,))

    def active_annotators(self, since: float) -> list[str]:
        """Annotators who answered after `since` or hold an unexpired claim: whose queue the
        watching scorer keeps filled."""
        now = time.time()
        rows = self._query(
            "SELECT annotator FROM answers WHERE created_at > ? AND answer != 'undo'"
            " UNION SELECT annotator FROM claims WHERE expires_at > ? ORDER BY 1",
            (since, now),
        )
        return [str(row[0]) for row in rows]
