"""Prevalence and recall from the stratified random answers, inverse-probability weighted.

Each random pick was drawn with a known inclusion probability π, so weighting its answer by 1/π
gives estimates for the whole unlabelled pool that do not depend on how the head ranked it.
Intervals come from a bootstrap over the random answers; with no positive among them the upper
bound falls back to the rule of three on the effective sample size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

BOOTSTRAP_SAMPLES = 1000


@dataclass(frozen=True)
class Estimate:
    estimate: float | None
    low: float | None
    high: float | None
    n: int
    """How many random answers the estimate rests on."""

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def weighted_share(values: NDArray[np.bool_], weights: NDArray[np.float64]) -> float:
    return float((weights * values).sum() / weights.sum())


def bootstrap_interval(
    values: NDArray[np.bool_], weights: NDArray[np.float64], rng: np.random.Generator
) -> tuple[float, float]:
    n = len(values)
    draws = rng.integers(0, n, size=(BOOTSTRAP_SAMPLES, n))
    shares = (weights[draws] * values[draws]).sum(axis=1) / weights[draws].sum(axis=1)
    low, high = np.percentile(shares, [2.5, 97.5])
    return float(low), float(high)


def prevalence_estimate(
    answers_positive: NDArray[np.bool_],
    inclusion_probability: NDArray[np.float64],
    *,
    known_positives: int,
    unlabelled_count: int,
    pool_count: int,
    seed: int = 0,
) -> Estimate:
    """Share of the pool holding the label: positives already found plus the IPW (Hájek) estimate
    of the share among unlabelled items, scaled to the pool."""
    n = len(answers_positive)
    if n == 0 or pool_count == 0:
        return Estimate(None, None, None, 0)
    weights = 1.0 / np.asarray(inclusion_probability, dtype=np.float64)
    positive = np.asarray(answers_positive, dtype=bool)
    share = weighted_share(positive, weights)
    if positive.any():
        low_share, high_share = bootstrap_interval(positive, weights, np.random.default_rng(seed))
    else:
        effective_n = weights.sum() ** 2 / (weights**2).sum()
        low_share, high_share = 0.0, min(1.0, 3.0 / effective_n)

    def scale(s: float) -> float:
        return (known_positives + s * unlabelled_count) / pool_count

    return Estimate(scale(share), scale(low_share), scale(high_share), n)


def recall_estimate(
    answers_positive: NDArray[np.bool_],
    inclusion_probability: NDArray[np.float64],
    scores: NDArray[np.floating[Any]],
    threshold: float,
    *,
    seed: int = 0,
) -> Estimate:
    """Share of the positives among random answers that the head scores at or above `threshold`."""
    positive = np.asarray(answers_positive, dtype=bool)
    if not positive.any():
        return Estimate(None, None, None, int(positive.sum()))
    weights = 1.0 / np.asarray(inclusion_probability, dtype=np.float64)[positive]
    found = np.asarray(scores, dtype=np.float64)[positive] >= threshold
    low, high = bootstrap_interval(found, weights, np.random.default_rng(seed))
    return Estimate(weighted_share(found, weights), low, high, int(positive.sum()))
