"""Scale benchmark: one scoring round (train + score + select + publish) from cached embeddings.

Builds synthetic pools of random unit vectors (no encoding) at two sizes, 100k and 1M by default
(items written in bulk, see `synthetic_pool.py`), with a few hundred answers (planted positives, rejects and stratified random answers), then times
`run_round` in a fresh process per size so each peak RSS is its own. The ratio of the two peaks shows
whether memory stays flat as the pool grows. As shipped, the head reads each text's hashed word
counts beside its vector (counted once with the real counter when a pool is built; `--no-words`:
embeddings alone).

    python bench/round.py                  # 100k and 1M
    python bench/round.py --sizes 20000,200000 --keep
    python bench/round.py --sizes 1000000,10000000 --folder /tmp/bench10m   # built once, reused

Last line: {"items": N, "round_s": .., "round_s_smallest": .., "rss_ratio_vs_smallest": ..,
"bytes_per_item": ..} for the largest size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic_pool import count_words, disk_bytes  # noqa: E402

DIM = 384
POSITIVES = 400


def build(folder: Path, items: int, seed: int = 0) -> Path:
    """A database of `items` short texts and a filled embedding cache beside it."""
    from synthetic_pool import bulk_items, fill_vectors

    db_path = folder / f"pool-{items}.db"
    bulk_items(db_path, items)
    positive_ids = fill_vectors(db_path, items, "synthetic", POSITIVES, seed)
    (folder / f"pool-{items}.positives.json").write_text(json.dumps(positive_ids))
    return db_path


def answer_some(db_path: Path, positive_ids: list[int], items: int, seed: int = 0) -> None:
    """60 found positives, 300 rejects, and 40 random-strategy answers with inclusion probabilities."""
    from hnbooks.store.db import Store
    from hnbooks.store.records import BatchEntry, NewAnswer

    rng = np.random.default_rng(seed + 1)
    store = Store(db_path)
    positive_set = set(positive_ids)
    for item_id in positive_ids[:60]:
        store.record_answer(item_id, NewAnswer("bench", "accept"))
    negatives = [
        i
        for i in rng.choice(np.arange(1, items + 1), 400, replace=False).tolist()
        if i not in positive_set
    ]
    for item_id in negatives[:300]:
        store.record_answer(item_id, NewAnswer("bench", "reject"))
    randoms = [i for i in negatives[300:340]]
    batch = store.publish_batch(
        [BatchEntry(i, "random", 0.0, None, 40 / items) for i in randoms], source="score"
    )
    for item_id in randoms:
        store.record_answer(
            item_id, NewAnswer("bench", "reject", batch_id=batch, strategy="random")
        )
    store.close()


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss over from
    the parent across exec, which would charge the pool building to the measuring process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(db_path: Path, repeats: int, words: bool) -> dict[str, float]:
    """Run in a fresh process: open the cache, run rounds, report the median time and peak RSS."""
    # Imports and their memory are paid before the clock and the baseline start.
    import sklearn.linear_model  # noqa: F401

    from hnbooks.scoring.cache import EmbeddingCache
    from hnbooks.scoring.job import RoundConfig, run_round
    from hnbooks.scoring.pool import CachedPool, PoolVectors, WordPool
    from hnbooks.scoring.terms import TermCache
    from hnbooks.store.db import Store

    baseline_rss = peak_rss_mb()
    times = []
    for repeat in range(repeats):
        store = Store(db_path)
        started = time.perf_counter()
        cache = EmbeddingCache.open(db_path, "synthetic", DIM)
        pool: PoolVectors = CachedPool(cache, store)
        if words:
            pool = WordPool(pool, TermCache.open(db_path, store.database_id()))
        result = run_round(
            store, pool, RoundConfig(label="BOOK", batch_size=50, random_seed=repeat)
        )
        times.append(time.perf_counter() - started)
        assert result.mode == "model" and len(result.entries) == 50
        cache.close()
        store.close()
    peak = peak_rss_mb()
    return {
        "round_s": statistics.median(times),
        "round_s_min": min(times),
        "peak_rss_mb": peak,
        "baseline_rss_mb": baseline_rss,
        "seconds": result.report.seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100000,1000000", help="pool sizes, small first")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=None, help="reuse / keep pools here")
    parser.add_argument("--keep", action="store_true", help="keep the built pools")
    parser.add_argument(
        "--no-words",
        dest="words",
        action="store_false",
        help="score embeddings alone (hnbooks-score --no-words); default: words beside them, as shipped",
    )
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.repeats, args.words)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    folder = args.folder or Path(tempfile.mkdtemp(prefix="hnbooks-round-"))
    folder.mkdir(parents=True, exist_ok=True)
    results = {}
    try:
        for items in sizes:
            db_path = folder / f"pool-{items}.db"
            if not db_path.exists():
                started = time.perf_counter()
                build(folder, items)
                positives = json.loads((folder / f"pool-{items}.positives.json").read_text())
                answer_some(db_path, positives, items)
                print(
                    f"built {items:,} items in {time.perf_counter() - started:.0f} s",
                    file=sys.stderr,
                )
            if args.words and not db_path.with_name(db_path.name + ".terms.json").exists():
                seconds = count_words(db_path)
                print(f"counted the words of {items:,} items in {seconds:.0f} s", file=sys.stderr)
            # A real pool's vectors took hours to embed and are long on disk when a round runs;
            # a pool built a minute ago still has gigabytes being written back, which the
            # round's reads would queue behind.
            os.sync()
            output = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--measure",
                    str(db_path),
                    "--repeats",
                    str(args.repeats),
                    *([] if args.words else ["--no-words"]),
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            results[items] = json.loads(output.strip().splitlines()[-1])
            results[items]["disk"] = disk_bytes(db_path)
    finally:
        if not args.keep and args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)
    print(
        f"{'items':>10} {'round s (median)':>17} {'min':>7} {'peak RSS MB':>12} {'of which imports':>17}  phases"
    )
    for items, r in results.items():
        phases = ", ".join(f"{k} {v:.2f}" for k, v in r["seconds"].items())
        print(
            f"{items:>10,} {r['round_s']:>17.2f} {r['round_s_min']:>7.2f} {r['peak_rss_mb']:>12.0f} {r['baseline_rss_mb']:>17.0f}  {phases}"
        )
    small, large = sizes[0], sizes[-1]
    ratio = results[large]["peak_rss_mb"] / results[small]["peak_rss_mb"]
    time_ratio = results[large]["round_s"] / results[small]["round_s"]
    on_disk = results[large]["disk"]
    print(f"peak RSS {large:,} vs {small:,}: {ratio:.3f}x; round time {time_ratio:.2f}x")
    print(
        f"on disk at {large:,}: database {on_disk['database'] / large:.0f} B/item,"
        f" vectors {on_disk['vectors'] / large:.0f} B/item, words {on_disk['words'] / large:.0f} B/item"
    )
    print(
        json.dumps(
            {
                "items": large,
                "round_s": round(results[large]["round_s"], 3),
                "round_s_smallest": round(results[small]["round_s"], 3),
                "smallest_items": small,
                "time_ratio_vs_smallest": round(time_ratio, 2),
                "peak_rss_mb": round(results[large]["peak_rss_mb"], 1),
                "peak_rss_mb_smallest": round(results[small]["peak_rss_mb"], 1),
                "rss_ratio_vs_smallest": round(ratio, 3),
                "bytes_per_item": round(sum(on_disk.values()) / large),
                "words": args.words,
                "load_1min": round(os.getloadavg()[0], 1),
            }
        )
    )


if __name__ == "__main__":
    main()
