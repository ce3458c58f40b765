"""`hnbooks-score`: the batch job between annotation rounds.

Embeds the texts not embedded yet (cached beside the database), retrains the head on every answer so
far, scores the whole pool and publishes the next batch. Progress and the round's report go to the
terminal; the same report is stored in the database for `hnbooks stats` and the TUI.
"""

from __future__ import annotations

import sys
import time
from typing import Any

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
    default="top=0.7,uncertain=0.1,novel=0.1,random=0.1",
    show_default=True,
    help="Shares of the batch per strategy: top score, uncertain, novel (far from all answered), random.",
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
    model: str,
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
    from hnbooks.scoring.select import parse_mix

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
        chosen_label = label or labels[0]
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
                extra_report={"device": prepared.device, "model": model, **prepared.embed_report},
                started_at=started_at,
            )
        print_round(result.report, result.batch_id, len(result.entries))
    if result.batch_id is None:
        sys.exit(0)


def print_round(report: dict[str, Any], batch_id: int | None, size: int) -> None:
    if report.get("mode") == "seed":
        console.print(
            f"no positive answer yet: seed channel only (query: {report.get('seed_query')!r})",
            style="yellow",
            markup=False,
        )
    if batch_id is None:
        console.print(
            f"no batch published: {report.get('note', 'nothing to choose')}", markup=False
        )
        return
    table = Table(title=f"published batch {batch_id}: {size} items", show_header=False)
    picked = report.get("picked_per_strategy") or {"seed": size}
    table.add_row("picked", ", ".join(f"{k} {v}" for k, v in picked.items()))
    table.add_row(
        "answers so far", f"{report.get('answers', 0):,} ({report.get('positives', 0):,} positive)"
    )
    if report.get("positives_per_strategy"):
        found = report["positives_per_strategy"]
        answered = report.get("answers_per_strategy") or {}
        table.add_row(
            "positives in the last batch",
            ", ".join(f"{k} {v}/{answered.get(k, 0)}" for k, v in found.items()),
        )
    if report.get("cv_average_precision") is not None:
        table.add_row("head CV average precision", f"{report['cv_average_precision']:.3f}")
    if report.get("prevalence"):
        table.add_row("estimated prevalence", fmt_interval(report["prevalence"]))
    if report.get("recall"):
        table.add_row("estimated recall of the head", fmt_interval(report["recall"]))
    if report.get("device"):
        table.add_row("device", str(report["device"]))
    seconds = report.get("seconds") or {}
    if seconds:
        table.add_row("seconds", ", ".join(f"{k} {v:.2f}" for k, v in seconds.items()))
    console.print(table)
