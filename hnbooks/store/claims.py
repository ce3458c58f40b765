"""Feed mode and claims: the SQL pieces the queue and the answers share.

The feed mode (`settings.feed`) says when an item is done: answered by this annotator (`overlap`) or
by anyone (`split`). A claim holds a queued item for one annotator session (one TUI run) until it is
released, lapses (its time to live passed without a renewal), or its process is seen gone on this
machine.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import uuid

from hnbooks.store.connection import StoreError, process_is_gone
from hnbooks.store.records import FEED_MODES, FeedMode

# The annotator has an answer in force, or an undone one re-answered, on the batch item `bi`.
ANSWERED_BY = (
    "EXISTS (SELECT 1 FROM effective_answers a WHERE a.item_id = bi.item_id AND a.annotator = ?)"
)
ANSWERED_BY_ANYONE = "EXISTS (SELECT 1 FROM effective_answers a WHERE a.item_id = bi.item_id)"
# An unexpired claim (parameters: now, session) on `bi`'s item by a session other than ours: of
# anyone (split), or of the same annotator (overlap, one more parameter).
CLAIMED_BY_OTHER_SESSION = (
    "EXISTS (SELECT 1 FROM claims c WHERE c.item_id = bi.item_id AND c.expires_at > ?"
    " AND c.session != ?)"
)
CLAIMED_BY_OTHER_SESSION_OF = (
    "EXISTS (SELECT 1 FROM claims c WHERE c.item_id = bi.item_id AND c.expires_at > ?"
    " AND c.session != ? AND c.annotator = ?)"
)
# An unexpired claim (parameters: now, annotator) on `bi`'s item by another annotator.
CLAIMED_BY_OTHER_ANNOTATOR = (
    "EXISTS (SELECT 1 FROM claims c WHERE c.item_id = bi.item_id AND c.expires_at > ?"
    " AND c.annotator != ?)"
)

FEED_SETTING = "feed"
DEFAULT_FEED_MODE: FeedMode = "overlap"
CLAIM_TTL_S = 120.0
"""How long a claim holds without being renewed: a crashed session's items come back after this."""
NO_SESSION = ""
"""Stands for "no session" in the claim queries: no session id is empty."""


def new_session_id() -> str:
    """A fresh annotator session id: host and process (so a dead session can be told from a live
    one on this machine) and a random part (so two sessions of one process differ)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"


def session_process_is_gone(session: str) -> bool:
    """Whether `session` belongs to a process of this machine that no longer runs."""
    host, _, rest = session.partition(":")
    pid_text = rest.partition(":")[0]
    if not pid_text.isdigit():
        return False
    return process_is_gone(host, int(pid_text))


FEED_MODE_SQL = f"SELECT value FROM settings WHERE name = '{FEED_SETTING}'"


def parse_feed_mode(row: sqlite3.Row | None) -> FeedMode:
    """The feed mode from its settings row (none: the default)."""
    if row is None:
        return DEFAULT_FEED_MODE
    value = str(row[0])
    for mode in FEED_MODES:
        if mode == value:
            return mode
    raise StoreError(
        f"unknown feed mode {value!r} in the database; set one of {', '.join(FEED_MODES)}"
        " with `hnbooks-tui --feed MODE`"
    )


def feed_mode_in(conn: sqlite3.Connection) -> FeedMode:
    """The feed mode, read inside the caller's transaction."""
    return parse_feed_mode(conn.execute(FEED_MODE_SQL).fetchone())


def answered_condition(split: bool, annotator: str) -> tuple[str, list[object]]:
    """SQL (about the batch item `bi`) and its parameters: the item is done for `annotator`."""
    return (ANSWERED_BY_ANYONE, []) if split else (ANSWERED_BY, [annotator])


def claimed_condition(
    split: bool, annotator: str, session: str, now: float
) -> tuple[str, list[object]]:
    """SQL (about `bi`) and its parameters: another session holds the item for now."""
    if split:
        return CLAIMED_BY_OTHER_SESSION, [now, session]
    return CLAIMED_BY_OTHER_SESSION_OF, [now, session, annotator]


def waiting_condition(split: bool, annotator: str | None, now: float) -> tuple[str, list[object]]:
    """SQL (about `bi`) and its parameters: the batch item still waits for `annotator` (for anyone
    when None). In split mode an item answered by anyone is done, and one another annotator holds
    an unexpired claim on goes to them; the annotator's own sessions' claims do not count."""
    if annotator is None:
        return f"NOT {ANSWERED_BY_ANYONE}", []
    if split:
        return f"NOT {ANSWERED_BY_ANYONE} AND NOT {CLAIMED_BY_OTHER_ANNOTATOR}", [now, annotator]
    return f"NOT {ANSWERED_BY}", [annotator]


def drop_claims_of_gone_sessions(conn: sqlite3.Connection, now: float) -> None:
    """Delete the unexpired claims of sessions whose process on this machine has died (kill -9, a
    crash): their items need not wait for the time to live."""
    sessions = [
        str(r[0])
        for r in conn.execute(
            "SELECT DISTINCT session FROM claims WHERE expires_at > ?", (now,)
        ).fetchall()
    ]
    gone = [(s,) for s in sessions if session_process_is_gone(s)]
    if gone:
        conn.executemany("DELETE FROM claims WHERE session = ?", gone)


def claim(
    conn: sqlite3.Connection,
    batch_id: int,
    item_id: int,
    annotator: str,
    session: str,
    now: float,
    ttl_s: float,
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO claims (batch_id, item_id, annotator, session, claimed_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (batch_id, item_id, annotator, session, now, now + ttl_s),
    )
