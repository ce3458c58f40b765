"""Everything a round needs before it can run: the exported model, the encoder, and every text
embedded into the cache beside the database. Progress goes to the terminal; a problem the user can fix
ends the command with one line saying what to do.

The model must already be exported (`hnbooks models export`): a scoring run never starts a PyTorch
export, which needs the export extra, takes a minute and would hide behind a spinner.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from hnbooks.console import err_console as console
from hnbooks.console import fail
from hnbooks.models.folder import ModelFolderError
from hnbooks.models.registry import DEFAULT_MODEL, export_command, model_dir, model_spec
from hnbooks.store import Store
from hnbooks.store.reports import EmbeddingReport

if TYPE_CHECKING:
    from hnbooks.scoring.cache import EmbeddingCache
    from hnbooks.scoring.embed import EmbedProgress, EmbedReport
    from hnbooks.scoring.encoder import Encoder
    from hnbooks.scoring.pool import PoolVectors
    from hnbooks.scoring.ray_engine import RayCluster, ShardDone
    from hnbooks.scoring.terms import TermCache


@dataclass
class LoadedEncoder:
    """The exported model, loaded once, and the embedding cache of one database."""

    encoder: Encoder
    cache: EmbeddingCache
    model: str
    provider: str
    """Where and how texts are encoded, e.g. "CPU, 2 threads, int8"."""
    terms: TermCache | None = None
    """The database's word counts, when the head reads words beside the embeddings."""


@dataclass
class PreparedPool:
    pool: PoolVectors
    """The embeddings, with the words before them when the encoder was loaded with words."""
    encode_query: Callable[[str], Any]
    embedding: EmbeddingReport
    """The encoder (model, where it ran) and what this preparation embedded, for the round's report."""
    encoder: Encoder | None = None
    """The encoder itself, for the span model's token states."""

    @property
    def device(self) -> str:
        """Where and how texts were encoded, e.g. "CPU, 2 threads, int8"."""
        return self.embedding.device or ""


def load_encoder(
    db_path: str,
    model: str | None,
    models_dir: str | None,
    device: str,
    *,
    variant: str = "auto",
    words: bool = False,
) -> LoadedEncoder:
    """Open the exported model and the database's embedding cache (and, with `words`, its word
    counts: see `hnbooks.scoring.terms`).

    `model` is a registered name (None: the default model); an unknown name, or a model that is not
    exported (or is damaged) in `models_dir` (default: `default_models_dir()`), ends the command
    with one error line.
    """
    from hnbooks.scoring.cache import EmbeddingCache
    from hnbooks.scoring.encoder import Device, Encoder, ModelLoadError, Variant

    model = model or DEFAULT_MODEL
    try:
        model_spec(model)
    except ValueError as error:
        fail(str(error))
    folder = model_dir(model, models_dir)
    try:
        # Encoder refuses a device it does not know (ValueError below).
        encoder = Encoder(folder, device=cast(Device, device), variant=cast(Variant, variant))
        with console.status(f"loading {model}…"):
            provider = encoder.provider
    except ModelFolderError as error:
        fail(
            f"the encoder {model} is not exported in {folder} ({error.reason}); "
            f"run `{export_command(model, models_dir)}`"
        )
    except ModelLoadError as error:
        fail(f"{error}; export it again with `{export_command(model, models_dir, force=True)}`")
    except (RuntimeError, ValueError) as error:
        fail(str(error))
    console.print(Text.assemble(("encoder ", "bold"), f"{model} on {provider}"))
    cache = EmbeddingCache.open(db_path, encoder.model_hash, encoder.dimension)
    if cache.reset_reason:
        console.print(f"embedding cache rebuilt: {cache.reset_reason}", style="yellow")
    terms = None
    if words:
        from hnbooks.scoring.terms import TermCache

        terms = TermCache.open(db_path)
        if terms.reset_reason:
            console.print(f"word counts rebuilt: {terms.reset_reason}", style="yellow")
    return LoadedEncoder(encoder, cache, model, provider, terms)


@contextmanager
def progress_bar(
    bar: bool, what: str = "embedding", on_chunk: EmbedProgress | None = None
) -> Iterator[EmbedProgress]:
    """A progress callback that moves a bar named `what` on the terminal (when `bar`), then calls
    `on_chunk`."""
    with Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        # Off a terminal rich would still print a newline when the bar stops: stderr stays clean.
        disable=not (bar and console.is_terminal),
    ) as progress:
        task = progress.add_task("embed", total=None, rate="")
        started = time.perf_counter()

        def advance(done: int, total: int) -> None:
            elapsed = max(time.perf_counter() - started, 1e-9)
            progress.update(task, completed=done, total=total, rate=f"{done / elapsed:.0f} texts/s")
            if on_chunk is not None:
                on_chunk(done, total)

        yield advance


def embed_new_texts(
    store: Store, loaded: LoadedEncoder, *, on_chunk: EmbedProgress | None = None, bar: bool = True
) -> EmbeddingReport:
    """Embed the texts the cache lacks (a progress bar on the terminal when `bar`); `on_chunk` is
    called after each chunk too, and may raise to stop early (what was embedded stays cached)."""
    from hnbooks.scoring.embed import embed_missing

    with progress_bar(bar, on_chunk=on_chunk) as advance:
        report = embed_missing(store, loaded.encoder, loaded.cache, progress=advance)
    return describe_embedding(report, loaded, bar=bar)


def describe_embedding(
    report: EmbedReport,
    loaded: LoadedEncoder,
    *,
    bar: bool = True,
    engine: str = "local",
    device: str | None = None,
    workers: int | None = None,
) -> EmbeddingReport:
    """Say on the terminal what embedding did, and return it for the round's report."""
    if report.rebuilt:
        console.print(f"embedding cache rebuilt: {report.rebuilt}", style="yellow")
    if report.mismatched:
        console.print(
            f"re-embedded {report.mismatched:,} texts whose vectors did not match their text",
            style="yellow",
        )
    if report.invalid:
        console.print(
            f"re-embedded {report.invalid:,} texts whose cached vectors were not finite or all "
            "zeros (a damaged cache file)",
            style="yellow",
        )
    if report.unusable_output:
        console.print(
            f"the encoder gave {report.unusable_output:,} texts a non-finite or zero vector; "
            "they are left out of scoring",
            style="yellow",
        )
    if report.embedded:
        padding = f", padding waste {report.pad_waste:.1%}" if engine == "local" else ""
        console.print(
            f"embedded {report.embedded:,} new texts in {report.seconds:.1f} s "
            f"({report.texts_per_s:.0f} texts/s{padding}); "
            f"{report.already_cached:,} already cached"
        )
    elif bar:
        console.print(f"embedded nothing new: all {report.already_cached:,} texts already cached")
    return EmbeddingReport(
        model=loaded.model,
        device=device or loaded.provider,
        embedded=report.embedded,
        already_cached=report.already_cached,
        texts_per_s=round(report.texts_per_s, 1) if report.embedded else None,
        pad_waste=round(report.pad_waste, 4) if report.embedded and engine == "local" else None,
        engine=engine,
        workers=workers,
    )


def embed_new_texts_on_ray(
    store: Store,
    loaded: LoadedEncoder,
    cluster: RayCluster,
    *,
    shard_size: int | None = None,
    on_shard: ShardDone | None = None,
    bar: bool = True,
) -> EmbeddingReport:
    """Embed the texts the cache lacks on the Ray cluster's workers (see `scoring.ray_engine`)."""
    from hnbooks.scoring.ray_engine import DEFAULT_SHARD_SIZE, embed_missing_on_ray

    workers = cluster.workers
    device = f"{workers.describe()}, {loaded.encoder.variant}"
    console.print(Text.assemble(("embedding on ", "bold"), device))
    with progress_bar(bar) as advance:
        report = embed_missing_on_ray(
            store,
            loaded.cache,
            cluster,
            model_dir=loaded.encoder.model_dir,
            variant=loaded.encoder.variant,
            model_hash=loaded.encoder.model_hash,
            shard_size=shard_size or DEFAULT_SHARD_SIZE,
            progress=advance,
            on_shard=on_shard,
        )
    if report.shards and len(report.computed_shards) < report.shards:
        console.print(
            f"{report.shards - len(report.computed_shards)} of {report.shards} shards were "
            "computed by an earlier run and reused"
        )
    return describe_embedding(
        report, loaded, bar=bar, engine="ray", device=device, workers=workers.count
    )


def connect_ray(address: str | None, device: str, workers: int | None) -> RayCluster:
    """Join (or start) the Ray cluster, or end the command with a line saying what to do."""
    from hnbooks.scoring.ray_engine import RayUnavailable, connect

    try:
        with console.status("connecting to Ray…"):
            return connect(address, device, workers)
    except (RayUnavailable, ValueError) as error:
        fail(str(error))
    except ConnectionError as error:
        fail(f"cannot reach the Ray cluster at {address or 'RAY_ADDRESS'}: {error}")


def prepared(
    store: Store, loaded: LoadedEncoder, embedding: EmbeddingReport, *, bar: bool = True
) -> PreparedPool:
    """The pool as it stands in the cache now, with a query encoder for the seed channel; with
    word counts, the words of texts new since the last count are counted first (a progress bar
    on the terminal when `bar`)."""
    from hnbooks.scoring.pool import CachedPool, WordPool

    def encode_query(query: str) -> Any:
        return loaded.encoder.encode([query])[0]

    pool: PoolVectors = CachedPool(loaded.cache, store)
    if loaded.terms is not None:
        count_new_words(store, loaded.terms, bar=bar)
        pool = WordPool(pool, loaded.terms)
    return PreparedPool(
        pool=pool,
        encode_query=encode_query,
        embedding=embedding,
        encoder=loaded.encoder,
    )


def count_new_words(store: Store, terms: TermCache, *, bar: bool = True) -> None:
    """Count the words of the texts `terms` lacks, saying so on the terminal when `bar`."""
    from hnbooks.scoring.terms import count_missing_terms

    with progress_bar(bar, "counting words") as advance:
        report = count_missing_terms(store, terms, progress=advance)
    if report.rebuilt:
        console.print(f"word counts rebuilt: {report.rebuilt}", style="yellow")
    if report.counted and bar:
        console.print(
            f"counted the words of {report.counted:,} new texts in {report.seconds:.1f} s; "
            f"{report.already_counted:,} already counted"
        )


def prepare_pool(
    store: Store,
    db_path: str,
    model: str | None,
    models_dir: str | None,
    device: str,
    *,
    engine: str = "local",
    ray_address: str | None = None,
    ray_workers: int | None = None,
    words: bool = False,
) -> PreparedPool:
    """Open the exported model, embed what is not cached yet, and return the pool's vectors
    (with `words`, each text's word counts before its vector).

    `engine` "ray" embeds on a Ray cluster (`ray_address`; None: a local one) and scores here:
    `device` then says where the workers encode, and this process encodes only the seed query.
    """
    if engine == "ray":
        cluster = connect_ray(ray_address, device, ray_workers)
        try:
            loaded = load_encoder(
                db_path, model, models_dir, "cpu", variant=cluster.workers.variant, words=words
            )
            embedding = embed_new_texts_on_ray(store, loaded, cluster)
        finally:
            cluster.close()
        return prepared(store, loaded, embedding)
    loaded = load_encoder(db_path, model, models_dir, device, words=words)
    return prepared(store, loaded, embed_new_texts(store, loaded))
