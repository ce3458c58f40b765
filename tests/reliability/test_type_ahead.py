"""Keys typed ahead (fast typing, or keys arriving in a burst over SSH) act in order, each on the item
the keys before it put on screen — also while an undo is still on its way back from the writer."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from hnbooks.store.db import Store
from hnbooks.tui.app import AnnotateApp
from tests.helpers import publish, store_with_texts
from tests.reliability.processes import read_rows

TEXTS = ["first comment here", "second comment here", "third comment here"]


def rows(db_path: Path) -> list[tuple[int, str]]:
    return [
        (int(i), str(a))
        for i, a in read_rows(db_path, "SELECT item_id, answer FROM answers ORDER BY id")
    ]


def test_an_answer_typed_before_the_undo_returns_answers_the_undone_item(tmp_path: Path) -> None:
    db_path = tmp_path / "typeahead.db"
    store, ids = store_with_texts(db_path, TEXTS)
    publish(store, ids)
    store.close()

    async def scenario() -> None:
        app = AnnotateApp(db_path, "ann", clock=lambda: 1000.0)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = app.screen
            for _ in range(200):
                if getattr(screen, "shown", None) is not None:
                    break
                await pilot.pause()
                await app.workers.wait_for_complete()
            # The writer takes its time over the undo, as on a busy disk or behind the scorer's lock.
            undo_may_finish = threading.Event()
            undo_last = app.store.undo_last_claiming

            def slow_undo_last(annotator: str, **kwargs: object) -> object:
                undo_may_finish.wait(10)
                return undo_last(annotator, **kwargs)  # type: ignore[arg-type]

            app.store.undo_last_claiming = slow_undo_last  # type: ignore[assignment, method-assign]
            await pilot.press("x", "u", "a")
            undo_may_finish.set()
            for _ in range(400):
                if len(rows(db_path)) >= 3 and not app.writes_in_flight:
                    break
                await pilot.pause(0.01)
                await app.wait_for_writes()

    asyncio.run(scenario())
    first = ids[0]
    assert rows(db_path) == [(first, "reject"), (first, "undo"), (first, "accept")]
    with Store(db_path) as store:
        assert [a.item_id for a in store.current_answers()] == [first]
