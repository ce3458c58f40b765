"""Choosing the next batch from a global ranking of the whole pool, with an explicit, recorded mix.

Works in row space: `scores[i]` and `vectors(i)` describe pool row i; the caller maps rows to item
ids. Every pick records its strategy, score and rank; random picks also record their inclusion
probability so prevalence and recall can be estimated without bias.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

STRATEGIES = ("top", "uncertain", "novel", "random")
NEAR_DUPLICATE_COSINE = 0.95
CLUSTER_COSINE = 0.8
ANCHOR_BLOCK = 512
"""Labelled rows compared with the novelty sample at a time (sample x block floats in memory)."""

RowVectors = Callable[[NDArray[np.intp]], NDArray[np.float32]]
"""Returns the L2-normalised vectors of the given pool rows, as float32."""


@dataclass(frozen=True)
class Mix:
    top: float = 0.7
    uncertain: float = 0.1
    novel: float = 0.1
    random: float = 0.1

    def counts(self, batch_size: int) -> dict[str, int]:
        """Split `batch_size` by the shares, largest remainders first, so counts add up exactly."""
        shares = {name: getattr(self, name) for name in STRATEGIES}
        total = sum(shares.values())
        exact = {name: batch_size * share / total for name, share in shares.items()}
        counts = {name: math.floor(value) for name, value in exact.items()}
        leftover = batch_size - sum(counts.values())
        for name in sorted(exact, key=lambda n: (exact[n] - counts[n], shares[n]), reverse=True)[
            :leftover
        ]:
            counts[name] += 1
        return counts

    def describe(self) -> str:
        return ",".join(f"{name}={getattr(self, name):g}" for name in STRATEGIES)


def parse_mix(text: str) -> Mix:
    """`top=0.7,uncertain=0.1,novel=0.1,random=0.1` (missing strategies get 0)."""
    values: dict[str, float] = {name: 0.0 for name in STRATEGIES}
    for part in text.split(","):
        if not part.strip():
            continue
        name, _, raw = part.partition("=")
        name = name.strip()
        if name not in STRATEGIES:
            raise ValueError(f"unknown strategy {name!r} in --mix (use {', '.join(STRATEGIES)})")
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"--mix: {part.strip()!r} needs a number, like {name}=0.1") from None
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"--mix: the share of {name} must be a non-negative number")
        values[name] = value
    if sum(values.values()) <= 0:
        raise ValueError("--mix: at least one share must be positive")
    return Mix(**values)


@dataclass(frozen=True)
class Pick:
    row: int
    strategy: str
    score: float
    rank: int
    inclusion_probability: float | None = None


@dataclass
class SelectionContext:
    """What selection needs to know about the pool."""

    scores: NDArray[np.float64]
    """Calibrated probability per pool row (NaN for rows that cannot be chosen)."""
    eligible: NDArray[np.bool_]
    """Rows that may be chosen: not answered, not waiting in a batch."""
    vectors: RowVectors
    labelled_rows: NDArray[np.intp]
    """Rows already answered: novelty is distance from these."""
    blocked_rows: NDArray[np.intp]
    """Rows answered or queued: nothing too close to them is chosen again."""
    threshold: float = 0.5
    near_duplicate_cosine: float = NEAR_DUPLICATE_COSINE
    cluster_cosine: float = CLUSTER_COSINE
    cluster_cap: int | None = None
    novelty_sample: int = 20_000


class DiversityGuard:
    """Refuses rows that nearly duplicate a blocked or already-picked row, and caps picks per cluster."""

    def __init__(self, context: SelectionContext, cluster_cap: int) -> None:
        self.context = context
        self.cluster_cap = cluster_cap
        self.blocked_vectors = (
            context.vectors(context.blocked_rows)
            if len(context.blocked_rows)
            else np.zeros((0, 0), dtype=np.float32)
        )
        self.picked_vectors: list[NDArray[np.float32]] = []
        self.picked_leader: list[int] = []
        self.leader_sizes: list[int] = []

    def admit(self, row: int, strategy_capped: bool = True) -> bool:
        vector = self.context.vectors(np.array([row]))[0]
        limit = self.context.near_duplicate_cosine
        if self.blocked_vectors.shape[0] and float(np.max(self.blocked_vectors @ vector)) > limit:
            return False
        leader = -1
        if self.picked_vectors:
            similarity = np.stack(self.picked_vectors) @ vector
            if float(similarity.max()) > limit:
                return False
            close = np.flatnonzero(similarity >= self.context.cluster_cosine)
            if close.size:
                leader = self.picked_leader[int(close[0])]
                if strategy_capped and self.leader_sizes[leader] >= self.cluster_cap:
                    return False
        if leader < 0:
            leader = len(self.leader_sizes)
            self.leader_sizes.append(0)
        self.leader_sizes[leader] += 1
        self.picked_vectors.append(vector)
        self.picked_leader.append(leader)
        return True


def select_batch(
    context: SelectionContext, batch_size: int, mix: Mix, rng: np.random.Generator
) -> list[Pick]:
    """Choose up to `batch_size` eligible rows: top, uncertain, novel and stratified random picks."""
    scores = context.scores
    ranking = np.flatnonzero(context.eligible & ~np.isnan(scores))
    ranking = ranking[np.argsort(-scores[ranking], kind="stable")]
    rank_of = {int(row): rank for rank, row in enumerate(ranking[: max(batch_size * 50, 1000)])}
    counts = mix.counts(batch_size)
    cluster_cap = context.cluster_cap or max(2, math.ceil(0.2 * max(counts["top"], 1)))
    guard = DiversityGuard(context, cluster_cap)
    taken: set[int] = set()
    picks: list[Pick] = []

    def rank(row: int) -> int:
        if row not in rank_of:
            rank_of[row] = int(np.flatnonzero(ranking == row)[0])
        return rank_of[row]

    def score_at(position: int) -> float:
        return float(scores[ranking[position]])

    def take(
        row: int, strategy: str, probability: float | None = None, capped: bool = True
    ) -> bool:
        if row in taken or not guard.admit(row, capped):
            return False
        taken.add(row)
        picks.append(Pick(row, strategy, float(scores[row]), rank(row), probability))
        return True

    # Random first: its inclusion probabilities must not depend on what the other strategies took.
    random_picks = stratified_random(ranking, counts["random"], rng)
    for row, probability, position in random_picks:
        rank_of[row] = position
        taken.add(row)
        picks.append(Pick(row, "random", float(scores[row]), rank(row), probability))
        guard.picked_vectors.append(context.vectors(np.array([row]))[0])
        guard.picked_leader.append(len(guard.leader_sizes))
        guard.leader_sizes.append(1)

    top_taken = 0
    for row in ranking:
        if top_taken >= counts["top"]:
            break
        top_taken += take(int(row), "top")

    wanted = counts["uncertain"]
    if wanted:
        # The ranking is sorted by score, so the rows closest to the threshold sit around one
        # position in it: only a window there is examined, whatever the pool's size.
        threshold_position = bisect_descending(ranking.size, score_at, context.threshold)
        reach = wanted * 2 + len(taken)
        window = ranking[max(0, threshold_position - reach) : threshold_position + reach]
        remaining = without(window, taken)
        distance = np.abs(logits(scores[remaining]) - logits(np.array([context.threshold]))[0])
        band = remaining[np.argsort(distance, kind="stable")[: wanted * 2]]
        for row in rng.permutation(band):
            if wanted == 0:
                break
            wanted -= take(int(row), "uncertain")

    wanted = counts["novel"]
    if wanted:
        for row in k_center(context, ranking, taken, wanted, rng):
            if wanted == 0:
                break
            wanted -= take(int(row), "novel", capped=False)

    # Whatever a strategy could not fill (too few candidates, all near-duplicates) goes to top.
    for row in ranking:
        if len(picks) >= batch_size:
            break
        take(int(row), "top")
    return picks


def without(rows: NDArray[np.intp], taken: set[int]) -> NDArray[np.intp]:
    """`rows` in their order, minus the taken ones."""
    if not taken:
        return rows
    return rows[~np.isin(rows, np.fromiter(taken, dtype=np.intp, count=len(taken)))]


def bisect_descending(size: int, value_at: Callable[[int], float], threshold: float) -> int:
    """First position whose value is below `threshold`, in values sorted from high to low."""
    low, high = 0, size
    while low < high:
        middle = (low + high) // 2
        if value_at(middle) >= threshold:
            low = middle + 1
        else:
            high = middle
    return low


def logits(p: NDArray[np.float64]) -> NDArray[np.float64]:
    clipped = np.clip(np.asarray(p, dtype=np.float64), 1e-9, 1 - 1e-9)
    return np.log(clipped / (1 - clipped))


def stratified_random(
    ranking: NDArray[np.intp], count: int, rng: np.random.Generator
) -> list[tuple[int, float, int]]:
    """One uniform pick from each of `count` equal strata of the score ranking:
    (row, inclusion probability = 1/stratum size, position in the ranking)."""
    if count <= 0 or ranking.size == 0:
        return []
    count = min(count, ranking.size)
    bounds = np.linspace(0, ranking.size, count + 1).round().astype(int)
    picks = []
    for low, high in zip(bounds[:-1], bounds[1:], strict=True):
        if high > low:
            position = int(rng.integers(low, high))
            picks.append((int(ranking[position]), 1.0 / (high - low), position))
    return picks


def k_center(
    context: SelectionContext,
    ranking: NDArray[np.intp],
    taken: set[int],
    count: int,
    rng: np.random.Generator,
) -> list[int]:
    """Greedy k-center on a sample of eligible rows: each pick is the farthest (cosine) from all
    labelled rows, the rows already taken, and the earlier picks."""
    if ranking.size > context.novelty_sample + len(taken):
        # Sampling positions (not copying the ranking) keeps memory independent of the pool size.
        positions = rng.choice(ranking.size, context.novelty_sample + len(taken), replace=False)
        candidates = without(ranking[np.sort(positions)], taken)[: context.novelty_sample]
    else:
        candidates = without(ranking, taken)
    if candidates.size == 0:
        return []
    candidate_vectors = context.vectors(candidates)
    nearest = np.full(candidates.size, -1.0)
    anchors = np.concatenate([context.labelled_rows, np.array(sorted(taken), dtype=np.intp)])
    for start in range(0, anchors.size, ANCHOR_BLOCK):
        block = context.vectors(anchors[start : start + ANCHOR_BLOCK])
        nearest = np.maximum(nearest, (candidate_vectors @ block.T).max(axis=1))
    chosen: list[int] = []
    for _ in range(min(count * 3, candidates.size)):
        best = int(np.argmin(nearest))
        if nearest[best] > 1.5:
            break
        chosen.append(int(candidates[best]))
        nearest = np.maximum(nearest, candidate_vectors @ candidate_vectors[best])
        nearest[best] = 2.0
    # A few spares: the guard may refuse near-duplicates; the caller stops at `count` accepted.
    return chosen[: count * 3]
