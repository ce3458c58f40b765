"""Annotation as a state machine: several annotator sessions (two annotators, several terminals
each) on one real SQLite file, each driving the real `AnnotationQueue` and doing what the screen,
its fetch worker, its claim renewal and its writer do, one event per rule and in any interleaving
(a fetch read and its delivery, a write and its report, are separate rules). The store is checked
after every rule against a plain model: the answers in force, what each annotator has left.

Rules: press an answer or undo, the writer makes a write, its report reaches the screen, a fetch
reads, its items reach the screen, a poll, a claim renewal, open another session (same or other
annotator), quit (restart), kill (the session is dropped, its claims left, aged, or of a process
now gone), time passes for the dead sessions' claims, a new batch is published. The feed mode
(overlap or split) is drawn at the start.

The faults the machine found (an undo dropping other annotators' claims; a claim renewal racing a
fetch or an undo) are pinned by the regression tests at the end, which replay the exact steps.
"""

from __future__ import annotations

import inspect
import shutil
import sqlite3
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

from hnbooks.store.claims import new_session_id
from hnbooks.store.db import Store
from hnbooks.store.records import BatchEntry, IncomingItem
from hnbooks.tui.queue import AnnotationQueue, FetchRequest, Step
from hnbooks.tui.session import (
    AnswerToWrite,
    ShownItem,
    WriteRequest,
    shown_from_answer,
    shown_from_queue,
)
from tests.machines import LONG, SHORT, Counted, gone_session_id, run_counted

ANNOTATORS = ("ann", "bob")
ITEMS = 10
FIRST_BATCH = 4
MAX_LIVE = 4
PREFETCH = 2
ANSWERS = st.sampled_from(["accept", "reject", "ignore"])
WHICH = st.integers(0, MAX_LIVE - 1)
SESSION_KEYS = "session" in inspect.signature(AnnotationQueue).parameters
"""Whether answers' client keys name their session (and undo takes back only the session's own
answers, or those of a session that ended): the machine follows the queue it finds."""


@dataclass
class Fetched:
    items: tuple[ShownItem, ...]
    data_version: int
    exhausted: bool
    done_elsewhere: frozenset[int]


@dataclass
class Sim:
    """One TUI run: its own connection, session id, queue, writer queue and worker results."""

    annotator: str
    session: str
    store: Store
    queue: AnnotationQueue
    writes: deque[WriteRequest] = field(default_factory=deque)
    """Submitted to the writer, not yet made."""
    reports: deque[tuple[str, Callable[[], Step]]] = field(default_factory=deque)
    """Writes made whose report has not reached the screen yet: ("answer" or "undo", deliver)."""
    fetch: FetchRequest | None = None
    """A fetch started whose worker has not read yet."""
    fetched: Fetched | None = None
    """A fetch read whose items have not reached the screen yet."""

    def visible(self) -> set[int]:
        """Items on screen (not being saved) or fetched ahead: what no other session may show."""
        pending = {item.item_id for item in self.queue.pending.values()}
        ids = {item.item_id for item in self.queue.upcoming}
        if self.queue.shown is not None and self.queue.shown.item_id not in pending:
            ids.add(self.queue.shown.item_id)
        return ids


class AnnotationMachine(Counted):
    """Sessions on one file against a model of each annotator's answers in force."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="hnbooks-machine-"))
        self.path = self.dir / "hnbooks.db"
        self.store = Store(self.path)
        texts = [f"comment number {n} about a book or not" for n in range(ITEMS)]
        incoming = [IncomingItem(line=n + 1, text=t, meta={"n": n}) for n, t in enumerate(texts)]
        self.item_ids = self.store.add_items(incoming, "machine")
        self.live: list[Sim] = []
        self.dead: list[str] = []
        """Session ids of killed sessions (as their claims name them now)."""
        # The model.
        self.split = False
        self.answers: dict[str, list[tuple[int, str, str]]] = {a: [] for a in ANNOTATORS}
        """Each annotator's answers in force, oldest first: (item id, answer, session)."""
        self.ended: set[str] = set()
        """Sessions that quit or whose process is gone: their answers are anyone's to undo."""
        self.batches: list[list[int]] = []

    # -- the model ---------------------------------------------------------------------------------

    def answered(self, annotator: str) -> set[int]:
        return {item_id for item_id, _, _ in self.answers[annotator]}

    def done(self, annotator: str, item_id: int) -> bool:
        if self.split:
            return any(item_id in self.answered(a) for a in ANNOTATORS)
        return item_id in self.answered(annotator)

    def latest_undoable(self, annotator: str, session: str) -> tuple[int, str, str] | None:
        """The answer an undo in `session` takes back: the annotator's latest that is the
        session's own or an ended session's (any, where keys name no session)."""
        for entry in reversed(self.answers[annotator]):
            if not SESSION_KEYS or entry[2] in (session, *self.ended):
                return entry
        return None

    def end(self, sim: Sim) -> None:
        """The session is over: its answers become undoable by the annotator's next sessions."""
        if SESSION_KEYS and hasattr(sim.store, "end_session"):
            sim.store.end_session(sim.session)
            self.ended.add(sim.session)

    def served(self) -> set[int]:
        return {i for batch in self.batches for i in batch}

    # -- the screen's part -------------------------------------------------------------------------

    def apply(self, sim: Sim, step: Step) -> None:
        sim.writes.extend(step.writes)
        if step.top_up:
            self.request_items(sim)

    def request_items(self, sim: Sim) -> None:
        request = sim.queue.start_fetch()
        if request is not None:
            sim.fetch = request

    def open(self, annotator: str) -> Sim:
        session = new_session_id()
        session_kw = {"session": session} if SESSION_KEYS else {}
        sim = Sim(
            annotator,
            session,
            Store(self.path, create=False),
            AnnotationQueue(annotator, reply_to="screen", prefetch=PREFETCH, **session_kw),
        )
        self.live.append(sim)
        self.request_items(sim)  # on mount
        return sim

    def pick(self, n: int) -> Sim:
        return self.live[n % len(self.live)]

    def make_write(self, sim: Sim, request: WriteRequest) -> tuple[str, Callable[[], Step]]:
        """What the writer does with `request`; returns the report to hand the screen."""
        if isinstance(request, AnswerToWrite):
            expected_done = self.done(sim.annotator, request.item_id)
            answer_id = sim.store.record_queued_answer(request.item_id, request.answer)
            assert (answer_id is None) == expected_done, (
                f"record_queued_answer of item {request.item_id} by {sim.annotator}:"
                f" returned {answer_id}, the model says done={expected_done}"
            )
            key = request.client_key
            self.step("(answer stored)" if answer_id is not None else "(answer refused: done)")
            if answer_id is None:
                return "answer", lambda: sim.queue.answered_by_other(key)
            self.answers[sim.annotator].append(
                (request.item_id, request.answer.answer, sim.session)
            )
            return "answer", lambda: sim.queue.committed(key)
        expected = self.latest_undoable(sim.annotator, sim.session)
        if expected is not None:
            self.answers[sim.annotator].remove(expected)
        others = self.claims_of_others(sim.annotator, expected[0]) if expected else []
        undone = sim.store.undo_last_claiming(sim.annotator, session=sim.session)
        if others and self.RESTORE_OTHER_ANNOTATORS_CLAIMS:
            with sqlite3.connect(self.path) as conn:
                conn.executemany("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?, ?)", others)
            conn.close()
        assert (None if undone is None else (undone.item_id, undone.answer)) == (
            None if expected is None else expected[:2]
        )
        self.step("(undo made)" if undone is not None else "(undo: nothing to undo)")
        shown = (
            None if undone is None else shown_from_answer(sim.store, undone, sim.annotator, "BOOK")
        )
        return "undo", lambda: sim.queue.undone(undone, shown)

    RESTORE_OTHER_ANNOTATORS_CLAIMS = False
    """Overlap mode: put back the claims of other annotators on an undone item (a fault
    `undo_last_claiming` once had; see `test_an_undo_leaves_other_annotators_claims_alone`)."""

    def claims_of_others(self, annotator: str, item_id: int) -> list[tuple[object, ...]]:
        if self.split:
            return []
        with sqlite3.connect(self.path) as conn:
            rows = conn.execute(
                "SELECT batch_id, item_id, annotator, session, claimed_at, expires_at FROM claims"
                " WHERE item_id = ? AND annotator != ?",
                (item_id, annotator),
            ).fetchall()
        conn.close()
        return rows

    RENEW_WITH_ITEMS_IN_FLIGHT = True
    """Whether a renewal may come between a fetch's read and its delivery, or between an undo's
    write and its report (see `test_a_renewal_during_a_fetch_drops_the_claims_of_the_items_fetched`
    and `test_a_renewal_during_an_undo_drops_the_claim_of_the_undone_item`)."""

    def may_renew(self, sim: Sim) -> bool:
        if self.RENEW_WITH_ITEMS_IN_FLIGHT:
            return True
        return sim.fetched is None and all(kind != "undo" for kind, _ in sim.reports)

    def close_sim(self, sim: Sim) -> None:
        self.live.remove(sim)
        sim.store.close()

    # -- rules -------------------------------------------------------------------------------------

    @initialize(mode=st.sampled_from(["overlap", "split"]), annotator=st.sampled_from(ANNOTATORS))
    def start(self, mode: str, annotator: str) -> None:
        self.step("start")
        self.store.set_feed_mode(mode)
        self.split = mode == "split"
        self.publish_items(self.item_ids[:FIRST_BATCH])
        self.open(annotator)

    def publish_items(self, item_ids: list[int]) -> None:
        entries = [BatchEntry(i, "top", 1.0 - n / 100, n) for n, i in enumerate(item_ids)]
        self.store.publish_batch(entries, source="machine")
        self.batches.append(list(item_ids))

    @precondition(lambda self: self.live)
    @rule(n=WHICH, answer=ANSWERS, settle=st.booleans())
    def press(self, n: int, answer: str, settle: bool) -> None:
        """An answer key; with `settle`, the writer and the workers catch up before the next key."""
        self.step("press")
        sim = self.pick(n)
        spans = sim.queue.shown.spans if sim.queue.shown is not None else ()
        self.apply(sim, sim.queue.press(answer, spans))  # type: ignore[arg-type]
        if settle:
            self.settle_sim(sim)

    @precondition(lambda self: self.live)
    @rule(n=WHICH, settle=st.booleans())
    def press_undo(self, n: int, settle: bool) -> None:
        self.step("press_undo")
        sim = self.pick(n)
        self.apply(sim, sim.queue.press_undo())
        if settle:
            self.settle_sim(sim)

    EVENTS = ("writer_writes", "report_arrives", "fetch_reads", "fetch_arrives")

    def pending_events(self) -> list[tuple[Sim, str]]:
        due = []
        for sim in self.live:
            if sim.writes:
                due.append((sim, "writer_writes"))
            if sim.reports:
                due.append((sim, "report_arrives"))
            if sim.fetch is not None:
                due.append((sim, "fetch_reads"))
            if sim.fetched is not None:
                due.append((sim, "fetch_arrives"))
        return due

    @precondition(lambda self: self.pending_events())
    @rule(n=st.integers(0, 15))
    def one_event(self, n: int) -> None:
        """One thing a session's writer or fetch worker does, or one report reaching its screen."""
        sim, event = self.pending_events()[n % len(self.pending_events())]
        getattr(self, event)(self.live.index(sim))

    def writer_writes(self, n: int) -> None:
        self.step("writer_writes")
        sim = self.pick(n)
        sim.reports.append(self.make_write(sim, sim.writes.popleft()))

    def report_arrives(self, n: int) -> None:
        self.step("report_arrives")
        sim = self.pick(n)
        self.apply(sim, sim.reports.popleft()[1]())

    def fetch_reads(self, n: int) -> None:
        """The fetch worker (tui/annotate.py `fetch_items`), claiming what it reads."""
        self.step("fetch_reads")
        sim = self.pick(n)
        request, sim.fetch = sim.fetch, None
        assert request is not None
        store = sim.store
        data_version = store.data_version()
        if request.only_if_changed and data_version == request.seen_data_version:
            sim.fetched = Fetched((), data_version, True, frozenset())
            return
        done_elsewhere = frozenset(store.answered_item_ids(sim.annotator, request.skip_item_ids))
        skip = set(request.skip_item_ids)
        items: list[ShownItem] = []
        while len(items) < request.wanted:
            queued = store.next_queued_item(sim.annotator, session=sim.session, skip_item_ids=skip)
            if queued is None:
                break
            skip.add(queued.item.id)
            items.append(shown_from_queue(store, queued))
        sim.fetched = Fetched(
            tuple(items), data_version, len(items) < request.wanted, done_elsewhere
        )

    def fetch_arrives(self, n: int) -> None:
        self.step("fetch_arrives")
        sim = self.pick(n)
        got, sim.fetched = sim.fetched, None
        assert got is not None
        self.apply(
            sim, sim.queue.fetched(got.items, got.data_version, got.exhausted, got.done_elsewhere)
        )

    def settle_sim(self, sim: Sim) -> None:
        n = self.live.index(sim)
        while sim.writes or sim.reports or sim.fetch or sim.fetched:
            if sim.writes:
                self.writer_writes(n)
            elif sim.reports:
                self.report_arrives(n)
            elif sim.fetch:
                self.fetch_reads(n)
            else:
                self.fetch_arrives(n)

    @precondition(lambda self: self.live)
    @rule(n=WHICH)
    def settle(self, n: int) -> None:
        """The session's writer and workers run until none has anything left to do."""
        self.step("settle")
        self.settle_sim(self.pick(n))

    @precondition(lambda self: self.live)
    @rule(n=WHICH, renew=st.booleans())
    def timer(self, n: int, renew: bool) -> None:
        """The poll timer (read again while the queue is empty) or the claim-renewal timer."""
        sim = self.pick(n)
        if not renew:
            self.step("poll")
            request = sim.queue.poll()
            if request is not None:
                sim.fetch = request
        elif self.may_renew(sim):
            self.renew_claims(n)

    def renew_claims(self, n: int) -> None:
        """The renewal timer: the session's claims become what its queue holds."""
        self.step("renew_claims")
        sim = self.pick(n)
        lost = sim.store.renew_claims(sim.session, sim.annotator, sim.queue.held())
        if lost:
            self.apply(sim, sim.queue.given_up(lost))

    @precondition(lambda self: self.live)
    @rule(
        n=WHICH,
        how=st.sampled_from(["open", "restart", "kill-kept", "kill-aged", "kill-gone"]),
        annotator=st.sampled_from(ANNOTATORS),
    )
    def sessions(self, n: int, how: str, annotator: str) -> None:
        """Another terminal (of `annotator`), a restart, or a kill -9 of session `n`."""
        if how == "open":
            if len(self.live) < MAX_LIVE:
                self.open_session(annotator)
        elif how == "restart":
            self.restart(n)
        else:
            # After a kill, half the time a new session of the annotator starts.
            self.kill(n, how.removeprefix("kill-"), again=annotator == "ann")

    def open_session(self, annotator: str) -> None:
        self.step("open_session")
        self.open(annotator)

    def restart(self, n: int) -> None:
        """Quit (the writer makes what was submitted, the claims are released) and start again."""
        self.step("restart")
        sim = self.pick(n)
        while sim.writes:
            self.make_write(sim, sim.writes.popleft())
        self.end(sim)
        sim.store.release_claims(sim.session)
        self.close_sim(sim)
        self.open(sim.annotator)

    def kill(self, n: int, claims: str, again: bool) -> None:
        """kill -9: writes not yet made are lost (never acknowledged), the claims stay behind —
        until their time to live passes (`aged`), or seen as a dead process's (`gone`). A process
        gone from this machine leaves its answers to the next session to undo: in-process the
        session is ended instead (`end_session`); `kept` stands for a session whose process is not
        seen gone (another machine's), whose answers stay its own."""
        self.step(f"kill ({claims})")
        sim = self.pick(n)
        if claims != "kept":
            self.end(sim)
        self.close_sim(sim)
        with sqlite3.connect(self.path) as conn:
            if claims == "aged":
                conn.execute("UPDATE claims SET expires_at = 0 WHERE session = ?", (sim.session,))
            elif claims == "gone":
                gone = gone_session_id()
                conn.execute("UPDATE claims SET session = ? WHERE session = ?", (gone, sim.session))
                self.dead.append(gone)
            else:
                self.dead.append(sim.session)
        conn.close()
        if again or not self.live:
            self.open(sim.annotator)

    @precondition(lambda self: self.dead)
    @rule()
    def time_passes(self) -> None:
        """The dead sessions' claims outlive their time to live."""
        self.step("time_passes")
        with sqlite3.connect(self.path) as conn:
            conn.executemany(
                "UPDATE claims SET expires_at = 0 WHERE session = ?", [(s,) for s in self.dead]
            )
        conn.close()
        self.dead.clear()

    @precondition(lambda self: len(self.served()) < ITEMS)
    @rule(data=st.data())
    def publish(self, data: st.DataObject) -> None:
        """The scorer publishes a new batch of items never queued."""
        self.step("publish")
        fresh = [i for i in self.item_ids if i not in self.served()]
        assert set(fresh) == set(self.item_ids) - self.store.excluded_item_ids()
        chosen = data.draw(st.lists(st.sampled_from(fresh), min_size=1, max_size=3, unique=True))
        self.publish_items(chosen)

    # -- invariants --------------------------------------------------------------------------------

    @invariant()
    def answers_in_force_are_the_models(self) -> None:
        self.checked(first=True)
        stored = sorted((a.annotator, a.item_id, a.answer) for a in self.store.current_answers())
        model = sorted((who, i, v) for who, given in self.answers.items() for i, v, _ in given)
        assert stored == model

    @invariant()
    def no_item_done_is_on_screen(self) -> None:
        """An item done for the annotator (answered by them; in split mode by anyone) is never shown
        again — except while its own answer is being committed."""
        self.checked()
        for sim in self.live:
            shown = sim.queue.shown
            pending = {item.instance for item in sim.queue.pending.values()}
            if shown is not None and shown.instance not in pending:
                assert not self.done(sim.annotator, shown.item_id), (
                    f"item {shown.item_id} shown to {sim.annotator} though done"
                )

    @invariant()
    def no_item_is_held_by_two_sessions(self) -> None:
        """Overlap: no two sessions of one annotator show (or hold ahead) one item. Split: no two
        sessions at all."""
        self.checked()
        for n, one in enumerate(self.live):
            for other in self.live[n + 1 :]:
                if self.split or one.annotator == other.annotator:
                    both = one.visible() & other.visible()
                    assert not both, (
                        f"items {sorted(both)} held by two sessions"
                        f" ({one.annotator}, {other.annotator}; split={self.split})"
                    )

    @invariant()
    def what_a_session_holds_it_has_claimed(self) -> None:
        """What a session shows or holds ahead is claimed for it (so no other session is served
        it)."""
        self.checked()
        for sim in self.live:
            claimed = sim.store.claimed_item_ids(sim.session)
            missing = sim.visible() - claimed
            assert not missing, f"{sim.annotator} holds items {sorted(missing)} unclaimed"

    @invariant()
    def progress_is_the_models(self) -> None:
        """`annotator_progress` (answers, today, positives, remaining) is the model's. In split mode
        what remains leaves out the items other annotators hold claims on, read from the file."""
        self.checked()
        rows = [i for batch in self.batches for i in batch]
        now = time.time()
        with sqlite3.connect(self.path) as conn:
            claims = conn.execute(
                "SELECT item_id, annotator FROM claims WHERE expires_at > ?", (now,)
            ).fetchall()
        conn.close()
        for annotator in ANNOTATORS:
            progress = self.store.annotator_progress(annotator, day_start=0)
            given = self.answers[annotator]
            accepted = {i for i, v, _ in given if v == "accept"}
            if self.split:
                others = {i for i, who in claims if who != annotator}
                remaining = sum(1 for i in rows if not self.done(annotator, i) and i not in others)
            else:
                remaining = sum(1 for i in rows if not self.done(annotator, i))
            assert (progress.answers, progress.today, progress.positives, progress.remaining) == (
                len(given),
                len(given),
                len(accepted),
                remaining,
            ), annotator

    def teardown(self) -> None:
        """Nothing lost: once every session is gone and its claims with it, each annotator is
        served exactly the items the model says are still to do."""
        try:
            for sim in list(self.live):
                while sim.writes:
                    self.make_write(sim, sim.writes.popleft())
                self.end(sim)
                sim.store.release_claims(sim.session)
                self.close_sim(sim)
            with sqlite3.connect(self.path) as conn:
                conn.execute("UPDATE claims SET expires_at = 0")
            conn.close()
            for annotator in ANNOTATORS:
                served: list[int] = []
                while (
                    queued := self.store.next_queued_item(annotator, skip_item_ids=served)
                ) is not None:
                    served.append(queued.item.id)
                expected = [i for i in dict.fromkeys(self.served()) if not self.done(annotator, i)]
                assert sorted(served) == sorted(expected), annotator
        finally:
            for sim in self.live:
                sim.store.close()
            self.store.close()
            shutil.rmtree(self.dir, ignore_errors=True)


class UndoTakingEveryClaim(AnnotationMachine):
    RESTORE_OTHER_ANNOTATORS_CLAIMS = False


def test_an_undo_leaves_other_annotators_claims_alone() -> None:
    state = UndoTakingEveryClaim()
    try:
        state.start(mode="overlap", annotator="ann")
        state.settle(n=0)  # ann's session shows item 1
        state.press(answer="accept", n=0, settle=True)  # ann answers it
        state.open_session(annotator="bob")
        state.settle(n=1)  # bob's session shows item 1 (claimed) and holds 2, 3 ahead
        state.press_undo(n=0, settle=True)  # ann undoes item 1: bob's claim on it is deleted
        state.open_session(annotator="bob")  # bob's second terminal
        state.settle(n=2)  # is served item 1 too
        state.no_item_is_held_by_two_sessions()
    finally:
        state.teardown()


class RacingRenewal(AnnotationMachine):
    RENEW_WITH_ITEMS_IN_FLIGHT = True


def test_a_renewal_during_a_fetch_drops_the_claims_of_the_items_fetched() -> None:
    state = RacingRenewal()
    try:
        state.start(mode="overlap", annotator="ann")
        state.fetch_reads(n=0)  # the worker claims the first items for session 1
        state.renew_claims(n=0)  # the timer renews what the queue holds: nothing yet
        state.fetch_arrives(n=0)  # session 1 shows the first item
        state.open_session(annotator="ann")  # a second terminal of ann
        state.settle(n=1)  # it fetches (and shows) the same items
        state.no_item_is_held_by_two_sessions()
    finally:
        state.teardown()


def test_a_renewal_during_an_undo_drops_the_claim_of_the_undone_item() -> None:
    state = RacingRenewal()
    try:
        state.start(mode="overlap", annotator="ann")
        state.settle(n=0)  # ann's session shows item 1
        state.press(answer="accept", n=0, settle=True)  # answered: item 2 is shown
        state.press_undo(n=0, settle=False)
        state.writer_writes(n=0)  # the undo is made and item 1 claimed for the session
        state.renew_claims(n=0)  # the timer renews what the queue holds: items 2, 3, 4
        state.report_arrives(n=0)  # item 1 is shown again, unclaimed
        state.open_session(annotator="ann")  # a second terminal of ann
        state.settle(n=1)  # is served item 1 too
        state.no_item_is_held_by_two_sessions()
    finally:
        state.teardown()


def test_annotation_machine() -> None:
    run_counted(AnnotationMachine, SHORT, "annotation machine, short budget")


@pytest.mark.slow
def test_annotation_machine_long() -> None:
    run_counted(AnnotationMachine, LONG, "annotation machine, long budget")
