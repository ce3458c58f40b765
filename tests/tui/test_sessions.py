"""Several sessions on one database through Pilot: the same annotator in two terminals, split feed,
claims released on quit, progress read back after a restart, and the scorer in the header — the
lease shown, a round asked for with `n`, a stand-in scorer started and stopped by the app."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from hnbooks.store.db import Store
from hnbooks.store.records import NewAnswer
from hnbooks.store.scorer import LeaseHolder
from hnbooks.tui.annotate import AnnotateScreen
from hnbooks.tui.app import AnnotateApp
from hnbooks.tui.cli import main as tui_main
from hnbooks.tui.help import HelpScreen, help_text
from tests.tui.conftest import insert_items, make_app, publish, screen_text, settle
from tests.tui.test_scorer_process import wait_gone

REPO_ROOT = Path(__file__).resolve().parents[2]


def annotate_screen(app: AnnotateApp) -> AnnotateScreen:
    screen = app.screen
    assert isinstance(screen, AnnotateScreen)
    return screen


def shown_id(app: AnnotateApp) -> int | None:
    shown = annotate_screen(app).shown
    return None if shown is None else shown.item_id


def recording(app: AnnotateApp) -> list[str]:
    """The notifications the app shows, as they come."""
    notified: list[str] = []
    notify = app.notify

    def record(message: str, **kwargs: Any) -> None:
        notified.append(message)
        notify(message, **kwargs)

    app.notify = record  # type: ignore[method-assign]
    return notified


def answered_items(store: Store, annotator: str) -> list[int]:
    return [a.item_id for a in store.current_answers(annotator=annotator)]


def test_one_annotator_in_two_terminals_is_never_shown_the_same_item(
    db_path: Path, store: Store, item_ids: list[int]
) -> None:
    publish(store, item_ids)
    seen: dict[str, list[int]] = {"left": [], "right": []}

    async def together() -> None:
        left, right = make_app(db_path, "ann"), make_app(db_path, "ann")
        async with left.run_test(size=(80, 24)) as lp, right.run_test(size=(80, 24)) as rp:
            await settle(lp)
            await settle(rp)
            pilots = {"left": (left, lp), "right": (right, rp)}
            for _ in range(len(item_ids)):
                for name, (app, pilot) in pilots.items():
                    shown = shown_id(app)
                    if shown is None:
                        continue
                    # Whatever one terminal shows, the other neither shows nor holds ahead.
                    other = pilots["right" if name == "left" else "left"][0]
                    assert shown not in annotate_screen(other).queue.known_item_ids()
                    seen[name].append(shown)
                    await pilot.press("x")
                    await settle(pilot)
            assert shown_id(left) is None and shown_id(right) is None

    asyncio.run(together())
    assert seen["left"] and seen["right"]
    assert not set(seen["left"]) & set(seen["right"])
    assert sorted(seen["left"] + seen["right"]) == sorted(item_ids)
    assert sorted(answered_items(store, "ann")) == sorted(item_ids)
    rows = store.current_answers(annotator="ann")
    assert len(rows) == len({a.item_id for a in rows}) == len(item_ids)


def test_split_feed_gives_each_item_to_one_annotator(
    db_path: Path, store: Store, item_ids: list[int]
) -> None:
    publish(store, item_ids)

    async def together() -> None:
        alice = make_app(db_path, "alice", feed="split")
        bob = make_app(db_path, "bob")
        async with alice.run_test(size=(80, 24)) as ap, bob.run_test(size=(80, 24)) as bp:
            await settle(ap)
            await settle(bp)
            assert "feed split" in screen_text(alice) and "feed split" in screen_text(bob)
            for _ in range(len(item_ids)):
                for app, pilot in ((alice, ap), (bob, bp)):
                    if shown_id(app) is not None:
                        await pilot.press("a")
                        await settle(pilot)
            assert shown_id(alice) is None and shown_id(bob) is None

    asyncio.run(together())
    assert store.feed_mode() == "split"
    by_alice, by_bob = answered_items(store, "alice"), answered_items(store, "bob")
    assert by_alice and by_bob
    assert not set(by_alice) & set(by_bob)
    assert sorted(by_alice + by_bob) == sorted(item_ids)


def test_an_item_answered_in_another_session_meanwhile_is_skipped_not_answered_twice(
    db_path: Path, store: Store, batch: int, item_ids: list[int]
) -> None:
    async def scenario() -> None:
        app = make_app(db_path, "ann")
        notified = recording(app)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            on_screen = shown_id(app)
            assert on_screen == item_ids[0]
            # Another terminal of ann answered it after this one's claim lapsed (or ignoring it),
            # and one of the items fetched ahead too.
            store.record_answer(item_ids[0], NewAnswer("ann", "reject", batch_id=batch))
            store.record_answer(item_ids[2], NewAnswer("ann", "reject", batch_id=batch))
            await pilot.press("a")
            await settle(pilot)
            assert shown_id(app) == item_ids[1]
            assert any("already answered in another session" in n for n in notified)
            await pilot.press("a")
            await settle(pilot)
            # The one fetched ahead was dropped when the queue was topped up.
            assert shown_id(app) == item_ids[3]

    asyncio.run(scenario())
    assert [(a.item_id, a.answer) for a in store.current_answers(annotator="ann")] == [
        (item_ids[0], "reject"),
        (item_ids[2], "reject"),
        (item_ids[1], "accept"),
    ]


def test_claims_cover_what_the_session_holds_and_are_released_on_quit(
    db_path: Path, store: Store, batch: int, item_ids: list[int]
) -> None:
    async def scenario() -> str:
        app = make_app(db_path, "ann", claim_ttl_s=0.4)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            held = set(annotate_screen(app).queue.known_item_ids())
            assert held == set(item_ids[:4])
            assert store.claimed_item_ids(app.session_id) == held
            # Renewed every quarter of its time to live: still claimed long after it would lapse.
            await pilot.pause(1.0)
            assert store.claimed_item_ids(app.session_id) == held
            await pilot.press("q")
            await pilot.pause()
        return app.session_id

    session_id = asyncio.run(scenario())
    assert store.claimed_item_ids(session_id) == set()
    assert store.next_queued_item("ann", session="other") is not None


def test_progress_is_the_database_s_and_the_same_after_a_restart(
    db_path: Path, store: Store, batch: int
) -> None:
    async def first_session() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("a", "x")
            await settle(pilot)
            assert "2 answered · 2 today · 1 positive · 24/h · 2 left" in screen_text(app)
            await pilot.press("q")

    async def second_session() -> None:
        app = make_app(db_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert "2 answered · 2 today · 1 positive · 24/h · 2 left" in screen_text(app)
            await pilot.press("u")
            await settle(pilot)
            assert "1 answered · 1 today · 1 positive" in screen_text(app)

    asyncio.run(first_session())
    asyncio.run(second_session())


def test_the_header_shows_the_scorer_s_lease_and_the_waiting_text_says_it_prepares_a_batch(
    db_path: Path, store: Store
) -> None:
    holder = LeaseHolder.this_process("watch")
    store.acquire_scorer_lease(holder)
    store.set_scorer_state(holder, "embedding", progress=0.34)

    async def scenario() -> None:
        app = make_app(db_path, poll_interval_s=0.05)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            shown = screen_text(app)
            assert "feed overlap · scorer: embedding 34%" in shown
            assert "The scorer is preparing the next batch (embedding 34%)" in shown
            assert "No scorer is running" not in shown
            store.set_scorer_state(holder, "idle", answers_before_next_round=7, round_finished=True)
            for _ in range(100):
                await pilot.pause(0.02)
                if "scorer: idle" in screen_text(app):
                    break
            assert "scorer: idle · last round 0 s ago · next after 7 answers" in screen_text(app)
            store.release_scorer_lease(holder)
            for _ in range(100):
                await pilot.pause(0.02)
                if "scorer: none" in screen_text(app):
                    break
            shown = screen_text(app)
            assert "scorer: none (run hnbooks-score --watch)" in shown
            assert "No scorer is running:\n  start one with `hnbooks-score --watch`" in shown

    asyncio.run(scenario())


def test_n_asks_the_scorer_for_a_round_and_the_help_lists_it(
    db_path: Path, store: Store, batch: int
) -> None:
    async def scenario() -> None:
        app = make_app(db_path)
        notified = recording(app)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("n")
            await settle(pilot)
            assert any(n.startswith("round requested") for n in notified)
            help_screen = app.make_help_screen()
            assert isinstance(help_screen, HelpScreen)
            assert "n               Ask the scorer for a round now" in help_text(
                help_screen.sections
            )

    asyncio.run(scenario())
    assert len(store.pending_round_requests()) == 1


# A stand-in for `hnbooks-score --watch`: holds the lease, says it is idle, frees it on SIGTERM.
FAKE_SCORER = (
    "import signal, sys, time\n"
    f"sys.path.insert(0, {str(REPO_ROOT)!r})\n"
    "from hnbooks.store.db import Store\n"
    "from hnbooks.store.scorer import LeaseHolder\n"
    "store = Store(sys.argv[1])\n"
    "holder = LeaseHolder.this_process('watch')\n"
    "store.acquire_scorer_lease(holder)\n"
    "store.set_scorer_state(holder, 'idle', answers_before_next_round=3)\n"
    "print('fake scorer up', flush=True)\n"
    "def stop(*_):\n"
    "    store.release_scorer_lease(holder)\n"
    "    print('fake scorer stopped', flush=True)\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, stop)\n"
    "while True:\n"
    "    time.sleep(0.05)\n"
    "    store.renew_scorer_lease(holder)\n"
)


def test_the_app_starts_a_scorer_shows_it_and_stops_it_on_quit(
    db_path: Path, store: Store, batch: int
) -> None:
    pids: list[int] = []

    async def scenario() -> None:
        app = make_app(
            db_path, poll_interval_s=0.05, scorer_command=[sys.executable, "-c", FAKE_SCORER, str(db_path)]
        )  # fmt: skip
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            for _ in range(300):
                await pilot.pause(0.02)
                if "scorer: idle" in screen_text(app):
                    break
            assert "scorer: idle · next after 3 answers" in screen_text(app)
            assert app.scorer is not None and app.scorer.pid is not None
            pids.append(app.scorer.pid)
            await pilot.press("q")
            await pilot.pause()

    asyncio.run(scenario())
    assert wait_gone(pids[0], timeout=2)
    log = Path(f"{db_path}.scorer.log").read_text()
    assert "fake scorer up" in log and "fake scorer stopped" in log
    assert store.scorer_lease() is None


def test_no_scorer_is_started_while_one_holds_the_database(
    db_path: Path, store: Store, batch: int
) -> None:
    holder = LeaseHolder.this_process("watch")
    store.acquire_scorer_lease(holder)

    async def scenario() -> None:
        app = make_app(db_path, scorer_command=[sys.executable, "-c", "raise SystemExit(3)"])
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert app.scorer is not None and app.scorer.state == "none"
            assert "scorer: starting" in screen_text(app)

    asyncio.run(scenario())
    assert not Path(f"{db_path}.scorer.log").exists()


def test_a_scorer_that_dies_is_shown_as_stopped_with_its_log(
    db_path: Path, store: Store, batch: int
) -> None:
    async def scenario() -> None:
        command = [sys.executable, "-c", "print('no model here'); raise SystemExit(2)"]
        app = make_app(db_path, poll_interval_s=0.05, scorer_command=command)
        async with app.run_test(size=(80, 24)) as pilot:
            for _ in range(300):
                await pilot.pause(0.02)
                if "scorer: stopped" in screen_text(app):
                    break
            assert "scorer: stopped (see tui.db.scorer.log)" in screen_text(app)

    asyncio.run(scenario())
    assert "no model here" in Path(f"{db_path}.scorer.log").read_text()


def test_the_command_line_names_the_feed_and_the_scorer_options(tmp_path: Path) -> None:
    result = CliRunner().invoke(tui_main, ["--help"])
    assert result.exit_code == 0
    for text in ("--feed [overlap|split]", "--no-scorer", "DB.scorer.log"):
        assert text in result.output
    refused = CliRunner().invoke(tui_main, ["--feed", "everyone", "--db", str(tmp_path / "x.db")])
    assert refused.exit_code == 2 and "everyone" in refused.output


def test_undo_takes_back_this_session_s_answer_not_another_live_session_s(
    db_path: Path, store: Store, item_ids: list[int]
) -> None:
    item_ids = item_ids + insert_items(
        store,
        [f"more comment number {n}" for n in range(10)],
        [{"id": 2000 + n} for n in range(10)],
    )
    publish(store, item_ids)
    # An answer of a session whose process is gone is this session's to undo.
    gone = subprocess.Popen(["true"])
    gone.wait()
    crashed = NewAnswer(
        "ann", "ignore", client_key=f"tui:{socket.gethostname()}:{gone.pid}:dead:beef"
    )
    store.record_answer(item_ids[-1], crashed)
    shown: dict[str, int | None] = {}

    async def together() -> None:
        a, b = make_app(db_path, "ann"), make_app(db_path, "ann")
        async with a.run_test(size=(80, 24)) as ap, b.run_test(size=(80, 24)) as bp:
            await settle(ap)
            await settle(bp)
            shown["a"] = shown_id(a)
            await ap.press("a")
            await settle(ap)
            shown["b"] = shown_id(b)
            await bp.press("x")
            await settle(bp)
            await ap.press("u")  # A's own answer, though B's is the annotator's latest
            await settle(ap)
            assert shown_id(a) == shown["a"]
            await ap.press("u")  # nothing more of A's: the crashed session's answer, not B's
            await settle(ap)
            assert shown_id(a) == item_ids[-1]
            await ap.press("u")
            await settle(ap)
            await bp.press("u")  # B still takes back its own
            await settle(bp)
            assert shown_id(b) == shown["b"]

    asyncio.run(together())
    conn = sqlite3.connect(db_path)
    rows = conn.execute("SELECT item_id, answer FROM answers ORDER BY id").fetchall()
    conn.close()
    assert rows == [
        (item_ids[-1], "ignore"),
        (shown["a"], "accept"),
        (shown["b"], "reject"),
        (shown["a"], "undo"),
        (item_ids[-1], "undo"),
        (shown["b"], "undo"),
    ]
