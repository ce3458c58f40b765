"""kill -9 while annotating: the real `hnbooks-tui` in a pty, random keys, SIGKILL at a random moment.

What "completed" means here: an answer (or undo) is completed once the TUI has committed it — the
moment its progress line counts it ("N answered") is the moment its row is in the database file, so
the test reads the file from outside after each key before sending the next. The TUI shows the next
item only once the commit has landed, so the next item on screen also implies the row is stored;
the test still reads the file itself, so the oracle does not rest on the TUI's own claim.

Each round sends a few keys one at a time, each waited for (completed), then a burst of keys that
are not waited for, and kills the process a random few milliseconds later — or kills it while it is
still starting. After every kill the answer rows in the file must be exactly the completed ones
followed by the rows of some prefix of the burst (the writer is ordered, so the keys that made it
are the first ones): nothing completed is lost, nothing is doubled, nothing is reordered. The next
start must show the first unanswered item — the killed session's claims on the items it had
fetched ahead do not hold the next one back, its process being gone — and an undo pressed first
thing takes back the last answer of the killed session. The TUI runs with `--no-scorer`: the test
is about the annotator's writes alone.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import pexpect

from hnbooks.store.db import Store
from hnbooks.store.records import IncomingItem
from tests.helpers import publish
from tests.reliability.conftest import LedgerLine
from tests.reliability.processes import (
    read_rows,
    run_cli,
    sigkill,
    spawn_tui,
    wait_for,
)

ANNOTATOR = "kim"
BATCH_SIZE = 60
ITEM_COUNT = 720
KEYS = {"a": "accept", "x": "reject", " ": "ignore", "u": "undo", "\x7f": "undo"}
KEY_WEIGHTS = {"a": 30, "x": 25, " ": 20, "u": 15, "\x7f": 10}
ACK_TIMEOUT_S = 20.0


def token(n: int) -> str:
    return f"q{n:04d}q"


def item_text(n: int) -> str:
    # Lower case and no quotes: no span candidate is underlined, so the token is drawn in one run.
    return f"comment {token(n)} on compilers and the weather, nothing more"


@dataclass
class Session:
    """What the database must hold: the answers in force are always a prefix of the queue."""

    item_ids: list[int]
    texts: dict[int, str]
    answered: list[tuple[int, str]] = field(default_factory=list)
    """(item id, answer) in force, in queue order."""
    rows: list[tuple[int, str]] = field(default_factory=list)
    """Every answer row the annotator's key presses wrote, in order: (item id, answer or 'undo')."""

    @property
    def first_unanswered(self) -> int:
        return len(self.answered)

    def can(self, key: str) -> bool:
        if KEYS[key] == "undo":
            return bool(self.answered)
        return self.first_unanswered < len(self.item_ids)

    def press(self, key: str) -> tuple[int, str]:
        """Apply one key; return the row it writes."""
        if KEYS[key] == "undo":
            item_id, _ = self.answered.pop()
            row = (item_id, "undo")
        else:
            row = (self.item_ids[self.first_unanswered], KEYS[key])
            self.answered.append(row)
        self.rows.append(row)
        return row

    def copy(self) -> Session:
        return Session(self.item_ids, self.texts, list(self.answered), list(self.rows))


def answer_rows(db_path: Path) -> list[tuple[int, str]]:
    return [
        (int(item_id), str(answer))
        for item_id, answer in read_rows(
            db_path,
            "SELECT item_id, answer FROM answers WHERE annotator = ? ORDER BY id",
            (ANNOTATOR,),
        )
    ]


def pick_key(rng: random.Random, session: Session) -> str:
    keys = [k for k in KEY_WEIGHTS if session.can(k)]
    return rng.choices(keys, weights=[KEY_WEIGHTS[k] for k in keys])[0]


def expect_shown(child: pexpect.spawn, session: Session) -> None:
    """The screen shows the first unanswered item (or says the queue is done)."""
    n = session.first_unanswered
    child.expect_exact(
        token(n).encode() if n < len(session.item_ids) else b"Nothing left to annotate"
    )


def run_round(
    db_path: Path, session: Session, rng: random.Random, number: int, ledger: LedgerLine
) -> None:
    child = spawn_tui(db_path, ANNOTATOR)
    try:
        if rng.random() < 0.1:
            # Killed while starting: whatever it was doing, nothing may change.
            time.sleep(rng.uniform(0.0, 1.5))
            sigkill(child)
            assert answer_rows(db_path) == session.rows
            ledger.add("kills during start-up")
            return
        expect_shown(child, session)
        ledger.add("resumed at the first unanswered item")
        completed_keys = rng.randint(0, 8)
        for step in range(completed_keys):
            key = pick_key(rng, session)
            if step == 0 and number % 4 == 1 and session.can("u"):
                key = "u"  # every fourth round: undo across the crash, first thing
            child.send(key)
            session.press(key)
            wait_for(
                lambda: answer_rows(db_path),
                lambda rows: len(rows) >= len(session.rows),
                timeout=ACK_TIMEOUT_S,
                what=f"round {number}: the row of key {key!r}",
            )
            assert answer_rows(db_path) == session.rows, (
                f"round {number}: rows differ after key {key!r}"
            )
            expect_shown(child, session)
            if KEYS[key] == "undo":
                ledger.add("undos completed")
                if step == 0:
                    ledger.add("undos across a crash")
            else:
                ledger.add("answers completed")
        # The burst: keys that may or may not have been read, written or committed when the kill comes.
        burst = session.copy()
        burst_keys = []
        for _ in range(rng.randint(0, 4)):
            key = pick_key(rng, burst)
            burst.press(key)
            burst_keys.append(key)
        child.send("".join(burst_keys))
        time.sleep(rng.uniform(0.0, 0.05))  # the random moment of the kill
    finally:
        sigkill(child)
    ledger.add("kills")
    rows = answer_rows(db_path)
    completed = len(session.rows)
    assert rows[:completed] == session.rows, (
        f"round {number}: a completed answer changed or vanished"
    )
    landed = rows[completed:]
    assert landed == burst.rows[completed : completed + len(landed)], (
        f"round {number}: the rows after the kill are not a prefix of the keys sent: {landed} "
        f"vs {burst.rows[completed:]}"
    )
    for key in burst_keys[: len(landed)]:
        session.press(key)
    ledger.add("burst keys committed before the kill", len(landed))
    ledger.add("burst keys cut by the kill", len(burst_keys) - len(landed))


def check_export(db_path: Path, session: Session) -> None:
    """`hnbooks export` holds every answer in force once, and nothing else of this annotator."""
    out = db_path.parent / "answers.jsonl"
    result = run_cli("hnbooks", "export", "--db", str(db_path), "-o", str(out), cwd=db_path.parent)
    assert result.returncode == 0, result.stderr
    exported = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    mine = [(r["text"], r["answer"]) for r in exported if r.get("_annotator_id") == ANNOTATOR]
    expected = [(session.texts[item_id], answer) for item_id, answer in session.answered]
    assert sorted(mine) == sorted(expected)
    assert len(set(mine)) == len(mine), "an answer is exported twice"


def test_kill_9_while_annotating_loses_and_doubles_nothing(
    tmp_path: Path, rng: random.Random, slow: bool, ledger: LedgerLine
) -> None:
    db_path = tmp_path / "kill.db"
    with Store(db_path) as store:
        texts = [item_text(n) for n in range(ITEM_COUNT)]
        item_ids = store.add_items(
            (IncomingItem(line=n, text=text, meta={}) for n, text in enumerate(texts)),
            source="test",
        )
        for start in range(0, ITEM_COUNT, BATCH_SIZE):
            publish(store, item_ids[start : start + BATCH_SIZE])
    session = Session(item_ids, dict(zip(item_ids, texts, strict=True)))
    rounds = 100 if slow else 20
    for number in range(rounds):
        run_round(db_path, session, rng, number, ledger)

    # A last session quits normally: it resumes where the kills left off and loses nothing either.
    child = spawn_tui(db_path, ANNOTATOR)
    try:
        expect_shown(child, session)
        child.send("q")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert answer_rows(db_path) == session.rows
    assert read_rows(db_path, "SELECT COUNT(*) FROM claims") == [(0,)], "a quit left claims"
    assert not (db_path.parent / f"{db_path.name}.scorer.log").exists()
    check_export(db_path, session)
    assert ledger.counts.get("undos across a crash", 0) >= 1
    ledger.add("lost", 0)
    ledger.add("doubled", 0)
