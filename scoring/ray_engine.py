"""Embed the texts the cache lacks on a Ray cluster: Parquet shards in, Parquet shards out.

The texts to embed (the same plan as the local engine, see `scoring.embed.plan_embedding`) are cut
into shards by item id (ids `k * shard_size` up to `(k + 1) * shard_size`), each written as
`<block>-<fingerprint>.texts.parquet` (item id, text key, text) in a folder beside the cache
(`X.db.vectors.shards/`). The fingerprint is a hash of the ids and text keys a shard holds, so a
later run recognises a shard it already computed: its `.vectors.parquet` (item id, text key,
float16 vector) is there and is not computed again. Ray Data runs `ShardEncoder`, a callable
class that loads one `Encoder` per worker (CUDA when Ray gave the worker a GPU), over the shards in
waves; the driver writes each finished shard's vectors file (a rename: whole or absent). When
every shard is done, the vectors go into the embedding cache through `EmbeddingCache.write_keyed`,
the same crash-safe path the local engine writes through, and the shard folder is deleted.

Ray is imported only here, and only when this engine runs: the package works without it (the
`ray` extra), and the TUI never loads it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import numpy as np

from hnbooks.scoring.cache import KEY_DTYPE, EmbeddingCache
from hnbooks.scoring.embed import (
    EmbedProgress,
    EmbedReport,
    Plan,
    TextStore,
    begin_pass,
    usable,
)

RAY_INSTALL_HINT = "pip install 'hnbooks[ray]'"
DEFAULT_SHARD_SIZE = 20_000
"""Item ids per shard: what a killed run may have to embed again, per worker."""
SHARDS_PER_WORKER_PER_WAVE = 4
"""Shards handed to Ray at once, per worker: bounds the texts the driver holds in memory, while
each worker loads its model once per wave (about a second, against minutes of encoding)."""
ROWS_PER_BATCH = 512
"""Texts per `map_batches` call: enough for the encoder's length-sorted batching to pay off."""
TEXTS_SUFFIX = ".texts.parquet"
VECTORS_SUFFIX = ".vectors.parquet"

ShardDone = Callable[[str], None]
"""Called with a shard's name once its vectors file is written; may raise to stop the run (the
shards written so far are kept, and the next run skips them)."""


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot run the encoder as asked."""


def import_ray() -> ModuleType:
    """The `ray` package with Ray Data, or RayUnavailable naming the pip command that adds it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as error:
        raise RayUnavailable(
            f"--engine ray needs Ray Data, which is not installed ({error.name or error}); "
            f"add it with `{RAY_INSTALL_HINT}`"
        ) from None
    return ray


@dataclass(frozen=True)
class RayWorkers:
    """How the encoder runs on the cluster: how many workers, and what each one holds."""

    count: int
    gpus_per_worker: int
    """1: each worker holds one GPU and encodes on CUDA; 0: CPU workers."""
    cpus_per_worker: int
    """CPU cores Ray reserves per worker; a CPU worker's encoder runs that many threads."""

    @property
    def variant(self) -> str:
        """The graph GPU workers run ("fp32"); "auto" on CPU workers (the CPU default)."""
        return "fp32" if self.gpus_per_worker else "auto"

    def describe(self) -> str:
        kind = "GPU" if self.gpus_per_worker else "CPU"
        described = f"{self.count} Ray {kind} worker{'s' if self.count != 1 else ''}"
        if self.gpus_per_worker:
            return described
        cores = self.cpus_per_worker
        return f"{described} ({cores} core{'s' if cores != 1 else ''} each)"


@dataclass
class RayCluster:
    """A connection to a Ray cluster; `close` shuts Ray down only when `connect` started it."""

    ray: ModuleType
    workers: RayWorkers
    started_here: bool

    def close(self) -> None:
        if self.started_here and self.ray.is_initialized():
            self.ray.shutdown()


def connect(address: str | None, device: str = "auto", workers: int | None = None) -> RayCluster:
    """Join the Ray cluster at `address` (None: $RAY_ADDRESS, a cluster `ray start` began on this
    machine, else a new local one), or use the Ray this process already initialised.

    Workers are GPU workers (one GPU each, as many as the cluster has GPUs) unless `device` is
    "cpu" or the cluster has no GPU; CPU workers share the cluster's cores (default: one worker per
    core). `workers` overrides the count.
    """
    ray = import_ray()
    started_here = False
    if not ray.is_initialized():
        ray.init(
            address=address,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
        started_here = True
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    cpus = max(1, int(resources.get("CPU", 1)))
    cluster = RayCluster(ray, RayWorkers(1, 0, 1), started_here)
    try:
        if device == "cuda" and gpus == 0:
            raise RayUnavailable(
                "--device cuda: the Ray cluster has no GPU; start workers on GPU machines "
                "(`ray start --address HEAD:6379` there) or use --device cpu"
            )
        if workers is not None and workers < 1:
            raise ValueError("the worker count must be at least 1")
        if gpus and device != "cpu":
            count = min(workers or gpus, gpus)
            cluster.workers = RayWorkers(count, 1, 1)
        else:
            count = min(workers or cpus, cpus)
            cluster.workers = RayWorkers(count, 0, max(1, cpus // count))
    except Exception:
        cluster.close()
        raise
    return cluster


class ShardEncoder:
    """Ray Data's callable class: one `Encoder` per worker, built once, run on every batch."""

    def __init__(self, model_dir: str, variant: str, model_hash: str, threads: int) -> None:
        import ray

        from hnbooks.scoring.encoder import Device, Encoder, Variant

        device: Device = "cuda" if ray.get_gpu_ids() else "cpu"
        self.encoder = Encoder(
            model_dir, device=device, variant=cast(Variant, variant), threads=threads
        )
        if self.encoder.model_hash != model_hash:
            raise RuntimeError(
                f"{model_dir} on this worker holds another export of the model than the driver's "
                "(the cache's vectors would not match): install the same model folder on every node"
            )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.encoder.embed([str(text) for text in batch["text"]])
        return {
            "shard": batch["shard"],
            "item_id": batch["item_id"],
            "key": batch["key"],
            "vector": vectors.astype(np.float16),
        }


@dataclass(frozen=True)
class Shard:
    """Item ids of one id block that need embedding, with their text fingerprints."""

    name: str
    ids: np.ndarray
    keys: np.ndarray

    def texts_path(self, folder: Path) -> Path:
        return folder / (self.name + TEXTS_SUFFIX)

    def vectors_path(self, folder: Path) -> Path:
        return folder / (self.name + VECTORS_SUFFIX)


@dataclass(frozen=True)
class RayEmbedReport(EmbedReport):
    """`EmbedReport` of a Ray run, with the workers and the shards it computed."""

    workers: int = 0
    shards: int = 0
    """Shards the texts to embed were cut into."""
    computed_shards: tuple[str, ...] = ()
    """Names of the shards this run computed (the others were done by an earlier, stopped run)."""


def shard_folder(cache: EmbeddingCache) -> Path:
    """Where the shards of the cache beside `X.db` live: `X.db.vectors.shards/`."""
    return cache.vectors_path.with_name(cache.db_path.name + ".vectors.shards")


def cut_shards(plan: Plan, shard_size: int) -> list[Shard]:
    """The plan's ids by id block, each block named by its number and a hash of its ids and keys."""
    if shard_size < 1:
        raise ValueError("shard_size must be at least 1")
    ids = plan.ids.astype(np.int64)
    keys = plan.keys.astype(KEY_DTYPE)
    blocks = ids // shard_size
    starts: list[int] = (
        np.flatnonzero(np.r_[True, blocks[1:] != blocks[:-1]]).tolist() if ids.size else []
    )
    shards: list[Shard] = []
    for position, start in enumerate(starts):
        stop = starts[position + 1] if position + 1 < len(starts) else ids.size
        block_ids, block_keys = ids[start:stop], keys[start:stop]
        digest = hashlib.sha1(block_ids.tobytes() + block_keys.tobytes()).hexdigest()[:16]
        shards.append(Shard(f"{int(blocks[start]):07d}-{digest}", block_ids, block_keys))
    return shards


def write_parquet_atomically(table: Any, path: Path) -> None:
    """Write `table` to `path` through a temporary file and a rename: a kill leaves no half file."""
    import pyarrow.parquet as pq

    temporary = path.with_name(path.name + ".tmp")
    pq.write_table(table, temporary)
    with temporary.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def remove_stale_files(folder: Path, shards: Sequence[Shard]) -> None:
    """Delete what no current shard names: temporary files, shards of texts that changed since."""
    wanted = {shard.name for shard in shards}
    for path in folder.iterdir():
        name = path.name.removesuffix(TEXTS_SUFFIX).removesuffix(VECTORS_SUFFIX)
        if path.suffix == ".tmp" or name not in wanted:
            path.unlink(missing_ok=True)


def export_texts(store: TextStore, shards: Sequence[Shard], folder: Path) -> None:
    """Write the texts file of every shard lacking both its texts and its vectors file."""
    import pyarrow as pa

    for shard in shards:
        if shard.vectors_path(folder).exists() or shard.texts_path(folder).exists():
            continue
        first, last = int(shard.ids[0]), int(shard.ids[-1])
        texts: dict[int, str] = {}
        for item_id, text in store.iter_item_texts(after_id=first - 1):
            if item_id > last:
                break
            texts[item_id] = text
        try:
            column = [texts[int(item_id)] for item_id in shard.ids]
        except KeyError:
            raise RuntimeError(
                "texts were deleted from the database while exporting them; run the command again"
            ) from None
        table = pa.table(
            {
                "item_id": pa.array(shard.ids, type=pa.int64()),
                "key": pa.array(shard.keys, type=pa.int64()),
                "text": pa.array(column, type=pa.string()),
            }
        )
        write_parquet_atomically(table, shard.texts_path(folder))


def read_texts(shard: Shard, folder: Path, index: int) -> Any:
    """A shard's texts table, with the shard's position in the wave as a column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(shard.texts_path(folder))
    return table.append_column("shard", pa.array(np.full(table.num_rows, index, dtype=np.int32)))


def vectors_table(item_ids: np.ndarray, keys: np.ndarray, vectors: np.ndarray) -> Any:
    import pyarrow as pa

    dim = int(vectors.shape[1])
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float16).ravel(), type=pa.float16())
    return pa.table(
        {
            "item_id": pa.array(item_ids, type=pa.int64()),
            "key": pa.array(keys, type=pa.int64()),
            "vector": pa.FixedSizeListArray.from_arrays(flat, dim),
        }
    )


def read_vectors(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item ids, text keys, float16 vectors (n, dim)) of a shard's vectors file."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    column = table.column("vector").combine_chunks()
    dim = column.type.list_size
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return (
        table.column("item_id").to_numpy().astype(np.int64),
        table.column("key").to_numpy().astype(KEY_DTYPE),
        np.asarray(flat, dtype=np.float16).reshape(-1, dim),
    )


def waves(shards: Sequence[Shard], size: int) -> Iterator[Sequence[Shard]]:
    for start in range(0, len(shards), size):
        yield shards[start : start + size]


def compute_shards(
    cluster: RayCluster,
    shards: Sequence[Shard],
    folder: Path,
    encoder_args: dict[str, Any],
    *,
    on_rows: Callable[[int], None],
    on_shard: ShardDone | None,
) -> list[str]:
    """Embed `shards` on the cluster, wave by wave; write each one's vectors file as it completes."""
    ray = cluster.ray
    workers = cluster.workers
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    computed: list[str] = []
    for wave in waves(shards, max(1, SHARDS_PER_WORKER_PER_WAVE * workers.count)):
        tables = [read_texts(shard, folder, index) for index, shard in enumerate(wave)]
        expected = [table.num_rows for table in tables]
        # One block per batch: Ray hands blocks to workers whole, so big blocks would idle some.
        blocks = [
            table.slice(start, ROWS_PER_BATCH)
            for table in tables
            for start in range(0, table.num_rows, ROWS_PER_BATCH)
        ]
        parts: list[list[dict[str, np.ndarray]]] = [[] for _ in wave]
        received = [0] * len(wave)
        dataset = ray.data.from_arrow(blocks).map_batches(
            ShardEncoder,
            fn_constructor_kwargs=encoder_args | {"threads": workers.cpus_per_worker},
            compute=ray.data.ActorPoolStrategy(size=workers.count),
            batch_size=ROWS_PER_BATCH,
            batch_format="numpy",
            num_gpus=workers.gpus_per_worker,
            num_cpus=workers.cpus_per_worker,
        )
        batches = iter(dataset.iter_batches(batch_format="numpy", batch_size=None))
        try:
            for batch in batches:
                for index in np.unique(batch["shard"]):
                    rows = batch["shard"] == index
                    position = int(index)
                    parts[position].append({name: batch[name][rows] for name in batch})
                    received[position] += int(np.count_nonzero(rows))
                    on_rows(int(np.count_nonzero(rows)))
                    if received[position] == expected[position]:
                        shard = wave[position]
                        write_shard_vectors(shard, parts[position], folder)
                        parts[position] = []
                        computed.append(shard.name)
                        if on_shard is not None:
                            on_shard(shard.name)
        finally:
            # A stop part-way (on_shard raised) shuts the wave's workers down now, not at exit.
            close = getattr(batches, "close", None)
            if close is not None:
                close()
    return computed


def write_shard_vectors(shard: Shard, parts: list[dict[str, np.ndarray]], folder: Path) -> None:
    """The shard's vectors in id order, written whole; checked against the ids it was cut with."""
    item_ids = np.concatenate([part["item_id"] for part in parts]).astype(np.int64)
    order = np.argsort(item_ids, kind="stable")
    item_ids = item_ids[order]
    keys = np.concatenate([part["key"] for part in parts]).astype(KEY_DTYPE)[order]
    vectors = np.concatenate([part["vector"] for part in parts])[order]
    if not np.array_equal(item_ids, shard.ids) or not np.array_equal(keys, shard.keys):
        raise RuntimeError(f"shard {shard.name}: the workers returned other rows than were sent")
    write_parquet_atomically(vectors_table(item_ids, keys, vectors), shard.vectors_path(folder))
    shard.texts_path(folder).unlink(missing_ok=True)


def load_shards(cache: EmbeddingCache, shards: Sequence[Shard], folder: Path) -> int:
    """Write every shard's vectors into the cache; return how many were unusable (left out)."""
    left_out = 0
    if shards:
        cache.reserve(int(shards[-1].ids[-1]) + 1)
    for shard in shards:
        item_ids, keys, vectors = read_vectors(shard.vectors_path(folder))
        good = usable(vectors)
        left_out += int(np.count_nonzero(~good))
        cache.write_keyed(item_ids[good], vectors[good], keys[good])
    cache.flush()
    return left_out


def embed_missing_on_ray(
    store: TextStore,
    cache: EmbeddingCache,
    cluster: RayCluster,
    *,
    model_dir: str | os.PathLike[str],
    variant: str,
    model_hash: str,
    shard_size: int = DEFAULT_SHARD_SIZE,
    progress: EmbedProgress | None = None,
    on_shard: ShardDone | None = None,
) -> RayEmbedReport:
    """Embed every stored item without a usable cached vector of its text on `cluster`.

    `variant` and `model_hash` are those of the driver's encoder, whose model hash the cache is
    keyed by: every worker must load the same graph. Returns without touching the cluster's
    workers when everything is cached already.
    """
    started = time.perf_counter()
    embedding = begin_pass(store, cache)
    plan = embedding.plan
    total = int(plan.ids.size)
    folder = shard_folder(cache)
    shards = cut_shards(plan, shard_size)
    if folder.exists():
        remove_stale_files(folder, shards)
    if not shards:
        embedding.mark_checked(cache)
        if folder.exists():
            folder.rmdir()
        return RayEmbedReport(
            0,
            embedding.already_cached,
            time.perf_counter() - started,
            0.0,
            0.0,
            rebuilt=embedding.rebuilt,
            workers=cluster.workers.count,
        )
    folder.mkdir(parents=True, exist_ok=True)
    export_texts(store, shards, folder)
    pending = [shard for shard in shards if not shard.vectors_path(folder).exists()]
    done = total - sum(int(shard.ids.size) for shard in pending)
    if progress is not None:
        progress(done, total)

    def on_rows(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, total)

    computed = compute_shards(
        cluster,
        pending,
        folder,
        {"model_dir": str(model_dir), "variant": variant, "model_hash": model_hash},
        on_rows=on_rows,
        on_shard=on_shard,
    )
    left_out = load_shards(cache, shards, folder)
    embedding.mark_checked(cache)
    for shard in shards:
        shard.vectors_path(folder).unlink(missing_ok=True)
    folder.rmdir()
    seconds = time.perf_counter() - started
    return RayEmbedReport(
        embedded=total - left_out,
        already_cached=embedding.already_cached,
        seconds=seconds,
        texts_per_s=total / seconds if seconds > 0 else 0.0,
        pad_waste=0.0,
        rebuilt=embedding.rebuilt,
        mismatched=plan.mismatched,
        invalid=plan.invalid,
        unusable_output=left_out,
        workers=cluster.workers.count,
        shards=len(shards),
        computed_shards=tuple(computed),
    )
