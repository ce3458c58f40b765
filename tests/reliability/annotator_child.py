"""A simulated annotator, at the store level, as its own process — a child for the reliability tests.

    python -m tests.reliability.annotator_child DB NAME LOG [--seconds S] [--until-empty] ...

Says `ready` once imported, waits for a line on stdin (so several start together), then answers the first item of its queue
every few milliseconds (sometimes undoing instead), exactly as the TUI's writer does: one
`record_answer` with a fresh client key per answer, one `undo_last` per undo. With `--session` it
is one TUI session: items are claimed as they are served, answers go through
`record_queued_answer` (an item done elsewhere meanwhile is logged as `skipped`), undos claim
their item back, and the claims are released at the end. Every item served, every row written and
every error is logged as JSON lines to LOG, for the parent to compare with the database.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("annotator")
    parser.add_argument("log")
    parser.add_argument("--seconds", type=float, default=10.0, help="stop after this long")
    parser.add_argument("--until-empty", action="store_true", help="stop when the queue is empty")
    parser.add_argument("--pace-ms", type=float, default=3.0, help="longest pause between answers")
    parser.add_argument("--undo-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--session", action="store_true", help="claim items as one TUI session")
    args = parser.parse_args()

    from hnbooks.store.claims import new_session_id
    from hnbooks.store.db import Store
    from hnbooks.store.records import NewAnswer

    rng = random.Random(args.seed)
    print("ready", flush=True)  # imported: the parent starts everyone at once from here
    sys.stdin.readline()  # the start signal
    events: list[dict[str, object]] = []
    store = Store(args.db, create=False)
    session = new_session_id() if args.session else None
    started = time.time()
    deadline = time.monotonic() + args.seconds
    answered_here = 0
    events.append(
        {
            "event": "start",
            "at": started,
            "latest_batch": store.latest_batch_id(),
            "session": session,
        }
    )
    while time.monotonic() < deadline:
        try:
            clock = time.perf_counter()
            if answered_here and rng.random() < args.undo_rate:
                undone = (
                    store.undo_last(args.annotator)
                    if session is None
                    else store.undo_last_claiming(args.annotator, session=session)
                )
                events.append(
                    {
                        "event": "undo",
                        "undone": None if undone is None else undone.id,
                        "item": None if undone is None else undone.item_id,
                        "seconds": time.perf_counter() - clock,
                    }
                )
                answered_here -= 1
            else:
                queued = store.next_queued_item(args.annotator, session=session)
                if queued is None:
                    if args.until_empty:
                        break
                    time.sleep(
                        0.01
                    )  # pacing while the queue is empty: the scorer publishes meanwhile
                    continue
                events.append({"event": "served", "item": queued.item.id, "batch": queued.batch_id})
                answer = rng.choice(["accept", "reject", "ignore"])
                clock = time.perf_counter()
                new = NewAnswer(
                    args.annotator,
                    answer,
                    batch_id=queued.batch_id,
                    strategy=queued.strategy,
                    score=queued.score,
                    client_key=uuid.uuid4().hex,
                )
                write = store.record_answer if session is None else store.record_queued_answer
                answer_id = write(queued.item.id, new)
                if answer_id is None:
                    events.append({"event": "skipped", "item": queued.item.id})
                    continue
                events.append(
                    {
                        "event": "answer",
                        "id": answer_id,
                        "item": queued.item.id,
                        "batch": queued.batch_id,
                        "answer": answer,
                        "seconds": time.perf_counter() - clock,
                    }
                )
                answered_here += 1
        except Exception as error:  # noqa: BLE001 - every failure is what the test looks for
            events.append({"event": "error", "error": f"{type(error).__name__}: {error}"})
        time.sleep(rng.uniform(0, args.pace_ms / 1000))  # an annotator's pace, not synchronisation
    if session is not None:
        store.release_claims(session)
    store.close()
    with open(args.log, "w", encoding="utf-8") as handle:
        for event in events:
            handle.write(json.dumps(event) + "\n")


if __name__ == "__main__":
    main()
