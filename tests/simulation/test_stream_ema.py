"""The Prodigy-style stream sorter: what it emits, and that it never goes back to a skipped item."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hnbooks.lab import simulate as simulation
from hnbooks.lab.simulate import LoopConfig, TaskSpec, build_features, draw_task, run_once
from hnbooks.lab.stream_ema import (
    EmaUncertaintySorter,
    MovingAverage,
    ScoredStream,
    uncertainty,
)
from tests.simulation.corpus import topic_corpus


def test_uncertainty_is_closeness_to_one_half() -> None:
    assert uncertainty(0.5) == 1.0
    assert uncertainty(0.0) == uncertainty(1.0) == 0.0
    assert uncertainty(0.25) == pytest.approx(0.5)
    assert uncertainty(0.7, bias=0.2) == 1.0


def test_moving_average_starts_at_the_first_value() -> None:
    average = MovingAverage(alpha=0.5)
    average.update(1.0)
    assert average.mean == 1.0
    average.update(0.0)
    assert average.mean == 0.5
    average.update(1.0)
    assert average.mean == 0.75


def test_an_item_is_emitted_only_when_its_uncertainty_reaches_the_moving_average() -> None:
    # Uncertainties 1, 0, 1, 0.2, 0.9; averages (alpha 0.5) 1, 0.5, 0.75, 0.475, 0.6875.
    scored = [(0.5, "a"), (0.0, "b"), (0.5, "c"), (0.1, "d"), (0.45, "e")]
    sorter = EmaUncertaintySorter(alpha=0.5)
    assert list(sorter(scored)) == ["a", "c", "e"]
    assert (sorter.seen, sorter.emitted) == (5, 3)


def test_about_half_of_a_uniform_stream_is_dropped() -> None:
    # What Prodigy users measured: prefer_uncertain drops about half of uniformly spread scores.
    rng = np.random.default_rng(0)
    sorter = EmaUncertaintySorter()
    emitted = list(sorter((float(s), i) for i, s in enumerate(rng.uniform(size=20_000))))
    assert 0.4 < len(emitted) / 20_000 < 0.6


def test_chunks_are_scored_by_the_model_current_when_reached_and_never_revisited() -> None:
    model_version = [0]
    scored_with: dict[int, int] = {}

    def score(chunk: list[int]) -> np.ndarray:
        for item in chunk:
            assert item not in scored_with, "an item was scored twice"
            scored_with[item] = model_version[0]
        rng = np.random.default_rng(sum(chunk))
        return rng.uniform(size=len(chunk))

    stream = ScoredStream(list(range(200)), score, chunk_size=10)
    emitted = EmaUncertaintySorter()(iter(stream))
    shown: list[int] = []
    while True:
        batch = [item for _, item in zip(range(5), emitted)]
        if not batch:
            break
        shown.extend(batch)
        model_version[0] += 1  # the model is updated after each answered batch
    assert shown == sorted(shown), "the stream went back"
    assert set(shown) <= set(stream.scored) == set(range(200))
    assert len(shown) < 200
    # Later chunks see later models: the model changes while the stream runs.
    assert scored_with[0] == 0 and scored_with[199] > 0


def test_items_answered_elsewhere_are_passed_over_unscored() -> None:
    answered = {3, 4}
    stream = ScoredStream(
        list(range(8)),
        lambda chunk: np.full(len(chunk), 0.5),
        chunk_size=3,
        available=lambda item: item not in answered,
    )
    assert [item for _, item in stream] == [0, 1, 2, 5, 6, 7]


def test_the_simulated_stream_labels_in_stream_order_and_never_returns_to_skipped_items(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    streams: list[ScoredStream[Any]] = []

    class RecordedStream(ScoredStream[Any]):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            streams.append(self)

    monkeypatch.setattr(simulation, "ScoredStream", RecordedStream)
    dataset = topic_corpus()
    features = build_features(dataset, "tfidf")
    spec = TaskSpec(("zoo",), keep_positives=6, seeds=1)
    draw = draw_task(dataset, spec, np.random.default_rng(3))
    config = LoopConfig(strategy="stream-ema", batch_size=5, budget=40)
    result = run_once(features, draw, spec, config, repeat=0, rng=np.random.default_rng(4))

    (stream,) = streams
    position = {row: n for n, row in enumerate(stream.items)}
    labelled_by_stream = [
        row for row, channel in zip(result.answered_rows, result.channels) if channel == "stream"
    ]
    assert labelled_by_stream, "the stream showed nothing"
    assert [position[r] for r in labelled_by_stream] == sorted(
        position[r] for r in labelled_by_stream
    )
    assert set(labelled_by_stream) <= set(stream.scored)
    skipped = set(stream.scored) - set(labelled_by_stream)
    assert skipped, "the sorter dropped nothing"
    assert not skipped & set(result.answered_rows)
    assert result.stream_scored == len(stream.scored) > len(labelled_by_stream)
