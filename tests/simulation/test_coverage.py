"""Do the 90% intervals of prevalence, found so far and recall cover the truth at least 85% of the
time?

Simulated loops on synthetic pools whose positives are known: a fixed synthetic head (score =
separation x label + noise) and rounds shaped like the scorer's: `stratified_random` picks from the
unlabelled items ranked by score, then the best-scored unlabelled items as the top picks, which
drain the pool of positives as a working loop does. After every round the estimates of
`pool_estimates` are checked against the truth. Found so far is F / P and prevalence P / N with F
and N known, so both cover exactly when the interval for P does; both are checked all the same, the
mapping being code too. Run with -s to see the measured coverage, the median width of the
found-so-far interval, and the coverage of applying every random answer to today's pool (what the
per-round estimate replaces); the long variant (--slow) runs more loops and larger pools.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from hnbooks.scoring.estimate import (
    DEFAULT_LEVEL,
    Estimate,
    PoolEstimates,
    RandomAnswers,
    pool_estimates,
    recall_estimate,
)
from hnbooks.scoring.select import stratified_random

REQUIRED_COVERAGE = 0.85


@dataclass(frozen=True)
class Scenario:
    size: int
    positives: int
    rounds: int
    batch: int
    random_picks: int
    separation: float
    seeds: int = 1
    answered: float = 1.0
    """Chance that a random pick is answered; the others are skipped (ignored) and stay unknown."""

    def describe(self) -> str:
        return (
            f"{self.positives}/{self.size:,} positive, {self.rounds} rounds of {self.batch}"
            f" ({self.random_picks} random), separation {self.separation:g}"
        )


SCENARIOS = (
    # Rare: the random picks meet a positive now and then; the interval rests on zeros.
    Scenario(size=10_000, positives=10, rounds=20, batch=20, random_picks=2, separation=3.0),
    # Common enough that random picks find positives while the top picks drain the pool.
    Scenario(size=2_000, positives=100, rounds=25, batch=20, random_picks=5, separation=4.0),
    Scenario(size=3_000, positives=60, rounds=25, batch=20, random_picks=4, separation=3.0),
    # A weak head, a few skipped random picks.
    Scenario(
        size=4_000, positives=40, rounds=15, batch=30, random_picks=6, separation=1.0, answered=0.9
    ),
    # One random pick a round: the smallest draws the scorer makes.
    Scenario(
        size=2_000, positives=20, rounds=30, batch=10, random_picks=1, separation=2.5, seeds=3
    ),
)
SLOW_SCENARIOS = (
    Scenario(size=50_000, positives=10, rounds=40, batch=50, random_picks=5, separation=3.0),
    Scenario(size=20_000, positives=200, rounds=30, batch=50, random_picks=5, separation=3.5),
    Scenario(size=5_000, positives=250, rounds=30, batch=20, random_picks=2, separation=5.0),
    Scenario(
        size=10_000,
        positives=50,
        rounds=30,
        batch=20,
        random_picks=10,
        separation=2.0,
        answered=0.8,
    ),
)


@dataclass(frozen=True)
class Checkpoint:
    estimates: PoolEstimates
    naive: Estimate
    """Every random answer applied to today's pool: what the per-round estimate replaces."""
    prevalence: float
    found_so_far: float


def run_loop(scenario: Scenario, rng: np.random.Generator) -> Iterator[Checkpoint]:
    size = scenario.size
    positive = np.zeros(size, dtype=bool)
    positive[rng.choice(size, scenario.positives, replace=False)] = True
    order = np.argsort(-(scenario.separation * positive + rng.normal(size=size)), kind="stable")
    labelled = np.zeros(size, dtype=bool)
    labelled[rng.choice(np.flatnonzero(positive), scenario.seeds, replace=False)] = True
    served = labelled.copy()
    draws: list[tuple[bool, float, int, int, int]] = []
    for round_number in range(scenario.rounds):
        ranking = order[~served[order]].astype(np.intp)
        if ranking.size <= scenario.batch:
            return
        known_outside = int((labelled & positive).sum())
        picks = stratified_random(ranking, scenario.random_picks, rng)
        for row, probability, _ in picks:
            served[row] = True
            if rng.random() < scenario.answered:
                labelled[row] = True
                draws.append(
                    (bool(positive[row]), probability, round_number, ranking.size, known_outside)
                )
        top = ranking[~served[ranking]][: scenario.batch - len(picks)]
        served[top] = True
        labelled[top] = True
        if not draws:
            continue
        known_positives = int((labelled & positive).sum())
        answers = RandomAnswers(
            np.array([d[0] for d in draws]),
            np.array([d[1] for d in draws]),
            np.array([d[2] for d in draws], dtype=np.int64),
            np.array([d[3] for d in draws], dtype=np.float64),
            np.array([d[4] for d in draws], dtype=np.float64),
        )
        known_negatives = int((labelled & ~positive).sum())
        naive = RandomAnswers.from_current_pool(
            answers.positive,
            answers.inclusion_probability,
            unlabelled_count=int((~served).sum()),
            known_positives=known_positives,
        )
        yield Checkpoint(
            pool_estimates(
                answers,
                known_positives=known_positives,
                pool_count=size,
                unlabelled_count=int((~served).sum()),
                known_negatives=known_negatives,
            ),
            pool_estimates(
                naive,
                known_positives=known_positives,
                pool_count=size,
                unlabelled_count=int((~served).sum()),
            ).found_so_far,
            scenario.positives / size,
            known_positives / scenario.positives,
        )


def covers(estimate: Estimate, truth: float) -> bool:
    assert estimate.low is not None and estimate.high is not None
    assert estimate.low < estimate.high, "a zero-width interval"
    # A relative tolerance: found so far at exactly 1 is F/P with both bounds computed in floats.
    return estimate.low * (1 - 1e-9) <= truth <= estimate.high * (1 + 1e-9)


@dataclass
class Tally:
    prevalence: list[bool]
    found_so_far: list[bool]
    naive: list[bool]
    width: list[float]
    """Of the found-so-far interval, in share points."""

    def line(self) -> str:
        return (
            f"prevalence {np.mean(self.prevalence):.3f},"
            f" found so far {np.mean(self.found_so_far):.3f}"
            f" (median width {np.median(self.width):.2f}), all answers on today's pool"
            f" {np.mean(self.naive):.3f}, over {len(self.found_so_far)} checks"
        )


def measure(scenarios: tuple[Scenario, ...], loops: int, seed: int, title: str) -> list[Tally]:
    """One tally per scenario, printed; checks every round of `loops` loops of each."""
    rng = np.random.default_rng(seed)
    tallies = []
    for number, scenario in enumerate(scenarios, start=1):
        tally = Tally([], [], [], [])
        for _ in range(loops):
            for checkpoint in run_loop(scenario, rng):
                found = checkpoint.estimates.found_so_far
                tally.prevalence.append(
                    covers(checkpoint.estimates.prevalence, checkpoint.prevalence)
                )
                tally.found_so_far.append(covers(found, checkpoint.found_so_far))
                tally.naive.append(covers(checkpoint.naive, checkpoint.found_so_far))
                assert found.low is not None and found.high is not None
                tally.width.append(found.high - found.low)
        print(f"coverage {title}, scenario {number} ({scenario.describe()}): {tally.line()}")
        tallies.append(tally)
    return tallies


def check(tallies: list[Tally]) -> None:
    for name in ("prevalence", "found_so_far"):
        hits = [hit for tally in tallies for hit in getattr(tally, name)]
        coverage = float(np.mean(hits))
        print(f"coverage: {name.replace('_', ' ')} {coverage:.3f} over {len(hits)} checks")
        assert coverage >= REQUIRED_COVERAGE, f"{name}: {coverage:.3f} of 90% intervals cover"
        worst = min(float(np.mean(getattr(tally, name))) for tally in tallies)
        assert worst >= REQUIRED_COVERAGE, f"{name}: {worst:.3f} in one scenario"


def test_prevalence_and_found_so_far_intervals_cover_the_truth() -> None:
    assert DEFAULT_LEVEL == 0.9
    check(measure(SCENARIOS, loops=60, seed=1, title="90% intervals"))


@pytest.mark.slow
def test_prevalence_and_found_so_far_intervals_cover_the_truth_at_length() -> None:
    check(measure(SCENARIOS + SLOW_SCENARIOS, loops=200, seed=2, title="90% intervals, long"))


def recall_hits(loops: int, seed: int) -> list[bool]:
    """The head's recall among the draw pool's positives, from one round's stratified picks."""
    rng = np.random.default_rng(seed)
    hits: list[bool] = []
    for size, positives, picks, separation in (
        (1_000, 50, 40, 2.0),
        (2_000, 100, 20, 1.0),
        (500, 60, 30, 3.0),
        (3_000, 60, 100, 1.5),
    ):
        for _ in range(loops):
            positive = np.zeros(size, dtype=bool)
            positive[rng.choice(size, positives, replace=False)] = True
            scores = 1 / (1 + np.exp(-(separation * (2 * positive - 1) + rng.normal(size=size))))
            ranking = np.argsort(-scores, kind="stable").astype(np.intp)
            chosen = stratified_random(ranking, picks, rng)
            rows = np.array([row for row, _, _ in chosen])
            estimate = recall_estimate(
                positive[rows], np.array([p for _, p, _ in chosen]), scores[rows], 0.5
            )
            if estimate.estimate is None:
                continue
            truth = float((scores[positive] >= 0.5).mean())
            hits.append(covers(estimate, truth))
    return hits


def check_recall(hits: list[bool]) -> None:
    coverage = float(np.mean(hits))
    print(f"coverage: recall {coverage:.3f} over {len(hits)} draws")
    assert coverage >= REQUIRED_COVERAGE, f"recall: {coverage:.3f} of 90% intervals cover"


def test_recall_intervals_cover_the_truth() -> None:
    check_recall(recall_hits(loops=150, seed=3))


@pytest.mark.slow
def test_recall_intervals_cover_the_truth_at_length() -> None:
    check_recall(recall_hits(loops=1500, seed=4))
