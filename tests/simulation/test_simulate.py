"""The simulated loop on tiny corpora where the outcome is known exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hnbooks.lab.datasets import in_memory_dataset
from hnbooks.lab.simulate import (
    STRATEGIES,
    LoopConfig,
    TaskSpec,
    build_features,
    draw_task,
    simulate,
    simulate_all,
)
from hnbooks.scoring.select import Mix
from tests.simulation.corpus import topic_corpus


@pytest.fixture(scope="module")
def corpus_and_features():  # type: ignore[no-untyped-def]
    dataset = topic_corpus()
    return dataset, build_features(dataset, "tfidf")


def test_the_task_draw_holds_out_by_class_keeps_k_positives_and_gives_seeds() -> None:
    dataset = topic_corpus(per_topic=50)
    spec = TaskSpec(("zoo", "cars"), keep_positives=4, seeds=3, heldout_share=0.2)
    draw = draw_task(dataset, spec, np.random.default_rng(0))
    assert len(draw.heldout_rows) == 5 * 10
    assert not set(draw.heldout_rows) & set(draw.pool_rows)
    for topic in ("zoo", "cars"):
        assert (dataset.classes[draw.pool_rows] == topic).sum() == 4
    assert draw.pool_positives == 8 and draw.findable == 5 and len(draw.seed_rows) == 3
    assert draw.positive[draw.seed_rows].all()
    assert len(draw.pool_rows) == 3 * 40 + 8
    assert draw.prevalence == pytest.approx(8 / 128)
    assert draw.random_per_100 == pytest.approx(100 * 5 / 125)


def test_a_seed_query_that_names_the_positives_finds_them_all_first() -> None:
    # Three positives hold a word no negative has: the seed batch is exactly those three on top.
    texts = [f"zebra story number {n}" for n in range(3)] + [
        f"plain chatter about things {n}" for n in range(97)
    ]
    classes = ["yes"] * 3 + ["no"] * 97
    dataset = in_memory_dataset(texts, classes)
    features = build_features(dataset, "tfidf")
    spec = TaskSpec(("yes",), seed_query="zebra", heldout_share=0)
    summary = simulate(dataset, features, spec, LoopConfig(batch_size=10, budget=20), random_seed=1)
    (run,) = summary.runs
    assert run.found[:3].all() and not run.found[3:].any()
    assert run.channels[:3] == ["seed"] * 3
    result = summary.as_dict()
    assert result["positives_per_100"] == pytest.approx(15.0)
    assert result["recall_at_budget"] == 1.0
    assert result["labels_to_first"] == 1
    assert result["audc"] == 1.0
    assert result["share_found_none"] == 0.0
    assert result["prevalence"] == pytest.approx(0.03)
    assert result["heldout_ap"] is None  # nothing held out


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_spends_the_budget_without_labelling_twice_or_held_out(
    corpus_and_features,
    strategy: str,  # type: ignore[no-untyped-def]
) -> None:
    dataset, features = corpus_and_features
    spec = TaskSpec(("zoo",), keep_positives=8, seeds=1)
    mix = Mix({"top": 0.5, "novel": 0.25, "random": 0.25}) if strategy == "mix" else None
    summary = simulate(
        dataset, features, spec, LoopConfig(strategy=strategy, mix=mix, batch_size=10, budget=30)
    )
    (run,) = summary.runs
    draw = draw_task(dataset, spec, np.random.default_rng([0, 0, 0]))
    assert len(run.answered_rows) == len(set(run.answered_rows)) <= 30
    assert not set(run.answered_rows) & set(draw.heldout_rows)
    assert not set(run.answered_rows) & set(draw.seed_rows)
    assert set(run.answered_rows) <= set(draw.pool_rows)
    assert run.found.tolist() == draw.positive[run.answered_rows].tolist()
    if strategy != "stream-ema":  # the stream may run dry on a pool this small
        assert len(run.answered_rows) == 30


def test_the_pool_loop_finds_an_easy_topic_far_faster_than_random(corpus_and_features) -> None:  # type: ignore[no-untyped-def]
    dataset, features = corpus_and_features
    spec = TaskSpec(("space",), keep_positives=10, seeds=1)
    config = LoopConfig(batch_size=10, budget=40)
    pooled = simulate(dataset, features, spec, config, repeats=2).as_dict()
    assert pooled["recall_at_budget"] == 1.0
    assert pooled["heldout_ap"] > 0.9
    assert (
        pooled["positives_per_100"] > 4 * pooled["random_per_100"]
    )  # 9 to find in 40: 5x is the most


def test_a_fixed_seed_gives_identical_numbers(corpus_and_features) -> None:  # type: ignore[no-untyped-def]
    dataset, features = corpus_and_features
    spec = TaskSpec(("music",), keep_positives=6, seeds=1)
    for strategy in ("default", "stream-ema"):
        config = LoopConfig(strategy=strategy, batch_size=10, budget=30)
        first = simulate(dataset, features, spec, config, repeats=2, random_seed=7).as_dict()
        second = simulate(dataset, features, spec, config, repeats=2, random_seed=7).as_dict()
        assert json.dumps(first) == json.dumps(second)


def test_forked_workers_give_the_numbers_of_one_process_in_job_order(corpus_and_features) -> None:  # type: ignore[no-untyped-def]
    dataset, features = corpus_and_features
    jobs = [
        (
            TaskSpec((topic,), keep_positives=5, seeds=1),
            LoopConfig(strategy=strategy, batch_size=10, budget=20),
            2,
        )
        for topic in ("music", "cars")
        for strategy in ("default", "random")
    ]
    alone = simulate_all(dataset, features, jobs, random_seed=4, processes=1)
    forked = simulate_all(dataset, features, jobs, random_seed=4, processes=2)
    assert [s.spec.positive_classes for s in forked] == [("music",)] * 2 + [("cars",)] * 2
    assert [s.config.strategy for s in forked] == ["default", "random"] * 2
    assert [json.dumps(s.as_dict()) for s in forked] == [json.dumps(s.as_dict()) for s in alone]


def test_strategies_meet_the_same_pools_for_the_same_seed(corpus_and_features) -> None:  # type: ignore[no-untyped-def]
    dataset, features = corpus_and_features
    spec = TaskSpec(("food",), keep_positives=6, seeds=2)
    runs = {
        strategy: simulate(
            dataset,
            features,
            spec,
            LoopConfig(strategy=strategy, batch_size=10, budget=20),
            random_seed=3,
        ).runs[0]
        for strategy in ("top", "random")
    }
    assert runs["top"].pool_size == runs["random"].pool_size
    assert runs["top"].random_per_100 == runs["random"].random_per_100


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="strategy"):
        LoopConfig(strategy="best")
    with pytest.raises(ValueError, match="needs the shares"):
        LoopConfig(strategy="mix")
    dataset = topic_corpus(per_topic=10)
    with pytest.raises(ValueError, match="seeds"):
        draw_task(dataset, TaskSpec(("zoo",), keep_positives=2, seeds=3), np.random.default_rng(0))


def test_the_simulated_words_features_are_what_the_scorer_reads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`hnbooks simulate --features words` measures the head on the rows `hnbooks-score` builds
    from its word-count cache and vector cache, weight of the words included, and turns the query
    into a row as the scorer does."""
    from hnbooks.lab.simulate import EncoderSource
    from hnbooks.scoring.pool import ArrayPool, WordPool
    from hnbooks.scoring.terms import HASHED_COLUMNS, TermCache, hashed_counts

    dataset = topic_corpus(per_topic=10)
    vectors = np.random.default_rng(0).normal(size=(len(dataset), 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    encoder = EncoderSource("fixed", lambda texts: vectors[[dataset.texts.index(t) for t in texts]])
    features = build_features(dataset, "words", encoder=encoder)
    simulated = features.head_matrix

    ids = np.arange(len(dataset))
    terms = TermCache.open(tmp_path / "x.db", "db")
    terms.write_counts(ids, hashed_counts(list(dataset.texts)), ids + 1)
    scored = WordPool(ArrayPool(ids, vectors), TermCache.open(tmp_path / "x.db", "db")).rows(ids)

    assert simulated.shape == scored.shape == (len(dataset), HASHED_COLUMNS + 8)
    np.testing.assert_allclose(simulated.toarray(), scored.toarray(), atol=1e-6)
    assert simulated[:, :HASHED_COLUMNS].nnz and simulated[:, HASHED_COLUMNS:].nnz

    # A text outside the pool (the query the head is trained on) becomes the row it would be as
    # an item, in both: here a dataset text, so all three rows must agree.
    query = dataset.texts[3]
    scorer_row = WordPool(ArrayPool(ids, vectors), terms).text_row(query, vectors[3])
    np.testing.assert_allclose(
        features.query_features(query).toarray(), scored[3].toarray(), atol=1e-6
    )
    np.testing.assert_allclose(scorer_row.toarray(), scored[3].toarray(), atol=1e-6)
