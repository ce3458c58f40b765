"""What every command line of hnbooks shares: the `--db` and encoder options, the consoles, the error
exit, progress bars and the formatting of estimates.

Front ends (`hnbooks`, `hnbooks-score`, `hnbooks-tui`, `hnbooks models`, `hnbooks simulate`) import
this module and never each other.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from hnbooks.printable import printable, printable_line
from hnbooks.store import DEFAULT_DB_PATH, Store, StoreError
from hnbooks.store.reports import EstimateReport

F = TypeVar("F", bound=Callable[..., Any])

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
"""Progress, status and summary lines (silenced by `--quiet`)."""
error_console = Console(stderr=True, highlight=False, soft_wrap=True)
"""Errors: shown even with `--quiet`."""
out_console = Console(highlight=False, soft_wrap=True)
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


def quiet_option(func: F) -> F:
    """`-q/--quiet`: no progress bars, status or summary lines; errors still go to stderr."""

    def silence(ctx: click.Context, param: click.Parameter, quiet: bool) -> bool:
        if quiet:
            err_console.quiet = True
            # The console outlives the command (CliRunner runs several in one process).
            ctx.call_on_close(lambda: setattr(err_console, "quiet", False))
        return quiet

    return click.option(
        "-q",
        "--quiet",
        is_flag=True,
        callback=silence,
        expose_value=False,
        is_eager=True,
        help="No progress bars or summary lines (errors still go to stderr).",
    )(func)


def is_quiet() -> bool:
    """Whether `--quiet` was given to the command running."""
    return bool(err_console.quiet)


def json_option(help_text: str) -> Callable[[F], F]:
    return click.option("--json", "as_json", is_flag=True, help=help_text)


def db_option(create: bool = False) -> Callable[[F], F]:
    help_text = "SQLite database file [env HNBOOKS_DB; default ./hnbooks.db]"
    if create:
        help_text += " (created if missing)"
    return click.option(
        "--db",
        "db_path",
        envvar="HNBOOKS_DB",
        default=DEFAULT_DB_PATH,
        show_default=False,
        type=click.Path(dir_okay=False),
        help=help_text,
    )


def data_text(value: object, style: str = "") -> Text:
    """A value from the database or the command line as literal one-line text for a table cell or a
    message: never read as Rich markup, no control character or escape sequence left in it."""
    return Text(printable_line(str(value)), style=style)


def print_error(message: str) -> None:
    """Print an error whose text may hold brackets, escape sequences or newlines from user data:
    shown literally on one line, never read as Rich markup nor passed to the terminal."""
    error_console.print(Text.assemble(("error: ", "red"), printable_line(message)), soft_wrap=True)


def print_data(message: str, *, stderr: bool = False, style: str = "") -> None:
    """Print a line built from data (paths, names, texts) literally, like `print_error`."""
    console = err_console if stderr else out_console
    console.print(Text(printable(message), style=style), soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    print_error(message)
    sys.exit(code)


@contextmanager
def open_store(db_path: str, *, create: bool = False, readonly: bool = False) -> Iterator[Store]:
    """The store for a command: a `StoreError` anywhere inside becomes one error line and exit 1.

    `readonly`: for commands that only read (stats, queue, export, backup): nothing is created,
    migrated or switched to WAL.
    """
    try:
        store = Store(db_path, create=create, readonly=readonly)
    except StoreError as error:
        fail(str(error))
    try:
        yield store
    except StoreError as error:
        fail(str(error))
    finally:
        store.close()


def models_dir_option(func: F) -> F:
    return click.option(
        "--models-dir",
        envvar="HNBOOKS_MODELS_DIR",
        type=click.Path(file_okay=False),
        default=None,
        help="Where exported models live [env HNBOOKS_MODELS_DIR; default ~/.cache/hnbooks/models].",
    )(func)


def encoder_options(func: F) -> F:
    func = click.option(
        "--device",
        type=click.Choice(["auto", "cpu", "cuda"]),
        default="auto",
        show_default=True,
        help="auto: CUDA when onnxruntime-gpu sees a GPU, else CPU.",
    )(func)
    func = click.option(
        "--model",
        default=None,
        help="Encoder: a name from `hnbooks models list` (default: the one marked default there).",
    )(func)
    return models_dir_option(func)


def make_progress(transient: bool = False) -> Progress:
    """A progress bar on stderr; descriptions are shown literally (they name files and corpora)."""
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
    )


def fmt_number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def fmt_count_interval(value: EstimateReport | None, bare: bool = False) -> str:
    """'12 [4, 40]' for an estimated count (`bare`: '4-40', the interval alone), or '—'."""
    if value is None or value.estimate is None:
        return "—"
    if value.low is None or value.high is None:
        return "—" if bare else f"{value.estimate:,.0f}"
    interval = f"{value.low:,.0f}-{value.high:,.0f}"
    return interval if bare else f"{value.estimate:,.0f} [{interval}]"


def fmt_interval(value: EstimateReport | None) -> str:
    """'0.0002 [0.0001, 0.0004]', or '—' without an estimate."""
    if value is None or value.estimate is None:
        return "—"
    if value.low is None or value.high is None:
        return f"{value.estimate:.4g}"
    return f"{value.estimate:.4g} [{value.low:.3g}, {value.high:.3g}]"
