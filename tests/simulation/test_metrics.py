"""The run metrics on discovery sequences whose values are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from hnbooks.lab.simulate import (
    audc,
    discovery_curve,
    labels_to_first,
    mean_interval,
    mean_of,
    positives_per_100,
    recall_at_budget,
)


def found(*hits: int, length: int) -> np.ndarray:
    """A run of `length` labels with positives at the given 1-based positions."""
    sequence = np.zeros(length, dtype=bool)
    sequence[[h - 1 for h in hits]] = True
    return sequence


def test_positives_per_100_labels() -> None:
    assert positives_per_100(found(3, 50, 200, length=300)) == pytest.approx(1.0)
    assert positives_per_100(found(length=300)) == 0.0
    assert positives_per_100(found(1, 2, length=20)) == pytest.approx(10.0)


def test_recall_counts_only_the_positives_left_to_find() -> None:
    assert recall_at_budget(found(5, 9, length=300), findable=4) == 0.5
    assert recall_at_budget(found(length=10), findable=0) is None


def test_labels_to_first_is_one_based_and_none_when_nothing_found() -> None:
    assert labels_to_first(found(1, length=10)) == 1
    assert labels_to_first(found(37, 80, length=100)) == 37
    assert labels_to_first(found(length=100)) is None


def test_the_oracle_order_has_an_audc_of_exactly_one() -> None:
    assert audc(found(1, 2, 3, length=300), findable=3, budget=300) == 1.0
    # More positives than the budget: the oracle finds one per label throughout.
    assert audc(np.ones(20, dtype=bool), findable=50, budget=20) == 1.0


def test_audc_of_known_curves() -> None:
    # One positive to find, found at label 3 of 4: curve 0,0,1,1 against the oracle's 1,1,1,1.
    assert audc(found(3, length=4), findable=1, budget=4) == pytest.approx(0.5)
    assert audc(found(length=4), findable=2, budget=4) == 0.0
    assert audc(found(length=4), findable=0, budget=4) is None


def test_a_run_that_stops_early_keeps_its_last_count() -> None:
    curve = discovery_curve(found(2, length=3), budget=6)
    assert curve.tolist() == [0, 1, 1, 1, 1, 1]
    assert audc(found(2, length=3), findable=1, budget=6) == pytest.approx(5 / 6)


def test_means_skip_missing_values() -> None:
    assert mean_of([1, None, 3]) == 2
    assert mean_of([None, None]) is None


def test_the_interval_of_a_mean_narrows_with_the_runs_and_holds_it() -> None:
    # 0, 1, 2 repeated: mean 1, sample deviation sqrt(2/3 * n/(n-1)).
    few = mean_interval([0, 1, 2] * 4)
    many = mean_interval([0, 1, 2] * 40)
    assert few is not None and many is not None
    assert few[0] < 1 < few[1] and many[0] < 1 < many[1]
    assert many[1] - many[0] < (few[1] - few[0]) / 3
    # 90% by the normal approximation: 1.645 standard errors either side.
    deviation = np.std([0, 1, 2] * 40, ddof=1)
    assert many[1] - 1 == pytest.approx(1.6449 * deviation / np.sqrt(120), rel=1e-4)
    assert mean_interval([0.0, 1.0], level=0.99)[1] > mean_interval([0.0, 1.0])[1]  # type: ignore[index]


def test_no_interval_from_one_value_or_none() -> None:
    assert mean_interval([3.0]) is None
    assert mean_interval([None, 2.0, None]) is None
    assert mean_interval([2.0, 2.0]) == (2.0, 2.0)
