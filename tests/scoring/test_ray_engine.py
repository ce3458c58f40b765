"""`hnbooks-score --engine ray`: the texts embedded by Ray Data workers on a local cluster.

One local Ray cluster (2 CPUs) serves the whole module; the tiny test BERT is the encoder.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from hnbooks.scoring.cache import EmbeddingCache
from hnbooks.scoring.encoder import Encoder
from hnbooks.store.records import NewAnswer
from tests.helpers import store_with_texts
from tests.scoring.tiny_bert import TINY_SPEC

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture
def tiny_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiny BERT as a registered model name, so the CLI can be pointed at it."""
    from hnbooks.models import registry

    monkeypatch.setitem(registry.MODELS, TINY_SPEC.name, TINY_SPEC)


def texts(count: int, offset: int = 0) -> list[str]:
    topics = ["a great novel", "the kernel crashed", "python code", "thanks for the book"]
    return [
        f"comment {n}: {topics[n % len(topics)]} {n % 7}" for n in range(offset, offset + count)
    ]


def score(db: Path, models_dir: Path, *extra: str) -> str:
    from hnbooks.scoring.cli import main

    args = ["--db", str(db), "--model", TINY_SPEC.name, "--models-dir", str(models_dir)]
    result = CliRunner().invoke(main, [*args, "--engine", "ray", "--random-seed", "1", *extra])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())


def test_a_database_embedded_on_ray_is_scored_and_published_like_a_local_one(
    tmp_path: Path, tiny_model_dir: Path, ray_cluster: None, tiny_registered: None
) -> None:
    db = tmp_path / "x.db"
    store, item_ids = store_with_texts(db, texts(120))
    models_dir = tiny_model_dir.parent

    score(db, models_dir)
    seed_round = store.rounds()[-1].report
    assert seed_round.mode == "seed" and seed_round.batch_id is not None
    assert seed_round.embedding is not None
    assert (seed_round.embedding.engine, seed_round.embedding.workers) == ("ray", 2)
    assert seed_round.embedding.embedded == 120
    assert not (tmp_path / "x.db.vectors.shards").exists()

    # The vectors are the ones the local engine computes, from the same graph.
    local = Encoder(tiny_model_dir, device="cpu", variant="int8")
    with EmbeddingCache.open(db, local.model_hash, local.dimension) as cache:
        assert cache.filled_count == 120
        assert min_cosine(cache.vectors(np.array(item_ids)), local.embed(texts(120))) >= 0.999

    # Answers with a positive, and new texts: the next round trains the head and embeds only those.
    for n, entry in enumerate(store.queue()[:20]):
        verdict = "accept" if n % 4 == 0 else "reject"
        answer = NewAnswer("tester", verdict, batch_id=entry.batch, strategy=entry.strategy)
        store.record_answer(entry.item_id, answer)
    store.close()
    store, _ = store_with_texts(db, texts(30, offset=120))
    score(db, models_dir, "--batch-size", "10", "--ray-workers", "1")
    model_round = store.rounds()[-1].report
    assert model_round.mode == "model" and model_round.batch_id is not None
    assert sum(model_round.picked_per_strategy.values()) >= 1
    assert model_round.embedding is not None
    assert (model_round.embedding.engine, model_round.embedding.embedded) == ("ray", 30)
    assert model_round.embedding.workers == 1
    assert model_round.embedding.already_cached == 120
    store.close()


def test_a_stopped_ray_run_resumes_without_computing_its_finished_shards_again(
    tmp_path: Path, tiny_model_dir: Path, ray_cluster: None
) -> None:
    from hnbooks.scoring.ray_engine import connect, embed_missing_on_ray, shard_folder

    store, item_ids = store_with_texts(tmp_path / "x.db", texts(100))
    encoder = Encoder(tiny_model_dir, device="cpu", variant="fp32")
    cluster = connect(None, "cpu")
    arguments: dict[str, Any] = {
        "model_dir": tiny_model_dir,
        "variant": "fp32",
        "model_hash": encoder.model_hash,
        "shard_size": 25,
    }

    class Stopped(Exception):
        pass

    first_run: list[str] = []

    def stop_after_two(name: str) -> None:
        first_run.append(name)
        if len(first_run) == 2:
            raise Stopped

    with EmbeddingCache.open(store.path, encoder.model_hash, encoder.dimension) as cache:
        folder = shard_folder(cache)
        with pytest.raises(Stopped):
            embed_missing_on_ray(store, cache, cluster, on_shard=stop_after_two, **arguments)
        assert cache.filled_count == 0
        finished = sorted(path.name for path in folder.glob("*.vectors.parquet"))
        assert finished == sorted(f"{name}.vectors.parquet" for name in first_run)
        mtimes = {name: (folder / name).stat().st_mtime_ns for name in finished}

        seen_before_loading: dict[str, int] = {}

        def note_first_shards(name: str) -> None:
            for kept in finished:
                seen_before_loading[kept] = (folder / kept).stat().st_mtime_ns

        report = embed_missing_on_ray(
            store, cache, cluster, on_shard=note_first_shards, **arguments
        )
        assert report.shards == len({item_id // 25 for item_id in item_ids}) > 2
        assert len(report.computed_shards) == report.shards - 2
        assert not set(report.computed_shards) & set(first_run)
        assert seen_before_loading == mtimes
        assert report.embedded == 100 and cache.filled_count == 100
        assert not folder.exists()
        assert min_cosine(cache.vectors(np.array(item_ids)), encoder.embed(texts(100))) >= 0.999
    cluster.close()
    store.close()


def test_without_ray_the_engine_names_the_pip_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hnbooks.scoring.cli import main

    store, _ = store_with_texts(tmp_path / "x.db", texts(3))
    store.close()
    monkeypatch.setitem(sys.modules, "ray", None)
    result = CliRunner().invoke(main, ["--db", str(tmp_path / "x.db"), "--engine", "ray"])
    assert result.exit_code != 0
    assert "pip install 'hnbooks[ray]'" in result.output


def test_the_scorer_and_the_tui_import_no_ray_until_the_ray_engine_runs() -> None:
    code = (
        "import sys, hnbooks.scoring.cli, hnbooks.scoring.prepare, hnbooks.scoring.ray_engine, "
        "hnbooks.tui.app; print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_watching_scorer_embeds_new_texts_on_ray(
    tmp_path: Path, tiny_model_dir: Path, ray_cluster: None, tiny_registered: None
) -> None:
    import threading
    import time

    from hnbooks.scoring.job import RoundConfig
    from hnbooks.scoring.prepare import load_encoder
    from hnbooks.scoring.ray_engine import connect
    from hnbooks.scoring.watch import WatchConfig, Watcher
    from hnbooks.store.db import Store
    from hnbooks.store.scorer import LeaseHolder

    db = tmp_path / "x.db"
    store, _ = store_with_texts(db, texts(60))
    loaded = load_encoder(str(db), TINY_SPEC.name, str(tiny_model_dir.parent), "cpu")
    cluster = connect(None, "cpu", 1)
    holder = LeaseHolder.this_process("watch")
    watching = Store(db)
    assert watching.acquire_scorer_lease(holder).holder == holder
    config = WatchConfig(round=RoundConfig(label="BOOK", batch_size=10), low_water=5, poll_s=0.05)
    stop = threading.Event()
    watcher = Watcher(watching, loaded, config, holder, stop, lambda line: None, cluster)
    thread = threading.Thread(target=watcher.run)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while store.batch_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        report = store.rounds()[-1].report
        assert report.batch_id is not None and report.embedding is not None
        assert (report.embedding.engine, report.embedding.workers) == ("ray", 1)
        assert loaded.cache.filled_count == 60
        # Texts imported while it watches are embedded on Ray too, without a restart.
        store.close()
        store, _ = store_with_texts(db, texts(20, offset=60))
        while loaded.cache.filled_count < 80 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert loaded.cache.filled_count == 80
    finally:
        stop.set()
        thread.join(timeout=60)
        watching.close()
        store.close()
    assert not thread.is_alive()
