"""`hnbooks`: import, export, inspect and seed the annotation database.

Each command parses options, calls the core and prints; progress bars, colours and exit codes live
here only. Heavy modules (the scorer, onnxruntime) are imported inside the commands that need them.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any, cast

import click
from rich.table import Table

from hnbooks.console import (
    CONTEXT_SETTINGS,
    data_text,
    db_option,
    encoder_options,
    err_console,
    fail,
    fmt_count_interval,
    fmt_number,
    is_quiet,
    json_option,
    make_progress,
    open_store,
    out_console,
    print_data,
    print_error,
    quiet_option,
)
from hnbooks.importing import FORMATS
from hnbooks.printable import inert_json, printable_line
from hnbooks.store.records import Round
from hnbooks.store.reports import EstimateReport, RoundReport


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
    Examples (the loop, in order):
      hnbooks import comments.jsonl        # texts (and any earlier answers) into ./hnbooks.db
      hnbooks seed --query "book"          # cold start: a batch of keyword matches
      hnbooks-score                        # embed, train, score the whole pool, queue a batch
      hnbooks-tui                          # annotate: a accept, x reject, space ignore, u undo
      hnbooks export -o answers.jsonl      # Prodigy-compatible JSONL
      hnbooks backup copy.db               # a consistent copy, while annotators work

    Every command takes --db (or HNBOOKS_DB). `hnbooks COMMAND --help` explains each one.
    Tab completion in bash: eval "$(_HNBOOKS_COMPLETE=bash_source hnbooks)" (README: zsh, fish).
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
@click.option(
    "--types",
    "item_types",
    default=None,
    metavar="TYPE,...",
    callback=lambda _context, _param, value: hn_item_types(value),
    help="Hacker News item types to keep, of comment, story, poll, pollopt, job"
    " [default: comment,story].",
)
@click.option(
    "--parse-workers",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Processes parsing a large file of JSON lines while this one writes; 0 parses here"
    " [default: one per CPU core but one, at most 4].",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object on stdout: per file its counts (or its error), and the totals.",
)
@quiet_option
def import_command(
    files: tuple[str, ...],
    db_path: str,
    fmt: str,
    text_field: str,
    annotator: str | None,
    item_types: frozenset[str] | None,
    parse_workers: int | None,
    as_json: bool,
) -> None:
    """Import texts (and any answers they carry) from FILES; `-` reads stdin.

    \b
    Formats (auto-detected; in JSON lines, each line on its own):
      prodigy  Prodigy JSONL: text, meta, hashes, answer, spans kept as answers; tokens,
               options, accept, relations, span token offsets and any other field kept
               for the export
      jsonl    {"text": ..., "meta": {...}} per line
      csv/tsv  a header row and a text column (--text-field)
      parquet  a text column (--text-field)
      hn       Hacker News items: API or Algolia JSON lines, or CSV/Parquet dumps with
               id,by,time,text,parent,title,type,dead,deleted; HTML cleaned, dead/deleted skipped
               (JSON lines, a JSON array or pretty-printed objects; Algolia /items/:id trees
               with all their comments; BigQuery hacker_news.full and comments tables)
      text     one item per line

    Texts equal up to whitespace merge into one item; importing a file twice adds nothing.
    A bad line stops that file: nothing of it is stored, the error names file and line, and the
    exit code is 1. Labels the answers name (a task's label, span labels) are added to the
    database's labels. A stream (`-`, a FIFO, /dev/stdin, <(cmd)) is told JSON lines or text
    lines by its first line; name CSV with --format; Parquet needs a file.

    \b
    Examples:
      hnbooks import ../shared/data/bookfinder/*.jsonl --db books.db
      hnbooks import hn_comments.parquet --format hn
      hnbooks import hn_full.csv --types comment,story,job
      hnbooks import notes.csv --text-field body --annotator alice
      prodigy db-out my_set | hnbooks import - --json
    """
    from hnbooks.importing import STDIN_NAME, ImportFault, default_parse_workers, import_file

    quiet = is_quiet()
    workers = default_parse_workers() if parse_workers is None else parse_workers
    failures = 0
    results: list[dict[str, Any]] = []
    with open_store(db_path, create=True) as store:
        for name in files:
            path = Path(name)
            size = path.stat().st_size if name != STDIN_NAME and path.is_file() else 0
            with contextlib.ExitStack() as shown:
                advance = None
                # Small files finish before a bar would be worth drawing; off a terminal (a log, a
                # pipe) a bar is noise (and rich leaves a blank line behind).
                if size >= 2_000_000 and not (quiet or as_json) and err_console.is_terminal:
                    progress = shown.enter_context(make_progress(transient=True))
                    task = progress.add_task(printable_line(f"importing {path.name}"), total=size)
                    advance = partial(progress.advance, task)
                try:
                    summary = import_file(
                        store,
                        name,
                        fmt=fmt,
                        text_field=text_field,
                        annotator=annotator,
                        progress=advance,
                        types=item_types,
                        parse_workers=workers,
                    )
                except ImportFault as fault:
                    failures += 1
                    shown.close()
                    print_error(f"{fault} — nothing from this file was imported")
                    results.append({"path": str(fault.path), "error": str(fault)})
                    continue
            results.append(summary.as_json())
            for label, reason in summary.labels_refused.items():
                print_error(f"{summary.path}: label {label!r} not added to the labels: {reason}")
            if quiet or as_json:
                continue
            print_data(summary.line())
            for skip in summary.first_skips:
                print_data(f"  skipped line {skip.line}: {skip.reason}", stderr=True, style="dim")
    if as_json:
        totals = {
            key: sum(result.get(key, 0) for result in results)
            for key in ("new_items", "merged", "answers", "answers_already_present")
        }
        click.echo(inert_json({"files": results, **totals, "failed_files": failures}))
    if failures:
        sys.exit(1)


def hn_item_types(value: str | None) -> frozenset[str] | None:
    """`--types` read into the set of item types (None: the default)."""
    from hnbooks.hn_dumps import parse_types

    if value is None:
        return None
    try:
        return parse_types(value)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--types") from None


@cli.command("export")
@db_option()
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, allow_dash=True),
    help="File; - or none: stdout.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True
)
@quiet_option
def export_command(db_path: str, output: str | None, fmt: str) -> None:
    """Write every answer in force (undone ones left out) as Prodigy JSONL or CSV.

    \b
    JSONL fields: text, meta, label, spans [{start, end, token_start, token_end, label,
    text}], answer, _input_hash, _task_hash, _view_id, _annotator_id, _timestamp, and
    every other field an imported task had (tokens, options, accept, relations,
    _is_binary, _session_id, ...); span answers carry tokens, as ner_manual tasks.
    Re-importable with `hnbooks import`. NaN or infinity in meta is written as null.

    -o onto an existing file replaces it only once the export is complete; a symbolic link is
    followed (the link stays), a FIFO or a device is written to as a stream.

    \b
    Examples:
      hnbooks export -o answers.jsonl
      hnbooks export --format csv > answers.csv
      hnbooks export -o - | jq -c 'select(.answer == "accept")'
    """
    from hnbooks.exporting import (
        STDOUT_NAME,
        ExportTargetError,
        export_to_path,
        write_csv,
        write_jsonl,
    )

    writer = write_csv if fmt == "csv" else write_jsonl
    if output == STDOUT_NAME:
        output = None
    with open_store(db_path, readonly=True) as store:
        if output is None:
            try:
                count = writer(store, sys.stdout)
                sys.stdout.flush()
            except BrokenPipeError:
                # The reader stopped reading (`| head`): end quietly, as Unix tools do on SIGPIPE.
                # stdout points at /dev/null so the interpreter's last flush cannot fail again.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                sys.exit(141)
        else:
            try:
                count = export_to_path(store, output, writer)
            except ExportTargetError as error:
                fail(str(error))
        if not is_quiet():
            print_data(
                f"exported {count} answers" + (f" to {output}" if output else ""), stderr=True
            )


@cli.command("titles")
@db_option()
@click.option("--label", help="Only spans of this label (default: every label).")
@json_option("One JSON array of titles instead of a table.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    help="Write every title in this format (to -o, or stdout); default with -o: by its extension.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, allow_dash=True),
    help="File for --format; - : stdout.",
)
@click.option("--limit", type=click.IntRange(min=1), help="The table's rows (default: all).")
@quiet_option
def titles_command(
    db_path: str,
    label: str | None,
    as_json: bool,
    fmt: str | None,
    output: str | None,
    limit: int | None,
) -> None:
    """The titles found: distinct spans marked in accepted answers, with counts and the items.

    Spans equal up to case, surrounding quotes and punctuation and whitespace are one title;
    the form marked most often is shown. Only answers in force count (undone or re-answered
    ones do not) and only accepts (a reject's spans never). Each title has its label, the
    items mentioning it (HN ids and links), how many spans were marked, and when the first and
    last of those answers were given. Most items first.

    \b
    Examples:
      hnbooks titles
      hnbooks titles --label BOOK --json | jq '.[0]'
      hnbooks titles -o titles.csv
      hnbooks titles --format jsonl | head
    """
    from hnbooks.exporting import STDOUT_NAME, ExportTargetError, export_to_path
    from hnbooks.titles import iso_time, titles_found, write_titles_csv, write_titles_jsonl

    with open_store(db_path, readonly=True) as store:
        found = titles_found(store, label)
        if output is not None and fmt is None:
            fmt = "csv" if output.lower().endswith((".csv", ".tsv")) else "jsonl"
        if fmt is not None:
            write = write_titles_csv if fmt == "csv" else write_titles_jsonl
            if output is None or output == STDOUT_NAME:
                try:
                    write(found, sys.stdout)
                    sys.stdout.flush()
                except BrokenPipeError:
                    # `| head` stopped reading: end quietly, as `hnbooks export` does.
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                    sys.exit(141)
                return
            try:
                count = export_to_path(store, output, lambda _store, out: write(found, out))
            except ExportTargetError as error:
                fail(str(error))
            if not is_quiet():
                print_data(f"wrote {count} titles to {output}", stderr=True)
            return
    if as_json:
        click.echo(inert_json([title.to_json() for title in found], indent=2))
        return
    table = Table(title=f"titles found: {len(found)}")
    for column in ("title", "label", "items", "mentions", "first seen", "last seen"):
        table.add_column(column)
    table.add_column("HN id", no_wrap=True)
    for title in found[:limit]:
        first = title.items[0]
        more = f" +{len(title.items) - 1}" if len(title.items) > 1 else ""
        table.add_row(
            data_text(title.title),
            data_text(title.label),
            str(len(title.items)),
            str(title.mentions),
            iso_time(title.first_seen)[:10],
            iso_time(title.last_seen)[:10],
            data_text((first.hn_id or first.external_id) + more),
        )
    out_console.print(table)


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
        out_console.print(rounds_table(stats.rounds, out_console.width))
        latest = stats.rounds[-1].report
        left = latest.positives_left()
        if left is not None and left.estimate is not None:
            level = f"{left.level:.0%} interval" if left.level else "interval"
            out_console.print(
                f"About {left.estimate:,.0f} {latest.label} positives are left to find"
                f" ({level} {fmt_count_interval(left, bare=True)}), from the {left.n} random"
                f" answers as of round {stats.rounds[-1].id}."
            )


ROUNDS_TABLE_FULL_WIDTH = 120
"""Below this many columns `hnbooks stats` shows only the rounds' essential columns, each on one
line: ten columns wrapped to a word per line were unreadable in an 80-column terminal."""


def last_batch_positives(report: RoundReport) -> str:
    """'top 3, uncertain 1': the strategies that found positives in the round's previous batch."""
    found = report.last_batch.positives if report.last_batch else {}
    return ", ".join(f"{name} {count}" for name, count in found.items() if count) or "—"


def percent_or_dash(estimate: EstimateReport | None) -> str:
    """'0.1% (0.04–0.3)', or '—' without an estimate."""
    return (estimate and estimate.as_percent()) or "—"


def rounds_table(rounds: list[Round], width: int | None = None) -> Table:
    """One row a scoring round; narrower than `ROUNDS_TABLE_FULL_WIDTH` (a terminal of `width`
    columns), what the last batch found, the head's CV AP, prevalence, recall and device are left
    to `hnbooks stats --json`."""
    full = width is None or width >= ROUNDS_TABLE_FULL_WIDTH
    columns: list[tuple[str, Callable[[Round], str], bool]] = [
        ("round", lambda r: str(r.id), True),
        ("answers", lambda r: f"{r.report.answers:,}", True),
        ("positives", lambda r: f"{r.report.positives:,}", True),
        ("last batch found", lambda r: last_batch_positives(r.report), full),
        ("CV AP", lambda r: fmt_number(r.report.cv_average_precision), full),
        ("found so far", lambda r: percent_or_dash(r.report.found_so_far), True),
        ("left to find", lambda r: fmt_count_interval(r.report.positives_left()), True),
        ("prevalence", lambda r: percent_or_dash(r.report.prevalence), full),
        ("recall", lambda r: percent_or_dash(r.report.recall), full),
        ("device", lambda r: (r.report.embedding and r.report.embedding.device) or "", full),
    ]
    shown = [(header, value) for header, value, keep in columns if keep]
    caption = None if full else "more columns in a wider terminal, or with --json"
    table = Table(title="scoring rounds", caption=caption)
    for header, _ in shown:
        table.add_column(header, no_wrap=True)
    for round_ in rounds:
        table.add_row(*(data_text(value(round_)) for _, value in shown))
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
@json_option("One JSON object on stdout: batch_id, items, mode, query, label.")
@quiet_option
def seed_command(
    db_path: str,
    query: str,
    mode: str,
    limit: int,
    label: str | None,
    models_dir: str | None,
    model: str,
    device: str,
    as_json: bool,
) -> None:
    """Publish a batch of matches for QUERY: the cold-start channel for a rare label.

    Items already answered or already waiting in a batch are left out. The batch's items are
    tagged with strategy `seed`.

    \b
    Examples:
      hnbooks seed --query "book"
      hnbooks seed --regex --query "by [A-Z][a-z]+ [A-Z][a-z]+"
      hnbooks seed --semantic --query "a novel I would recommend" --limit 100
      hnbooks seed --query "book" --json --quiet | jq .batch_id
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
        # Words and sentences say what the label is about, so every later round trains on them;
        # a regular expression is a pattern, not a description.
        kept_query = mode in ("fts", "semantic")
        if kept_query:
            store.set_label_query(chosen_label, query)
    if as_json:
        record = {
            "batch_id": batch_id,
            "items": len(entries),
            "mode": mode,
            "query": query,
            "label": chosen_label,
            "label_query_kept": kept_query,
        }
        click.echo(inert_json(record))
    elif not is_quiet():
        print_data(
            f"published seed batch {batch_id}: {len(entries)} items matching {query!r} ({mode})"
        )
        if kept_query:
            print_data(
                f"hnbooks-score trains on {query!r} as a {chosen_label} positive from now on"
                f" (see `hnbooks labels query {chosen_label}`)",
                stderr=True,
            )


@cli.command("suggest")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@db_option()
@click.option("--label", help="Only this label's suggestions (default: every label).")
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=None,
    help="Suggest spans scored at least this (default: the span model's own, 0.2).",
)
@encoder_options
@json_option("Each input line as JSON with its `suggestions` added, one line each.")
def suggest_command(
    file: Any,
    db_path: str,
    label: str | None,
    threshold: float | None,
    models_dir: str | None,
    model: str | None,
    device: str,
    as_json: bool,
) -> None:
    """Suggest spans for each JSON line of FILE that has a `text` (FILE `-`: stdin).

    The suggestions come from the span model trained on the database's span answers, the one the
    latest scoring round trained (trained here, and kept, if no round has); for a label with no
    marked span yet they are the rules' candidates. Each has `start` and `end` (Python `str`
    offsets, end exclusive, as stored spans), `label`, `score` (the model's calibrated
    probability that it is a span you would mark) and `source` (`rule`: a rule proposed it too;
    `model`: the model alone), best first.

    \b
    Examples:
      hnbooks suggest comments.jsonl --db books.db
      hnbooks suggest comments.jsonl --json | jq -c '.suggestions[] | [.text, .score]'
      echo '{"text": "I loved Dune by Frank Herbert."}' | hnbooks suggest - --json
    """
    import json

    from hnbooks.models.folder import ModelFolderError
    from hnbooks.models.registry import DEFAULT_MODEL, export_command, model_dir
    from hnbooks.scoring.encoder import Device, Encoder, EncoderError
    from hnbooks.scoring.spans import SpanConfig, SpanSuggester

    name = model or DEFAULT_MODEL
    try:
        encoder = Encoder(model_dir(name, models_dir), device=cast(Device, device))
        suggester = SpanSuggester.of_encoder(encoder, SpanConfig())
    except ModelFolderError as error:
        fail(
            f"the encoder {name} is not exported ({error.reason}); run `{export_command(name, models_dir)}`"
        )
    except (EncoderError, ValueError) as error:
        fail(str(error))
    texts: list[tuple[int, dict[str, Any]]] = []
    skipped = 0
    for number, line in enumerate(file, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            skipped += 1
            continue
        texts.append((number, record))
    with open_store(db_path) as store:
        span_model = suggester.load_or_train(store)
    if label is not None:
        span_model.labels = [name for name in span_model.labels if name == label] or [label]
    if threshold is not None:
        for label_model in span_model.models.values():
            label_model.config = replace(label_model.config, show_threshold=threshold)
    suggestions = span_model.suggest([record["text"] for _, record in texts], encoder.token_states)
    for (number, record), found in zip(texts, suggestions, strict=True):
        text = record["text"]
        if as_json:
            click.echo(inert_json({**record, "suggestions": [s.to_json(text) for s in found]}))
            continue
        print_data(f"line {number}: {len(found)} suggestion{'s' if len(found) != 1 else ''}")
        for s in found:
            print_data(
                printable_line(
                    f"  {s.start}-{s.end} {s.label} {s.score:.2f} {s.source}: {text[s.start : s.end]}"
                )
            )
    if skipped:
        print_data(
            f"{skipped} line{'s' if skipped != 1 else ''} without a `text` skipped", stderr=True
        )


@cli.group("labels", context_settings=CONTEXT_SETTINGS)
def labels_group() -> None:
    """The database's labels: what the TUI's keys 1-9 choose, in this order.

    \b
    Examples:
      hnbooks labels list
      hnbooks labels add MOVIE
      hnbooks labels rename MOVE MOVIE
      hnbooks labels remove MOVIE
      hnbooks labels query BOOK "a book I recommend"
    """


@labels_group.command("list")
@db_option()
@click.option("--json", "as_json", is_flag=True, help="A JSON list of {name, key, answers, ...}.")
def labels_list_command(db_path: str, as_json: bool) -> None:
    """Each label, the TUI key that chooses it, and the answers, spans and batches naming it.

    \b
    Examples:
      hnbooks labels list
      hnbooks labels list --json | jq -r '.[].name'
    """
    with open_store(db_path, readonly=True) as store:
        usage = store.label_usage()
    if as_json:
        records = [
            {
                "name": u.name,
                "key": str(n + 1) if n < 9 else None,
                "answers": u.answers,
                "spans": u.spans,
                "batches": u.batches,
            }
            for n, u in enumerate(usage)
        ]
        click.echo(inert_json(records))
        return
    table = Table(title=f"{len(usage)} labels")
    for column in ("key", "label", "answers", "spans", "batches"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for n, u in enumerate(usage):
        table.add_row(
            str(n + 1) if n < 9 else "",
            data_text(u.name),
            f"{u.answers:,}",
            f"{u.spans:,}",
            f"{u.batches:,}",
        )
    out_console.print(table)


@labels_group.command("add")
@click.argument("names", nargs=-1, required=True)
@db_option(create=True)
def labels_add_command(names: tuple[str, ...], db_path: str) -> None:
    """Add NAMES at the end of the labels (one already there is left as it is).

    \b
    Examples:
      hnbooks labels add MOVIE
      hnbooks labels add MOVIE SONG --db books.db
    """
    with open_store(db_path, create=True) as store:
        before = set(store.labels())
        for name in names:
            store.add_label(name)
        labels = store.labels()
    added = [name for name in names if name not in before]
    keys = ", ".join(f"{labels.index(n) + 1} {n}" for n in added if labels.index(n) < 9)
    print_data(f"added {len(added)} labels" + (f" (TUI keys: {keys})" if keys else ""), stderr=True)


@labels_group.command("query")
@click.argument("name")
@click.argument("text", required=False)
@click.option("--clear", is_flag=True, help="Forget the label's words: rounds fall back again.")
@db_option()
def labels_query_command(name: str, text: str | None, clear: bool, db_path: str) -> None:
    """Show or set the words that describe label NAME.

    hnbooks-score trains on them as one more positive of the label in every round, and
    searches them for a seed batch while the label has no positive. Without TEXT this prints
    them, or the fallback rounds use (`hnbooks-score --seed-query` overrides both for one run).
    `hnbooks seed --query` sets them too.

    \b
    Examples:
      hnbooks labels query BOOK
      hnbooks labels query BOOK "a book I recommend, with its title and author"
      hnbooks labels query BOOK --clear
    """
    from hnbooks.scoring.job import RoundConfig

    if clear and text is not None:
        fail("give TEXT or --clear, not both")
    if text is not None and not text.strip():
        fail("TEXT is empty: give some words, or --clear to forget them")
    with open_store(db_path, readonly=text is None and not clear) as store:
        if name not in store.labels():
            fail(f"no label {name!r} (see `hnbooks labels list`)")
        if text is not None or clear:
            store.set_label_query(name, None if clear else text)
        stored = store.label_query(name)
    if stored:
        print_data(stored)
    else:
        fallback = RoundConfig(label=name).cold_start_query()
        print_data(fallback)
        print_data(f"(no words given for {name}: rounds use this fallback)", stderr=True)


@labels_group.command("rename")
@click.argument("old")
@click.argument("new")
@db_option()
def labels_rename_command(old: str, new: str, db_path: str) -> None:
    """Rename label OLD to NEW, everywhere: answers, spans, batches and rounds (one transaction).

    A label is a name you chose, so fixing it carries over to every answer given about it;
    export writes the new name. NEW must not be a label already.

    \b
    Examples:
      hnbooks labels rename BOK BOOK
    """
    with open_store(db_path) as store:
        changed = store.rename_label(old, new)
    print_data(f"renamed {old} to {new} ({changed} answers updated)", stderr=True)


@labels_group.command("remove")
@click.argument("name")
@db_option()
@click.option(
    "--force",
    is_flag=True,
    help="Remove it although answers use it (they are kept as given; the TUI stops offering it).",
)
def labels_remove_command(name: str, db_path: str, force: bool) -> None:
    """Remove label NAME; refused while answers, spans or batches use it, unless --force.

    \b
    Examples:
      hnbooks labels remove MOVIE
      hnbooks labels remove MOVIE --force
    """
    with open_store(db_path) as store:
        usage = store.remove_label(name, force=force)
    kept = f" ({usage.answers} answers naming it kept)" if usage.used else ""
    print_data(f"removed label {name}{kept}", stderr=True)


def main() -> None:
    cli(prog_name="hnbooks")
