"""Latency of the annotate screen on a large database: answering key press → next item painted.

    python bench/tui.py                 # 1,000,000 items (built once, then reused from --db)
    python bench/tui.py --items 20000   # a quick run
    python bench/tui.py --items 10000000 --db /tmp/bench10m/pool-10000000.db   # reuse a pool

Builds (or reuses) a database of short synthetic items with a published batch, starts `AnnotateApp`
headless under Pilot, and for each of `--answers` answers sends one key event and waits for the
first frame painted with the next item on it (the compositor's update, turned into the terminal
bytes a real terminal would get). Start-up is measured from before importing the app to the first
item painted. The baseline, run in the same process on the same file, is the same app with the
answer committed and the next item read (and claimed for the session) on the UI thread before it
is shown (commit, then show).

Prints a table, then as the last line one JSON object:
{"items": N, "next_item_p50_ms": .., "next_item_p99_ms": .., "startup_s": .., "fts_search_ms": ..,
"bytes_per_item": ..} (`fts_search_ms`: the slowest query's median; bytes: the database file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic_pool import disk_bytes  # noqa: E402

PREFETCH_MARGIN = 20
# Time between two answering key presses: 20 per second, faster than anyone reads a comment. It
# also keeps each press out of the frame just painted (Textual paints at most every 1/60 s).
KEY_INTERVAL_S = 0.05


def build_database(path: Path, items: int, batch_size: int, seed: int = 7) -> None:
    """`items` synthetic comments (written in bulk) and one published batch of random ones."""
    from synthetic_pool import bulk_items

    bulk_items(path, items, seed)
    ensure_queue(path, batch_size, seed)


def ensure_queue(path: Path, batch_size: int, seed: int = 7) -> None:
    """Publish a batch of random items unless the published batches hold `batch_size` already (a
    fresh annotator is served every published item, so a reused file needs no new batch)."""
    from hnbooks.store.db import Store
    from hnbooks.store.records import BatchEntry

    rng = random.Random(seed)
    with Store(path, create=False) as store:
        waiting = store.remaining_for(f"bench-fresh-{uuid.uuid4().hex[:8]}")
        if waiting >= batch_size:
            return
        picked = rng.sample(range(1, store.max_item_id() + 1), batch_size)
        store.publish_batch(
            [
                BatchEntry(item_id, "top", 1.0 - rank / batch_size, rank + 1)
                for rank, item_id in enumerate(picked)
            ],
            source="bench",
        )


def fts_search_ms(db_path: Path, repeats: int = 5) -> dict[str, float]:
    """Median time of a keyword search (first 50 hits) per query, on a warm connection."""
    from hnbooks.store.db import Store

    timings: dict[str, float] = {}
    with Store(db_path, create=False) as store:
        for query in ("Neuromancer", "book author", "rust compiler sqlite", "Gödel Escher Bach"):
            store.search(query, limit=50)
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                store.search(query, limit=50)
                times.append((time.perf_counter() - started) * 1000)
            timings[query] = statistics.median(times)
    return timings


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


async def measure_app(
    db_path: Path, annotator: str, answers: int, *, synchronous: bool = False
) -> dict[str, Any]:
    # Start-up counts importing Textual and the app (the store modules may be loaded already).
    import_started_at = time.perf_counter()
    from textual import events

    from hnbooks.store.records import AnswerValue, NewAnswer
    from hnbooks.tui.annotate import AnnotateScreen
    from hnbooks.tui.app import AnnotateApp
    from hnbooks.tui.session import shown_from_queue

    imported_at = time.perf_counter()
    app = AnnotateApp(db_path, annotator)
    painted = asyncio.Event()
    waiting_for: dict[str, int | None] = {"previous_item_id": None}
    paint_times: list[float] = []
    paint_cpu_times: list[float] = []

    original_display = app._display

    def display(screen: Any, renderable: Any) -> None:
        original_display(screen, renderable)
        if renderable is None:
            return
        # Headless, Textual skips turning the update into terminal bytes; a terminal would need them.
        if hasattr(renderable, "render_segments"):
            renderable.render_segments(app.console)
        annotate = app.screen
        if not isinstance(annotate, AnnotateScreen) or annotate.shown is None:
            return
        if annotate.shown.item_id != waiting_for["previous_item_id"]:
            paint_times.append(time.perf_counter())
            paint_cpu_times.append(time.thread_time())
            painted.set()

    app._display = display  # type: ignore[method-assign]
    latencies_ms: list[float] = []
    cpu_ms: list[float] = []
    async with app.run_test(size=(80, 24)) as pilot:
        await asyncio.wait_for(painted.wait(), 30)
        startup_s = paint_times[0] - import_started_at
        app_start_s = paint_times[0] - imported_at
        screen = app.screen
        assert isinstance(screen, AnnotateScreen)
        if synchronous:

            def commit_then_show(answer: AnswerValue) -> None:
                shown = screen.shown
                assert shown is not None
                app.store.record_queued_answer(
                    shown.item_id,
                    NewAnswer(
                        app.annotator, answer, label=shown.label, batch_id=shown.batch_id,
                        strategy=shown.strategy, score=shown.score,
                        client_key=f"bench:{shown.instance}",
                    ),
                )  # fmt: skip
                queued = app.store.next_queued_item(app.annotator, session=app.session_id)
                screen.queue.shown = None if queued is None else shown_from_queue(app.store, queued)
                screen.render_shown()

            screen.action_answer = commit_then_show  # type: ignore[method-assign]
        await pilot.pause()
        for n in range(answers):
            shown = screen.shown
            assert shown is not None, "the batch ran out: publish a bigger one (--batch-size)"
            waiting_for["previous_item_id"] = shown.item_id
            painted.clear()
            key = "a" if n % 7 == 0 else "x"
            pressed_at, pressed_cpu = time.perf_counter(), time.thread_time()
            app._driver.send_message(events.Key(key, key))  # type: ignore[union-attr]
            await asyncio.wait_for(painted.wait(), 10)
            latencies_ms.append((paint_times[-1] - pressed_at) * 1000)
            # CPU the UI thread spent on it: what the latency tends to on an idle machine.
            cpu_ms.append((paint_cpu_times[-1] - pressed_cpu) * 1000)
            # Let the writer and the prefetch finish, as between two human key presses.
            await pilot.pause()
            await asyncio.sleep(KEY_INTERVAL_S)
        await app.wait_for_writes()
        await pilot.press("q")
    return {
        "latencies_ms": latencies_ms,
        "cpu_ms": cpu_ms,
        "startup_s": startup_s,
        "app_start_s": app_start_s,
        "import_s": imported_at - import_started_at,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--answers", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=300)
    parser.add_argument(
        "--db",
        type=Path,
        help="database to reuse or build (default: one per --items in the temp dir)",
    )
    args = parser.parse_args()
    if args.batch_size < args.answers + PREFETCH_MARGIN:
        parser.error("--batch-size must exceed --answers by at least 20 (items are fetched ahead)")
    db_path = args.db or Path(tempfile.gettempdir()) / f"hnbooks-bench-tui-{args.items}.db"
    if not db_path.exists():
        print(f"building {db_path} with {args.items:,} items…", file=sys.stderr)
        build_database(db_path, args.items, args.batch_size)
    else:
        ensure_queue(db_path, args.batch_size)

    run = uuid.uuid4().hex[:8]
    # A fresh annotator per run: the published batch is unanswered for it, so the file is reusable.
    result = asyncio.run(measure_app(db_path, f"bench-tui-{run}", args.answers))
    baseline_ms = asyncio.run(
        measure_app(db_path, f"bench-sync-{run}", args.answers, synchronous=True)
    )["latencies_ms"]

    from hnbooks.store.db import Store

    with Store(db_path, create=False) as store:
        item_count = store.item_count()
    searches = fts_search_ms(db_path)
    on_disk = disk_bytes(db_path)

    latencies = result["latencies_ms"]
    p50, p90, p99 = (percentile(latencies, q) for q in (0.5, 0.9, 0.99))
    base_p50, base_p99 = percentile(baseline_ms, 0.5), percentile(baseline_ms, 0.99)
    load_1min = os.getloadavg()[0]
    rows = [
        ("items in the database", f"{item_count:,}", ""),
        (
            "machine load (1 min average)",
            f"{load_1min:.1f}",
            f"on {os.cpu_count()} CPUs: figures scale with it",
        ),
        (
            "answers timed",
            f"{len(latencies)}",
            f"one key press every ≥ {KEY_INTERVAL_S * 1000:.0f} ms",
        ),
        ("next item painted, p50", f"{p50:.2f} ms", "target ≤ 16 ms (one frame)"),
        ("next item painted, p90", f"{p90:.2f} ms", ""),
        ("next item painted, p99", f"{p99:.2f} ms", "target ≤ 16 ms"),
        ("next item painted, max", f"{max(latencies):.2f} ms", ""),
        ("mean", f"{statistics.fmean(latencies):.2f} ms", ""),
        (
            "UI-thread CPU, key → paint, p50",
            f"{percentile(result['cpu_ms'], 0.5):.2f} ms",
            "the floor on an idle machine",
        ),
        ("UI-thread CPU, key → paint, p99", f"{percentile(result['cpu_ms'], 0.99):.2f} ms", ""),
        (
            "baseline (commit, then show), p50",
            f"{base_p50:.2f} ms",
            f"{base_p50 / p50:.2f}× the TUI's p50",
        ),
        (
            "baseline (commit, then show), p99",
            f"{base_p99:.2f} ms",
            f"{base_p99 / p99:.2f}× the TUI's p99",
        ),
        (
            "start-up to first item painted",
            f"{result['startup_s']:.3f} s",
            "target ≤ 1 s (includes imports)",
        ),
        ("  of which importing the app", f"{result['import_s']:.3f} s", ""),
        ("  of which app start → first item", f"{result['app_start_s']:.3f} s", ""),
        *(
            (f"keyword search {query!r}, 50 hits", f"{ms:.1f} ms", "target ≤ 200 ms")
            for query, ms in searches.items()
        ),
        ("database on disk per item", f"{on_disk['database'] / item_count:.0f} B", "with FTS"),
    ]
    width = max(len(name) for name, _, _ in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>12}  {note}")
    print(
        json.dumps(
            {
                "items": item_count,
                "next_item_p50_ms": round(p50, 3),
                "next_item_p99_ms": round(p99, 3),
                "startup_s": round(result["startup_s"], 3),
                "fts_search_ms": round(max(searches.values()), 1),
                "bytes_per_item": round(on_disk["database"] / item_count),
                "load_1min": round(load_1min, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
