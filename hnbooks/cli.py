"""`hnbooks`: import, export, inspect and seed the annotation database.

Each command parses options, calls the core and prints; progress bars, colours and exit codes live
here only. Heavy modules (the scorer, onnxruntime) are imported inside the commands that need them.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from hnbooks.console import (
    CONTEXT_SETTINGS,
    data_text,
    db_option,
    encoder_options,
    err_console,
    fail,
    fmt_interval,
    fmt_number,
    make_progress,
    open_store,
    out_console,
    print_data,
    print_error,
)
from hnbooks.importing import FORMATS
from hnbooks.printable import inert_json, printable_line
from hnbooks.store.records import Round


class HnbooksGroup(click.Group):
    """The `hnbooks` group: Ctrl-C is one line, and commands defined beside their code (`models`,
    `simulate`) are imported only when run, so no front end imports another."""

    lazy_commands = {
        "models": "hnbooks.models.cli:models",
        "simulate": "hnbooks.lab.cli:simulate",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy_commands])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands:
            module_name, _, attribute = self.lazy_commands[cmd_name].partition(":")
            command = getattr(importlib.import_module(module_name), attribute)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            err_console.print("interrupted; nothing partial was written")
            sys.exit(130)


@click.group(cls=HnbooksGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="hnbooks")
def cli() -> None:
    """Find rare things in big text collections, by keyboard, in the terminal.

    \b
    The loop:
      hnbooks import comments.jsonl        # texts (and any earlier answers) into ./hnbooks.db
      hnbooks seed --query "book"          # cold start: a batch of keyword matches
      hnbooks-score                        # embed, train, score the whole pool, queue a batch
      hnbooks-tui                          # annotate: a accept, x reject, space ignore, u undo
      hnbooks export -o answers.jsonl      # Prodigy-compatible JSONL
      hnbooks backup copy.db               # a consistent copy, while annotators work

    Every command takes --db (or HNBOOKS_DB). `hnbooks COMMAND --help` explains each one.
    """


@cli.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True))
@db_option(create=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="Input format; auto looks at the extension, and reads each JSON line for what it is.",
)
@click.option(
    "--text-field", default="text", show_default=True, help="Column / key holding the text."
)
@click.option(
    "--annotator",
    default=None,
    help="Annotator for imported answers that name none (Prodigy's _annotator_id / _session_id win).",
)
def import_command(
    files: tuple[str, ...], db_path: str, fmt: str, text_field: str, annotator: str | None
) -> None:
    """Import texts (and any answers they carry) from FILES.

    \b
    Formats (auto-detected; in JSON lines, each line on its own):
      prodigy  Prodigy JSONL: text, meta, hashes, answer, spans kept as answers
      jsonl    {"text": ..., "meta": {...}} per line
      csv/tsv  a header row and a text column (--text-field)
      parquet  a text column (--text-field)
      hn       Hacker News items: API or Algolia JSON lines, or CSV/Parquet dumps with
               id,by,time,text,parent,title,type,dead,deleted; HTML cleaned, dead/deleted skipped
      text     one item per line

    Texts equal up to whitespace merge into one item; importing a file twice adds nothing.
    A bad line stops that file: nothing of it is stored, the error names file and line, and the
    exit code is 1.

    \b
    Examples:
      hnbooks import ../shared/data/bookfinder/*.jsonl --db books.db
      hnbooks import hn_comments.parquet --format hn
      hnbooks import notes.csv --text-field body --annotator alice
    """
    from hnbooks.importing import ImportFault, import_file

    failures = 0
    with open_store(db_path, create=True) as store:
        for name in files:
            path = Path(name)
            size = path.stat().st_size if path.is_file() else 0
            with make_progress(transient=True) as progress:
                task = progress.add_task(
                    printable_line(f"importing {path.name}"), total=size or None
                )
                # Small files finish before a bar would be worth drawing.
                if size < 2_000_000:
                    progress.update(task, visible=False)
                try:
                    summary = import_file(
                        store,
                        path,
                        fmt=fmt,
                        text_field=text_field,
                        annotator=annotator,
                        progress=lambda n, task=task: progress.advance(task, n),
                    )
                except ImportFault as fault:
                    failures += 1
                    progress.stop()
                    print_error(f"{fault} — nothing from this file was imported")
                    continue
            print_data(summary.line())
            for skip in summary.first_skips:
                print_data(f"  skipped line {skip.line}: {skip.reason}", stderr=True, style="dim")
    if failures:
        sys.exit(1)


@cli.command("export")
@db_option()
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, writable=True), help="File (default stdout)."
)
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True
)
def export_command(db_path: str, output: str | None, fmt: str) -> None:
    """Write every answer in force (undone ones left out) as Prodigy JSONL or CSV.

    \b
    JSONL fields: text, meta, label, spans [{start, end, label, text}], answer, _input_hash,
    _task_hash, _view_id, _annotator_id, _timestamp — re-importable with `hnbooks import`.

    -o onto an existing file replaces it only once the export is complete; a symbolic link is
    followed (the link stays), a FIFO or a device is written to as a stream.

    \b
    Examples:
      hnbooks export -o answers.jsonl
      hnbooks export --format csv > answers.csv
    """
    from hnbooks.exporting import ExportTargetError, export_to_path, write_csv, write_jsonl

    writer = write_csv if fmt == "csv" else write_jsonl
    with open_store(db_path, readonly=True) as store:
        if output is None:
            count = writer(store, sys.stdout)
        else:
            try:
                count = export_to_path(store, output, writer)
            except ExportTargetError as error:
                fail(str(error))
        print_data(f"exported {count} answers" + (f" to {output}" if output else ""), stderr=True)


@cli.command("backup")
@click.argument("destination", type=click.Path(dir_okay=False))
@db_option()
@click.option("--force", is_flag=True, help="Replace DESTINATION if it exists.")
def backup_command(destination: str, db_path: str, force: bool) -> None:
    """Copy the database to DESTINATION: one consistent file, safe while annotators work.

    The copy is taken through SQLite's backup API as of one moment, with everything committed by
    then, including what still sits in the database's -wal file; annotators keep saving while it
    runs (what they save after that moment is in the database, not in this copy). The copy stands
    alone: no -wal or -shm beside it. It is written beside DESTINATION and renamed into place once
    complete, so an interrupted backup leaves no half file. An existing DESTINATION is refused
    unless --force.

    \b
    Examples:
      hnbooks backup backups/hnbooks-$(date +%F).db
      hnbooks backup /mnt/usb/books.db --db books.db --force
    """
    with open_store(db_path, readonly=True) as store:
        store.backup(destination, overwrite=force)
    size = os.path.getsize(destination)
    print_data(f"backed up {db_path} to {destination} ({size / 1e6:,.1f} MB)", stderr=True)


@cli.command("stats")
@db_option()
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of tables.")
def stats_command(db_path: str, as_json: bool) -> None:
    """Items, answers by answer and annotator, batches, positives, spans, and each scoring round.

    \b
    Examples:
      hnbooks stats
      hnbooks stats --json | jq .positives
    """
    with open_store(db_path, readonly=True) as store:
        stats = store.stats()
    if as_json:
        record = asdict(stats)
        record["rounds"] = [
            {
                "id": r.id,
                "started_at": r.started_at,
                "finished_at": r.finished_at,
                **asdict(r.report),
            }
            for r in stats.rounds
        ]
        click.echo(inert_json(record, indent=2))
        return
    # Names, labels and the path come from users and imported files: literal text, never markup.
    table = Table(title=data_text(f"hnbooks — {db_path}"), show_header=False)
    table.add_row("items", f"{stats.items:,}")
    table.add_row("answers", f"{stats.answers:,}")
    for answer, count in stats.answers_by_answer.items():
        table.add_row(data_text(f"  {answer}"), f"{count:,}")
    table.add_row(data_text(f"positives ({stats.label})"), f"{stats.positives:,}")
    table.add_row("spans marked", f"{stats.spans:,}")
    table.add_row("batches published", f"{stats.batches:,}")
    table.add_row("items waiting in the queue", f"{stats.queued:,}")
    out_console.print(table)
    if stats.answers_by_annotator:
        people = Table(title="answers by annotator")
        for column in ("annotator", "accept", "reject", "ignore"):
            people.add_column(column)
        for name, counts in stats.answers_by_annotator.items():
            people.add_row(
                data_text(name), *(str(counts.get(k, 0)) for k in ("accept", "reject", "ignore"))
            )
        out_console.print(people)
    if stats.rounds:
        out_console.print(rounds_table(stats.rounds))


def rounds_table(rounds: list[Round]) -> Table:
    table = Table(title="scoring rounds")
    for column in (
        "round",
        "answers",
        "positives",
        "found in last batch",
        "CV AP",
        "found so far",
        "prevalence",
        "recall",
        "device",
    ):
        table.add_column(column)
    for round_ in rounds:
        report = round_.report
        found = report.last_batch.positives if report.last_batch else {}
        table.add_row(
            str(round_.id),
            str(report.answers),
            str(report.positives),
            data_text(", ".join(f"{k} {v}" for k, v in found.items()) or "—"),
            fmt_number(report.cv_average_precision),
            report.found_so_far.as_percent() or "—" if report.found_so_far else "—",
            fmt_interval(report.prevalence),
            fmt_interval(report.recall),
            data_text((report.embedding.device or "") if report.embedding else ""),
        )
    return table


@cli.command("queue")
@db_option()
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="A JSON list of {batch, position, item_id, strategy, score, text}.",
)
@click.option(
    "--annotator",
    default=None,
    help="What waits for this annotator, as the feed mode serves it (default: unanswered by anyone).",
)
def queue_command(db_path: str, as_json: bool, annotator: str | None) -> None:
    """List what waits to be annotated, in the order it will be shown.

    \b
    Examples:
      hnbooks queue
      hnbooks queue --json --annotator alice
    """
    with open_store(db_path, readonly=True) as store:
        entries = store.queue(annotator)
    if as_json:
        click.echo(
            inert_json(
                [
                    {
                        "batch": e.batch,
                        "position": e.position,
                        "item_id": e.item_id,
                        "strategy": e.strategy,
                        "score": e.score,
                        "text": e.text,
                    }
                    for e in entries
                ]
            )
        )
        return
    table = Table(title=f"{len(entries)} items waiting")
    for column in ("batch", "pos", "item", "strategy", "score", "text"):
        table.add_column(column, overflow="ellipsis", no_wrap=column == "text")
    for e in entries:
        score = "" if e.score is None else f"{e.score:.3f}"
        preview = " ".join(e.text.split())[:80]
        table.add_row(
            str(e.batch),
            str(e.position),
            str(e.item_id),
            data_text(e.strategy),
            score,
            data_text(preview),
        )
    out_console.print(table)


@cli.command("seed")
@db_option()
@click.option(
    "--query", required=True, help="Words, a regular expression, or a sentence (--semantic)."
)
@click.option(
    "--fts",
    "mode",
    flag_value="fts",
    default=True,
    help="FTS5 keyword search: every word must match (default).",
)
@click.option(
    "--regex", "mode", flag_value="regex", help="Python regular expression, case-insensitive."
)
@click.option(
    "--semantic", "mode", flag_value="semantic", help="Closest texts by embedding cosine."
)
@click.option(
    "--limit",
    type=click.IntRange(1, 100_000),
    default=50,
    show_default=True,
    help="Most items in the batch.",
)
@click.option(
    "--label", default=None, help="Label the batch asks about (default: the database's first)."
)
@encoder_options
def seed_command(
    db_path: str,
    query: str,
    mode: str,
    limit: int,
    label: str | None,
    models_dir: str | None,
    model: str,
    device: str,
) -> None:
    """Publish a batch of matches for QUERY: the cold-start channel for a rare label.

    Items already answered or already waiting in a batch are left out. The batch's items are
    tagged with strategy `seed`.

    \b
    Examples:
      hnbooks seed --query "book"
      hnbooks seed --regex --query "by [A-Z][a-z]+ [A-Z][a-z]+"
      hnbooks seed --semantic --query "a novel I would recommend" --limit 100
    """
    from hnbooks.scoring.job import seed_entries

    with open_store(db_path) as store:
        chosen_label = label or store.default_label()
        pool, encode_query = None, None
        if mode == "semantic":
            from hnbooks.scoring.prepare import prepare_pool

            prepared = prepare_pool(store, db_path, model, models_dir, device)
            pool, encode_query = prepared.pool, prepared.encode_query
        entries = seed_entries(
            store, pool, query, mode, store.excluded_item_ids(), limit, encode_query
        )
        if not entries:
            fail(f"nothing new matches {query!r} ({mode}); try other words or --semantic")
        batch_id = store.publish_batch(
            entries, source="seed", label=chosen_label, note=f"{mode}: {query}"
        )
    print_data(f"published seed batch {batch_id}: {len(entries)} items matching {query!r} ({mode})")


def main() -> None:
    cli(prog_name="hnbooks")
