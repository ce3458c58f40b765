"""One scoring round: train the head on every answer so far, score the whole pool, choose and publish.

Embedding happens before this (the cache is filled by `scoring.embed`); this module only reads
vectors, so the same round runs on a synthetic pool in the benchmark and in tests. The batch and
the round's report are published in one transaction at the very end: a round killed earlier leaves
nothing visible, and the next run starts it again.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hnbooks.scoring.estimate import (
    CalibrationBin,
    Estimate,
    RandomAnswers,
    calibration_bins,
    pool_estimates,
    prevalence_estimate,
    recall_estimate,
)
from hnbooks.scoring.head import Head, HeadConfig, train_head
from hnbooks.scoring.pool import (
    PoolVectors,
    embeddings_of,
    features_of,
    pool_size,
    presence_mask,
    text_features,
    top_by_cosine,
)
from hnbooks.scoring.select import (
    NOVELTY_AMONG_BEST,
    QUERY_CANDIDATES_PER_PICK,
    Mix,
    Pick,
    QueryMatches,
    RowVectors,
    SelectionContext,
    select_batch,
)
from hnbooks.scoring.spans import SpanSuggester
from hnbooks.scoring.streamed import ScoreFile, StreamedRanking, nth_true
from hnbooks.store import Store
from hnbooks.store.queue import NothingLeftToPublish
from hnbooks.store.records import Answer, BatchEntry, Round, SpanSuggestion
from hnbooks.store.reports import (
    BatchYieldReport,
    CalibrationBinReport,
    EmbeddingReport,
    EstimateReport,
    RoundReport,
)

DEFAULT_SEED_QUERIES = {
    "BOOK": "I recommend reading this book by its author, a great novel",
}
FALLBACK_SEED_QUERY = "{label}"

QueryEncoder = Callable[[str], NDArray[np.float32]]
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundConfig:
    label: str
    batch_size: int = 50
    mix: Mix = field(default_factory=Mix)
    seed_query: str | None = None
    """The label's words: searched while no positive exists, trained on as a positive after
    (`query_as_positive`). Default: the words stored for the label (`hnbooks labels query`,
    `hnbooks seed --query`), else a sentence describing it (`cold_start_query`)."""
    random_seed: int | None = None
    threshold: float = 0.5
    head: HeadConfig = field(default_factory=HeadConfig)
    near_duplicates_of_positives: bool = True
    """Let near-duplicates (cosine > 0.95) of accepted texts be chosen, at most
    `near_duplicates_per_batch` a batch, each marked as such for the annotator; those of rejected
    or queued texts never, nor a text's exact duplicate (cosine > 0.9999). Finding every positive
    is the goal, and a near-twin of an accepted text is the likeliest positive left: in the
    discovery suite (docs/discovery.md) R52 recall at 300 labels rose from 0.92 to 0.99, where
    reports are templates differing only in their figures."""
    near_duplicates_per_batch: int | None = None
    """Default: a tenth of the batch (at least one), so one template cannot fill a batch."""
    novelty_among_best: float = NOVELTY_AMONG_BEST
    """Novel picks come from this best-scored share of the pool (`SelectionContext`)."""
    query_as_positive: bool = True
    """Train the head on the cold-start query (`cold_start_query`) as one more positive, beside
    the answers: the user's words for the label keep counting after the seed batch. In the
    discovery suite (docs/discovery.md) it found a quarter more of the 4 positives of a 20
    Newsgroups group (0.44 to 0.55 per 100 labels with the group's name as the query, 0.49 to 0.59
    with a typed one), 40% more on the disjunct task, and halved the runs finding none."""

    def near_duplicate_cap(self) -> int:
        if not self.near_duplicates_of_positives:
            return 0
        if self.near_duplicates_per_batch is not None:
            return self.near_duplicates_per_batch
        return max(1, self.batch_size // 10)

    def cold_start_query(self) -> str:
        if self.seed_query:
            return self.seed_query
        return DEFAULT_SEED_QUERIES.get(
            self.label, FALLBACK_SEED_QUERY.format(label=self.label.lower())
        )


@dataclass
class RoundResult:
    batch_id: int | None
    entries: list[BatchEntry]
    report: RoundReport
    head: Head | None = None

    @property
    def mode(self) -> str:
        """ "model" (head trained, mix selected), "seed" (no positive yet) or "empty" (nothing left)."""
        return self.report.mode


def item_verdicts(store: Store, label: str) -> dict[int, bool]:
    """Item id → has `label`, from every current answer; annotators disagreeing are put to a vote,
    a tie counting as positive (a rare positive is the costlier one to lose)."""
    return verdicts_of(store.current_answers(), label)


def verdicts_of(answers: list[Answer], label: str) -> dict[int, bool]:
    """`item_verdicts` from answers already read."""
    votes: dict[int, list[bool]] = defaultdict(list)
    for answer in answers:
        verdict = answer.verdict_for(label)
        if verdict is not None:
            votes[answer.item_id].append(verdict)
    return {item_id: 2 * sum(v) >= len(v) for item_id, v in votes.items()}


def last_batch_yield(store: Store, verdicts: dict[int, bool]) -> BatchYieldReport | None:
    """Per strategy, how many items of the latest scored batch were answered and how many were positive."""
    batch_id = store.latest_batch_id_of("score")
    if batch_id is None:
        return None
    strategies = store.batch_strategies(batch_id)
    answered: Counter[str] = Counter()
    positives: Counter[str] = Counter()
    for item_id, strategy in strategies.items():
        if item_id in verdicts:
            answered[strategy] += 1
            positives[strategy] += int(verdicts[item_id])
    return BatchYieldReport(batch_id, dict(answered), dict(positives))


@dataclass
class TrainedSelection:
    """What one round computes from arrays alone: the head, every pool score and the picks."""

    head: Head
    scores: NDArray[np.floating[Any]] | None
    """Calibrated probability indexed by pool id (NaN for ids without a vector); None when streamed."""
    picks: list[Pick]
    prevalence: Estimate
    seconds: dict[str, float]
    score_file: ScoreFile | None = None
    """The scores of a streamed round, on disk."""

    def scores_of(self, item_ids: NDArray[np.int64]) -> NDArray[np.floating[Any]]:
        """Calibrated probability of each id (NaN for ids without a vector or out of the pool)."""
        if self.score_file is not None:
            return self.score_file.values_of(item_ids)
        assert self.scores is not None
        out = np.full(item_ids.size, np.nan)
        inside = (item_ids >= 0) & (item_ids < self.scores.size)
        out[inside] = self.scores[item_ids[inside]]
        return out


def train_round_head(
    pool: PoolVectors,
    labelled_ids: NDArray[np.int64],
    labels: NDArray[np.bool_],
    eligible_ids: NDArray[np.int64] | None,
    *,
    random_positive: NDArray[np.bool_],
    random_probability: NDArray[np.float64],
    config: RoundConfig,
    rng: np.random.Generator,
    eligible: NDArray[np.bool_] | None = None,
    query_features: Any | None = None,
) -> tuple[Head, Estimate]:
    """The round's head: answers plus random eligible items as pseudo-negatives while true
    negatives number fewer than `config.head.pseudo_negatives`, calibrated to the IPW prior
    (no prior without random answers), with `query_features` (the label's description as a row of
    the pool's features, `hnbooks.scoring.pool.text_features`) trained as a positive. The eligible
    items are `eligible_ids` or, when that is None, the ids where the mask `eligible` is set (the
    same draws either way)."""
    positives = int(labels.sum())
    true_negatives = int((~labels).sum())
    if eligible_ids is not None:
        eligible_count = int(eligible_ids.size)
    elif eligible is not None:
        eligible_count = int(np.count_nonzero(eligible))
    else:
        raise ValueError("train_round_head needs eligible_ids or an eligible mask")
    pseudo_count = max(0, min(config.head.pseudo_negatives - true_negatives, eligible_count // 2))
    pseudo_ids = np.empty(0, dtype=np.int64)
    if pseudo_count:
        # Positions first, then ids: `rng.choice(ids, k)` draws exactly `rng.choice(len(ids), k)`.
        positions = rng.choice(eligible_count, pseudo_count, replace=False)
        if eligible_ids is not None:
            pseudo_ids = np.sort(eligible_ids[positions])
        else:
            assert eligible is not None
            pseudo_ids = np.sort(nth_true(eligible, positions).astype(np.int64))
    prevalence = prevalence_estimate(
        random_positive,
        random_probability,
        known_positives=positives,
        unlabelled_count=eligible_count,
        pool_count=pool_size(pool)[0],
    )
    head = train_head(
        pool.rows(labelled_ids),
        labels,
        pseudo_negative_features=pool.rows(pseudo_ids) if pseudo_count else None,
        query_features=query_features,
        prior=prevalence.estimate if prevalence.estimate else None,
        config=config.head,
        random_state=config.random_seed or 0,
    )
    return head, prevalence


def train_and_select(
    pool: PoolVectors,
    labelled_ids: NDArray[np.int64],
    labels: NDArray[np.bool_],
    eligible_ids: NDArray[np.int64] | None,
    blocked_ids: NDArray[np.int64],
    *,
    random_positive: NDArray[np.bool_],
    random_probability: NDArray[np.float64],
    config: RoundConfig,
    rng: np.random.Generator,
    vectors: RowVectors | None = None,
    streamed: bool = False,
    eligible: NDArray[np.bool_] | None = None,
    query_features: Any | None = None,
) -> TrainedSelection:
    """Train the head on the labelled ids, score the whole pool and choose the next batch.

    No store: `run_round` and the discovery simulation both call this. Random pool items stand in
    as pseudo-negatives while true negatives number fewer than `config.head.pseudo_negatives`; the
    prior comes from the stratified random answers (IPW). `vectors` gives the unit vectors that
    selection measures distance with (default: the pool's embeddings). `streamed` keeps the scores in
    a temporary file instead of memory (same picks); `eligible`, a mask over ids, may stand for
    `eligible_ids`; `query_features`, the label's description as a row of the pool's features, is
    trained as a positive.
    """
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    head, prevalence = train_round_head(
        pool,
        labelled_ids,
        labels,
        eligible_ids,
        random_positive=random_positive,
        random_probability=random_probability,
        config=config,
        rng=rng,
        eligible=eligible,
        query_features=query_features if config.query_as_positive else None,
    )
    seconds["train"] = time.perf_counter() - clock

    clock = time.perf_counter()
    largest_id = pool_size(pool)[1]
    if eligible is None:
        assert eligible_ids is not None
        eligible = np.zeros(largest_id + 1, dtype=bool)
        eligible[eligible_ids] = True
    # Only the best few matches of the query are kept, gathered as the pool is scored: a second
    # pass over a 10M-item pool would double the round.
    query_matches = (
        QueryMatches(
            query_features,
            eligible,
            QUERY_CANDIDATES_PER_PICK * config.batch_size,
            word_columns=getattr(pool, "word_columns", None),
        )
        if query_features is not None and config.mix["query"] > 0
        else None
    )
    ranking: StreamedRanking | None = None
    score_file: ScoreFile | None = None
    scores: NDArray[np.floating[Any]] | None = None
    if streamed:
        # Scores go to a temporary file, the ranking is read from it: memory does not grow with
        # the pool (see `hnbooks.scoring.streamed`).
        score_file = ScoreFile(largest_id + 1)
    else:
        # float32: four bytes an item is what the pool's size costs in memory here.
        scores = np.full(largest_id + 1, np.nan, dtype=np.float32)
    for ids, features in pool.chunks():
        if score_file is not None:
            score_file.append(ids, head.probability(features))
        else:
            assert scores is not None
            scores[ids] = head.probability(features)
        if query_matches is not None:
            query_matches.add(ids, features)
    if score_file is not None:
        score_file.finish()
    seconds["score"] = time.perf_counter() - clock

    clock = time.perf_counter()
    if score_file is not None:
        ranking = StreamedRanking(score_file, eligible)
    # With near-duplicates of positives eligible, the positives leave the blocked rows and cap
    # their near-duplicates instead; without, none is set apart and all stay blocked.
    positive_ids = (
        labelled_ids[labels] if config.near_duplicates_of_positives else np.empty(0, dtype=np.int64)
    )
    context = SelectionContext(
        scores=scores,
        eligible=eligible,
        vectors=vectors or embeddings_of(pool).rows,
        labelled_rows=labelled_ids.astype(np.intp),
        blocked_rows=np.asarray(
            blocked_ids_except_positives(blocked_ids, positive_ids), dtype=np.intp
        ),
        threshold=config.threshold,
        positive_rows=positive_ids.astype(np.intp),
        near_duplicates_per_batch=config.near_duplicate_cap(),
        novelty_among_best=config.novelty_among_best,
        query_rows=query_matches.best() if query_matches is not None else np.empty(0, np.intp),
    )
    picks = select_batch(context, config.batch_size, config.mix, rng, ranking)
    seconds["select"] = time.perf_counter() - clock
    return TrainedSelection(head, scores, picks, prevalence, seconds, score_file)


def blocked_ids_except_positives(
    blocked_ids: NDArray[np.int64], positive_ids: NDArray[np.int64]
) -> NDArray[np.int64]:
    """The rows whose near-duplicates selection refuses when `near_duplicates_of_positives` is on:
    answered or queued, less the positives (whose near-duplicates are capped instead).

    A near-duplicate of a rejected text is almost surely negative too, so skipping it saves a
    label. A near-duplicate of a positive is the likeliest positive left, and an item of its own
    to find.
    """
    if positive_ids.size == 0:
        return blocked_ids
    return blocked_ids[~np.isin(blocked_ids, positive_ids)]


def run_round(
    store: Store,
    pool: PoolVectors,
    config: RoundConfig,
    *,
    encode_query: QueryEncoder | None = None,
    embedding: EmbeddingReport | None = None,
    started_at: float | None = None,
    spans: SpanSuggester | None = None,
) -> RoundResult:
    """One round; with `spans`, the batch is published with the stored span models' suggestions
    for its items, and then, once enough new spans are marked, the models are trained again and
    the batch's suggestions replaced (`SpanSuggester.after_publish`)."""
    suggest_spans = spans.suggestions_for if spans is not None else None
    result = run_classification_round(
        store,
        pool,
        config,
        encode_query=encode_query,
        embedding=embedding,
        started_at=started_at,
        suggest_spans=suggest_spans,
    )
    if spans is not None and result.batch_id is not None:
        try:
            spans.after_publish(store, result.batch_id)
        except Exception:  # the batch is out, with the suggestions of the models it had
            logger.exception("span models after batch %s failed", result.batch_id)
    return result


SpanSuggestionsFor = Callable[[Store, Sequence[int]], Mapping[int, Sequence[SpanSuggestion]] | None]
"""Items' span suggestions to publish with their batch (`SpanSuggester.suggestions_for`)."""


def run_classification_round(
    store: Store,
    pool: PoolVectors,
    config: RoundConfig,
    *,
    encode_query: QueryEncoder | None = None,
    embedding: EmbeddingReport | None = None,
    started_at: float | None = None,
    suggest_spans: SpanSuggestionsFor | None = None,
) -> RoundResult:
    started_at = started_at or time.time()
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    if config.seed_query is None:
        config = replace(config, seed_query=store.label_query(config.label))
    rng = np.random.default_rng(config.random_seed)
    answers = store.current_answers()
    verdicts = verdicts_of(answers, config.label)
    excluded = store.excluded_item_ids()
    pool_count, largest_pool_id = pool_size(pool)
    positives = sum(verdicts.values())
    report = RoundReport(
        mode="model",
        label=config.label,
        pool=pool_count,
        answers=store.answer_count(),
        labelled_items=len(verdicts),
        positives=positives,
        negatives=len(verdicts) - positives,
        batch_size=config.batch_size,
        last_batch=last_batch_yield(store, verdicts),
        embedding=embedding,
        features=features_of(pool),
    )

    if positives == 0:
        return seed_round(
            store, pool, config, excluded, report, encode_query, started_at, suggest_spans
        )

    # Boolean masks over ids, not id arrays or set operations on the pool: memory stays ~1 byte
    # per item.
    eligible = presence_mask(pool)
    labelled_ids = np.array(
        [i for i in sorted(verdicts) if i < eligible.size and eligible[i]], dtype=np.int64
    )
    labels = np.array([verdicts[int(i)] for i in labelled_ids], dtype=bool)
    for item_id in excluded:
        if item_id < eligible.size:
            eligible[item_id] = False
    eligible_count = int(np.count_nonzero(eligible))
    if eligible_count == 0:
        report = replace(report, mode="empty", note="every item is answered or queued")
        store.record_round(report)
        return RoundResult(None, [], report)

    draws = random_draws(
        store,
        config.label,
        answers,
        verdicts,
        positive_ids=labelled_ids[labels],
        eligible_now=eligible_count,
    )
    random_positive = draws.answers.positive
    random_probability = draws.answers.inclusion_probability
    blocked = np.fromiter((i for i in excluded if i <= largest_pool_id), dtype=np.int64)
    query_features = None
    if (config.query_as_positive or config.mix["query"] > 0) and encode_query is not None:
        query = config.cold_start_query()
        query_features = text_features(pool, query, encode_query(query))
        if config.query_as_positive:
            report = replace(report, seed_query=query)
    trained = train_and_select(
        pool,
        labelled_ids,
        labels,
        None,
        np.sort(blocked),
        random_positive=random_positive,
        random_probability=random_probability,
        config=config,
        rng=rng,
        streamed=True,
        eligible=eligible,
        query_features=query_features,
    )
    head, picks = trained.head, trained.picks
    timings.update(trained.seconds)
    timings["train"] = (
        time.perf_counter() - clock - trained.seconds["score"] - trained.seconds["select"]
    )

    random_scores = np.asarray(trained.scores_of(draws.item_ids), dtype=np.float64)
    if trained.score_file is not None:
        trained.score_file.close()
    recall = recall_estimate(random_positive, random_probability, random_scores, config.threshold)
    estimates = pool_estimates(
        draws.answers,
        known_positives=int(labels.sum()),
        pool_count=pool_count,
        unlabelled_count=eligible_count,
        known_negatives=int((~labels).sum()),
    )
    entries = [
        BatchEntry(p.row, p.strategy, p.score, p.rank, p.inclusion_probability, p.near_duplicate_of)
        for p in picks
    ]
    report = replace(
        report,
        pseudo_negatives=int(head.training["pseudo_negatives"]),
        cv_average_precision=head.training["cv_average_precision"],
        prevalence=estimate_report(estimates.prevalence),
        recall=estimate_report(recall),
        found_so_far=estimate_report(estimates.found_so_far),
        eligible=eligible_count,
        calibration=calibration_report(
            calibration_bins(draws.served_scores, draws.answers.positive)
        ),
        mix=config.mix.describe(),
        picked_per_strategy=dict(Counter(e.strategy for e in entries)),
        seconds={k: round(v, 3) for k, v in timings.items()},
    )
    # Shuffled so the annotator cannot tell the strategy from the position.
    order = rng.permutation(len(entries))
    entries = [entries[i] for i in order]
    if not entries:
        return RoundResult(None, [], report, head)
    published = publish_or_record(store, entries, "score", None, report, started_at, suggest_spans)
    return RoundResult(published.batch_id, entries if published.batch_id else [], published, head)


def estimate_report(estimate: Estimate) -> EstimateReport:
    return EstimateReport(
        estimate.estimate, estimate.low, estimate.high, estimate.n, estimate.method, estimate.level
    )


def calibration_report(bins: list[CalibrationBin]) -> tuple[CalibrationBinReport, ...]:
    return tuple(
        CalibrationBinReport(
            b.low, b.high, b.count, b.positives, b.mean_predicted, b.observed_low, b.observed_high
        )
        for b in bins
    )


@dataclass(frozen=True)
class RandomDraws:
    """The answered random picks, one per item, with what the estimates need to know of each."""

    answers: RandomAnswers
    item_ids: NDArray[np.int64]
    served_scores: NDArray[np.float64]
    """The score that served each item, before its answer (NaN where the answer holds none)."""


def random_draws(
    store: Store,
    label: str,
    answers: list[Answer],
    verdicts: dict[int, bool],
    *,
    positive_ids: NDArray[np.int64],
    eligible_now: int,
) -> RandomDraws:
    """Every answered random pick with its round's draw pool (M_t) and the positives outside it
    (F_t, by today's answers); see `hnbooks.scoring.estimate.pool_estimates`.

    A positive lay outside round t's draw pool when it was in an earlier batch or answered before
    the round started. A pick whose round left no report is taken as drawn from today's pool.
    Items whose answers say nothing about `label` (ignored) are left out: their draw's other
    answers stand for them."""
    served: dict[int, tuple[int, float | None]] = {}
    first_batch: dict[int, float] = {}
    first_answer: dict[int, float] = {}
    for answer in answers:
        if answer.batch_id is not None:
            served.setdefault(answer.item_id, (answer.batch_id, answer.score))
            first_batch[answer.item_id] = min(
                first_batch.get(answer.item_id, np.inf), answer.batch_id
            )
        if answer.created_at is not None:
            first_answer[answer.item_id] = min(
                first_answer.get(answer.item_id, np.inf), answer.created_at
            )
    positives_batch = np.array([first_batch.get(int(i), np.inf) for i in positive_ids])
    positives_time = np.array([first_answer.get(int(i), np.inf) for i in positive_ids])
    rounds: dict[int, Round] = {
        r.report.batch_id: r for r in store.rounds() if r.report.batch_id is not None
    }

    rows: list[tuple[int, bool, float, int, float | None]] = []
    seen: set[int] = set()
    for item_id, _, probability in store.random_answers_with_probability(label):
        if item_id in seen or item_id not in verdicts or not 0 < probability <= 1:
            continue
        seen.add(item_id)
        batch_id, score = served.get(item_id, (-1, None))
        rows.append((item_id, verdicts[item_id], probability, batch_id, score))

    weights_by_batch: dict[int, list[float]] = defaultdict(list)
    for _, _, probability, batch_id, _ in rows:
        weights_by_batch[batch_id].append(1.0 / probability)
    context: dict[int, tuple[float, float]] = {}
    for batch_id, weights in weights_by_batch.items():
        round_ = rounds.get(batch_id)
        if round_ is None:
            context[batch_id] = (float(eligible_now), float(positive_ids.size))
            continue
        report = round_.report
        # Reports older than `eligible`: one pick per equal stratum, so M_t ≈ picks x mean(1/π).
        draw_pool = (
            report.eligible
            if report.eligible is not None
            else report.picked_per_strategy.get("random", len(weights)) * float(np.mean(weights))
        )
        outside = (positives_batch < batch_id) | (positives_time < round_.started_at)
        context[batch_id] = (float(draw_pool), float(outside.sum()))

    return RandomDraws(
        RandomAnswers(
            positive=np.array([r[1] for r in rows], dtype=bool),
            inclusion_probability=np.array([r[2] for r in rows], dtype=np.float64),
            draw=np.array([r[3] for r in rows], dtype=np.int64),
            draw_pool=np.array([context[r[3]][0] for r in rows], dtype=np.float64),
            known_outside=np.array([context[r[3]][1] for r in rows], dtype=np.float64),
        ),
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([np.nan if r[4] is None else r[4] for r in rows], dtype=np.float64),
    )


def seed_round(
    store: Store,
    pool: PoolVectors,
    config: RoundConfig,
    excluded: set[int],
    report: RoundReport,
    encode_query: QueryEncoder | None,
    started_at: float,
    suggest_spans: SpanSuggestionsFor | None = None,
) -> RoundResult:
    """No positive yet: a model can't find one at 1/5,000, so the batch comes from the seed channel."""
    query = config.cold_start_query()
    entries = seed_entries(
        store,
        pool,
        query,
        "semantic" if encode_query else "fts",
        excluded,
        config.batch_size,
        encode_query,
    )
    report = replace(
        report, mode="seed", seed_query=query, note="no positive answer yet: seed channel only"
    )
    if not entries:
        report = replace(report, note=f"{report.note}; nothing matched")
        store.record_round(report)
        return RoundResult(None, [], report)
    published = publish_or_record(store, entries, "seed", query, report, started_at, suggest_spans)
    return RoundResult(published.batch_id, entries if published.batch_id else [], published)


def publish_or_record(
    store: Store,
    entries: list[BatchEntry],
    source: str,
    note: str | None,
    report: RoundReport,
    started_at: float,
    suggest_spans: SpanSuggestionsFor | None = None,
) -> RoundReport:
    """Publish the batch with its report (and its items' span suggestions, where the span models
    give some); when every item was taken meanwhile (another publisher, answers from search),
    record the report alone. Return the report as stored."""
    suggestions = None
    if suggest_spans is not None:
        try:
            suggestions = suggest_spans(store, [e.item_id for e in entries])
        except Exception:  # the batch matters more: it goes out with the rules' candidates
            logger.exception("span suggestions for a %s batch failed", source)
    try:
        batch_id = store.publish_batch(
            entries,
            source=source,
            label=report.label,
            note=note,
            round_report=report,
            round_started_at=started_at,
            span_suggestions=suggestions,
        )
    except NothingLeftToPublish as refused:
        report = replace(report, note=str(refused))
        store.record_round(report)
        return report
    return replace(report, batch_id=batch_id)


def seed_entries(
    store: Store,
    pool: PoolVectors | None,
    query: str,
    mode: str,
    excluded: set[int],
    limit: int,
    encode_query: QueryEncoder | None = None,
) -> list[BatchEntry]:
    """Candidates for a seed batch: FTS5 keyword, regex or embedding-similarity matches of `query`."""
    if mode == "semantic":
        if pool is None or encode_query is None:
            raise ValueError("semantic seeding needs the encoder and the embedded pool")
        matches = top_by_cosine(pool, encode_query(query), excluded, limit)
        return [
            BatchEntry(item_id, "seed", score, rank)
            for rank, (item_id, score) in enumerate(matches)
        ]
    hits = store.search(query, mode=mode, limit=limit + len(excluded))
    entries: list[BatchEntry] = []
    for hit in hits:
        if hit.item.id in excluded:
            continue
        entries.append(BatchEntry(hit.item.id, "seed", 1.0 / (1 + len(entries)), len(entries)))
        if len(entries) >= limit:
            break
    return entries
