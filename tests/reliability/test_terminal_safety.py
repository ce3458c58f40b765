"""Terminal safety: item texts (and ids, parents, names) holding Rich markup, ANSI and OSC escape
sequences, C0/C1 control characters, bidirectional overrides, RTL text, emoji and combining marks are
shown literally, never reach the terminal as control sequences, and spans marked on them keep their
character offsets into the stored text.

The Pilot test reads what the screen shows; the pty test runs the real `hnbooks-tui` and reads the
bytes the terminal receives. (tests/tui has the basic cases: markup, a title OSC, a clear-screen CSI;
these add the clipboard, hyperlinks, DCS, C1, bidi and the other surfaces: the why line, the parent
panel, notifications, search, review, the waiting screen.)
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pexpect
import pytest

from hnbooks.store.db import Store
from hnbooks.store.records import IncomingItem
from hnbooks.suggest import suggest_candidates, word_spans
from hnbooks.tui.app import AnnotateApp
from hnbooks.tui.render import printable
from tests.helpers import publish
from tests.reliability.conftest import LedgerLine
from tests.reliability.processes import child_env, command

TITLE = "Dune"
HOSTILE_TEXTS = [
    'Rich [bold red]markup[/] and [link=https://evil.example/a]a link[/link] [/] say read "Dune" now',
    "ANSI \x1b[31mred\x1b[0m \x1b[2J\x1b[H\x1b[10;10H moves \x1b]0;pwned-title\x07 and \x1b]2;pwned-two\x1b\\ "
    'and \x1b]52;c;cHduZWQ=\x07 clip and \x1b]8;;https://evil.example/b\x1b\\link\x1b]8;;\x1b\\ read "Dune"',
    "controls \x08back \x07bell \x7fdel \x9b6n \x9d0;pwned-c1\x07 \x90sixel\x9c \x85nel \x1bPq#0;2\x1b\\ "
    '\x1b[6n\x1b[21t\x1b[5i tab\there cr\rhere line\u2028sep read "Dune" ok',
    'RTL שלום עולם \u202eevil override\u202c \u2067isolate\u2069 \u200fmark and read "Dune" today',
    'emoji 👩\u200d👩\u200d👧\u200d👦 🇫🇷 combining e\u0301e\u0301 Z\u0335\u0321a\u0336 zero\u200bwidth read "Dune" end',
]
# A parent comment and HN ids that are hostile too: they show in the parent panel, the why line and
# the "undid ..." notification.
HOSTILE_PARENT = "parent says \x1b]52;c;cGFyZW50\x07 [bold]bold?[/bold] \x1b]0;pwned-parent\x07"
HOSTILE_IDS = ["8", "\x1b]0;pwned-id\x07", "7\x9b2J", "[/]", "[link=http://e.vl]x[/]"]
# Byte sequences that only an item's text could have put in the terminal's input.
FORBIDDEN = [
    b"\x1b]52;",
    b"\x1b]0;pwned",
    b"\x1b]2;pwned",
    b"\x1b]8;;https://evil",
    b"\x1b]8;;http://e.vl",
    b"\x1bPq",
    b"\x1b[6n",
    b"\x1b[21t",
    b"\x1b[5i",
    b"\xc2\x9b",
    b"\xc2\x9d",
    b"\xc2\x90",
    b"\xc2\x85",
    b"\xe2\x80\xae",
    b"\xe2\x81\xa7",
]
RAW_CONTROLS = (
    {chr(c) for c in range(0x20) if c != 0x0A}
    | {chr(c) for c in range(0x7F, 0xA0)}
    | {
        "\u202e",
        "\u2067",
        "\u200f",
    }
)


def insert_hostile_items(store: Store) -> list[int]:
    """The hostile texts (and a hostile parent) as items, the texts published as one batch."""
    parent = IncomingItem(line=0, text=HOSTILE_PARENT, meta={"id": 1}, external_id="hn:1")
    items = [
        IncomingItem(line=n, text=text, meta={"id": hn_id, "parent": 1}, external_id=f"hn:{hn_id}")
        for n, (hn_id, text) in enumerate(zip(HOSTILE_IDS, HOSTILE_TEXTS, strict=True), start=1)
    ]
    ids = store.add_items([parent, *items], source="test")
    publish(store, ids[1:])
    return ids[1:]


def title_tabs(text: str) -> int:
    """How many tab presses pick the quoted title among the text's candidates."""
    starts = [(c.start, c.end) for c in suggest_candidates(text)]
    start = text.index(f'"{TITLE}"') + 1
    return starts.index((start, start + len(TITLE))) + 1


def stored_spans(db_path: Path, annotator: str) -> dict[str, list[str]]:
    """Text → the substrings its current answer's spans cover."""
    with Store(db_path) as store:
        return {
            store.item(a.item_id).text: [
                store.item(a.item_id).text[s.start : s.end] for s in a.spans
            ]
            for a in store.current_answers(annotator=annotator)
        }


def screen_text(app: AnnotateApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def test_hostile_texts_render_literally_and_spans_keep_their_offsets(
    tmp_path: Path, ledger: LedgerLine
) -> None:
    db_path = tmp_path / "hostile.db"
    with Store(db_path) as store:
        insert_hostile_items(store)
    word_marked: dict[str, str] = {}

    async def scenario() -> None:
        app = AnnotateApp(db_path, "ann", clock=lambda: 1000.0)
        async with app.run_test(size=(200, 50)) as pilot:
            screen = app.screen
            for number, text in enumerate(HOSTILE_TEXTS):
                for _ in range(400):
                    shown_item = getattr(screen, "shown", None)
                    if (
                        shown_item is not None
                        and shown_item.item.text == text
                        and "read" in screen_text(app)
                    ):
                        break
                    await pilot.pause(0.005)
                shown = screen_text(app)
                assert not RAW_CONTROLS & set(shown), (
                    f"a control character of item {number} reached the screen"
                )
                for line in printable(text).split("\n"):
                    assert " ".join(line.split()) in " ".join(shown.split()), (
                        f"item {number} not shown literally"
                    )
                await pilot.press("p")  # the parent panel: hostile too
                assert "[bold]bold?[/bold]" in screen_text(app)
                assert not RAW_CONTROLS & set(screen_text(app))
                await pilot.press("p")
                if number % 2 == 0:
                    await pilot.press(*["tab"] * title_tabs(text), "enter")
                else:
                    # Mark the word before the title ("read") by moving the word cursor: offsets
                    # after emoji, combining marks and escapes must still be the stored text's.
                    words = word_spans(text)
                    before_title = max(
                        i for i, (_, end) in enumerate(words) if end < text.index(TITLE)
                    )
                    await pilot.press(*["l"] * (before_title + 1), "enter")
                    word_marked[text] = text[slice(*words[before_title])]
                    assert word_marked[text] == "read"
                await pilot.press("a")
            await app.wait_for_writes()
            await pilot.press("u")  # the "undid …" notification carries a hostile id
            await app.wait_for_writes()
            await pilot.pause(0.05)
            await pilot.press("a")
            await app.wait_for_writes()
            for keys in (["slash", *TITLE, "enter"], ["r"]):
                await pilot.press(*keys)
                for _ in range(100):
                    await pilot.pause(0.01)
                    await app.workers.wait_for_complete()
                    if "Dune" in screen_text(app):
                        break
                shown = screen_text(app)
                assert "read" in shown and not RAW_CONTROLS & set(shown), keys
                await pilot.press("escape")

    asyncio.run(scenario())
    spans = stored_spans(db_path, "ann")
    for number, text in enumerate(HOSTILE_TEXTS):
        expected = [TITLE] if number % 2 == 0 else [word_marked[text]]
        assert spans[text] == expected, (
            f"item {number}: the span covers {spans[text]} of the stored text"
        )
    ledger.add("hostile items shown literally", len(HOSTILE_TEXTS))
    ledger.add("spans with wrong offsets", 0)


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")
def test_no_escape_sequence_from_an_item_reaches_the_terminal(
    tmp_path: Path, ledger: LedgerLine
) -> None:
    db_path = tmp_path / "hn[b]x[i] \x1b]0;pwned-db\x07.db"
    with Store(db_path) as store:
        insert_hostile_items(store)
    annotator = "ann [/] \x1b]0;pwned-ann\x07"
    program, *args = command("hnbooks-tui")
    child = pexpect.spawn(
        program,
        [*args, "--db", str(db_path), "--annotator", annotator, "--no-scorer"],
        env=child_env(tmp_path),
        dimensions=(24, 80),
        timeout=20,
    )
    received = bytearray()

    class Sink:
        def write(self, data: bytes) -> None:
            received.extend(data)

        def flush(self) -> None:
            pass

    child.logfile_read = Sink()
    try:
        for text in HOSTILE_TEXTS:
            child.expect_exact(b"read")
            child.send("p")
            child.expect_exact(b"parent / story")
            child.send("p" + "\t" * title_tabs(text) + "\r")
            child.expect_exact(
                b"\xe2\x94\x82 "
            )  # the marking line lists the marked span after "│ "
            child.send("a")
        child.expect_exact(b"Nothing left to annotate")
        child.send("u")
        child.expect_exact(b"undid accept")
        child.send("a")
        child.expect_exact(b"Nothing left to annotate")
        child.send("/")
        child.expect_exact(b"New query")
        child.send(TITLE)
        child.expect_exact(TITLE.encode())
        child.send("\r")
        child.expect_exact(b"Reject")  # the hits are listed, and can be answered
        # An escape followed at once by a key reads as alt+key: wait for the screen to close first.
        child.send("\x1b")
        child.expect_exact(b"Nothing left to annotate")
        child.send("r")
        child.expect_exact(b"model disagrees")  # the review screen's filter line
        child.send("\x1b")
        child.expect_exact(b"Nothing left to annotate")
        child.send("q")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)

    output = bytes(received)
    leaked = [sequence for sequence in FORBIDDEN if sequence in output]
    assert leaked == [], f"item bytes reached the terminal: {leaked}"
    # What the item held is on screen as pictures of the characters instead.
    assert "␛]52;".encode() in output and "␛]8;;https://evil".encode() in output
    assert all(spans == [TITLE] for spans in stored_spans(db_path, annotator).values())
    ledger.add("bytes received by the terminal", len(output))
    ledger.add("item escape sequences leaked", len(leaked))
