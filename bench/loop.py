"""The loop as an annotator lives it: a scripted annotator answering at a steady pace through the real
TUI (Pilot, headless) while the real watching scorer (`hnbooks-score --watch`, a child process)
keeps the queue filled.

    python bench/loop.py                       # 20,000 items, fake encoder, 300 answers, one every 0.3 s
    python bench/loop.py --encoder real        # the exported MiniLM (embedding 20k texts first takes minutes)

The pool is synthetic: 1 text in 100 mentions a book ("finished reading <title> by <author>"), and
the annotator answers from that gold label. `--encoder fake` is the reliability suite's hashed-words
encoder (the same scorer code, an encoder in microseconds), so the figures are the loop's and the
model's, not the encoder's. The clock starts when the first item is on screen.

Prints, as the last line, one JSON object:
{"items": N, "answers": .., "longest_wait_s": .., "empty_queue_s": .., "rounds": ..,
 "staleness_p50": .., "staleness_max": .., "answers_per_s": ..}
where a wait is key press → next item on screen, and staleness is how many answers given before an
item was answered were not yet known to the round that chose it.

The baseline (`--baseline`) is the same annotator with no watching scorer: whenever the queue is
empty, one `hnbooks-score` run (what a user did in another shell before `--watch`), the wait counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
WORDS = (
    "the a of and to in is it that for on with as was this but be have not are you they at by or from one"
    " all would there their what so up out if about who get which go me when make can like time no just"
    " rust python compiler database startup market sqlite postgres kernel linux browser server cloud"
).split()
TITLES = [
    "Dune",
    "Neuromancer",
    "Foundation",
    "Hyperion",
    "Solaris",
    "Snow Crash",
    "Anathem",
    "Blindsight",
]
AUTHORS = ["Herbert", "Gibson", "Asimov", "Simmons", "Lem", "Stephenson", "Watts"]
MARKER = "finished reading"


def build_pool(path: Path, items: int, seed: int = 3) -> None:
    from hnbooks.store import Store
    from hnbooks.store.records import IncomingItem

    rng = random.Random(seed)
    texts = []
    for n in range(items):
        words = " ".join(rng.choices(WORDS, k=rng.randint(8, 30)))
        if n % 100 == 0:
            words += f" I {MARKER} {rng.choice(TITLES)} by {rng.choice(AUTHORS)}, a great book"
        texts.append(f"{words} #{n}")
    with Store(path) as store:
        store.add_items([IncomingItem(n + 1, text, {}) for n, text in enumerate(texts)], "bench")


def scorer_command(db_path: Path, encoder: str, batch_size: int) -> list[str]:
    if encoder == "fake":
        child = ["-m", "tests.reliability.score_child"]
    else:
        child = ["-c", "from hnbooks.scoring.cli import main; main()"]
    return [
        sys.executable,
        *child,
        "--watch",
        "--db",
        str(db_path),
        "--batch-size",
        str(batch_size),
    ]


async def annotate(
    db_path: Path,
    answers: int,
    pace_s: float,
    first_item_timeout_s: float,
    refill: list[str] | None = None,
) -> dict[str, Any]:
    """Answer `answers` items; with `refill`, run that one-shot scorer command whenever the queue is
    empty (the user's trip to another shell), as the baseline does."""
    from textual import events

    from hnbooks.tui.annotate import AnnotateScreen
    from hnbooks.tui.app import AnnotateApp

    app = AnnotateApp(db_path, "bench-loop", poll_interval_s=0.2)
    waits: list[float] = []
    empty_s = 0.0
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, AnnotateScreen)
        deadline = time.perf_counter() + first_item_timeout_s
        while screen.shown is None:
            if time.perf_counter() > deadline:
                raise SystemExit("no first item: is the scorer running? (see the scorer log)")
            await asyncio.sleep(0.05)
        started = time.perf_counter()
        for _ in range(answers):
            shown = screen.shown
            assert shown is not None
            key = "a" if MARKER in shown.item.text else "x"
            pressed = time.perf_counter()
            app._driver.send_message(events.Key(key, key))  # type: ignore[union-attr]
            # The next item: a different one on screen (or, with an empty queue, the first to come).
            emptied_at: float | None = None
            while screen.shown is None or screen.shown.instance == shown.instance:
                if screen.shown is None and emptied_at is None:
                    emptied_at = time.perf_counter()
                    if refill is not None:
                        await app.wait_for_writes()
                        await asyncio.to_thread(
                            subprocess.run, refill, cwd=REPO_ROOT, capture_output=True, check=True
                        )
                await asyncio.sleep(0.002)
            shown_at = time.perf_counter()
            waits.append(shown_at - pressed)
            if emptied_at is not None:
                empty_s += shown_at - emptied_at
            await pilot.pause()
            await asyncio.sleep(pace_s)
        elapsed = time.perf_counter() - started
        await app.wait_for_writes()
        await pilot.press("q")
    return {"waits": waits, "empty_s": empty_s, "elapsed_s": elapsed}


def staleness(db_path: Path, annotator: str) -> list[int]:
    """Per answer: answers given before it that the round which chose its item did not know."""
    import sqlite3

    conn = sqlite3.connect(db_path)
    try:
        reports = {
            batch_id: json.loads(report).get("answers", 0)
            for batch_id, report in conn.execute(
                "SELECT b.id, r.report FROM batches b JOIN rounds r ON r.id = b.round_id"
            )
        }
        rows = conn.execute(
            "SELECT a.batch_id, (SELECT COUNT(*) FROM effective_answers e WHERE e.id < a.id)"
            " FROM effective_answers a WHERE a.annotator = ? ORDER BY a.id",
            (annotator,),
        ).fetchall()
    finally:
        conn.close()
    return [
        max(0, before - reports.get(batch_id, 0))
        for batch_id, before in rows
        if batch_id in reports
    ]


def run(args: argparse.Namespace, *, watching: bool) -> dict[str, Any]:
    from hnbooks.store import Store

    folder = Path(tempfile.mkdtemp(prefix="hnbooks-loop-"))
    db_path = folder / "loop.db"
    build_pool(db_path, args.items)
    watch_command = scorer_command(db_path, args.encoder, args.batch_size)
    once_command = [part for part in watch_command if part != "--watch"]
    log_path = folder / "scorer.log"
    scorer = None
    with log_path.open("w") as log:
        if watching:
            scorer = subprocess.Popen(
                watch_command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        else:
            subprocess.run(once_command, cwd=REPO_ROOT, stdout=log, stderr=log, check=True)
        try:
            result = asyncio.run(
                annotate(
                    db_path,
                    args.answers,
                    args.pace_s,
                    args.first_item_timeout_s,
                    refill=None if watching else once_command,
                )
            )
        finally:
            if scorer is not None:
                scorer.send_signal(signal.SIGTERM)
                scorer.wait(timeout=30)
    with Store(db_path, create=False) as store:
        rounds = len(store.rounds())
    stale = staleness(db_path, "bench-loop")
    waits = result["waits"]
    return {
        "items": args.items,
        "answers": len(waits),
        "longest_wait_s": round(max(waits), 3),
        "median_wait_ms": round(1000 * statistics.median(waits), 1),
        "empty_queue_s": round(result["empty_s"], 2),
        "rounds": rounds,
        "staleness_p50": int(statistics.median(stale)) if stale else None,
        "staleness_max": max(stale) if stale else None,
        "answers_per_s": round(len(waits) / result["elapsed_s"], 2),
        "scorer_log": str(log_path),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--answers", type=int, default=300)
    parser.add_argument("--pace-s", type=float, default=0.3, help="reading time between answers")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--encoder", choices=("fake", "real"), default="fake")
    parser.add_argument("--first-item-timeout-s", type=float, default=900)
    parser.add_argument("--baseline", action="store_true", help="also run the no-watch baseline")
    args = parser.parse_args()
    watched = run(args, watching=True)
    print(f"with the watching scorer: {json.dumps(watched)}", file=sys.stderr)
    if args.baseline:
        baseline = run(args, watching=False)
        print(
            f"baseline, hnbooks-score run whenever the queue is empty: {json.dumps(baseline)}",
            file=sys.stderr,
        )
        watched["baseline_empty_queue_s"] = baseline["empty_queue_s"]
        watched["baseline_longest_wait_s"] = baseline["longest_wait_s"]
    print(json.dumps(watched))


if __name__ == "__main__":
    main()
