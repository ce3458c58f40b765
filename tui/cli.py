"""`hnbooks-tui`: open the annotation screen on a database, as one annotator."""

from __future__ import annotations

import getpass
import os

import click

from hnbooks.console import CONTEXT_SETTINGS, db_option, fail
from hnbooks.store import StoreError


def default_annotator() -> str:
    return os.environ.get("USER") or getpass.getuser()


@click.command(context_settings=CONTEXT_SETTINGS)
@db_option()
@click.option(
    "--annotator",
    default=default_annotator,
    show_default="$USER",
    help="Whose answers these are: progress, undo and the queue are per annotator.",
)
def main(db_path: str, annotator: str) -> None:
    """Annotate the published batches of an hnbooks database, by keyboard.

    \b
    Keys: a accept, x reject, space ignore, u undo, ←/→ and shift+←/→ mark words,
    tab candidates, ⏎ mark a span, / search, r review, s stats, ? help, q quit.

    \b
    Examples:
      hnbooks-tui --db books.db
      hnbooks-tui --db books.db --annotator alice
    """
    # Textual is imported only once the arguments are known to be usable: `--help` stays fast.
    try:
        from hnbooks.tui.app import AnnotateApp

        app = AnnotateApp(db_path, annotator)
    except StoreError as error:
        fail(str(error))
    app.run()
    if app.return_code:
        raise SystemExit(app.return_code)
