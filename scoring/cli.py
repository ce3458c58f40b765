"""`hnbooks-score`: the batch job between annotation rounds.

Embeds the texts not embedded yet (cached beside the database), retrains the head on every answer so
far, scores the whole pool and publishes the next batch. Progress and the round's report go to the
terminal; the same report is stored in the database for `hnbooks stats` and the TUI.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, NoReturn

import click
from rich.table import Table

from hnbooks.console import (
    CONTEXT_SETTINGS,
    db_option,
    encoder_options,
    fail,
    fmt_interval,
    json_option,
    open_store,
    quiet_option,
)
from hnbooks.console import err_console as console
from hnbooks.printable import inert_json
from hnbooks.scoring.select import STRATEGY_REGISTRY, Mix, parse_mix
from hnbooks.store import Store
from hnbooks.store.reports import RoundReport
from hnbooks.store.scorer import LeaseHolder

if TYPE_CHECKING:
    from hnbooks.scoring.job import RoundConfig, RoundResult


@click.command(context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="hnbooks", prog_name="hnbooks-score")
@db_option()
@encoder_options
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=50,
    show_default=True,
    help="Items in the published batch.",
)
@click.option(
    "--mix",
    default=Mix().describe(),
    show_default=True,
    help="Shares of the batch per strategy: "
    + "; ".join(f"{name}: {strategy.summary}" for name, strategy in STRATEGY_REGISTRY.items())
    + ".",
)
@click.option(
    "--label", default=None, help="Label to score for (default: the database's first label)."
)
@click.option(
    "--seed-query",
    default=None,
    help="What to look for, in a few words: the seed channel's search while no positive exists, "
    "then one more positive the head is trained on, for this run [default: the label's words "
    "(`hnbooks labels query`, `hnbooks seed --query`), else a sentence for the label].",
)
@click.option(
    "--random-seed", type=int, default=None, help="Fix the random choices (reproducible batches)."
)
@click.option(
    "--watch",
    is_flag=True,
    help="Keep running: embed new texts as they come and publish the next batch before the "
    "current one runs out (hnbooks-tui starts this on its own).",
)
@click.option(
    "--low-water",
    type=click.IntRange(0, 100_000),
    default=None,
    help="--watch: start a round when an active annotator has fewer items left [default: half a batch].",
)
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(0),
    default=0.0,
    help="Seconds to wait for another scorer holding this database to finish (default: say who and stop).",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Who embeds the new texts: this process, or the workers of a Ray cluster (needs "
    "`pip install 'hnbooks[ray]'`; GPU workers when the cluster has GPUs). Scoring stays here.",
)
@click.option(
    "--ray-address",
    default=None,
    metavar="ADDR",
    help="--engine ray: the cluster to join, e.g. 10.0.0.5:6379 [default: $RAY_ADDRESS, a "
    "cluster `ray start` began on this machine, else a new local one].",
)
@click.option(
    "--ray-workers",
    type=click.IntRange(1, 10_000),
    default=None,
    help="--engine ray: encoders to run [default: one per GPU of the cluster, else one per CPU core].",
)
@click.option(
    "--words/--no-words",
    default=True,
    show_default=True,
    help="The head reads each text's hashed word counts (TF-IDF) beside its embedding: in the "
    "discovery suite that finds 5-25% more positives than embeddings alone. Counted once per "
    "text, kept beside the database (about a fifth of the vectors' size).",
)
@json_option(
    "The round as one JSON object on stdout: batch_id, items, mode, picked, report "
    "(with --watch: one JSON line per round)."
)
@quiet_option
def main(
    db_path: str,
    models_dir: str | None,
    model: str | None,
    device: str,
    batch_size: int,
    mix: str,
    label: str | None,
    seed_query: str | None,
    random_seed: int | None,
    watch: bool,
    low_water: int | None,
    wait_s: float,
    engine: str,
    ray_address: str | None,
    ray_workers: int | None,
    words: bool,
    as_json: bool,
) -> None:
    """Score the whole pool and publish the next batch to annotate.

    \b
    Each run:
      1. embeds only the texts not embedded yet (vectors cached beside the database), and counts
         their words,
      2. trains the head on every answer so far (before any positive: seed channel only),
      3. scores every unlabelled text and picks a mix of top / uncertain / novel / random,
      4. publishes the batch and the round's report in one transaction.
    Safe to run while annotators work in hnbooks-tui; a killed run publishes nothing and the
    next run reuses what was already embedded. One scorer works on a database at a time (a lease
    in the database); a second one says who holds it, or waits with --wait.

    \b
    With --watch it keeps running: the encoder stays loaded, new texts are embedded as they are
    imported, and a round starts when an annotator asks for one (n in the TUI), when a batch's
    worth of new answers arrived, or when an active annotator's queue runs low. Ctrl-C or SIGTERM
    stops it cleanly.

    \b
    Examples:
      hnbooks-score --db books.db
      hnbooks-score --db books.db --watch
      hnbooks-score --batch-size 100 --mix top=0.8,random=0.2
      hnbooks-score --seed-query "a novel I recommend" --device cpu
      hnbooks-score --db books.db --engine ray --ray-address 10.0.0.5:6379
      hnbooks-score --json --quiet | jq .batch_id
      hnbooks-score --watch --json --quiet | jq -c '{batch_id, items}'
    """
    from hnbooks.scoring.job import RoundConfig

    try:
        parsed_mix = parse_mix(mix)
    except ValueError as error:
        fail(str(error))
    holder = LeaseHolder.this_process("watch" if watch else "once")
    with open_store(db_path) as store:
        if store.item_count() == 0 and not watch:
            fail(
                f"{db_path} holds no texts yet; import some with `hnbooks import FILE --db {db_path}`"
            )
        labels = store.labels()
        chosen_label = label or store.default_label()
        if chosen_label not in labels:
            fail(f"unknown label {chosen_label!r}; the database defines {', '.join(labels)}")
        config = RoundConfig(
            label=chosen_label,
            batch_size=batch_size,
            mix=parsed_mix,
            seed_query=seed_query,
            random_seed=random_seed,
        )
        take_lease(store, holder, wait_s)
        try:
            if watch:
                watch_database(
                    store,
                    db_path,
                    config,
                    holder,
                    model,
                    models_dir,
                    device,
                    low_water,
                    as_json,
                    engine=engine,
                    ray_address=ray_address,
                    ray_workers=ray_workers,
                    words=words,
                )
                return
            result = score_once(
                store,
                db_path,
                config,
                model,
                models_dir,
                device,
                engine,
                ray_address,
                as_json,
                ray_workers=ray_workers,
                words=words,
            )
        finally:
            store.release_scorer_lease(holder)
    if result.batch_id is None:
        sys.exit(0)


def take_lease(store: Store, holder: LeaseHolder, wait_s: float) -> None:
    """Hold the database's scorer lease, or end with a line naming who holds it."""
    deadline = time.monotonic() + wait_s
    announced = False
    while True:
        lease = store.acquire_scorer_lease(holder)
        if lease.holder == holder:
            return
        if time.monotonic() >= deadline:
            fail(
                f"{store.path}: {lease.holder.describe()} is scoring this database (since "
                f"{time.strftime('%H:%M:%S', time.localtime(lease.acquired_at))}); it publishes the next "
                "batches. Stop it first, or wait for it with --wait SECONDS"
            )
        if not announced:
            console.print(f"waiting for {lease.holder.describe()} to finish…", markup=False)
            announced = True
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def cache_failure(db_path: str, error: OSError) -> NoReturn:
    # The embedding cache lives beside the database: a full disk or a read-only folder.
    fail(
        f"{db_path}: cannot write the embedding cache beside the database ({error.strerror or error})"
    )


def score_once(
    store: Store,
    db_path: str,
    config: RoundConfig,
    model: str | None,
    models_dir: str | None,
    device: str,
    engine: str = "local",
    ray_address: str | None = None,
    as_json: bool = False,
    ray_workers: int | None = None,
    words: bool = True,
) -> RoundResult:
    from hnbooks.scoring.job import run_round
    from hnbooks.scoring.prepare import prepare_pool
    from hnbooks.scoring.spans import SpanSuggester

    started_at = time.time()
    try:
        prepared = prepare_pool(
            store,
            db_path,
            model,
            models_dir,
            device,
            engine=engine,
            ray_address=ray_address,
            ray_workers=ray_workers,
            words=words,
        )
    except OSError as error:
        cache_failure(db_path, error)
    with console.status("training the head and scoring the pool…"):
        result = run_round(
            store,
            prepared.pool,
            config,
            encode_query=prepared.encode_query,
            embedding=prepared.embedding,
            started_at=started_at,
            spans=SpanSuggester.of_encoder(prepared.encoder) if prepared.encoder else None,
        )
    if as_json:
        click.echo(round_json(result))
    else:
        print_round(result.report, len(result.entries))
    return result


def round_json(result: RoundResult) -> str:
    """One round as one line of JSON: what it published and its whole report."""
    return inert_json(
        {
            "batch_id": result.batch_id,
            "items": len(result.entries),
            "mode": result.mode,
            "picked": result.report.picked_per_strategy,
            "report": json.loads(result.report.to_json()),
        }
    )


def watch_database(
    store: Store,
    db_path: str,
    config: RoundConfig,
    holder: LeaseHolder,
    model: str | None,
    models_dir: str | None,
    device: str,
    low_water: int | None,
    as_json: bool = False,
    *,
    engine: str = "local",
    ray_address: str | None = None,
    ray_workers: int | None = None,
    words: bool = True,
) -> None:
    """Run the watching scorer until SIGINT or SIGTERM (new texts embedded on Ray with
    `engine` "ray", scored here)."""
    from hnbooks.scoring.prepare import connect_ray, load_encoder
    from hnbooks.scoring.watch import WatchConfig, Watcher

    class JsonLinesWatcher(Watcher):
        """Writes each round as one JSON line on stdout (`--watch --json`)."""

        def run_one_round(self, largest_item_id: int) -> RoundResult:
            result = super().run_one_round(largest_item_id)
            click.echo(round_json(result))
            sys.stdout.flush()
            return result

    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        loaded = load_encoder(db_path, model, models_dir, device, words=words)
    except OSError as error:
        cache_failure(db_path, error)

    def log(line: str) -> None:
        console.print(f"{time.strftime('%H:%M:%S')} {line}", markup=False, highlight=False)

    watch_config = WatchConfig(
        round=config, low_water=config.batch_size // 2 if low_water is None else low_water
    )
    log(
        f"watching {db_path} as {holder.describe()} (batch {config.batch_size}, low water {watch_config.low_water})"
    )
    cluster = connect_ray(ray_address, device, ray_workers) if engine == "ray" else None
    watcher_class = JsonLinesWatcher if as_json else Watcher
    try:
        watcher_class(store, loaded, watch_config, holder, stop, log, cluster).run()
    finally:
        if cluster is not None:
            cluster.close()
    log("stopped")


def print_round(report: RoundReport, size: int) -> None:
    if report.mode == "seed":
        console.print(
            f"no positive answer yet: seed channel only (query: {report.seed_query!r})",
            style="yellow",
            markup=False,
        )
    if report.batch_id is None:
        console.print(f"no batch published: {report.note or 'nothing to choose'}", markup=False)
        return
    table = Table(title=f"published batch {report.batch_id}: {size} items", show_header=False)
    picked = report.picked_per_strategy or {"seed": size}
    table.add_row("picked", ", ".join(f"{k} {v}" for k, v in picked.items()))
    table.add_row("answers so far", f"{report.answers:,} ({report.positives:,} positive)")
    if report.last_batch is not None and report.last_batch.positives:
        found, answered = report.last_batch.positives, report.last_batch.answered
        table.add_row(
            "positives in the last batch",
            ", ".join(f"{k} {v}/{answered.get(k, 0)}" for k, v in found.items()),
        )
    if report.mode == "model" and report.features:
        query = f", and the query {report.seed_query!r} as a positive" if report.seed_query else ""
        table.add_row("the head read", report.features + query)
    if report.cv_average_precision is not None:
        table.add_row("head CV average precision", f"{report.cv_average_precision:.3f}")
    so_far = report.found_so_far
    if so_far is not None and so_far.estimate is not None:
        level = f", {100 * so_far.level:.0f}% interval" if so_far.level else ""
        table.add_row("share of positives found so far", f"{so_far.as_percent()}{level}")
    if report.prevalence is not None:
        table.add_row("estimated prevalence", fmt_interval(report.prevalence))
    if report.recall is not None:
        table.add_row("estimated recall of the head", fmt_interval(report.recall))
    if report.embedding is not None and report.embedding.device:
        table.add_row("device", report.embedding.device)
    if report.embedding is not None and report.embedding.engine == "ray":
        table.add_row("engine", f"ray, {report.embedding.workers} workers")
    if report.seconds:
        table.add_row("seconds", ", ".join(f"{k} {v:.2f}" for k, v in report.seconds.items()))
    console.print(table)
