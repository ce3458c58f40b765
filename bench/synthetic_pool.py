"""Large synthetic pools for the scale benchmarks: items written in bulk, vectors written in chunks.

The benchmarks measure rounds and the annotate screen, not import, so the items go in with one
`executemany` per chunk straight into the schema `Store` created (the FTS triggers still index
every text), and the embedding cache is filled with random unit vectors, a few hundred of them
planted along one direction so the head has positives to find. A 10M pool takes a few minutes and
~8 GB of vectors on disk; build it once and reuse it (`--folder` / `--db`).
"""

from __future__ import annotations

import random
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

DIM = 384
INSERT_CHUNK = 200_000
VECTOR_CHUNK = 65_536
WORDS = (
    "the a of and to in is it that for on with as was this but be have not are you they at by or"
    " from one all would there their what so up out if about who get which go me when make can like"
    " time no just him know take people into year your good some could them see other than then now"
    " look only come its over think also back after use two how our work first well way even new want"
    " because any these give day most us book read novel author chapter story series library kindle"
    " rust python compiler database startup market sqlite postgres kernel linux browser server cloud"
    " Hobbit Dune Neuromancer Foundation Hyperion Solaris Gödel Escher Bach Knuth Dijkstra Turing"
).split()


def synthetic_rows(first: int, last: int, rng: random.Random) -> Iterator[tuple[object, ...]]:
    """Rows of `items` for ids first..last-1: short comments of 6-40 common words."""
    now = time.time()
    for n in range(first, last):
        text = " ".join(rng.choices(WORDS, k=rng.randint(6, 40))) + f" #{n}"
        yield (n, f"bench:{n}", text, "{}", n, f"bench-key-{n}", "bench", now)


def bulk_items(db_path: Path, items: int, seed: int = 7) -> None:
    """`items` synthetic comments with ids 1..items in a new database at `db_path`."""
    from hnbooks.store.db import Store

    Store(db_path).close()  # the schema, migrations and database id
    rng = random.Random(seed)
    started = time.perf_counter()
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        # A bench file rebuilt from scratch when lost: no fsync per chunk.
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -262144")
        for first in range(1, items + 1, INSERT_CHUNK):
            last = min(first + INSERT_CHUNK, items + 1)
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO items (id, external_id, text, meta, input_hash, text_key, source,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                synthetic_rows(first, last, rng),
            )
            conn.execute("COMMIT")
            print(
                f"  inserted {last - 1:>11,} items ({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def fill_vectors(
    db_path: Path, items: int, model_hash: str, planted: int, seed: int = 0
) -> list[int]:
    """Random unit vectors for ids 1..items in the cache beside `db_path`; `planted` of them lean
    along one direction (the positives). Returns the planted ids, sorted."""
    from hnbooks.scoring.cache import EmbeddingCache

    rng = np.random.default_rng(seed)
    direction = rng.normal(size=DIM).astype(np.float32)
    direction /= np.linalg.norm(direction)
    positive_ids = np.sort(rng.choice(np.arange(1, items + 1), planted, replace=False))
    started = time.perf_counter()
    cache = EmbeddingCache.open(db_path, model_hash, DIM)
    cache.reserve(items + 1)
    for start in range(1, items + 1, VECTOR_CHUNK):
        ids = np.arange(start, min(start + VECTOR_CHUNK, items + 1))
        vectors = rng.standard_normal(size=(len(ids), DIM), dtype=np.float32)
        lean = np.isin(ids, positive_ids)
        vectors[lean] += direction * np.sqrt(DIM)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        cache.write(ids, vectors)
        if (start // VECTOR_CHUNK) % 16 == 0:
            print(
                f"  vectors {ids[-1]:>11,} ({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )
    cache.close()
    return [int(i) for i in positive_ids]


def disk_bytes(db_path: Path) -> dict[str, int]:
    """Bytes on disk of the database (with its WAL), of its vector cache and of its word counts."""
    database = sum(
        path.stat().st_size
        for path in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm"))
        if path.exists()
    )
    vectors = sum(path.stat().st_size for path in db_path.parent.glob(db_path.name + ".vectors*"))
    words = sum(path.stat().st_size for path in db_path.parent.glob(db_path.name + ".terms*"))
    return {"database": database, "vectors": vectors, "words": words}


def count_words(db_path: Path) -> float:
    """Count every text's words into the cache beside the database, as hnbooks-score does; the
    seconds it took."""
    from hnbooks.scoring.terms import TermCache, count_missing_terms
    from hnbooks.store.db import Store

    store = Store(db_path)
    try:
        report = count_missing_terms(store, TermCache.open(db_path, store.database_id()))
    finally:
        store.close()
    return report.seconds
