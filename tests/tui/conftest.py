"""Builders for TUI tests: a small database with texts and a published batch, and Pilot helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from hnbooks.store.db import Store
from hnbooks.store.records import BatchEntry, IncomingItem
from hnbooks.tui.app import AnnotateApp

TEXTS = [
    'I finally read "The Hobbit" last winter and loved it.',
    "Dune by Frank Herbert is still the best science fiction novel.",
    "Rust's borrow checker is annoying at first, then it clicks.",
    "Has anyone tried Zen and the Art of Motorcycle Maintenance? Worth it?",
    "We migrated our Postgres cluster over the weekend.",
    "see https://www.goodreads.com/book/show/5907.The_Hobbit for reviews",
]


def insert_items(
    store: Store, texts: list[str], metas: list[dict[str, Any]] | None = None
) -> list[int]:
    """Insert `texts` as items (what `hnbooks import` would store) and return their ids in order."""
    incoming = []
    for n, text in enumerate(texts):
        meta = metas[n] if metas else {"id": 1000 + n}
        incoming.append(
            IncomingItem(
                line=n + 1, text=text, meta=meta, external_id=f"hn:{meta.get('id', 1000 + n)}"
            )
        )
    return store.add_items(incoming, "test")


def publish(store: Store, item_ids: list[int], strategy: str = "top") -> int:
    entries = [
        BatchEntry(item_id, strategy, round(0.9 - n / 100, 3), n + 1)
        for n, item_id in enumerate(item_ids)
    ]
    return store.publish_batch(entries, source="test")


IDLE_GRANULARITY_S = 1 / 100
"""How long Pilot's idle check sleeps between looks (Textual's default 1/50 s): each key press and
pause waits at least two of these, most of the TUI tests' time. The share of it that counts as
busy is Textual's (1/20). A value much smaller (1/200) let some checks read the screen before a
worker's result had landed."""


@pytest.fixture(autouse=True, scope="package")
def quick_idle_checks() -> Iterator[None]:
    """Pilot's waits for an idle app look twice as often, each look still asking the app to have
    been busy for under 1/20 of it."""
    from textual import _wait

    saved = _wait.SLEEP_GRANULARITY, _wait.SLEEP_IDLE
    _wait.SLEEP_GRANULARITY = IDLE_GRANULARITY_S
    _wait.SLEEP_IDLE = IDLE_GRANULARITY_S / 20
    yield
    _wait.SLEEP_GRANULARITY, _wait.SLEEP_IDLE = saved


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "tui.db"


@pytest.fixture
def store(db_path: Path) -> Store:
    opened = Store(db_path)
    yield opened
    opened.close()


@pytest.fixture
def item_ids(store: Store) -> list[int]:
    return insert_items(store, TEXTS)


@pytest.fixture
def batch(store: Store, item_ids: list[int]) -> int:
    return publish(store, item_ids[:4])


def make_app(db_path: Path, annotator: str = "ann", **kwargs: Any) -> AnnotateApp:
    # A fixed clock keeps the rate shown (and so the snapshots) the same on every run.
    kwargs.setdefault("clock", lambda: 1000.0)
    return AnnotateApp(db_path, annotator, **kwargs)


async def wait_until(
    pilot: Pilot[None], condition: Callable[[], bool], attempts: int = 400
) -> None:
    """Let the app work until `condition` holds (each attempt waits for the app to go idle; 400
    of them wait about as long as 200 did at Textual's own idle granularity)."""
    for _ in range(attempts):
        if condition():
            return
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    raise AssertionError("condition never held")


async def settle(pilot: Pilot[None]) -> None:
    """Wait for the workers (fetch, writer) and the messages they post."""
    app = pilot.app
    assert isinstance(app, AnnotateApp)
    await app.wait_for_writes()
    await app.workers.wait_for_complete()
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


def screen_text(app: AnnotateApp) -> str:
    """What the terminal shows, as plain text lines (for asserting on and for reviewing layouts)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join(strip.text.rstrip() for strip in strips)
