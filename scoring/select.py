"""Choosing the next batch from a global ranking of the whole pool, with an explicit, recorded mix.

Works in row space: `scores[i]` and `vectors(i)` describe pool row i; the caller maps rows to item
ids. Every pick records its strategy, score and rank; random picks also record their inclusion
probability so prevalence and recall can be estimated without bias.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

NEAR_DUPLICATE_COSINE = 0.95
EXACT_DUPLICATE_COSINE = 0.9999
"""Above this two texts read as the same token sequence (the vectors' float16 storage apart):
never served again, even where near-duplicates of an accepted text are."""
CLUSTER_COSINE = 0.8
NOVELTY_AMONG_BEST = 0.05
"""The best-scored share of the eligible rows that novel picks come from: far from every answer,
but where the head still sees the label. Over the whole pool the farthest texts are the least
typical ones of every topic (short, fragments), almost never positive; in the discovery suite
(docs/discovery.md) drawing among the best 5% found 9% more on a label spanning four topics and
3% more on a one-topic label of four texts."""
ANCHOR_BLOCK = 512
"""Labelled rows compared with the novelty sample at a time (sample x block floats in memory)."""

RowVectors = Callable[[NDArray[np.intp]], NDArray[np.float32]]
"""Returns the L2-normalised vectors of the given pool rows, as float32."""


@dataclass(frozen=True)
class Pick:
    row: int
    strategy: str
    score: float
    rank: int
    inclusion_probability: float | None = None
    near_duplicate_of: int | None = None
    """The accepted row this pick nearly duplicates (cosine above `near_duplicate_cosine`)."""


@dataclass
class SelectionContext:
    """What selection needs to know about the pool."""

    scores: NDArray[np.floating[Any]] | None
    """Calibrated probability per pool row (NaN for rows that cannot be chosen); None when a
    `ranking` is given to `select_batch` instead (a pool too large to hold its scores)."""
    eligible: NDArray[np.bool_]
    """Rows that may be chosen: not answered, not waiting in a batch."""
    vectors: RowVectors
    labelled_rows: NDArray[np.intp]
    """Rows already answered: novelty is distance from these."""
    blocked_rows: NDArray[np.intp]
    """Rows answered or queued: nothing too close to them is chosen again."""
    threshold: float = 0.5
    positive_rows: NDArray[np.intp] = field(default_factory=lambda: np.empty(0, dtype=np.intp))
    """Accepted rows (not in `blocked_rows`) whose near-duplicates may be chosen, at most
    `near_duplicates_per_batch` of them; their exact duplicates never."""
    near_duplicates_per_batch: int = 0
    query_rows: NDArray[np.intp] = field(default_factory=lambda: np.empty(0, dtype=np.intp))
    """Eligible rows most like the label's query, best first (`QueryMatches.best`): what the
    query strategy chooses from; empty where the round has no query."""
    near_duplicate_cosine: float = NEAR_DUPLICATE_COSINE
    cluster_cosine: float = CLUSTER_COSINE
    cluster_cap: int | None = None
    novelty_among_best: float = NOVELTY_AMONG_BEST
    novelty_sample: int = 20_000
    """At most this many of those rows (a uniform sample) are compared with the answers."""


class DiversityGuard:
    """Refuses rows that nearly duplicate a blocked or already-picked row, and caps picks per cluster."""

    def __init__(self, context: SelectionContext, cluster_cap: int) -> None:
        self.context = context
        self.cluster_cap = cluster_cap
        self.blocked_vectors = self.vectors_of(context.blocked_rows)
        self.positive_vectors = self.vectors_of(context.positive_rows)
        self.near_duplicate_of: dict[int, int] = {}
        """Admitted rows that nearly duplicate an accepted row, and which."""
        self.picked_vectors: list[NDArray[np.float32]] = []
        self.picked_leader: list[int] = []
        self.leader_sizes: list[int] = []

    def vectors_of(self, rows: NDArray[np.intp]) -> NDArray[np.float32]:
        if not len(rows):
            return np.zeros((0, 0), dtype=np.float32)
        return self.context.vectors(rows)

    def admit(self, row: int, strategy_capped: bool = True) -> bool:
        vector = self.context.vectors(np.array([row]))[0]
        limit = self.context.near_duplicate_cosine
        if self.blocked_vectors.shape[0] and float(np.max(self.blocked_vectors @ vector)) > limit:
            return False
        duplicated: int | None = None
        if self.positive_vectors.shape[0]:
            similarity_to_positives = self.positive_vectors @ vector
            closest = int(np.argmax(similarity_to_positives))
            if float(similarity_to_positives[closest]) > limit:
                if (
                    float(similarity_to_positives[closest]) > EXACT_DUPLICATE_COSINE
                    or len(self.near_duplicate_of) >= self.context.near_duplicates_per_batch
                ):
                    return False
                duplicated = int(self.context.positive_rows[closest])
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
        if duplicated is not None:
            self.near_duplicate_of[row] = duplicated
        return True


class Ranking(Protocol):
    """The eligible rows ordered by score (descending), ties by row (ascending)."""

    size: int

    def best(self) -> Iterator[int]:
        """Rows best first; the whole ranking if read to the end."""
        ...

    def window_around(self, threshold: float, reach: int) -> NDArray[np.intp]:
        """The rows from `reach` before the first row scored below `threshold` to `reach` after."""
        ...

    def rows_at(self, positions: NDArray[np.integer]) -> NDArray[np.intp]:
        """The rows at these positions of the ranking."""
        ...

    def positions_of(self, rows: list[int]) -> list[int]:
        """The position of each row in the ranking."""
        ...

    def scores_of(self, rows: NDArray[np.integer]) -> NDArray[np.floating[Any]]: ...


class SortedRanking:
    """The ranking sorted in memory (8 bytes an eligible row): pools that fit in memory."""

    def __init__(self, scores: NDArray[np.floating[Any]], eligible: NDArray[np.bool_]) -> None:
        self.scores = scores
        in_row_order = np.flatnonzero(eligible & ~np.isnan(scores))
        self.rows = in_row_order[np.argsort(-scores[in_row_order], kind="stable")]
        self.size = int(self.rows.size)
        self._position_of: dict[int, int] | None = None

    def best(self) -> Iterator[int]:
        for row in self.rows:
            yield int(row)

    def window_around(self, threshold: float, reach: int) -> NDArray[np.intp]:
        position = bisect_descending(
            self.size, lambda n: float(self.scores[self.rows[n]]), threshold
        )
        window: NDArray[np.intp] = self.rows[max(0, position - reach) : position + reach]
        return window

    def rows_at(self, positions: NDArray[np.integer]) -> NDArray[np.intp]:
        rows: NDArray[np.intp] = self.rows[np.asarray(positions, dtype=np.intp)]
        return rows

    def positions_of(self, rows: list[int]) -> list[int]:
        if self._position_of is None:
            self._position_of = {}
        found = self._position_of
        for row in rows:
            if row not in found:
                found[row] = int(np.flatnonzero(self.rows == row)[0])
        return [found[row] for row in rows]

    def scores_of(self, rows: NDArray[np.integer]) -> NDArray[np.floating[Any]]:
        values: NDArray[np.floating[Any]] = self.scores[np.asarray(rows, dtype=np.intp)]
        return values


class BatchInProgress:
    """The batch being chosen: what each strategy sees of the ranking, and `take` to add a row."""

    def __init__(
        self,
        context: SelectionContext,
        counts: dict[str, int],
        rng: np.random.Generator,
        ranking: Ranking | None = None,
    ) -> None:
        self.context = context
        self.counts = counts
        self.rng = rng
        if ranking is None:
            if context.scores is None:
                raise ValueError("selection needs the pool's scores or a ranking of them")
            ranking = SortedRanking(context.scores, context.eligible)
        self.ranking: Ranking = ranking
        """Eligible rows, best score first."""
        self.known_position: dict[int, int] = {}
        cluster_cap = context.cluster_cap or max(2, math.ceil(0.2 * max(counts.get("top", 0), 1)))
        self.guard = DiversityGuard(context, cluster_cap)
        self.taken: set[int] = set()
        self.picks: list[Pick] = []

    def take(
        self, row: int, strategy: str, probability: float | None = None, capped: bool = True
    ) -> bool:
        """Add `row` unless it is taken already or too close to a blocked or picked row."""
        if row in self.taken or not self.guard.admit(row, capped):
            return False
        self.taken.add(row)
        self.picks.append(Pick(row, strategy, math.nan, -1, probability))
        return True

    def finished_picks(self) -> list[Pick]:
        """The picks with their scores and ranking positions, read once for all of them."""
        rows = [pick.row for pick in self.picks]
        unknown = [row for row in rows if row not in self.known_position]
        self.known_position.update(zip(unknown, self.ranking.positions_of(unknown), strict=True))
        scores = self.ranking.scores_of(np.array(rows, dtype=np.intp))
        return [
            replace(
                pick,
                score=float(score),
                rank=self.known_position[pick.row],
                near_duplicate_of=self.guard.near_duplicate_of.get(pick.row),
            )
            for pick, score in zip(self.picks, scores, strict=True)
        ]


ChooseRows = Callable[[BatchInProgress, int], None]
"""A strategy: adds up to `wanted` rows to the batch with `BatchInProgress.take`."""


def choose_random(batch: BatchInProgress, wanted: int) -> None:
    """Stratified by score rank, each pick recording its inclusion probability. Never refused by the
    diversity guard: the estimates need exactly these probabilities."""
    drawn = stratified_positions(batch.ranking.size, wanted, batch.rng)
    rows = batch.ranking.rows_at(np.array([position for position, _ in drawn], dtype=np.intp))
    for row_value, (position, probability) in zip(rows.tolist(), drawn, strict=True):
        row = int(row_value)
        batch.known_position[row] = position
        batch.taken.add(row)
        batch.picks.append(Pick(row, "random", math.nan, position, probability))
        batch.guard.picked_vectors.append(batch.context.vectors(np.array([row]))[0])
        batch.guard.picked_leader.append(len(batch.guard.leader_sizes))
        batch.guard.leader_sizes.append(1)


def choose_top(batch: BatchInProgress, wanted: int) -> None:
    """The highest scores, a few per cluster of near-identical texts."""
    taken = 0
    for row in batch.ranking.best():
        if taken >= wanted:
            break
        taken += batch.take(row, "top")


def choose_uncertain(batch: BatchInProgress, wanted: int) -> None:
    """Scores closest to the decision threshold, in random order."""
    context = batch.context
    # The ranking is sorted by score, so the rows closest to the threshold sit around one
    # position in it: only a window there is examined, whatever the pool's size.
    reach = wanted * 2 + len(batch.taken)
    window = batch.ranking.window_around(context.threshold, reach)
    remaining = without(window, batch.taken)
    distance = np.abs(
        logits(batch.ranking.scores_of(remaining)) - logits(np.array([context.threshold]))[0]
    )
    band = remaining[np.argsort(distance, kind="stable")[: wanted * 2]]
    for row in batch.rng.permutation(band):
        if wanted == 0:
            break
        wanted -= batch.take(int(row), "uncertain")


def choose_novel(batch: BatchInProgress, wanted: int) -> None:
    """Farthest from everything answered and taken (greedy k-center) among the best-scored
    `novelty_among_best` of the pool: finds second clusters of the label."""
    for row in k_center(batch.context, batch.ranking, batch.taken, wanted, batch.rng):
        if wanted == 0:
            break
        wanted -= batch.take(int(row), "novel", capped=False)


QUERY_CANDIDATES_PER_PICK = 4
"""Query matches kept per item of a batch: the other strategies and the diversity guard may take
or refuse some of the best ones."""


class QueryMatches:
    """The `count` eligible rows most like the label's query, gathered a chunk of the pool at a
    time as the pool is scored: memory holds `count` of them, whatever the pool's size.

    Likeness is the query's row of the head's features (`hnbooks.scoring.pool.text_features`)
    dotted with each row's. With `word_columns` (the features start with that many hashed-word
    columns) only the words count, and only rows sharing a word with the query are kept: a keyword
    search, which found more than the words and embedding together (docs/discovery.md). A query
    none of whose words the pool holds falls back to the whole row.
    """

    def __init__(
        self,
        query_features: Any,
        eligible: NDArray[np.bool_],
        count: int,
        word_columns: int | None = None,
    ) -> None:
        dense = query_features.toarray() if hasattr(query_features, "toarray") else query_features
        self._query = np.asarray(dense, dtype=np.float64).ravel()
        self._keyword = bool(word_columns) and bool(np.any(self._query[:word_columns]))
        self._word_columns = word_columns
        if self._keyword:
            self._query[word_columns:] = 0.0
        self._eligible = eligible
        self._count = count
        self._rows = np.empty(0, dtype=np.intp)
        self._likeness = np.empty(0, dtype=np.float64)

    def add(self, ids: NDArray[np.integer], features: Any) -> None:
        ids = np.asarray(ids, dtype=np.intp)
        keep = self._eligible[ids]
        if not keep.any():
            return
        word_product = getattr(features, "word_product", None)
        if self._keyword and word_product is not None:
            # The embedding part of the query is zero: its product over the chunk would be waste.
            likeness = np.asarray(word_product(self._query[: self._word_columns]), dtype=np.float64)
        else:
            likeness = np.asarray(features @ self._query, dtype=np.float64).ravel()
        if self._keyword:
            keep &= likeness > 0
        likeness = likeness[keep]
        rows = np.concatenate([self._rows, ids[keep]])
        likeness = np.concatenate([self._likeness, likeness])
        if rows.size > self._count:
            best = np.argpartition(-likeness, self._count - 1)[: self._count]
            rows, likeness = rows[best], likeness[best]
        self._rows, self._likeness = rows, likeness

    def best(self) -> NDArray[np.intp]:
        """The rows gathered, most like the query first (ties: lower row first)."""
        order = np.lexsort((self._rows, -self._likeness))
        return self._rows[order]


def choose_query(batch: BatchInProgress, wanted: int) -> None:
    """The best matches of the label's query that the other strategies left: the user's own words
    keep serving candidates the answers so far would not rank high (a second meaning of the label,
    another group it covers)."""
    for row in batch.context.query_rows.tolist():
        if wanted == 0:
            break
        wanted -= batch.take(int(row), "query")


@dataclass(frozen=True)
class Strategy:
    name: str
    choose: ChooseRows
    default_share: float
    summary: str
    turn: int
    """When it chooses, lowest first."""


# A new strategy is one function above and one entry here. Random chooses first, so its inclusion
# probabilities do not depend on what the other strategies took.
STRATEGY_REGISTRY: dict[str, Strategy] = {
    strategy.name: strategy
    for strategy in (
        Strategy("top", choose_top, 0.6, "top score", turn=1),
        Strategy("uncertain", choose_uncertain, 0.1, "closest to the threshold", turn=2),
        Strategy(
            "novel", choose_novel, 0.1, "far from all answered, among the best-scored", turn=3
        ),
        # A tenth of the batch, from top's share: in the discovery suite (docs/discovery.md) it
        # found 5-6% more on a label spanning four topics and 3% more on the HN answers, and as
        # many on one-topic labels.
        Strategy("query", choose_query, 0.1, "best keyword match of the label's words", turn=4),
        Strategy(
            "random", choose_random, 0.1, "stratified random (the estimates rest on it)", turn=0
        ),
    )
}
STRATEGIES = tuple(STRATEGY_REGISTRY)
"""Names of the selection strategies (the `--mix` choices)."""
FILL_STRATEGY = "top"
"""What a strategy could not fill (too few candidates, all near-duplicates) goes to this one."""


class Mix(Mapping[str, float]):
    """Shares of a batch per strategy: a validated, read-only mapping over `STRATEGY_REGISTRY`.

    `Mix()` is the default mix; `Mix({"top": 1})` gives every item to one strategy (the ones left
    out get 0).
    """

    def __init__(self, shares: Mapping[str, float] | None = None) -> None:
        if shares is None:
            shares = {name: strategy.default_share for name, strategy in STRATEGY_REGISTRY.items()}
        for name, share in shares.items():
            if name not in STRATEGY_REGISTRY:
                raise ValueError(f"unknown strategy {name!r} (use {', '.join(STRATEGIES)})")
            if not isinstance(share, int | float) or share < 0 or not math.isfinite(share):
                raise ValueError(
                    f"the share of {name} must be a non-negative number, not {share!r}"
                )
        if sum(shares.values()) <= 0:
            raise ValueError("at least one share must be positive")
        self._shares = {name: float(shares.get(name, 0.0)) for name in STRATEGY_REGISTRY}

    @classmethod
    def only(cls, strategy: str) -> Mix:
        return cls({strategy: 1.0})

    @property
    def shares(self) -> Mapping[str, float]:
        return MappingProxyType(self._shares)

    def __getitem__(self, name: str) -> float:
        return self._shares[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._shares)

    def __len__(self) -> int:
        return len(self._shares)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mix) and self._shares == other._shares

    def __hash__(self) -> int:
        return hash(tuple(self._shares.items()))

    def __repr__(self) -> str:
        return f"Mix({self.describe()})"

    def counts(self, batch_size: int) -> dict[str, int]:
        """Split `batch_size` by the shares, largest remainders first, so counts add up exactly."""
        total = sum(self._shares.values())
        exact = {name: batch_size * share / total for name, share in self._shares.items()}
        counts = {name: math.floor(value) for name, value in exact.items()}
        leftover = batch_size - sum(counts.values())
        for name in sorted(
            exact, key=lambda n: (exact[n] - counts[n], self._shares[n]), reverse=True
        )[:leftover]:
            counts[name] += 1
        return counts

    def describe(self) -> str:
        return ",".join(f"{name}={share:g}" for name, share in self._shares.items())


def parse_mix(text: str) -> Mix:
    """`top=0.6,uncertain=0.1,novel=0.1,query=0.1,random=0.1` (missing strategies get 0)."""
    values: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, _, raw = part.partition("=")
        name = name.strip()
        if name not in STRATEGY_REGISTRY:
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
    return Mix(values)


def select_batch(
    context: SelectionContext,
    batch_size: int,
    mix: Mix,
    rng: np.random.Generator,
    ranking: Ranking | None = None,
) -> list[Pick]:
    """Choose up to `batch_size` eligible rows, each strategy of the registry its share of them.

    `ranking` orders the eligible rows (default: `context.scores` sorted in memory)."""
    counts = mix.counts(batch_size)
    batch = BatchInProgress(context, counts, rng, ranking)
    for strategy in sorted(STRATEGY_REGISTRY.values(), key=lambda strategy: strategy.turn):
        if counts[strategy.name]:
            strategy.choose(batch, counts[strategy.name])
    if len(batch.picks) < batch_size:
        for row in batch.ranking.best():
            if len(batch.picks) >= batch_size:
                break
            batch.take(row, FILL_STRATEGY)
    return batch.finished_picks()


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


def logits(p: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    clipped = np.clip(np.asarray(p, dtype=np.float64), 1e-9, 1 - 1e-9)
    return np.log(clipped / (1 - clipped))


def stratified_positions(
    size: int, count: int, rng: np.random.Generator
) -> list[tuple[int, float]]:
    """One uniform position from each of `count` equal strata of a ranking of `size` rows:
    (position, inclusion probability = 1/stratum size)."""
    if count <= 0 or size == 0:
        return []
    count = min(count, size)
    bounds = np.linspace(0, size, count + 1).round().astype(int)
    picks = []
    for low, high in zip(bounds[:-1], bounds[1:], strict=True):
        if high > low:
            picks.append((int(rng.integers(low, high)), 1.0 / (high - low)))
    return picks


def stratified_random(
    ranking: NDArray[np.intp], count: int, rng: np.random.Generator
) -> list[tuple[int, float, int]]:
    """One uniform pick from each of `count` equal strata of the score ranking:
    (row, inclusion probability = 1/stratum size, position in the ranking)."""
    return [
        (int(ranking[position]), probability, position)
        for position, probability in stratified_positions(ranking.size, count, rng)
    ]


def k_center(
    context: SelectionContext,
    ranking: Ranking,
    taken: set[int],
    count: int,
    rng: np.random.Generator,
) -> list[int]:
    """Greedy k-center on the best-scored `context.novelty_among_best` of the eligible rows (a
    sample of `context.novelty_sample` when they are more): each pick is the farthest (cosine)
    from all labelled rows, the rows already taken, and the earlier picks."""
    # Never fewer candidates than the picks and their spares need, so a small pool is not starved.
    best_count = min(
        ranking.size,
        max(math.ceil(context.novelty_among_best * ranking.size), 3 * count + len(taken)),
    )
    if best_count > context.novelty_sample + len(taken):
        # Sampling positions (not copying the rows) keeps memory independent of the pool size.
        positions = np.sort(
            rng.choice(best_count, context.novelty_sample + len(taken), replace=False)
        )
    else:
        positions = np.arange(best_count)
    candidates = without(ranking.rows_at(positions), taken)[: context.novelty_sample]
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


ADAPTIVE_CHANNELS = ("top", "uncertain", "novel")
"""The channels whose shares an adaptive mix moves; random's and query's stay as given."""


@dataclass(frozen=True)
class ChannelYield:
    """What one channel's picks for a label have given so far."""

    answered: int
    positives: int


@dataclass(frozen=True)
class AdaptedMix:
    mix: Mix
    why: str
    """One line for the round report: each channel's positives / answers and chance to be best."""


def adaptive_mix(
    base: Mix,
    yields: Mapping[str, ChannelYield],
    rng: np.random.Generator,
    *,
    novel_floor: float = 0.05,
    draws: int = 2000,
) -> AdaptedMix:
    """Thompson sampling over the channels: each of top, uncertain and novel gets the part of
    the batch outside the random share in proportion to its posterior chance (Beta(1 + positives,
    1 + negatives) of its answers so far) of having the highest positive rate, novel at least
    `novel_floor` of the batch (it finds second clusters, whose worth shows late). The random
    share is kept as it is (the prevalence and recall estimates rest on it), and so is the query's
    (a channel with no answers yet would draw most of the batch on its uniform prior)."""
    total = sum(base.values())
    moving = [name for name in ADAPTIVE_CHANNELS if base[name] > 0]
    fixed = {name: share for name, share in base.items() if name not in moving}
    if len(moving) < 2:
        return AdaptedMix(base, "fixed: fewer than two channels to adapt")
    seen = {name: yields.get(name, ChannelYield(0, 0)) for name in moving}
    samples = np.stack(
        [rng.beta(1 + y.positives, 1 + y.answered - y.positives, size=draws) for y in seen.values()]
    )
    best = np.bincount(np.argmax(samples, axis=0), minlength=len(moving)) / draws
    free = total - sum(fixed.values())
    novel_floor *= total
    shares = {name: free * float(p) for name, p in zip(moving, best, strict=True)}
    if "novel" in shares and shares["novel"] < novel_floor:
        others = [name for name in moving if name != "novel"]
        rest = sum(shares[name] for name in others)
        scale = (free - novel_floor) / rest if rest > 0 else 0.0
        shares = {name: shares[name] * scale for name in others} | {"novel": novel_floor}
    shares |= fixed
    why = ", ".join(
        f"{name} {y.positives}/{y.answered} best {p:.0%}"
        for (name, y), p in zip(seen.items(), best, strict=True)
    )
    return AdaptedMix(Mix(shares), f"Thompson sampling: {why}")
