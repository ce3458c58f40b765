"""Keys typed ahead (fast typing, or keys arriving in a burst over SSH) act in order, each on the item
the keys before it put on screen — also while an undo is still on its way back from the writer."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path

import pexpect
import pytest

from hnbooks.store.db import Store
from hnbooks.tui.app import AnnotateApp
from tests.helpers import publish, store_with_texts
from tests.reliability.processes import read_rows, spawn_tui, wait_for

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


BURST_ITEMS = 40


def token(n: int) -> str:
    return f"q{n:03d}q"


def burst_rows(keys: str, item_ids: list[int]) -> list[tuple[int, str]]:
    """The answer rows `keys` must write, one by one from the first item: answers in queue order,
    an undo taking back the latest answer in force (and nothing when there is none)."""
    names = {"a": "accept", "x": "reject", " ": "ignore"}
    answered: list[int] = []
    written: list[tuple[int, str]] = []
    for key in keys:
        if key == "u":
            if answered:
                written.append((answered.pop(), "undo"))
        else:
            item_id = item_ids[len(answered)]
            answered.append(item_id)
            written.append((item_id, names[key]))
    return written


def burst_store(db_path: Path) -> list[int]:
    store, ids = store_with_texts(
        db_path, [f"comment {token(n)} on compilers, nothing more" for n in range(BURST_ITEMS)]
    )
    publish(store, ids)
    store.close()
    return ids


BURSTS = [
    "a" * 30,
    "aaxuaaxuuaaa xaxuaaaauuua aaxx",
    "uaaaaaaaaaaaaauuuuuuxxxxxxxxxxuua",
]


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")
def test_a_burst_of_keys_in_a_pty_writes_one_row_per_key_in_order(tmp_path: Path) -> None:
    """Keys arriving in one read (a paste, SSH catching up) outrun the items fetched ahead: each
    still acts, in order, on the item the keys before it put on screen."""
    for number, keys in enumerate(BURSTS):
        db_path = tmp_path / f"burst{number}.db"
        ids = burst_store(db_path)
        expected = burst_rows(keys, ids)
        child = spawn_tui(db_path, "ann")
        try:
            child.expect_exact(token(0).encode())
            child.send(keys)
            wait_for(
                lambda db_path=db_path: rows(db_path),  # type: ignore[misc]
                lambda found, expected=expected: len(found) >= len(expected),  # type: ignore[misc]
                timeout=20,
                what=f"the rows of burst {keys!r}",
            )
            answered = sum(1 for _, a in expected if a != "undo") - sum(
                1 for _, a in expected if a == "undo"
            )
            child.expect_exact(token(answered).encode())
            time.sleep(0.2)  # a key acted on twice would write a row more by now
            child.send("q")
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)
        assert rows(db_path) == expected, f"burst {keys!r}"


def test_a_burst_of_keys_through_pilot_writes_one_row_per_key_in_order(tmp_path: Path) -> None:
    keys = "a" * 12 + "xuxa" + "u" * 3 + "a" * 12
    db_path = tmp_path / "pilot-burst.db"
    ids = burst_store(db_path)
    expected = burst_rows(keys, ids)

    async def scenario() -> None:
        app = AnnotateApp(db_path, "ann", clock=lambda: 1000.0)
        async with app.run_test(size=(80, 24)) as pilot:
            for _ in range(200):
                if getattr(app.screen, "shown", None) is not None:
                    break
                await pilot.pause()
                await app.workers.wait_for_complete()
            await pilot.press(*["space" if k == " " else k for k in keys])
            for _ in range(400):
                if len(rows(db_path)) >= len(expected) and not app.writes_in_flight:
                    break
                await pilot.pause(0.01)
                await app.wait_for_writes()

    asyncio.run(scenario())
    assert rows(db_path) == expected
