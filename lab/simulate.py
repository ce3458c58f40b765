"""Replay the annotation loop on a labelled corpus, with an oracle answering from the gold labels.

The loop is the scorer's: head and selection come from `scoring.job.train_and_select` (the function
`run_round` calls), run in memory in row space instead of through the store. Against it run two
baselines: `random` (label items drawn uniformly) and `stream-ema` (Prodigy's `prefer_uncertain`
over a stream in random order, see `hnbooks.lab.stream_ema`) with the same head.

One run:
1. The task is drawn: a held-out split (stratified by class, never labelled), then the positives
   kept in the pool (`keep_positives` per positive class; the others leave the pool), then the
   seed positives given at start (not counted as found, not charged to the budget).
2. Cold start, the same for every strategy but `random`: while no positive is known, and for the
   first batch whenever a seed query is given, the batch is the seed query's best keyword (TF-IDF
   cosine) matches not yet labelled, as `hnbooks-score`'s seed channel would serve them; with no
   query the label's name is the query (the scorer's fallback); slots no match fills are drawn at
   random.
3. Then batch after batch until the budget is spent: the strategy picks, the oracle answers, the
   head is retrained on every answer so far and, as in `hnbooks-score`, on the cold-start query as
   one more positive.

Runs with the same `random_seed` and repeat draw the same task (split, kept positives, seeds), so
strategies are compared on identical pools.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from hnbooks.lab.datasets import Dataset
from hnbooks.lab.stream_ema import DEFAULT_ALPHA, EmaUncertaintySorter, ScoredStream
from hnbooks.scoring.estimate import RandomAnswers, pool_estimates
from hnbooks.scoring.head import Head, HeadConfig
from hnbooks.scoring.job import RoundConfig, train_and_select, train_round_head
from hnbooks.scoring.pool import WORD_WEIGHT
from hnbooks.scoring.select import NOVELTY_AMONG_BEST, ChannelYield, Mix, Pick, adaptive_mix

if TYPE_CHECKING:
    from hnbooks.scoring.encoder import Device

STRATEGY_MIXES: dict[str, Mix] = {
    "default": Mix(),
    "top": Mix.only("top"),
    "uncertain": Mix.only("uncertain"),
    "novel": Mix.only("novel"),
    # The mix's random channel draws one item per stratum of the score ranking.
    "stratified": Mix.only("random"),
}
"""Pool strategies: the scorer's default mix and each selection channel alone."""
BASELINES = ("random", "stream-ema")
STRATEGIES = (*STRATEGY_MIXES, "mix", *BASELINES)
FEATURE_KINDS = ("words", "onnx", "tfidf", "both")
EMBED_CHUNK = 1024
"""Texts per call to the encoder, so progress can be shown on a long first embedding."""
TFIDF_VOCABULARY = 20_000
"""Most frequent words kept: as good as all 55k of 20 Newsgroups for discovery, 3x faster to fit."""
GEOMETRY_DIMENSIONS = 256
"""Dimensions of the LSA projection that stands in for embeddings when features are TF-IDF only."""
IdArray = NDArray[np.int64]
Progress = Callable[[int], None]
"""Called with the number of labels just answered."""


# -- features -------------------------------------------------------------------------------------


@dataclass
class FeatureSet:
    """Per dataset row: what the head reads, the unit vectors selection measures distance with,
    and the TF-IDF index the seed query searches."""

    kind: str
    head_matrix: Any
    """Dense float32 array or scipy CSR matrix, one row per dataset row."""
    geometry: NDArray[np.float32]
    keyword_matrix: Any
    vectorizer: Any
    model: str | None = None
    embed: Embedder | None = None
    """The encoder behind the embeddings (None for `tfidf`): texts outside the dataset, such as
    the seed query, are embedded with it."""
    word_idf: NDArray[np.float32] | None = None
    """`words`: the IDF of the hashed words, from the dataset's document counts."""
    word_weight: float = WORD_WEIGHT
    _query_rows: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def word_columns(self) -> int | None:
        """`words`: the hashed-word columns `head_matrix` starts with, as the scorer's pool's."""
        if self.kind != "words":
            return None
        from hnbooks.scoring.terms import HASHED_COLUMNS

        return HASHED_COLUMNS

    def query_features(self, query: str) -> Any:
        """The query as one row of `head_matrix`'s features, built as the dataset's rows are (what
        `hnbooks.scoring.pool.text_features` gives the scorer for the `words` kind)."""
        if query not in self._query_rows:
            self._query_rows[query] = self._query_row(query)
        return self._query_rows[query]

    def _query_row(self, query: str) -> Any:
        from scipy import sparse

        if self.kind == "tfidf":
            return self.vectorizer.transform([query]).tocsr()
        assert self.embed is not None, "embedding features keep their encoder"
        embedding = unit_rows(np.asarray(self.embed([query]), dtype=np.float32))
        if self.kind == "onnx":
            return embedding
        if self.kind == "words":
            from hnbooks.scoring.terms import hashed_counts, tfidf_matrix

            assert self.word_idf is not None
            words = self.word_weight * tfidf_matrix(hashed_counts([query]), self.word_idf)
        else:
            words = self.vectorizer.transform([query])
        return sparse.hstack([words, sparse.csr_matrix(embedding)], format="csr", dtype=np.float32)

    def keyword_scores(self, query: str) -> NDArray[np.float64]:
        """TF-IDF cosine between the query and every row (rows are L2-normalised)."""
        query_vector = self.vectorizer.transform([query])
        return np.asarray(
            (self.keyword_matrix @ query_vector.T).toarray(), dtype=np.float64
        ).ravel()


Embedder = Callable[[Sequence[str]], NDArray[np.float32]]


@dataclass(frozen=True)
class EncoderSource:
    """Where embeddings come from: a name for the cache key and a function that embeds texts."""

    key: str
    embed: Embedder


def hashed_tfidf(texts: Sequence[str]) -> tuple[Any, NDArray[np.float32]]:
    """What `hnbooks-score` reads of each text's words (`hnbooks.scoring.terms`): sublinear TF-IDF
    over words hashed into `HASHED_COLUMNS` columns, IDF from these texts' document counts, rows
    L2-normalised; and that IDF."""
    from hnbooks.scoring.terms import hashed_counts, inverse_document_frequency, tfidf_matrix

    counts = hashed_counts(texts)
    document_counts = np.bincount(counts.indices, minlength=counts.shape[1])
    idf = inverse_document_frequency(document_counts, counts.shape[0])
    return tfidf_matrix(counts, idf), idf


def tfidf_features(texts: Sequence[str]) -> tuple[Any, Any]:
    """Sublinear TF-IDF over the `TFIDF_VOCABULARY` most frequent words seen in at least two texts
    (and in at most half); rows L2-normalised."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(
        sublinear_tf=True,
        min_df=2,
        max_df=0.5,
        stop_words="english",
        max_features=TFIDF_VOCABULARY,
        dtype=np.float32,
    )
    matrix = vectorizer.fit_transform(texts)
    return vectorizer, matrix.tocsr()


def unit_rows(matrix: NDArray[np.floating]) -> NDArray[np.float32]:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.asarray(matrix / np.maximum(norms, 1e-12), dtype=np.float32)


def lsa_geometry(dataset: Dataset, tfidf: Any, cache_dir: Path | None) -> NDArray[np.float32]:
    """Unit vectors from a truncated SVD of the TF-IDF matrix, cached beside the dataset."""
    from sklearn.decomposition import TruncatedSVD

    dimensions = min(GEOMETRY_DIMENSIONS, tfidf.shape[1] - 1, tfidf.shape[0] - 1)
    path = None
    if cache_dir is not None:
        name = f"lsa-{dataset.name}-{dataset.content_key()}-{tfidf.shape[1]}-{dimensions}.npy"
        path = cache_dir / "features" / name
        if path.exists():
            cached = np.load(path)
            if cached.shape[0] == len(dataset):
                return cached
    if dimensions < 2:
        return unit_rows(np.asarray(tfidf.toarray(), dtype=np.float32))
    vectors = TruncatedSVD(n_components=dimensions, random_state=0).fit_transform(tfidf)
    vectors = unit_rows(vectors)
    if path is not None:
        save_array(path, vectors)
    return vectors


def save_array(path: Path, array: NDArray[Any]) -> None:
    """Write atomically, so an interrupted run never leaves a truncated cache file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npy")
    np.save(partial, array)
    partial.replace(path)


def cached_embeddings(
    dataset: Dataset,
    encoder: EncoderSource,
    cache_dir: Path | None,
    progress: Progress | None = None,
) -> NDArray[np.float32]:
    """The dataset's embeddings, computed once per dataset and model and kept as .npy."""
    path = None
    if cache_dir is not None:
        path = (
            cache_dir / "embeddings" / f"{dataset.name}-{dataset.content_key()}-{encoder.key}.npy"
        )
        if path.exists():
            cached = np.load(path)
            if cached.shape[0] == len(dataset):
                return cached
    blocks = []
    for start in range(0, len(dataset), EMBED_CHUNK):
        texts = list(dataset.texts[start : start + EMBED_CHUNK])
        blocks.append(np.asarray(encoder.embed(texts), dtype=np.float32))
        if progress is not None:
            progress(len(texts))
    vectors = unit_rows(np.concatenate(blocks) if blocks else np.zeros((0, 1), np.float32))
    if path is not None:
        save_array(path, vectors)
    return vectors


def onnx_encoder_source(
    model: str | None = None, models_dir: Path | None = None, device: Device = "auto"
) -> EncoderSource:
    """The exported encoder (exported first when missing and possible); keyed by its model hash."""
    from hnbooks.models.export import ensure_model
    from hnbooks.scoring.encoder import Encoder

    folder = ensure_model(model, models_dir) if model else ensure_model(models_dir=models_dir)
    encoder = Encoder(folder, device=device)
    return EncoderSource(
        key=str(encoder.model_hash)[:16], embed=lambda texts: encoder.encode(list(texts))
    )


def build_features(
    dataset: Dataset,
    kind: str,
    *,
    cache_dir: Path | None = None,
    encoder: EncoderSource | None = None,
    progress: Progress | None = None,
    word_weight: float = WORD_WEIGHT,
) -> FeatureSet:
    """`words` (what hnbooks-score ships): the head reads hashed-word TF-IDF and embeddings side by
    side, distances use the embeddings. `onnx` (`hnbooks-score --no-words`): embeddings for both.
    `tfidf`: TF-IDF for the head, its LSA for distances. `both`: TF-IDF over a vocabulary and
    embeddings. The seed query always searches TF-IDF, as a keyword search would."""
    if kind not in FEATURE_KINDS:
        raise ValueError(f"features must be one of {', '.join(FEATURE_KINDS)}, not {kind!r}")
    vectorizer, tfidf = tfidf_features(dataset.texts)
    if kind == "tfidf":
        return FeatureSet(kind, tfidf, lsa_geometry(dataset, tfidf, cache_dir), tfidf, vectorizer)
    if encoder is None:
        encoder = onnx_encoder_source()
    embeddings = cached_embeddings(dataset, encoder, cache_dir, progress)
    if kind == "onnx":
        return FeatureSet(
            kind, embeddings, embeddings, tfidf, vectorizer, encoder.key, embed=encoder.embed
        )
    from scipy import sparse

    if kind == "words":
        # What hnbooks-score ships: words hashed into columns (no vocabulary to hold at any pool
        # size), IDF from document counts, of norm WORD_WEIGHT before the embeddings (another
        # `word_weight` only to measure the choice).
        lexical, word_idf = hashed_tfidf(dataset.texts)
        combined = sparse.hstack(
            [lexical * word_weight, sparse.csr_matrix(embeddings)], format="csr"
        )
        return FeatureSet(
            kind,
            combined.astype(np.float32),
            embeddings,
            tfidf,
            vectorizer,
            encoder.key,
            embed=encoder.embed,
            word_idf=word_idf,
            word_weight=word_weight,
        )

    combined = sparse.hstack([tfidf, sparse.csr_matrix(embeddings)], format="csr", dtype=np.float32)
    return FeatureSet(
        kind, combined, embeddings, tfidf, vectorizer, encoder.key, embed=encoder.embed
    )


class MatrixPool:
    """The pool rows of a feature matrix as `PoolVectors`; item ids are dataset row numbers."""

    def __init__(self, matrix: Any, pool_rows: IdArray, word_columns: int | None = None) -> None:
        self.matrix = matrix
        self._ids = np.sort(np.asarray(pool_rows, dtype=np.int64))
        self.dim = int(matrix.shape[1])
        self.word_columns = word_columns
        """As `WordPool.word_columns`: the hashed-word columns the rows start with (`words`)."""

    def item_ids(self) -> IdArray:
        return self._ids

    def rows(self, item_ids: NDArray[np.integer]) -> Any:
        return self.matrix[np.asarray(item_ids, dtype=np.int64)]

    def chunks(self, rows: int = 65_536) -> Iterator[tuple[IdArray, Any]]:
        for start in range(0, len(self._ids), rows):
            ids = self._ids[start : start + rows]
            yield ids, self.matrix[ids]


# -- the task -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskSpec:
    """Which texts are positive and how the pool is cut from the dataset."""

    positive_classes: tuple[str, ...]
    keep_positives: int | None = None
    """Positives kept in the pool per positive class (the rest leave it); None keeps all."""
    seeds: int = 0
    """Positives given as answered before the first batch."""
    seed_query: str | None = None
    heldout_share: float = 0.2

    def cold_start_query(self) -> str:
        """The seed query, else the positive class names (as the scorer falls back to the label)."""
        return self.seed_query or " ".join(self.positive_classes)


@dataclass(frozen=True)
class TaskDraw:
    """One repeat's pool: which rows are in it, held out, positive, and given as seeds."""

    pool_rows: IdArray
    heldout_rows: IdArray
    positive: NDArray[np.bool_]
    """Gold label per dataset row."""
    seed_rows: IdArray

    @property
    def pool_positives(self) -> int:
        return int(self.positive[self.pool_rows].sum())

    @property
    def findable(self) -> int:
        """Positives in the pool that were not given as seeds."""
        return self.pool_positives - len(self.seed_rows)

    @property
    def prevalence(self) -> float:
        return self.pool_positives / len(self.pool_rows)

    @property
    def random_per_100(self) -> float:
        """Expected new positives per 100 labels drawn uniformly from the pool after the seeds."""
        return 100.0 * self.findable / max(1, len(self.pool_rows) - len(self.seed_rows))


def draw_task(dataset: Dataset, spec: TaskSpec, rng: np.random.Generator) -> TaskDraw:
    """Held-out split stratified by class, then `keep_positives` per positive class, then seeds."""
    positive = np.zeros(len(dataset), dtype=bool)
    for name in spec.positive_classes:
        positive |= dataset.is_class(name)
    in_pool = np.ones(len(dataset), dtype=bool)
    heldout: list[NDArray[np.int64]] = []
    if spec.heldout_share > 0:
        for name in np.unique(dataset.classes):
            rows = np.flatnonzero(dataset.classes == name)
            count = int(round(spec.heldout_share * rows.size))
            if count and count < rows.size:
                chosen = rng.choice(rows, count, replace=False)
                heldout.append(chosen)
                in_pool[chosen] = False
    if spec.keep_positives is not None:
        for name in spec.positive_classes:
            rows = np.flatnonzero((dataset.classes == name) & in_pool)
            if rows.size > spec.keep_positives:
                dropped = rng.choice(rows, rows.size - spec.keep_positives, replace=False)
                in_pool[dropped] = False
    pool_rows = np.flatnonzero(in_pool).astype(np.int64)
    pool_positive_rows = pool_rows[positive[pool_rows]]
    if spec.seeds > pool_positive_rows.size:
        raise ValueError(
            f"{spec.seeds} seeds asked for but the pool holds only {pool_positive_rows.size} positives"
        )
    if spec.seeds == pool_positive_rows.size and spec.seeds:
        raise ValueError("every positive would be a seed: nothing left to find")
    seed_rows = np.sort(rng.choice(pool_positive_rows, spec.seeds, replace=False)).astype(np.int64)
    heldout_rows = (
        np.sort(np.concatenate(heldout)).astype(np.int64) if heldout else np.zeros(0, np.int64)
    )
    return TaskDraw(pool_rows, heldout_rows, positive, seed_rows)


# -- the loop -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoopConfig:
    strategy: str = "default"
    mix: Mix | None = None
    """For `strategy="mix"`: the shares to use."""
    batch_size: int = 20
    budget: int = 300
    head: HeadConfig = field(default_factory=HeadConfig)
    ema_alpha: float = DEFAULT_ALPHA
    near_duplicates_of_positives: bool = True
    """As `RoundConfig.near_duplicates_of_positives` (on, as in `hnbooks-score`)."""
    keyword_feedback: int = 0
    """Picks a batch from a keyword search for the terms most typical of the accepted texts
    (pseudo-relevance feedback), in place of the lowest-ranked top picks."""
    adaptive_mix: bool = False
    """Move the shares toward the channels finding positives (`scoring.select.adaptive_mix`)."""
    novelty_among_best: float = NOVELTY_AMONG_BEST
    """As `RoundConfig.novelty_among_best`: novel picks come from this best-scored share."""
    query_as_positive: bool = True
    """As `RoundConfig.query_as_positive`: the head trains on the cold-start query (the task's
    seed query, else its class names) as one more positive."""

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}"
            )
        if self.strategy == "mix" and self.mix is None:
            raise ValueError('strategy "mix" needs the shares (a Mix)')
        if self.batch_size < 1 or self.budget < 1:
            raise ValueError("batch size and budget must be at least 1")

    def selection_mix(self) -> Mix:
        """The shares pool selection uses; the baselines, which select nothing, get the default."""
        if self.strategy == "mix":
            assert self.mix is not None
            return self.mix
        return STRATEGY_MIXES.get(self.strategy, STRATEGY_MIXES["default"])


@dataclass
class RunResult:
    """One run: what each label found, in order, and the final head's held-out quality."""

    repeat: int
    found: NDArray[np.bool_]
    """Per label spent (seeds excluded), in answer order: was it a positive."""
    channels: list[str]
    """Per label spent: which channel chose it (seed, top, uncertain, novel, random, stream)."""
    answered_rows: list[int]
    """Per label spent: the dataset row answered."""
    findable: int
    pool_size: int
    pool_positives: int
    seeds: int
    random_per_100: float
    heldout_ap: float | None
    budget: int
    stream_scored: int | None = None
    """stream-ema only: items the stream scored (shown or dropped)."""
    interval_checks: list[bool] = field(default_factory=list)
    """After each mix round: did the 90% found-so-far interval hold the true share found."""

    def metrics(self) -> dict[str, Any]:
        return {
            "positives_per_100": positives_per_100(self.found),
            "recall_at_budget": recall_at_budget(self.found, self.findable),
            "labels_to_first": labels_to_first(self.found),
            "audc": audc(self.found, self.findable, self.budget),
            "found": int(self.found.sum()),
            # 1 for a run that found none: its mean over runs is the share of such runs.
            "share_found_none": float(self.found.sum() == 0),
            "heldout_ap": self.heldout_ap,
        }

    def as_dict(self) -> dict[str, Any]:
        record = {
            "repeat": self.repeat,
            **self.metrics(),
            "labels": int(self.found.size),
            "findable": self.findable,
            "pool": self.pool_size,
            "prevalence": self.pool_positives / self.pool_size,
            "found_at": [int(i) + 1 for i in np.flatnonzero(self.found)],
            "positives_by_channel": positives_by_channel([self]),
        }
        if self.stream_scored is not None:
            record["stream_scored"] = self.stream_scored
        return record


class LoopState:
    """What has been labelled so far, in row space, plus the random answers the IPW prior needs."""

    def __init__(self, draw: TaskDraw, size: int) -> None:
        self.draw = draw
        self.labelled = np.zeros(size, dtype=bool)
        self.in_pool = np.zeros(size, dtype=bool)
        self.in_pool[draw.pool_rows] = True
        self.labelled_rows: list[int] = []
        self.labels: list[bool] = []
        self.random_rows: list[int] = []
        self.random_probability: list[float] = []
        self.random_draw: list[int] = []
        """Per random answer, the draw it came from (an index into `draws`)."""
        self.draws: list[tuple[int, int]] = []
        """Per draw: the unlabelled items it chose from (M_t) and the positives known outside
        them (F_t), as `scoring.estimate.RandomAnswers` needs."""
        self.interval_checks: list[bool] = []
        """After each round with random answers: did the found-so-far interval hold the truth."""
        self.found: list[bool] = []
        self.channels: list[str] = []
        self.answered_rows: list[int] = []
        for row in draw.seed_rows:
            self.record(int(row))

    def record(self, row: int) -> bool:
        if self.labelled[row] or not self.in_pool[row]:
            raise AssertionError(f"row {row} labelled twice or outside the pool")
        self.labelled[row] = True
        verdict = bool(self.draw.positive[row])
        self.labelled_rows.append(row)
        self.labels.append(verdict)
        return verdict

    def channel_yields(self) -> dict[str, ChannelYield]:
        """Per channel, its answers and positives so far (seeds given are no channel's)."""
        answered: Counter[str] = Counter(self.channels)
        positives: Counter[str] = Counter(
            c for c, found in zip(self.channels, self.found, strict=True) if found
        )
        return {name: ChannelYield(answered[name], positives[name]) for name in answered}

    def begin_draw(self) -> int:
        """A new draw from today's unlabelled pool; its random answers name it."""
        self.draws.append((int(self.eligible_rows().size), int(sum(self.labels))))
        return len(self.draws) - 1

    def answer(
        self,
        row: int,
        channel: str,
        inclusion_probability: float | None = None,
        draw: int | None = None,
    ) -> None:
        """The oracle answers one item chosen by `channel` (a random pick: with its inclusion
        probability and the `begin_draw` it came from)."""
        self.found.append(self.record(row))
        self.channels.append(channel)
        self.answered_rows.append(row)
        if inclusion_probability is not None:
            if draw is None:
                raise ValueError("a random pick needs the draw it came from (begin_draw)")
            self.random_rows.append(row)
            self.random_probability.append(inclusion_probability)
            self.random_draw.append(draw)

    def check_found_so_far(self) -> None:
        """Record whether the scorer's found-so-far interval (`pool_estimates`, as `hnbooks stats`
        shows it) holds the true share of the pool's positives found."""
        if not self.random_rows:
            return
        positive, probability = self.random_answers()
        draws = np.array(self.random_draw, dtype=np.int64)
        sizes = np.array([self.draws[d][0] for d in draws], dtype=np.float64)
        outside = np.array([self.draws[d][1] for d in draws], dtype=np.float64)
        known = int(sum(self.labels))
        estimate = pool_estimates(
            RandomAnswers(positive, probability, draws, sizes, outside),
            known_positives=known,
            pool_count=int(self.draw.pool_rows.size),
            unlabelled_count=int(self.eligible_rows().size),
            known_negatives=len(self.labels) - known,
        ).found_so_far
        if estimate.low is None or estimate.high is None or not self.draw.pool_positives:
            return
        truth = known / self.draw.pool_positives
        self.interval_checks.append(estimate.low - 1e-9 <= truth <= estimate.high + 1e-9)

    @property
    def spent(self) -> int:
        return len(self.found)

    @property
    def has_positive(self) -> bool:
        return any(self.labels)

    def eligible_rows(self) -> IdArray:
        return self.draw.pool_rows[~self.labelled[self.draw.pool_rows]]

    def arrays(self) -> tuple[IdArray, NDArray[np.bool_]]:
        return np.array(self.labelled_rows, dtype=np.int64), np.array(self.labels, dtype=bool)

    def random_answers(self) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
        rows = np.array(self.random_rows, dtype=np.int64)
        return self.draw.positive[rows], np.array(self.random_probability, dtype=np.float64)


FEEDBACK_TERMS = 8


def feedback_query(features: FeatureSet, state: LoopState) -> str:
    """The terms whose TF-IDF weight is highest in the accepted texts over the rejected ones."""
    rows, labels = state.arrays()
    positives = features.keyword_matrix[rows[labels]]
    weight = np.asarray(positives.mean(axis=0)).ravel()
    if (~labels).any():
        weight = weight - np.asarray(features.keyword_matrix[rows[~labels]].mean(axis=0)).ravel()
    vocabulary = features.vectorizer.get_feature_names_out()
    best = np.argsort(-weight)[:FEEDBACK_TERMS]
    return " ".join(str(vocabulary[i]) for i in best if weight[i] > 0)


def with_keyword_feedback(
    picks: list[Pick], features: FeatureSet, state: LoopState, count: int
) -> list[Pick]:
    """`picks` with up to `count` of the lowest-ranked top picks replaced by the best keyword
    matches of `feedback_query` not labelled or picked yet."""
    query = feedback_query(features, state)
    if not query:
        return picks
    scores = features.keyword_scores(query)
    taken = {p.row for p in picks}
    eligible = state.eligible_rows()
    ranked = eligible[np.argsort(-scores[eligible], kind="stable")]
    extra = [int(r) for r in ranked if scores[r] > 0 and int(r) not in taken][:count]
    tops = [i for i, p in enumerate(picks) if p.strategy == "top"]
    replaced = set(sorted(tops, key=lambda i: picks[i].rank, reverse=True)[: len(extra)])
    kept = [p for i, p in enumerate(picks) if i not in replaced]
    return kept + [Pick(row, "keyword", float(scores[row]), -1) for row in extra[: len(replaced)]]


def draw_random(
    state: LoopState, count: int, rng: np.random.Generator, channel: str = "random"
) -> None:
    """`count` uniform draws from the unlabelled pool, each with its inclusion probability."""
    eligible = state.eligible_rows()
    count = min(count, eligible.size)
    if count == 0:
        return
    probability = count / eligible.size
    draw = state.begin_draw()
    for row in rng.choice(eligible, count, replace=False):
        state.answer(int(row), channel, probability, draw)


def seed_batch(
    state: LoopState, features: FeatureSet, query: str, count: int, rng: np.random.Generator
) -> None:
    """The seed channel: best keyword matches not yet labelled, the rest of the batch at random."""
    scores = features.keyword_scores(query)
    eligible = state.eligible_rows()
    matching = eligible[scores[eligible] > 0]
    best = matching[np.argsort(-scores[matching], kind="stable")[:count]]
    for row in best:
        state.answer(int(row), "seed")
    if best.size < count:
        draw_random(state, count - best.size, rng)


def round_config(config: LoopConfig, batch_size: int, seed: int) -> RoundConfig:
    return RoundConfig(
        # The cold-start query is the task's (`TaskSpec.cold_start_query`): run_once serves its
        # matches and builds its features itself.
        label="positive",
        batch_size=batch_size,
        mix=config.selection_mix(),
        random_seed=seed,
        head=config.head,
        near_duplicates_of_positives=config.near_duplicates_of_positives,
        query_as_positive=config.query_as_positive,
        novelty_among_best=config.novelty_among_best,
    )


def run_once(
    features: FeatureSet,
    draw: TaskDraw,
    spec: TaskSpec,
    config: LoopConfig,
    *,
    repeat: int,
    rng: np.random.Generator,
    progress: Progress | None = None,
) -> RunResult:
    """Label `config.budget` items with `config.strategy`, the oracle answering each batch."""
    state = LoopState(draw, features.head_matrix.shape[0])
    pool = MatrixPool(features.head_matrix, draw.pool_rows, features.word_columns)
    query = spec.cold_start_query()
    query_pending = spec.seed_query is not None
    # The query's row is built whatever `query_as_positive` says: the mix's query strategy
    # reads it too (train_and_select trains on it only when asked).
    query_features = features.query_features(query)
    trained_query = query_features if config.query_as_positive else None
    head_seed = int(rng.integers(2**31))
    stream: ScoredStream[int] | None = None
    emitted: Iterator[int] | None = None
    current_head: list[Head] = []

    while state.spent < config.budget and state.eligible_rows().size:
        size = min(config.batch_size, config.budget - state.spent)
        before = state.spent
        if config.strategy == "random":
            draw_random(state, size, rng)
        elif query_pending or not state.has_positive:
            seed_batch(state, features, query, size, rng)
            query_pending = False
        elif config.strategy == "stream-ema":
            labelled_rows, labels = state.arrays()
            head, _ = train_round_head(
                pool,
                labelled_rows,
                labels,
                state.eligible_rows(),
                random_positive=np.zeros(0, dtype=bool),
                random_probability=np.zeros(0),
                config=round_config(config, size, head_seed),
                rng=rng,
                query_features=trained_query,
            )
            current_head[:] = [head]
            if stream is None:
                order = [int(row) for row in rng.permutation(state.eligible_rows())]
                stream = ScoredStream(
                    order,
                    lambda rows: current_head[0].probability(features.head_matrix[np.array(rows)]),
                    chunk_size=config.batch_size,
                    available=lambda row: not state.labelled[row],
                )
                emitted = EmaUncertaintySorter(alpha=config.ema_alpha)(iter(stream))
            assert emitted is not None
            batch = [row for _, row in zip(range(size), emitted)]
            if not batch:
                break
            for row in batch:
                state.answer(row, "stream")
        else:
            labelled_rows, labels = state.arrays()
            random_positive, random_probability = state.random_answers()
            selection = round_config(config, size, head_seed)
            if config.adaptive_mix:
                adapted = adaptive_mix(selection.mix, state.channel_yields(), rng)
                selection = replace(selection, mix=adapted.mix)
            trained = train_and_select(
                pool,
                labelled_rows,
                labels,
                state.eligible_rows(),
                np.sort(labelled_rows),
                random_positive=random_positive,
                random_probability=random_probability,
                config=selection,
                rng=rng,
                vectors=lambda rows: features.geometry[np.asarray(rows, dtype=np.int64)],
                query_features=query_features,
            )
            picks = list(trained.picks)
            if config.keyword_feedback:
                picks = with_keyword_feedback(picks, features, state, config.keyword_feedback)
            round_draw = state.begin_draw()
            # Shuffled as run_round shuffles a published batch: the order answered is not the rank.
            for index in rng.permutation(len(picks)):
                pick = picks[index]
                state.answer(
                    pick.row,
                    pick.strategy,
                    pick.inclusion_probability if pick.strategy == "random" else None,
                    round_draw,
                )
            state.check_found_so_far()
        if progress is not None:
            progress(state.spent - before)
        if state.spent == before:
            break

    return RunResult(
        repeat=repeat,
        found=np.array(state.found, dtype=bool),
        channels=state.channels,
        answered_rows=state.answered_rows,
        findable=draw.findable,
        pool_size=len(draw.pool_rows),
        pool_positives=draw.pool_positives,
        seeds=len(draw.seed_rows),
        random_per_100=draw.random_per_100,
        heldout_ap=heldout_average_precision(
            features, draw, state, config, head_seed, rng, trained_query
        ),
        budget=config.budget,
        stream_scored=len(stream.scored)
        if stream is not None
        else (0 if config.strategy == "stream-ema" else None),
        interval_checks=state.interval_checks,
    )


def heldout_average_precision(
    features: FeatureSet,
    draw: TaskDraw,
    state: LoopState,
    config: LoopConfig,
    head_seed: int,
    rng: np.random.Generator,
    query_features: Any | None = None,
) -> float | None:
    """Average precision on the held-out rows of a head trained on every answer of the run."""
    from sklearn.metrics import average_precision_score

    heldout_labels = draw.positive[draw.heldout_rows]
    if not state.has_positive or not heldout_labels.any() or heldout_labels.all():
        return None
    labelled_rows, labels = state.arrays()
    random_positive, random_probability = state.random_answers()
    head, _ = train_round_head(
        MatrixPool(features.head_matrix, draw.pool_rows),
        labelled_rows,
        labels,
        state.eligible_rows(),
        random_positive=random_positive,
        random_probability=random_probability,
        config=round_config(config, config.batch_size, head_seed),
        rng=rng,
        query_features=query_features,
    )
    decision = head.decision(features.head_matrix[draw.heldout_rows])
    return float(average_precision_score(heldout_labels, decision))


# -- metrics --------------------------------------------------------------------------------------


def positives_per_100(found: NDArray[np.bool_]) -> float:
    """New positives per 100 labels spent."""
    return 100.0 * float(found.sum()) / found.size if found.size else 0.0


def recall_at_budget(found: NDArray[np.bool_], findable: int) -> float | None:
    """Share of the positives not given as seeds that the run found."""
    return float(found.sum()) / findable if findable else None


def labels_to_first(found: NDArray[np.bool_]) -> int | None:
    """Labels spent up to and including the first new positive; None if none was found."""
    hits = np.flatnonzero(found)
    return int(hits[0]) + 1 if hits.size else None


def discovery_curve(found: NDArray[np.bool_], budget: int) -> NDArray[np.float64]:
    """Positives found after each of `budget` labels (flat after the last label spent)."""
    curve = np.zeros(budget)
    counts = np.cumsum(found[:budget])
    curve[: counts.size] = counts
    if counts.size < budget:
        curve[counts.size :] = counts[-1] if counts.size else 0
    return curve


def audc(found: NDArray[np.bool_], findable: int, budget: int) -> float | None:
    """Area under the discovery curve over the budget, divided by the oracle's (every positive
    first): 1 means no labelling order could have found positives sooner."""
    if not findable:
        return None
    oracle = np.minimum(np.arange(1, budget + 1), findable).sum()
    return float(discovery_curve(found, budget).sum() / oracle)


def present_values(values: Sequence[float | int | None]) -> list[float]:
    """The values that exist: neither None nor NaN."""
    return [float(v) for v in values if v is not None and not math.isnan(float(v))]


def mean_of(values: Sequence[float | int | None]) -> float | None:
    """Mean of the values that exist; None if none does."""
    present = present_values(values)
    return sum(present) / len(present) if present else None


def mean_interval(
    values: Sequence[float | int | None], level: float = 0.9
) -> tuple[float, float] | None:
    """The `level` confidence interval of the mean of the values that exist, by the normal
    approximation (mean ± z·s/√n, s the sample deviation); None for fewer than two values.

    One run finds 0 to 16 positives, so a mean over a few dozen runs is uncertain by as much as
    one setting differs from another: a goal is met or missed only as far as this says."""
    present = np.array(present_values(values), dtype=np.float64)
    if present.size < 2:
        return None
    z = NormalDist().inv_cdf(0.5 + level / 2)
    half = z * float(present.std(ddof=1)) / math.sqrt(present.size)
    mean = float(present.mean())
    return mean - half, mean + half


def positives_by_channel(runs: Sequence[RunResult]) -> dict[str, float]:
    """Mean positives found per run by each channel."""
    totals: Counter[str] = Counter()
    for run in runs:
        for channel, hit in zip(run.channels, run.found):
            if hit:
                totals[channel] += 1
    return {channel: count / len(runs) for channel, count in sorted(totals.items())}


def labels_by_channel(runs: Sequence[RunResult]) -> dict[str, float]:
    """Mean labels spent per run on each channel's picks."""
    totals: Counter[str] = Counter(channel for run in runs for channel in run.channels)
    return {channel: count / len(runs) for channel, count in sorted(totals.items())}


@dataclass
class SimulationSummary:
    """Means over repeats of one strategy on one task, and every run."""

    dataset: str
    spec: TaskSpec
    config: LoopConfig
    features: str
    random_seed: int
    runs: list[RunResult]

    def mean_curve(self) -> NDArray[np.float64]:
        return np.mean([discovery_curve(r.found, self.config.budget) for r in self.runs], axis=0)

    def as_dict(self) -> dict[str, Any]:
        metrics = [run.metrics() for run in self.runs]

        def mean(key: str) -> float | None:
            return mean_of([m[key] for m in metrics])

        return {
            "dataset": self.dataset,
            "positive": list(self.spec.positive_classes),
            "strategy": self.config.strategy,
            "mix": self.config.selection_mix().describe()
            if self.config.strategy not in BASELINES
            else None,
            "features": self.features,
            "batch_size": self.config.batch_size,
            "budget": self.config.budget,
            "seeds": self.spec.seeds,
            "seed_query": self.spec.seed_query,
            "keep_positives": self.spec.keep_positives,
            "heldout_share": self.spec.heldout_share,
            "near_duplicates_of_positives": self.config.near_duplicates_of_positives,
            "adaptive_mix": self.config.adaptive_mix,
            "query_as_positive": self.config.query_as_positive,
            "repeats": len(self.runs),
            "random_seed": self.random_seed,
            "positives_per_100": mean("positives_per_100"),
            "recall_at_budget": mean("recall_at_budget"),
            "labels_to_first": mean("labels_to_first"),
            "audc": mean("audc"),
            "share_found_none": mean("share_found_none"),
            "heldout_ap": mean("heldout_ap"),
            "prevalence": mean_of([r.pool_positives / r.pool_size for r in self.runs]),
            "random_per_100": mean_of([r.random_per_100 for r in self.runs]),
            "found": mean("found"),
            "findable": mean_of([r.findable for r in self.runs]),
            "pool": mean_of([r.pool_size for r in self.runs]),
            "positives_by_channel": positives_by_channel(self.runs),
            "found_so_far_coverage": interval_coverage(self.runs),
            "found_so_far_checks": sum(len(r.interval_checks) for r in self.runs),
            "runs": [run.as_dict() for run in self.runs],
        }


def interval_coverage(runs: Sequence[RunResult]) -> float | None:
    """Share of the rounds (of every run) whose found-so-far interval held the truth."""
    checks = [held for run in runs for held in run.interval_checks]
    return float(np.mean(checks)) if checks else None


def task_rng(random_seed: int, repeat: int) -> np.random.Generator:
    """The same draw for every strategy of a repeat, so strategies meet identical pools."""
    return np.random.default_rng([random_seed, repeat, 0])


def simulate(
    dataset: Dataset,
    features: FeatureSet,
    spec: TaskSpec,
    config: LoopConfig,
    *,
    repeats: int = 1,
    random_seed: int = 0,
    progress: Progress | None = None,
) -> SimulationSummary:
    """Run `repeats` independent runs; a fixed `random_seed` gives identical numbers."""
    from threadpoolctl import threadpool_limits

    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    runs = []
    # The matrices here are a few hundred rows: BLAS threads only contend (measured 4x slower on
    # 2 busy cores with the default thread pool).
    with threadpool_limits(limits=1, user_api="blas"):
        for repeat in range(repeats):
            draw = draw_task(dataset, spec, task_rng(random_seed, repeat))
            rng = np.random.default_rng([random_seed, repeat, 1])
            runs.append(
                run_once(features, draw, spec, config, repeat=repeat, rng=rng, progress=progress)
            )
    return SimulationSummary(dataset.name, spec, config, features.kind, random_seed, runs)


# The forked workers of `simulate_all` read the dataset and features from here rather than
# receiving them: pickling 20NG's features for every job would cost more than the job.
_SHARED_INPUTS: dict[str, Any] = {}


def _simulate_shared(job: tuple[TaskSpec, LoopConfig, int, int]) -> SimulationSummary:
    spec, config, repeats, random_seed = job
    return simulate(
        _SHARED_INPUTS["dataset"],
        _SHARED_INPUTS["features"],
        spec,
        config,
        repeats=repeats,
        random_seed=random_seed,
    )


def simulate_all(
    dataset: Dataset,
    features: FeatureSet,
    jobs: Sequence[tuple[TaskSpec, LoopConfig, int]],
    *,
    random_seed: int = 0,
    processes: int = 1,
) -> list[SimulationSummary]:
    """`simulate` for each (spec, config, repeats), in order, on up to `processes` forked workers.
    Every run is seeded by its repeat number alone, so the figures do not depend on `processes`."""
    if processes <= 1 or len(jobs) <= 1:
        return [
            simulate(dataset, features, spec, config, repeats=repeats, random_seed=random_seed)
            for spec, config, repeats in jobs
        ]
    payload = [(spec, config, repeats, random_seed) for spec, config, repeats in jobs]
    import multiprocessing

    _SHARED_INPUTS.update(dataset=dataset, features=features)
    try:
        with multiprocessing.get_context("fork").Pool(min(processes, len(payload))) as pool:
            return pool.map(_simulate_shared, payload, chunksize=1)
    finally:
        _SHARED_INPUTS.clear()
