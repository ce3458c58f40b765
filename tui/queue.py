"""The annotate screen's queue as plain state: the item shown, items fetched ahead, answers being
committed, keys typed ahead. No Textual and no database, so every transition is tested in
milliseconds with plain objects (tests/tui/test_queue.py).

The screen moves past an item only once its answer is committed, so what it has moved past is on
disk. Keys pressed while a write is in flight are meant for the item that write will show, so they
wait for it and then act in order; so do keys that outrun the items fetched ahead (a burst, a paste):
they wait for the read under way, and only with no item left to come is an answer key refused (the
screen says so). Each transition returns a `Step`: what the screen must do next
(render the new item, submit writes, top up the items fetched ahead).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from hnbooks.store.records import Answer, AnswerValue, NewAnswer, Span
from hnbooks.tui.session import (
    PREFETCH_COUNT,
    QUEUE_KEY_PREFIX,
    AnswerToWrite,
    ShownItem,
    UndoToWrite,
    WriteRequest,
    client_key,
)


@dataclass(frozen=True)
class Step:
    """What the screen does after a transition."""

    shown_changed: bool = False
    """`AnnotationQueue.shown` is another item (or none): render it with a fresh marking."""
    writes: tuple[WriteRequest, ...] = ()
    """Submit these to the writer, in this order."""
    top_up: bool = False
    """Fetch ahead again (`AnnotationQueue.start_fetch` says whether and what)."""
    saving_changed: bool = False
    """The count of answers being saved changed: redraw the progress line."""
    queued: bool = False
    """The key waits behind the write in flight, or for the next item to arrive; it acts on the
    item shown then."""
    refused: int = 0
    """Answer keys typed ahead that found no item left to answer (the screen says so)."""

    def then(self, later: Step) -> Step:
        """This step followed by `later`, as one."""
        return Step(
            shown_changed=self.shown_changed or later.shown_changed,
            writes=self.writes + later.writes,
            top_up=self.top_up or later.top_up,
            saving_changed=self.saving_changed or later.saving_changed,
            queued=self.queued or later.queued,
            refused=self.refused + later.refused,
        )


@dataclass(frozen=True)
class FetchRequest:
    """Read up to `wanted` queue items other than `skip_item_ids` (a worker's job)."""

    skip_item_ids: frozenset[int]
    wanted: int
    only_if_changed: bool
    """Read nothing when the database's data_version is still `seen_data_version`."""
    seen_data_version: int | None


UNDO = None
"""The undo key in `keys_waiting` (answers are there by their value)."""


class AnnotationQueue:
    """One annotator's queue on the annotate screen; the screen calls a transition per event."""

    def __init__(
        self,
        annotator: str,
        *,
        reply_to: object = None,
        prefetch: int = PREFETCH_COUNT,
        session: str = "",
    ) -> None:
        self.annotator = annotator
        self.session = session
        """The session id the answers' client keys name (so undo can tell sessions apart)."""
        self.reply_to = reply_to
        """Where the writer reports the writes made here (the screen)."""
        self.prefetch = prefetch
        self.shown: ShownItem | None = None
        """The item on screen, or None while the queue is empty (or not read yet)."""
        self.upcoming: deque[ShownItem] = deque()
        """Items fetched ahead, next first."""
        self.pending: dict[str, ShownItem] = {}
        """Answers given but not yet committed: the item answered, by client key."""
        self.write_in_flight = False
        """An answer or undo is being committed; the screen moves on only once it is."""
        self.keys_waiting: deque[AnswerValue | None] = deque()
        """Answers (and undos, `UNDO`) pressed meanwhile, oldest first."""
        self.exhausted = False
        """The last read found fewer items than asked for: poll for a new batch."""
        self.fetch_in_flight = False
        self.polling = False
        """The fetch in flight is a poll of an exhausted queue (for a newly published batch)."""
        self.undone_during_fetch: set[int] = set()
        """Items an undo brought back while the fetch in flight ran: its list of items done
        elsewhere, read before the undo, must not drop them."""
        self.answered_during_fetch: set[int] = set()
        """Items answered or undone while the fetch in flight ran: what it read of them is stale
        (an item undone, read as waiting, then answered again must not come back as new)."""
        self.read = False
        """Whether the queue has been read once (until then the screen says it is loading)."""
        self.seen_data_version: int | None = None

    @property
    def saving(self) -> int:
        """Answers given and not yet committed."""
        return len(self.pending)

    @property
    def waiting(self) -> bool:
        """Read, and nothing to show: the screen says the queue is done and watches for more."""
        return self.read and self.shown is None

    @property
    def loading(self) -> bool:
        """Nothing on screen, but the read under way (or about to start) may bring an item: keys
        typed now wait for it."""
        if self.shown is not None:
            return False
        return not self.read or not self.exhausted or (self.fetch_in_flight and not self.polling)

    def known_item_ids(self) -> frozenset[int]:
        """Items on screen, fetched ahead or answered and not yet committed: never fetched again."""
        ids = {item.item_id for item in self.upcoming}
        ids.update(item.item_id for item in self.pending.values())
        if self.shown is not None:
            ids.add(self.shown.item_id)
        return frozenset(ids)

    # -- key presses ------------------------------------------------------------------------------

    def press(self, answer: AnswerValue, spans: Iterable[Span] = ()) -> Step:
        """Answer the item on screen with the spans marked on it (kept for an accept only: a reject
        or ignore says nothing about titles). Behind a write in flight, the key waits instead."""
        if self.write_in_flight or self.keys_waiting:
            self.keys_waiting.append(answer)
            return Step(queued=True)
        return self.answer_shown(answer, spans)

    def answer_shown(self, answer: AnswerValue, spans: Iterable[Span]) -> Step:
        """Answer the item on screen now; with none, wait for the one being fetched, or refuse."""
        shown = self.shown
        if shown is None:
            if self.loading:
                self.keys_waiting.append(answer)
                return Step(queued=True)
            return Step(refused=1)
        request = AnswerToWrite(
            item_id=shown.item_id,
            answer=NewAnswer(
                annotator=self.annotator,
                answer=answer,
                label=shown.label,
                spans=tuple(spans) if answer == "accept" else (),
                batch_id=shown.batch_id,
                strategy=shown.strategy,
                score=shown.score,
                client_key=client_key(QUEUE_KEY_PREFIX, self.session, shown.instance),
            ),
            reply_to=self.reply_to,
        )
        self.pending[request.client_key] = shown
        self.write_in_flight = True
        return Step(writes=(request,))

    def press_undo(self) -> Step:
        """Take back the latest answer, after any answer still being committed."""
        if self.write_in_flight or self.keys_waiting:
            self.keys_waiting.append(UNDO)
            return Step(queued=True)
        self.write_in_flight = True
        return Step(writes=(UndoToWrite(reply_to=self.reply_to),))

    # -- the writer's reports ---------------------------------------------------------------------

    def committed(self, client_key: str) -> Step:
        """The answer with `client_key` is on disk: its item gives way to the next one."""
        answered = self.pending.pop(client_key, None)
        if answered is not None:
            self.answered_during_fetch.add(answered.item_id)
        if (
            answered is not None
            and self.shown is not None
            and self.shown.instance == answered.instance
        ):
            step = self.show_next().then(Step(top_up=True))
        else:
            step = Step(saving_changed=True)
        return step.then(self.write_finished())

    def answered_by_other(self, client_key: str) -> Step:
        """The answer with `client_key` was not stored: its item was done elsewhere first (another
        session of the annotator, or anyone in split mode). The queue moves on exactly as after a
        commit — the item is done either way — and keys typed meanwhile act on the next item."""
        return self.committed(client_key)

    def failed(self, request: WriteRequest) -> Step:
        """Nothing was stored: the item stays on screen to be answered again, and the keys typed
        after it are dropped (they were meant for an item that is not coming)."""
        step = Step()
        if isinstance(request, AnswerToWrite):
            self.pending.pop(request.client_key, None)
            step = Step(saving_changed=True)
        self.keys_waiting.clear()
        return step.then(self.write_finished())

    def undone(self, answer: Answer | None, shown: ShownItem | None) -> Step:
        """The latest answer was taken back; `shown` is its item, to answer again, first."""
        if answer is None or shown is None:
            # Nothing to undo, or the undo is committed but its item could not be read back.
            return self.write_finished()
        self.undone_during_fetch.add(shown.item_id)
        self.answered_during_fetch.add(shown.item_id)
        self.upcoming = deque(item for item in self.upcoming if item.item_id != shown.item_id)
        if self.shown is not None and self.shown.item_id != shown.item_id:
            self.upcoming.appendleft(self.shown)
        self.shown = shown
        return Step(shown_changed=True).then(self.write_finished())

    def write_finished(self) -> Step:
        """The write in flight is done and its item shown: keys pressed meanwhile act now, in order."""
        self.write_in_flight = False
        return self.act_on_waiting_keys()

    def act_on_waiting_keys(self) -> Step:
        """Keys typed ahead act in order, until one starts a write or an answer key must wait for
        the item being fetched (with no item left to come, an answer key is refused)."""
        step = Step()
        while self.keys_waiting and not self.write_in_flight:
            key = self.keys_waiting[0]
            if key is not UNDO and self.shown is None and self.loading:
                break
            self.keys_waiting.popleft()
            if key is UNDO:
                self.write_in_flight = True
                step = step.then(Step(writes=(UndoToWrite(reply_to=self.reply_to),)))
                continue
            # A waiting accept keeps the spans the item came with (an undone answer's): the marking
            # keys pressed meanwhile acted on the item then on screen.
            spans = self.shown.spans if self.shown is not None else ()
            step = step.then(self.answer_shown(key, spans))
        return step

    # -- fetching ahead ---------------------------------------------------------------------------

    def start_fetch(self, *, only_if_changed: bool = False) -> FetchRequest | None:
        """What to fetch to keep `prefetch` items ahead; None when a fetch is running or none is
        needed. One fetch at a time: the next is asked for when this one ends."""
        if self.fetch_in_flight:
            return None
        wanted = self.prefetch + (1 if self.shown is None else 0) - len(self.upcoming)
        if wanted <= 0:
            return None
        self.fetch_in_flight = True
        self.polling = only_if_changed
        self.undone_during_fetch = set()
        self.answered_during_fetch = set()
        return FetchRequest(self.known_item_ids(), wanted, only_if_changed, self.seen_data_version)

    def poll(self) -> FetchRequest | None:
        """Every poll interval: read the queue again while it is empty, if the database changed."""
        if self.exhausted and not self.fetch_in_flight:
            return self.start_fetch(only_if_changed=True)
        return None

    def fetched(
        self,
        items: Iterable[ShownItem],
        data_version: int,
        exhausted: bool,
        done_elsewhere: Iterable[int] = (),
    ) -> Step:
        """A fetch ended with `items`; items already known (shown, ahead, being saved) are dropped,
        and so are the items fetched ahead that were done elsewhere meanwhile (`done_elsewhere`;
        the item on screen stays: its answer is checked when it is committed)."""
        was_loading = self.loading
        self.fetch_in_flight = False
        self.seen_data_version = data_version
        self.exhausted = exhausted
        self.drop_upcoming(set(done_elsewhere) - self.undone_during_fetch)
        known = set(self.known_item_ids()) | self.answered_during_fetch
        for item in items:
            if item.item_id not in known:
                known.add(item.item_id)
                self.upcoming.append(item)
        step = Step(top_up=not exhausted)
        if self.shown is None and self.upcoming:
            step = step.then(self.show_next())
        elif self.shown is None and was_loading:
            step = step.then(Step(shown_changed=True))  # from "loading" to "nothing left"
        self.read = True
        return step.then(self.act_on_waiting_keys())

    def fetch_failed(self) -> Step:
        """The fetch ended without items (an error, told to the user): the next poll reads again."""
        was_loading = self.loading
        self.fetch_in_flight = False
        self.exhausted = True
        self.seen_data_version = None
        if was_loading and self.shown is None:
            # The keys waiting for an item get none: refused, and "loading" gives way to "nothing left".
            return Step(shown_changed=True).then(self.act_on_waiting_keys())
        return Step()

    # -- elsewhere --------------------------------------------------------------------------------

    def answered_elsewhere(self, item_ids: Iterable[int]) -> Step:
        """Items answered on the search or review screen leave the queue."""
        answered = set(item_ids)
        if not answered:
            return Step()
        self.upcoming = deque(item for item in self.upcoming if item.item_id not in answered)
        step = Step(top_up=True)
        if self.shown is not None and self.shown.item_id in answered:
            step = self.show_next().then(step)
        return step

    def given_up(self, item_ids: Iterable[int]) -> Step:
        """Items fetched ahead that another session holds now leave the queue (the item on screen
        stays: its answer is checked when it is committed)."""
        if not self.drop_upcoming(item_ids):
            return Step()
        return Step(top_up=True)

    def drop_upcoming(self, item_ids: Iterable[int]) -> bool:
        """Remove `item_ids` from the items fetched ahead; whether any was there."""
        dropped = set(item_ids)
        before = len(self.upcoming)
        if dropped:
            self.upcoming = deque(item for item in self.upcoming if item.item_id not in dropped)
        return len(self.upcoming) != before

    def held(self) -> list[tuple[int, int]]:
        """(batch id, item id) of every queue item this session holds: on screen, fetched ahead,
        being saved — what its claims must cover."""
        items = [*self.pending.values(), *self.upcoming]
        if self.shown is not None:
            items.insert(0, self.shown)
        held = ((item.batch_id, item.item_id) for item in items if item.batch_id is not None)
        return list(dict.fromkeys(held))

    def show_next(self) -> Step:
        self.shown = self.upcoming.popleft() if self.upcoming else None
        return Step(shown_changed=True)
