"""Import, publish, answer and undo as a state machine: two `Store` connections on one real SQLite
file (two processes: an importer and the scorer, two annotators) write in any interleaving, checked
after every rule against a plain model of the texts, batches and answer rows.

Rules: import a small set of records (with external ids and answers, some clashing, through
`add_items`; or a plain JSONL file through `import_file`), publish a batch of items not queued,
record an answer (plain or from the queue), undo an annotator's latest answer, switch the feed
mode.
Invariants: the texts stored are the model's distinct texts (equal up to whitespace runs), a file
that fails stores nothing, every batch is whole, no item waits in two batches, the answers in force
and the queue's size are the model's — read through either connection.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

from hnbooks.importing import import_file
from hnbooks.store.db import Store
from hnbooks.store.ingest import ItemConflict
from hnbooks.store.queue import NothingLeftToPublish
from hnbooks.store.records import BatchEntry, IncomingItem, NewAnswer, task_key_for
from tests.machines import LONG, SHORT, Counted, run_counted

WORDS = ("alpha", "beta", "gamma", "delta")
SPACES = st.sampled_from([" ", "  ", "\n", "\t", " \n "])
ANNOTATORS = ("ann", "bob")
ANSWER_VALUES = ("accept", "reject", "ignore")


@st.composite
def texts(draw: st.DrawFn) -> str:
    """1-3 words of a small vocabulary, joined and padded by random whitespace: many texts are
    the same text up to whitespace."""
    words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=3))
    out = draw(st.sampled_from(["", " ", "\n"]))
    for n, word in enumerate(words):
        out += (draw(SPACES) if n else "") + word
    return out + draw(st.sampled_from(["", " ", "\t"]))


def norm(text: str) -> str:
    return " ".join(text.split())


ANSWER = st.tuples(
    st.sampled_from(ANNOTATORS),
    st.sampled_from(ANSWER_VALUES),
    st.sampled_from(["BOOK", None]),
    st.sampled_from([1000.0, 2000.0, 2000.4]),
)
RECORD = st.tuples(
    texts(),
    st.one_of(st.none(), st.integers(0, 5).map(lambda n: f"hn:{n}")),
    st.lists(ANSWER, max_size=2),
)


@dataclass
class Row:
    """An answer row in the model (undo rows are not kept: only what they undid)."""

    id: int
    item_id: int
    annotator: str
    answer: str
    label: str | None
    task_key: str
    created_at: float
    undone: bool = False


class ImportPublishMachine(Counted):
    """Two connections on one file against a model of its texts, batches and answer rows."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="hnbooks-store-machine-"))
        self.path = self.dir / "hnbooks.db"
        self.stores = [Store(self.path), Store(self.path, create=False)]
        self.files = 0
        # The model.
        self.items: dict[str, int] = {}
        """Text up to whitespace → its item id."""
        self.external: dict[str, str] = {}
        """External id → the (normalised) text stored under it."""
        self.batches: dict[int, list[int]] = {}
        self.rows: list[Row] = []
        self.split = False

    # -- the model ---------------------------------------------------------------------------------

    def effective(self) -> list[Row]:
        return [r for r in self.rows if not r.undone]

    def answered_by_anyone(self) -> set[int]:
        return {r.item_id for r in self.effective()}

    def waiting(self) -> list[int]:
        """Batch rows (item ids) not answered by anyone."""
        answered = self.answered_by_anyone()
        return [i for items in self.batches.values() for i in items if i not in answered]

    def current(self) -> set[tuple[int, int, str, str, str]]:
        latest: dict[tuple[int, str, str], Row] = {}
        for r in self.effective():
            key = (r.item_id, r.annotator, r.task_key)
            if key not in latest or r.id > latest[key].id:
                latest[key] = r
        return {(r.id, r.item_id, r.annotator, r.answer, r.task_key) for r in latest.values()}

    # -- rules -------------------------------------------------------------------------------------

    @initialize(records=st.lists(RECORD, min_size=1, max_size=4))
    def start(self, records: list[tuple[str, str | None, list]]) -> None:
        self.step("start")
        self.add_items(0, records)

    @rule(which=st.integers(0, 1), records=st.lists(RECORD, min_size=1, max_size=4))
    def add_items(self, which: int, records: list[tuple[str, str | None, list]]) -> None:
        """`hnbooks import` of records with ids and answers, in one transaction."""
        self.step("add_items")
        incoming = [
            IncomingItem(
                line=n + 1,
                text=text,
                meta={"n": n},
                external_id=external,
                answers=[
                    NewAnswer(who, value, label=label, created_at=at)  # type: ignore[arg-type]
                    for who, value, label, at in answers
                ],
            )
            for n, (text, external, answers) in enumerate(records)
        ]
        # The model's outcome, worked out first: a clash anywhere stores nothing.
        items, external, new_rows = dict(self.items), dict(self.external), []
        clash = False
        for item in incoming:
            key = norm(item.text)
            if key not in items:
                ext = item.external_id
                if ext is not None and ext in external:
                    clash = True
                    break
                items[key] = -1  # the id the store gives it
                if ext is not None:
                    external[ext] = key
            for a in item.answers:
                new_rows.append((key, a))
        store = self.stores[which]
        if clash:
            self.step("(import refused: id clash)")
            with pytest.raises(ItemConflict):
                store.add_items(incoming, "machine")
            return
        before = self.max_answer_id()
        ids = store.add_items(incoming, "machine")
        for item, item_id in zip(incoming, ids, strict=True):
            key = norm(item.text)
            assert self.items.get(key, item_id) == item_id, "a text merged into another item"
            self.items[key] = item_id
        self.external = external
        # Answers: one already present (same item, person, verdict, label, second) is not added.
        added = self.read_rows_after(before)
        expected = []
        for key, a in new_rows:
            item_id = self.items[key]
            task_key = task_key_for(a.label, a.view_id, False)
            duplicate = any(
                r.item_id == item_id
                and r.annotator == a.annotator
                and r.answer == a.answer
                and r.task_key == task_key
                and r.label == a.label
                and int(r.created_at) == int(a.created_at or 0)
                for r in [*self.rows, *expected]
            )
            if not duplicate:
                expected.append(
                    Row(0, item_id, a.annotator, a.answer, a.label, task_key, a.created_at or 0)
                )
        got = [(r.item_id, r.annotator, r.answer, r.label, r.task_key) for r in added]
        want = [(r.item_id, r.annotator, r.answer, r.label, r.task_key) for r in expected]
        assert got == want
        self.rows.extend(added)
        self.step(f"(import stored, {len(added)} answers)")

    def max_answer_id(self) -> int:
        with sqlite3.connect(self.path) as conn:
            value = conn.execute("SELECT COALESCE(MAX(id), 0) FROM answers").fetchone()[0]
        conn.close()
        return int(value)

    def read_rows_after(self, answer_id: int) -> list[Row]:
        with sqlite3.connect(self.path) as conn:
            rows = conn.execute(
                "SELECT id, item_id, annotator, answer, label, task_key, created_at FROM answers"
                " WHERE id > ? ORDER BY id",
                (answer_id,),
            ).fetchall()
        conn.close()
        return [Row(*row) for row in rows]

    @rule(which=st.integers(0, 1), lines=st.lists(texts(), min_size=1, max_size=4))
    def import_a_file(self, which: int, lines: list[str]) -> None:
        """`import_file` of a plain JSONL file of texts; the new ones are read back through the
        other connection."""
        self.step("import_file")
        self.files += 1
        path = self.dir / f"texts-{self.files}.jsonl"
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in lines), encoding="utf-8")
        summary = import_file(self.stores[which], path, fmt="jsonl")
        new = 0
        for text in lines:
            if norm(text) not in self.items:
                new += 1
                self.items[norm(text)] = -1
        assert summary.new_items == new
        stored = self.stored_items(self.stores[1 - which])
        for key, item_id in self.items.items():
            if item_id == -1:
                self.items[key] = stored[key]

    def stored_items(self, store: Store) -> dict[str, int]:
        stored: dict[str, int] = {}
        for item_id, text in store.iter_item_texts():
            assert norm(text) not in stored, f"two items hold the text {norm(text)!r}"
            stored[norm(text)] = item_id
        return stored

    @rule(which=st.integers(0, 1), data=st.data())
    def publish(self, which: int, data: st.DataObject) -> None:
        """A batch of items neither answered nor waiting in a batch (what the scorer picks)."""
        store = self.stores[which]
        excluded = store.excluded_item_ids()
        assert excluded == self.answered_by_anyone() | set(self.waiting())
        free = sorted(set(self.items.values()) - excluded)
        if not free:
            self.step("publish (nothing free)")
            return
        self.step("publish")
        chosen = data.draw(st.lists(st.sampled_from(free), min_size=1, max_size=3, unique=True))
        entries = [BatchEntry(i, "top", 1.0 - n / 10, n) for n, i in enumerate(chosen)]
        batch_id = store.publish_batch(entries, source="machine")
        assert batch_id == max(self.batches, default=0) + 1
        self.batches[batch_id] = chosen

    @precondition(lambda self: self.items)
    @rule(
        which=st.integers(0, 1),
        data=st.data(),
        annotator=st.sampled_from(ANNOTATORS),
        value=st.sampled_from(ANSWER_VALUES),
        queued=st.booleans(),
    )
    def record(
        self, which: int, data: st.DataObject, annotator: str, value: str, queued: bool
    ) -> None:
        """An answer from the annotate screen (`record_queued_answer`, to a batch item) or from
        search or review (`record_answer`, to any item)."""
        store = self.stores[which]
        queued = queued and bool(self.batches)
        if queued:
            batch_id = data.draw(st.sampled_from(sorted(self.batches)))
            item_id = data.draw(st.sampled_from(self.batches[batch_id]))
            new = NewAnswer(annotator, value, batch_id=batch_id)  # type: ignore[arg-type]
            done = any(
                r.item_id == item_id and (self.split or r.annotator == annotator)
                for r in self.effective()
            )
            answer_id = store.record_queued_answer(item_id, new)
            assert (answer_id is None) == done
            self.step("record_queued_answer" + (" (done: refused)" if done else ""))
        else:
            item_id = data.draw(st.sampled_from(sorted(self.items.values())))
            answer_id = store.record_answer(item_id, NewAnswer(annotator, value))  # type: ignore[arg-type]
            self.step("record_answer")
        if answer_id is not None:
            assert answer_id > max((r.id for r in self.rows), default=0)
            self.rows.append(Row(answer_id, item_id, annotator, value, "BOOK", "label:BOOK", 0.0))

    @rule(which=st.integers(0, 1), mode=st.sampled_from(["overlap", "split"]))
    def feed_mode(self, which: int, mode: str) -> None:
        """The feed mode changes (it decides when `record_queued_answer` refuses)."""
        self.step(f"feed mode {mode}")
        self.stores[which].set_feed_mode(mode)
        self.split = mode == "split"
        assert self.stores[1 - which].feed_mode() == mode

    @rule(which=st.integers(0, 1), annotator=st.sampled_from(ANNOTATORS))
    def undo(self, which: int, annotator: str) -> None:
        self.step("undo")
        mine = [r for r in self.effective() if r.annotator == annotator]
        undone = self.stores[which].undo_last(annotator)
        if not mine:
            assert undone is None
            return
        latest = max(mine, key=lambda r: r.id)
        assert undone is not None and undone.id == latest.id
        latest.undone = True

    # -- invariants --------------------------------------------------------------------------------

    @invariant()
    def the_texts_are_the_models(self) -> None:
        self.checked(first=True)
        for store in self.stores:
            assert store.item_count() == len(self.items)
            assert self.stored_items(store) == self.items

    @invariant()
    def every_batch_is_whole(self) -> None:
        self.checked()
        with sqlite3.connect(self.path) as conn:
            rows = conn.execute(
                "SELECT batch_id, item_id FROM batch_items ORDER BY batch_id, position"
            ).fetchall()
        conn.close()
        stored: dict[int, list[int]] = {}
        for batch_id, item_id in rows:
            stored.setdefault(batch_id, []).append(item_id)
        assert stored == self.batches
        for store in self.stores:
            assert store.batch_count() == len(self.batches)

    @invariant()
    def no_item_waits_in_two_batches(self) -> None:
        self.checked()
        waiting = self.waiting()
        assert len(waiting) == len(set(waiting)), f"items waiting twice: {sorted(waiting)}"
        for store in self.stores:
            assert store.queued_count() == len(waiting)
            assert [e.item_id for e in store.queue()] == waiting

    @invariant()
    def the_answers_in_force_are_the_models(self) -> None:
        self.checked()
        model = self.current()
        for store in self.stores:
            stored = {
                (a.id, a.item_id, a.annotator, a.answer, a.task_key)
                for a in store.current_answers()
            }
            assert stored == model

    def teardown(self) -> None:
        for store in self.stores:
            store.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def test_import_publish_machine() -> None:
    run_counted(ImportPublishMachine, SHORT, "import/publish machine, short budget")


@pytest.mark.slow
def test_import_publish_machine_long() -> None:
    run_counted(ImportPublishMachine, LONG, "import/publish machine, long budget")


def test_two_publishers_reading_before_either_publishes_queue_an_item_once(
    tmp_path: Path,
) -> None:
    scorer, seed = Store(tmp_path / "hnbooks.db"), None
    try:
        scorer.add_items([IncomingItem(line=1, text="a comment", meta={})], "machine")
        seed = Store(tmp_path / "hnbooks.db", create=False)
        free_for_scorer = set(scorer.item_ids()) - scorer.excluded_item_ids()
        free_for_seed = set(seed.item_ids()) - seed.excluded_item_ids()
        seed.publish_batch([BatchEntry(i, "seed") for i in free_for_seed], source="seed")
        # The second publisher finds its items taken: it publishes the rest (here none) or refuses.
        with pytest.raises(NothingLeftToPublish):
            scorer.publish_batch([BatchEntry(i, "top") for i in free_for_scorer], source="score")
        waiting = [e.item_id for e in scorer.queue()]
        assert len(waiting) == len(set(waiting)), f"item waiting in two batches: {waiting}"
    finally:
        scorer.close()
        if seed is not None:
            seed.close()
