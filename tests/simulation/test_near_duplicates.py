"""Selection skips near-duplicates of rejected texts and exact duplicates, but takes a few
near-duplicates of positives a batch, marked as such (scoring.job)."""

from __future__ import annotations

import numpy as np
import pytest

from hnbooks.scoring.job import RoundConfig, blocked_ids_except_positives, train_and_select
from hnbooks.scoring.pool import ArrayPool
from hnbooks.scoring.select import Mix, Pick


def test_positives_are_taken_out_of_the_blocked_rows() -> None:
    blocked = np.array([1, 4, 7, 9], dtype=np.int64)
    assert blocked_ids_except_positives(blocked, np.array([4, 9], dtype=np.int64)).tolist() == [
        1,
        7,
    ]
    assert blocked_ids_except_positives(blocked, np.zeros(0, dtype=np.int64)).tolist() == [
        1,
        4,
        7,
        9,
    ]


def top_picks(
    vectors: np.ndarray,
    labelled: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int,
    near_duplicates_of_positives: bool = True,
) -> list[Pick]:
    """A round choosing by score alone over `vectors` (normalised here), `labelled` answered."""
    unit = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    return train_and_select(
        ArrayPool(np.arange(len(unit)), unit),
        labelled,
        labels,
        np.setdiff1d(np.arange(len(unit)), labelled),
        labelled,
        random_positive=np.zeros(0, dtype=bool),
        random_probability=np.zeros(0),
        config=RoundConfig(
            label="positive",
            batch_size=batch_size,
            mix=Mix.only("top"),
            random_seed=0,
            near_duplicates_of_positives=near_duplicates_of_positives,
        ),
        rng=np.random.default_rng(0),
    ).picks


@pytest.mark.parametrize("near_duplicates_of_positives", [True, False])
def test_near_duplicates_of_positives_stay_eligible_only_when_asked(
    near_duplicates_of_positives: bool,
) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(60, 16))
    vectors[:10, 0] += 3.0  # rows 0-9 are positives
    vectors[10] = vectors[0] + 0.05 * rng.normal(size=16)  # near-duplicate of a labelled positive
    vectors[11] = vectors[50] + 0.05 * rng.normal(size=16)  # near-duplicate of a rejected row
    vectors[12] = vectors[1]  # the same text as a labelled positive
    labelled = np.array([0, 1, 50], dtype=np.int64)
    # A batch as large as the pool: everything eligible is taken unless the guard refuses it.
    picks = top_picks(
        vectors,
        labelled,
        np.array([True, True, False]),
        batch_size=60 - labelled.size,
        near_duplicates_of_positives=near_duplicates_of_positives,
    )
    chosen = {pick.row: pick for pick in picks}
    assert (10 in chosen) == near_duplicates_of_positives
    if near_duplicates_of_positives:
        assert chosen[10].near_duplicate_of == 0  # said so to the annotator
    assert 11 not in chosen and 12 not in chosen
    assert all(p.near_duplicate_of is None for row, p in chosen.items() if row != 10)


def test_near_duplicates_of_positives_are_capped_per_batch() -> None:
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(80, 16))
    vectors[:10, 0] += 3.0
    # Near-twins of three accepted templates, six each (one per template fits a batch: twins of
    # one are near-duplicates of each other too).
    for template in range(3):
        first = 10 + 6 * template
        vectors[first : first + 6] = vectors[template] + 0.05 * rng.normal(size=(6, 16))
    labelled = np.array([0, 1, 2, 60], dtype=np.int64)
    picks = top_picks(vectors, labelled, np.array([True, True, True, False]), batch_size=20)
    twins = [p for p in picks if p.near_duplicate_of is not None]
    assert len(picks) == 20
    assert len(twins) == 2  # a tenth of the batch, the default
    assert {(p.row - 10) // 6 for p in twins} == {p.near_duplicate_of for p in twins} < {0, 1, 2}
