"""`hnbooks-tui`: open the annotation screen on a database, as one annotator."""

from __future__ import annotations

import getpass
import os

import click

from hnbooks.console import CONTEXT_SETTINGS, db_option, fail
from hnbooks.store import StoreError
from hnbooks.store.records import FEED_MODES, FeedMode

DEFAULT_ESCDELAY_MS = 200
"""Milliseconds Textual waits after Esc for an escape sequence's next byte (env ESCDELAY wins)."""


def default_annotator() -> str:
    return os.environ.get("USER") or getpass.getuser()


@click.command(context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="hnbooks", prog_name="hnbooks-tui")
@db_option()
@click.option(
    "--annotator",
    default=default_annotator,
    show_default="$USER",
    help="Whose answers these are: progress, undo and the queue are per annotator.",
)
@click.option(
    "--feed",
    type=click.Choice(FEED_MODES),
    default=None,
    help="Set the database's feed mode, for every annotator: overlap (every annotator answers "
    "every item) or split (each item goes to one annotator). Kept in the database; left as it is "
    "when not given (a new database starts in overlap).",
)
@click.option(
    "--scorer/--no-scorer",
    default=True,
    show_default=True,
    help="Start `hnbooks-score --watch` as a child when no scorer holds the database, and stop it "
    "on quit; its output is appended to DB.scorer.log.",
)
def main(db_path: str, annotator: str, feed: FeedMode | None, scorer: bool) -> None:
    """Annotate the published batches of an hnbooks database, by keyboard.

    The same annotator may run it in several terminals at once: each is served other items. The
    header shows the feed mode and what the scorer is doing.

    \b
    Keys: a accept, x reject, space ignore, u undo, ←/→ and shift+←/→ mark words,
    tab candidates, ⏎ mark a span, n score now, / search, r review, s stats,
    ? help, ctrl+p commands (and themes), q quit (q and esc leave a sub-screen).
    The theme chosen is remembered in ~/.config/hnbooks/tui.json ($XDG_CONFIG_HOME).
    ESCDELAY=MS sets how long Esc waits for an escape sequence (default 200 here).

    \b
    Examples:
      hnbooks-tui --db books.db
      hnbooks-tui --db books.db --annotator alice --feed split
      hnbooks-tui --db books.db --no-scorer
    """
    # Textual reads ESCDELAY when imported: how long after Esc it waits for the rest of an escape
    # sequence (an arrow key is Esc [ D). Its 100 ms can split a sequence that a slow SSH link
    # delivers in pieces; Esc then a key typed within the delay still acts as both (the app).
    os.environ.setdefault("ESCDELAY", str(DEFAULT_ESCDELAY_MS))
    # Textual is imported only once the arguments are known to be usable: `--help` stays fast.
    try:
        from hnbooks.tui.app import AnnotateApp
        from hnbooks.tui.preferences import default_preferences_path
        from hnbooks.tui.scorer_process import scorer_command

        app = AnnotateApp(
            db_path,
            annotator,
            feed=feed,
            scorer_command=scorer_command(db_path) if scorer else None,
            preferences_path=default_preferences_path(),
        )
    except StoreError as error:
        fail(str(error))
    from hnbooks.tui.terminal import missing_terminal

    # Without a terminal Textual would draw into a file or wait on /dev/null: refuse instead (after
    # the database is checked: its error says more).
    missing = missing_terminal()
    if missing is not None:
        app.writer.close()
        fail(
            f"hnbooks-tui needs a terminal: its {missing} is not one (run it in a terminal window)"
        )
    try:
        app.run()
    finally:
        app.stop_scorer()
    if app.return_code:
        raise SystemExit(app.return_code)
