"""Reviewed screenshots (pytest-textual-snapshot) of the screens at 80×24 and 120×40.

Regenerate with `pytest tests/tui/test_snapshots.py --snapshot-update`, then look at the SVGs in
`__snapshots__/` before committing them. The clock is fixed (see `make_app`), so the rate shown is too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from hnbooks.store.db import Store
from hnbooks.store.records import BatchEntry
from hnbooks.store.reports import BatchYieldReport, EstimateReport, RoundReport
from tests.tui.conftest import insert_items, make_app, settle

SnapCompare = Callable[..., bool]

COMMENT = (
    'Loved "The Hobbit" as a kid, and *Dune* by Frank Herbert later. If you like systems thinking, '
    "try Zen and the Art of Motorcycle Maintenance — slow going at first. [bold]Markup[/bold] and "
    "\x1b[31mescapes\x1b[0m stay literal."
)
PARENT = "Ask HN: What books changed how you think about software?"


def after(*keys: str) -> Callable[[Pilot[None]], Any]:
    """A run_before for snap_compare: wait for the queue, press `keys`, wait for the workers."""

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        if keys:
            await pilot.press(*keys)
        await settle(pilot)

    return run_before


def comment_db(db_path: Path) -> Path:
    store = Store(db_path)
    store.add_label("AUTHOR")
    ids = insert_items(
        store, [PARENT, COMMENT], metas=[{"id": 41, "title": PARENT}, {"id": 42, "parent": 41}]
    )
    store.publish_batch([BatchEntry(ids[1], "uncertain", 0.473, 12)], source="score")
    store.close()
    return db_path


def test_annotate_with_candidates_and_a_marked_span_80x24(
    snap_compare: SnapCompare, db_path: Path
) -> None:
    """A span marked from the first candidate; the next candidate selected; the rest underlined."""
    app = make_app(comment_db(db_path))
    assert snap_compare(app, terminal_size=(80, 24), run_before=after("tab", "enter", "tab"))


def test_annotate_with_parent_and_two_labels_120x40(
    snap_compare: SnapCompare, db_path: Path
) -> None:
    """Parent panel open (p); a BOOK span and an AUTHOR span marked by keyboard."""
    app = make_app(comment_db(db_path))
    keys = ("p", "tab", "tab", "enter", "2", "l", "l", "L", "enter", "1")
    assert snap_compare(app, terminal_size=(120, 40), run_before=after(*keys))


def test_waiting_for_a_batch_80x24(snap_compare: SnapCompare, db_path: Path) -> None:
    """No batch left: the screen says so and that it is watching."""
    Store(db_path).close()
    app = make_app(db_path)
    assert snap_compare(app, terminal_size=(80, 24), run_before=after())


def test_help_80x24(snap_compare: SnapCompare, db_path: Path) -> None:
    app = make_app(comment_db(db_path))
    assert snap_compare(app, terminal_size=(80, 24), run_before=after("question_mark"))


def test_stats_120x40(snap_compare: SnapCompare, db_path: Path, store: Store) -> None:
    """Three rounds: a seed round without estimates, then two model rounds."""
    ids = insert_items(store, [f"comment number {n}" for n in range(3)])
    store.record_round(RoundReport(mode="seed", label="BOOK"))
    for number, (top, random, recall) in enumerate([(3, 1, 0.3), (7, 2, 0.55)]):
        store.publish_batch(
            [BatchEntry(ids[number], "top", 0.9, 1)],
            source="score",
            round_report=RoundReport(
                mode="model",
                label="BOOK",
                answers=100 * (number + 1),
                positives=top + random,
                last_batch=BatchYieldReport(
                    number + 1, {"top": 10, "random": 10}, {"top": top, "random": random}
                ),
                prevalence=EstimateReport(0.0002, 0.0001, 0.0004, 50),
                recall=EstimateReport(recall, recall - 0.1, recall + 0.2, 50),
            ),
        )
    app = make_app(db_path)
    assert snap_compare(app, terminal_size=(120, 40), run_before=after("s"))
