"""Prevalence, the share of positives found so far, the head's recall and its calibration, from the
answers to stratified random picks.

Each random pick was drawn from its round's *draw pool* (the items not answered nor queued then)
with a known inclusion probability π, so weighting its answer by w = 1/π describes that pool
whatever the head thought of it. The methods, as recorded in each `Estimate.method`:

Proportions (`weighted_share`): the Hájek share Σw·y / Σw with a Clopper–Pearson (exact binomial)
interval on the Kish effective sample size n_eff = (Σw)² / Σw², x_eff = share · n_eff (Korn and
Graubard's interval for weighted samples; with equal weights the textbook exact interval). It never
collapses at small counts: 0 positives in n draws gives (0, 1 − (α/2)^(1/n)), 2 of 2 gives
((α/2)^(1/2), 1).

Total positives P (`pool_estimates`): round t drew from M_t items while F_t positives (by today's
answers) lay outside them, so P = F_t + M_t·p_t for every round, p_t being the share of positives in
its draw pool. Averaged over the random answers, P = F̄ + M̄·p̄; p̄ is estimated by the share above,
each answer weighted so that its round contributes its own Hájek estimate M_t·p̂_t, and its interval
maps straight to one for P. P is also at least the positives found and at most the items not
answered negative, and its upper bound never falls below what as many draws from today's pool,
none positive, would allow. Applying every random answer to today's pool instead (F_now + M_now·p̂)
would overstate what is left: the top picks drain the pool of positives, so older random answers
describe a richer pool than today's (in simulation its coverage fell to 54% once the pool was
drained). The rounds' shares differ, so the count of positive random answers is a Poisson-binomial,
less spread than the binomial the exact interval assumes: the interval errs on the wide side.

Prevalence is P / pool size. Found so far is F_now / P, its interval F_now / P_high … F_now / P_low.
tests/simulation/test_coverage.py measures how often the intervals cover the truth.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import betaincinv

DEFAULT_LEVEL = 0.9
SHARE_METHOD = "Hajek share, Clopper-Pearson on the Kish effective size"
POOL_METHOD = "IPW per round draw, Clopper-Pearson on the Kish effective size"
CALIBRATION_EDGES = (0.0, 1e-4, 1e-3, 1e-2, 0.1, 0.5, 1.0)
"""Score bins of the calibration table: decades, since at 1/5,000 nearly every score is tiny, and
the decision threshold (0.5) as a bin edge."""


@dataclass(frozen=True)
class Estimate:
    estimate: float | None
    low: float | None
    high: float | None
    n: int
    """How many random answers the estimate rests on."""
    method: str | None = None
    level: float | None = None
    """The interval's confidence level (0.9: a 90% interval)."""

    def as_dict(self) -> dict[str, float | int | str | None]:
        return asdict(self)


NO_ESTIMATE = Estimate(None, None, None, 0)


def clopper_pearson(
    successes: float, trials: float, level: float = DEFAULT_LEVEL
) -> tuple[float, float]:
    """The exact binomial interval for a proportion; non-integer counts (effective sizes of a
    weighted sample) go through the same beta quantiles."""
    if trials <= 0:
        return 0.0, 1.0
    tail = (1.0 - level) / 2.0
    successes = min(max(successes, 0.0), trials)
    low = 0.0 if successes <= 0 else float(betaincinv(successes, trials - successes + 1, tail))
    high = (
        1.0
        if successes >= trials
        else float(betaincinv(successes + 1, trials - successes, 1 - tail))
    )
    return low, high


def weighted_share(
    values: NDArray[np.bool_], weights: NDArray[np.float64], level: float = DEFAULT_LEVEL
) -> tuple[float, float, float]:
    """(share, low, high): the Hájek share of `values` and its interval (see the module's
    docstring)."""
    values = np.asarray(values, dtype=bool)
    weights = np.asarray(weights, dtype=np.float64)
    total = float(weights.sum())
    share = float((weights * values).sum() / total)
    effective_n = total**2 / float((weights**2).sum())
    low, high = clopper_pearson(share * effective_n, effective_n, level)
    return share, min(low, share), max(high, share)


@dataclass(frozen=True)
class RandomAnswers:
    """Answers to stratified random picks, one per item, each with the draw (round) it came from."""

    positive: NDArray[np.bool_]
    inclusion_probability: NDArray[np.float64]
    draw: NDArray[np.int64]
    """Which draw each answer came from; the weights are normalised within a draw."""
    draw_pool: NDArray[np.float64]
    """How many items its draw chose from (M_t)."""
    known_outside: NDArray[np.float64]
    """Positives, by today's answers, outside its draw's pool (F_t)."""

    def __len__(self) -> int:
        return int(self.positive.size)

    @classmethod
    def from_current_pool(
        cls,
        positive: NDArray[np.bool_],
        inclusion_probability: NDArray[np.float64],
        *,
        unlabelled_count: int,
        known_positives: int,
    ) -> RandomAnswers:
        """Every answer taken as drawn from today's pool: what a caller knowing no rounds can
        say."""
        n = int(np.asarray(positive).size)
        return cls(
            np.asarray(positive, dtype=bool),
            np.asarray(inclusion_probability, dtype=np.float64),
            np.zeros(n, dtype=np.int64),
            np.full(n, float(unlabelled_count)),
            np.full(n, float(known_positives)),
        )


@dataclass(frozen=True)
class PoolEstimates:
    total_positives: Estimate
    prevalence: Estimate
    found_so_far: Estimate
    """Share of the pool's positives already answered positive."""


def pool_estimates(
    answers: RandomAnswers,
    *,
    known_positives: int,
    pool_count: int,
    unlabelled_count: int,
    known_negatives: int = 0,
    level: float = DEFAULT_LEVEL,
) -> PoolEstimates:
    """Total positives in the pool, prevalence and found so far (see the module's docstring).

    The upper bound is never below what `len(answers)` draws from today's `unlabelled_count`
    items, none positive, would allow: when the positives found since the draws exceed what the
    draws foresaw, the interval stays honest about what no draw has looked at."""
    n = len(answers)
    if n == 0 or pool_count <= 0:
        return PoolEstimates(NO_ESTIMATE, NO_ESTIMATE, NO_ESTIMATE)
    weights = 1.0 / answers.inclusion_probability
    draws, draw_index, draw_sizes = np.unique(answers.draw, return_inverse=True, return_counts=True)
    draw_weight = np.bincount(draw_index, weights=weights, minlength=draws.size)
    # Each round's answers sum to (its answers) x M_t, so the round contributes M_t·p̂_t.
    scaled = answers.draw_pool * weights / draw_weight[draw_index] * draw_sizes[draw_index]
    mean_pool = float(scaled.sum()) / n
    mean_known = float(answers.known_outside.mean())
    share, low_share, high_share = weighted_share(answers.positive, scaled, level)
    least, most = float(known_positives), float(max(pool_count - known_negatives, known_positives))

    def total(s: float) -> float:
        return min(max(mean_known + mean_pool * s, least), most)

    unseen = unlabelled_count * clopper_pearson(0, n, level)[1]
    high = min(max(total(high_share), least + unseen), most)
    positives = Estimate(total(share), total(low_share), high, n, POOL_METHOD, level)
    assert positives.estimate is not None and positives.low is not None
    assert positives.high is not None

    prevalence = Estimate(
        positives.estimate / pool_count,
        positives.low / pool_count,
        positives.high / pool_count,
        n,
        POOL_METHOD,
        level,
    )
    found = NO_ESTIMATE
    if known_positives > 0:
        found = Estimate(
            known_positives / positives.estimate,
            known_positives / positives.high,
            known_positives / positives.low,
            n,
            POOL_METHOD,
            level,
        )
    return PoolEstimates(positives, prevalence, found)


def prevalence_estimate(
    answers_positive: NDArray[np.bool_],
    inclusion_probability: NDArray[np.float64],
    *,
    known_positives: int,
    unlabelled_count: int,
    pool_count: int,
    level: float = DEFAULT_LEVEL,
) -> Estimate:
    """Share of the pool holding the label, every random answer taken as drawn from today's pool:
    positives already found plus the Hájek share among unlabelled items, scaled to the pool.

    The head's prior; the round's report uses `pool_estimates`, which knows each answer's round."""
    answers = RandomAnswers.from_current_pool(
        answers_positive,
        inclusion_probability,
        unlabelled_count=unlabelled_count,
        known_positives=known_positives,
    )
    return pool_estimates(
        answers,
        known_positives=known_positives,
        pool_count=pool_count,
        unlabelled_count=unlabelled_count,
        level=level,
    ).prevalence


def recall_estimate(
    answers_positive: NDArray[np.bool_],
    inclusion_probability: NDArray[np.float64],
    scores: NDArray[np.floating[Any]],
    threshold: float,
    *,
    level: float = DEFAULT_LEVEL,
) -> Estimate:
    """Weighted share of the positives among random answers that the head scores at or above
    `threshold`, with the exact interval of `weighted_share`; no estimate without a random
    positive."""
    positive = np.asarray(answers_positive, dtype=bool)
    if not positive.any():
        return NO_ESTIMATE
    weights = 1.0 / np.asarray(inclusion_probability, dtype=np.float64)[positive]
    found = np.asarray(scores, dtype=np.float64)[positive] >= threshold
    share, low, high = weighted_share(found, weights, level)
    return Estimate(share, low, high, int(positive.sum()), SHARE_METHOD, level)


@dataclass(frozen=True)
class CalibrationBin:
    """Random answers whose score fell in [low, high): how many, how many positive, the mean score,
    and the exact interval of the observed positive rate."""

    low: float
    high: float
    count: int
    positives: int
    mean_predicted: float
    observed_low: float
    observed_high: float

    @property
    def observed(self) -> float:
        return self.positives / self.count


def calibration_bins(
    predicted: NDArray[np.floating[Any]],
    positive: NDArray[np.bool_],
    edges: tuple[float, ...] = CALIBRATION_EDGES,
    level: float = DEFAULT_LEVEL,
) -> list[CalibrationBin]:
    """Predicted against observed: random answers binned by score (empty bins left out).

    Unweighted: within a narrow score bin the stratified draw gave items about the same chance, so
    the plain rate is the rate among such items. `predicted` should be the score that served each
    item, made before its answer was known; a head scoring its own training answers looks better
    calibrated than it is."""
    scores = np.asarray(predicted, dtype=np.float64)
    labels = np.asarray(positive, dtype=bool)
    keep = ~np.isnan(scores)
    scores, labels = scores[keep], labels[keep]
    bins: list[CalibrationBin] = []
    for index, (low, high) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        last = index == len(edges) - 2
        inside = (scores >= low) & ((scores <= high) if last else (scores < high))
        count = int(inside.sum())
        if count == 0:
            continue
        positives = int(labels[inside].sum())
        observed_low, observed_high = clopper_pearson(positives, count, level)
        bins.append(
            CalibrationBin(
                low,
                high,
                count,
                positives,
                float(scores[inside].mean()),
                observed_low,
                observed_high,
            )
        )
    return bins
