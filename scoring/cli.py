"""`hnbooks-score`: the batch job between annotation rounds.

Embeds the texts not embedded yet (cached beside the database), retrains the head on every answer so
far, scores the whole pool and publishes the next batch. Progress and the round's report go to the
terminal; the same report is stored in the database for `hnbooks stats` and the TUI.
"""

from __future__ import annotations

import sys
import time

import click
from rich.table import Table

from hnbooks.console import (
    CONTEXT_SETTINGS,
    db_option,
    encoder_options,
    fail,
    fmt_interval,
    open_store,
)
from hnbooks.console import err_console as console
from hnbooks.scoring.select import STRATEGY_REGISTRY, Mix, parse_mix
from hnbooks.store.reports import RoundReport


@click.command(context_settings=CONTEXT_SETTINGS)
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
    "--seed-query", default=None, help="Cold start: what to look for while no positive exists."
)
@click.option(
    "--random-seed", type=int, default=None, help="Fix the random choices (reproducible batches)."
)
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
) -> None:
    """Score the whole pool and publish the next batch to annotate.

    \b
    Each run:
      1. embeds only the texts not embedded yet (vectors cached beside the database),
      2. trains the head on every answer so far (before any positive: seed channel only),
      3. scores every unlabelled text and picks a mix of top / uncertain / novel / random,
      4. publishes the batch and the round's report in one transaction.
    Safe to run while annotators work in hnbooks-tui; a killed run publishes nothing and the
    next run reuses what was already embedded.

    \b
    Examples:
      hnbooks-score --db books.db
      hnbooks-score --batch-size 100 --mix top=0.8,random=0.2
      hnbooks-score --seed-query "a novel I recommend" --device cpu
    """
    from hnbooks.scoring.job import RoundConfig, run_round
    from hnbooks.scoring.prepare import prepare_pool

    try:
        parsed_mix = parse_mix(mix)
    except ValueError as error:
        fail(str(error))
    started_at = time.time()
    with open_store(db_path) as store:
        if store.item_count() == 0:
            fail(
                f"{db_path} holds no texts yet; import some with `hnbooks import FILE --db {db_path}`"
            )
        labels = store.labels()
        chosen_label = label or store.default_label()
        if chosen_label not in labels:
            fail(f"unknown label {chosen_label!r}; the database defines {', '.join(labels)}")
        try:
            prepared = prepare_pool(store, db_path, model, models_dir, device)
        except OSError as error:
            # The embedding cache lives beside the database: a full disk or a read-only folder.
            fail(
                f"{db_path}: cannot write the embedding cache beside the database ({error.strerror or error})"
            )
        config = RoundConfig(
            label=chosen_label,
            batch_size=batch_size,
            mix=parsed_mix,
            seed_query=seed_query,
            random_seed=random_seed,
        )
        with console.status("training the head and scoring the pool…"):
            result = run_round(
                store,
                prepared.pool,
                config,
                encode_query=prepared.encode_query,
                embedding=prepared.embedding,
                started_at=started_at,
            )
        print_round(result.report, len(result.entries))
    if result.batch_id is None:
        sys.exit(0)


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
    if report.cv_average_precision is not None:
        table.add_row("head CV average precision", f"{report.cv_average_precision:.3f}")
    if report.prevalence is not None:
        table.add_row("estimated prevalence", fmt_interval(report.prevalence))
    if report.recall is not None:
        table.add_row("estimated recall of the head", fmt_interval(report.recall))
    if report.embedding is not None and report.embedding.device:
        table.add_row("device", report.embedding.device)
    if report.seconds:
        table.add_row("seconds", ", ".join(f"{k} {v:.2f}" for k, v in report.seconds.items()))
    console.print(table)
