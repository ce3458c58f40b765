"""`hnbooks-tui`: open the annotation screen on a database, as one annotator."""

from __future__ import annotations

import getpass
import os

import click

from hnbooks.store.db import DEFAULT_DB_PATH, StoreError


def default_annotator() -> str:
    return os.environ.get("USER") or getpass.getuser()


@click.command()
@click.option(
    "--db",
    "db_path",
    envvar="HNBOOKS_DB",
    default=DEFAULT_DB_PATH,
    show_default=True,
    show_envvar=True,
    type=click.Path(dir_okay=False),
    help="The hnbooks database to annotate.",
)
@click.option(
    "--annotator",
    default=default_annotator,
    show_default="$USER",
    help="Whose answers these are: progress, undo and the queue are per annotator.",
)
def main(db_path: str, annotator: str) -> None:
    """Annotate the published batches of an hnbooks database, by keyboard."""
    # Textual is imported only once the arguments are known to be usable: `--help` stays fast.
    try:
        from hnbooks.tui.app import AnnotateApp

        app = AnnotateApp(db_path, annotator)
    except StoreError as error:
        click.echo(f"hnbooks-tui: {error}", err=True)
        raise SystemExit(1) from None
    app.run()
    if app.return_code:
        raise SystemExit(app.return_code)
