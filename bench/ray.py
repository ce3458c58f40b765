"""The Ray engine against the local one: the same texts embedded into a fresh cache by each.

On the same texts (real HN comments from the shared bookfinder data, padded out to --texts as in
bench/encoder.py), in one process and the same minutes:

1. local   `embed_missing`: this process's `Encoder` (all cores), store -> cache
2. ray 1   `embed_missing_on_ray` on a local Ray cluster with 1 CPU worker holding every core
3. ray 2   the same with 2 CPU workers, the cores split between them

Each run starts from an empty cache and includes everything its engine does: reading the store,
(for Ray) the Parquet shards in and out, starting the workers and loading the model in each, and
writing the cache. The local encoder is loaded before its clock starts, as `hnbooks-score` loads it
before embedding. Prints texts/s, the overhead of 1 worker against local (goal: at most 25%), and
the agreement of the cached vectors with the local fp32 encoder (goal: min cosine >= 0.999); the
last line is one JSON object.

    python bench/ray.py                 # 5,000 texts, fp32
    python bench/ray.py --texts 1000 --variant int8
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# This file is named ray.py: the folder Python put first on the path would shadow the ray package.
BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != BENCH_DIR]
sys.path.append(str(BENCH_DIR))
from encoder import DEFAULT_DATA, available_cores, bench_texts  # noqa: E402


def fresh_store(folder: Path, name: str, texts: list[str]) -> tuple[object, list[int]]:
    """A new database holding `texts` in order, and their item ids."""
    from hnbooks.store.db import Store
    from hnbooks.store.records import IncomingItem

    store = Store(folder / f"{name}.db")
    store.add_items(
        (IncomingItem(line=n, text=text, meta={}) for n, text in enumerate(texts)), "bench"
    )
    return store, [item_id for item_id, _ in store.iter_item_texts()]


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=5000, help="texts to embed (default 5000)")
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="folder of *.jsonl with a text field"
    )
    parser.add_argument("--model", default=None, help="registered model name (default: default)")
    parser.add_argument("--models-dir", type=Path, default=None, help="exported models folder")
    parser.add_argument(
        "--variant",
        choices=["fp32", "int8"],
        default="fp32",
        help="graph both engines run (default fp32: the GPU workers' graph)",
    )
    parser.add_argument(
        "--shard-size", type=int, default=1000, help="item ids per Ray shard (default 1000)"
    )
    args = parser.parse_args()

    import ray

    from hnbooks.models.registry import DEFAULT_MODEL, export_command, model_dir
    from hnbooks.scoring.cache import EmbeddingCache
    from hnbooks.scoring.embed import embed_missing
    from hnbooks.scoring.encoder import Encoder
    from hnbooks.scoring.ray_engine import connect, embed_missing_on_ray

    name = args.model or DEFAULT_MODEL
    folder = model_dir(name, args.models_dir)
    if not folder.is_dir():
        raise SystemExit(f"{name} is not exported in {folder}; run `{export_command(name)}`")
    texts, source = bench_texts(args.data, args.texts)
    cores = available_cores()
    print(f"{len(texts)} texts from {source}; {cores} cores; model {name} ({folder})", flush=True)

    local = Encoder(folder, device="cpu", variant=args.variant, threads=cores)
    reference = Encoder(folder, device="cpu", variant="fp32", threads=cores)
    local.embed(texts[:8])
    model_hash = local.model_hash
    results: dict[str, float] = {}
    cosines: dict[str, float] = {}

    with tempfile.TemporaryDirectory(prefix="bench-ray-") as scratch:
        work = Path(scratch)
        store, item_ids = fresh_store(work, "local", texts)
        started = time.perf_counter()
        with EmbeddingCache.open(store.path, model_hash, local.dimension) as cache:  # type: ignore[attr-defined]
            embed_missing(store, local, cache)  # type: ignore[arg-type]
            results["local"] = len(texts) / (time.perf_counter() - started)
            local_vectors = cache.vectors(np.array(item_ids))
        store.close()  # type: ignore[attr-defined]
        print(f"local: {results['local']:.0f} texts/s", flush=True)
        fp32 = reference.embed(texts)
        cosines["local"] = min_cosine(local_vectors, fp32)

        ray.init(num_cpus=cores, include_dashboard=False, logging_level="WARNING")
        try:
            for workers in (1, 2):
                label = f"ray_{workers}"
                cluster = connect(None, "cpu", workers)
                store, item_ids = fresh_store(work, label, texts)
                started = time.perf_counter()
                with EmbeddingCache.open(store.path, model_hash, local.dimension) as cache:  # type: ignore[attr-defined]
                    report = embed_missing_on_ray(
                        store,  # type: ignore[arg-type]
                        cache,
                        cluster,
                        model_dir=folder,
                        variant=args.variant,
                        model_hash=model_hash,
                        shard_size=args.shard_size,
                    )
                    results[label] = len(texts) / (time.perf_counter() - started)
                    cosines[label] = min_cosine(cache.vectors(np.array(item_ids)), fp32)
                store.close()  # type: ignore[attr-defined]
                print(
                    f"ray, {cluster.workers.describe()}: {results[label]:.0f} texts/s "
                    f"({report.shards} shards)",
                    flush=True,
                )
        finally:
            ray.shutdown()

    overhead = results["local"] / results["ray_1"] - 1
    summary = {
        "texts": len(texts),
        "cores": cores,
        "variant": args.variant,
        "local_tps": round(results["local"], 1),
        "ray_1_tps": round(results["ray_1"], 1),
        "ray_2_tps": round(results["ray_2"], 1),
        "overhead_1_worker": round(overhead, 3),
        "overhead_goal_met": overhead <= 0.25,
        "min_cosine": round(min(cosines["ray_1"], cosines["ray_2"]), 6),
        "min_cosine_local": round(cosines["local"], 6),
        "source": source,
        "date": time.strftime("%Y-%m-%d"),
        "cpu_count": os.cpu_count(),
    }
    print(f"overhead of 1 Ray worker vs local: {100 * overhead:.1f}% (goal <= 25%)")
    print(f"min cosine vs local fp32: ray {summary['min_cosine']}, local {cosines['local']:.5f}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
