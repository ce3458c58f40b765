"""The span model: BOOK (or any label's) spans learned from the user's marks, with the rules as prior.

Per label, a word tagger (logistic regression, tags outside / begins / inside) reads each word's
encoder state (the mean of its sub-word token states, `Encoder.token_states`) and a few cheap
features: capitalisation, quotes around it, "by" next to it, and whether a rule candidate of
`hnbooks.suggest` starts, covers or ends at it. A span of words i..j scores
P(begins at i) x P(inside at i+1..j) x P(not inside at j+1); that score, and whether the rules
proposed the span too, are mapped to a calibrated probability (Platt, fitted on cross-validated
tag probabilities) that the annotator marks exactly this span. Rule candidates and the model's own
spans are scored alike, overlaps resolved best first, and those above `SpanConfig.show_threshold`
are suggested, best first.

With no marks for a label yet (cold start) the suggestions are the rule candidates alone, each at
`RULE_PRIOR`, in text order. Training reads every current span answer: spans marked are positives,
a text accepted with no span of the label and a rejected text teach where no span is.
"""

from __future__ import annotations

import math
import pickle
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hnbooks.scoring.encoder import TokenStates
from hnbooks.store import Store
from hnbooks.store.records import SPAN_TASK_KEY, AnswerWithItem, SpanSuggestion
from hnbooks.store.suggestions import StoredSpanModel
from hnbooks.suggest import (
    SMALL_WORDS,
    Candidate,
    at_sentence_start,
    suggest_candidates,
    word_spans,
)

__all__ = [
    "RULE_PRIOR",
    "LabelSpanModel",
    "SpanConfig",
    "SpanExample",
    "SpanModel",
    "SpanSuggester",
    "TextFeatures",
    "examples_from_answers",
    "rule_suggestions",
    "text_features",
    "train_span_model",
]

TokenStatesOf = Callable[[Sequence[str]], list[TokenStates]]
"""What the span model needs of the encoder: `Encoder.token_states`."""

RULE_PRIOR = 0.3
"""The score of a rule candidate before any mark: the rules' precision on the shared NER data."""
RULES = ("quoted", "italic", "title-case", "by-author", "link", "isbn")
OUTSIDE, BEGIN, INSIDE = 0, 1, 2
OPENING_QUOTES = frozenset("\"“«‘'*_")
CLOSING_QUOTES = frozenset("\"”»’'*_")
FORMAT_VERSION = 2
CHEAP_FEATURES = 12 + 3 * len(RULES) + 3
SIGNAL_COLUMNS = [0, 5, 6, *range(12, CHEAP_FEATURES)]
"""Cheap-feature columns that make a word worth keeping in training: capitalised, quotes, rules."""


@dataclass(frozen=True)
class SpanConfig:
    components: int = 32
    """Principal components of the word states the tagger reads."""
    projection_sample: int = 5000
    trees: int = 100
    bins: int = 63
    leaves: int = 15
    learning_rate: float = 0.1
    quiet_outside_share: float = 0.15
    """Share of the outside words with no cheap signal near them that training keeps."""
    max_outside_words: int = 7000
    """Outside words kept for training at most (every word of a span is kept): the trees' cost
    stays bounded however many texts are marked, and more of the same outside words add little."""
    max_span_words: int = 16
    min_begin_probability: float = 0.02
    """Words less likely than this to begin a span start no model span (rule spans always count)."""
    min_span_probability: float = 1e-3
    """Spans scored below this (before calibration) are not considered at all."""
    show_threshold: float = 0.2
    """Calibrated probability a span needs to be suggested."""
    max_calibration_texts: int = 400
    """Held-out texts per fold whose spans the calibration learns from, at most: a few thousand
    spans fit its ~20 weights, and scoring more texts only costs time."""
    calibration_folds: int = 2
    """Folds of texts the calibration's span scores come from (each scored by a tagger fitted on
    the other folds)."""


@dataclass(frozen=True)
class SpanExample:
    """A text and the spans of one label marked in it (none: the text has no such span)."""

    text: str
    spans: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class TextFeatures:
    """What the tagger reads of one text: its words, each word's feature row, the rules' candidates."""

    words: list[tuple[int, int]]
    features: NDArray[np.float32]
    candidates: list[Candidate]


def word_states(words: Sequence[tuple[int, int]], states: TokenStates) -> NDArray[np.float32]:
    """Each word's vector: the mean state of the tokens overlapping it (zeros if none does)."""
    dimension = states.states.shape[1]
    out = np.zeros((len(words), dimension), dtype=np.float32)
    if not len(words) or not len(states.offsets):
        return out
    token_starts = states.offsets[:, 0]
    token_ends = states.offsets[:, 1]
    for index, (start, end) in enumerate(words):
        # Tokens are in text order: the overlapping ones are a contiguous run.
        first = int(np.searchsorted(token_ends, start, side="right"))
        last = int(np.searchsorted(token_starts, end, side="left"))
        if last > first:
            out[index] = states.states[first:last].mean(axis=0)
    return out


def cheap_features(
    text: str, words: Sequence[tuple[int, int]], candidates: Sequence[Candidate]
) -> NDArray[np.float32]:
    """Per word: capitalisation, quotes, "by", sentence start and the rules' candidates."""
    count = len(words)
    rule_columns = 3 * len(RULES)
    out = np.zeros((count, CHEAP_FEATURES), dtype=np.float32)
    tokens = [text[s:e] for s, e in words]
    capitalised = np.array([bool(t) and t[0].isupper() for t in tokens], dtype=np.float32)
    for index, ((start, end), token) in enumerate(zip(words, tokens, strict=True)):
        before = text[start - 1] if start > 0 else " "
        after = text[end] if end < len(text) else " "
        previous = tokens[index - 1].lower() if index > 0 else ""
        following = tokens[index + 1].lower() if index + 1 < count else ""
        out[index, :12] = (
            capitalised[index],
            token.isupper() and len(token) > 1,
            any(c.isdigit() for c in token),
            token.lower() in SMALL_WORDS,
            at_sentence_start(text, start),
            before in OPENING_QUOTES,
            after in CLOSING_QUOTES,
            previous == "by",
            following == "by",
            capitalised[index - 1] if index > 0 else 0.0,
            capitalised[index + 1] if index + 1 < count else 0.0,
            math.log1p(len(token)),
        )
    starts = np.array([s for s, _ in words], dtype=np.int64)
    ends = np.array([e for _, e in words], dtype=np.int64)
    for candidate in candidates:
        rule = RULES.index(candidate.rule) if candidate.rule in RULES else None
        covered = np.flatnonzero((starts < candidate.end) & (ends > candidate.start))
        if rule is None or not covered.size:
            continue
        column = 12 + 3 * rule
        out[covered, column + 1] = 1.0
        out[covered[0], column] = 1.0
        out[covered[-1], column + 2] = 1.0
    any_rule = out[:, 12 : 12 + rule_columns].reshape(count, len(RULES), 3).max(axis=1)
    out[:, 12 + rule_columns :] = any_rule
    return out


def text_features(text: str, states: TokenStates) -> TextFeatures:
    words = word_spans(text)
    candidates = suggest_candidates(text)
    features = np.hstack(
        [word_states(words, states), cheap_features(text, words, candidates)]
    ).astype(np.float32)
    return TextFeatures(words, features, candidates)


def word_tags(
    words: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]
) -> NDArray[np.int64]:
    """Outside / begin / inside for each word, from spans given as character offsets."""
    tags = np.zeros(len(words), dtype=np.int64)
    for start, end in spans:
        covered = [i for i, (s, e) in enumerate(words) if s < end and start < e]
        if covered:
            tags[covered[0]] = BEGIN
            tags[covered[1:]] = INSIDE
    return tags


@dataclass(frozen=True)
class ScoredSpan:
    start: int
    end: int
    log_score: float
    from_rule: bool
    inputs: tuple[float, ...]
    """What the calibration reads of the span (see `span_inputs`)."""


def scored_spans(
    text_features_: TextFeatures, probabilities: NDArray[np.float64], config: SpanConfig
) -> list[ScoredSpan]:
    """Every span worth considering, with its tagger score: rule candidates and word runs."""
    words = text_features_.words
    if not words:
        return []
    floor = 1e-6
    log_begin = np.log(np.maximum(probabilities[:, BEGIN], floor))
    log_inside = np.log(np.maximum(probabilities[:, INSIDE], floor))
    log_not_inside = np.log(np.maximum(1.0 - probabilities[:, INSIDE], floor))
    cumulative_inside = np.concatenate([[0.0], np.cumsum(log_inside)])
    count = len(words)

    def log_score(first: int, last: int) -> float:
        value = log_begin[first] + cumulative_inside[last + 1] - cumulative_inside[first + 1]
        if last + 1 < count:
            value += log_not_inside[last + 1]
        return float(value)

    cheap = text_features_.features[:, -CHEAP_FEATURES:]

    def inputs(first: int, last: int, value: float, rules: set[str]) -> tuple[float, ...]:
        inside = log_inside[first + 1 : last + 1]
        return (
            value,
            float(bool(rules)),
            float(log_begin[first]),
            float(inside.mean()) if inside.size else 0.0,
            float(inside.min()) if inside.size else 0.0,
            float(log_not_inside[last + 1]) if last + 1 < count else 0.0,
            math.log1p(last - first + 1),
            float(cheap[first, 5]),
            float(cheap[last, 6]),
            float(cheap[first, 0]),
            float(cheap[last, 0]),
            float(cheap[last, 3]),
            float(cheap[last, 8]),
            float(cheap[first, 7]),
            *(float(rule in rules) for rule in RULES),
        )

    found: dict[tuple[int, int], ScoredSpan] = {}
    starts = np.array([s for s, _ in words])
    ends = np.array([e for _, e in words])
    for candidate in text_features_.candidates:
        covered = np.flatnonzero((starts < candidate.end) & (ends > candidate.start))
        if covered.size:
            key = (candidate.start, candidate.end)
            first, last = int(covered[0]), int(covered[-1])
            value = log_score(first, last)
            rules = {c.rule for c in text_features_.candidates if (c.start, c.end) == key}
            found[key] = ScoredSpan(*key, value, True, inputs(first, last, value, rules))
    minimum = math.log(config.min_span_probability)
    for first in np.flatnonzero(probabilities[:, BEGIN] >= config.min_begin_probability).tolist():
        for last in range(first, min(count, first + config.max_span_words)):
            if (
                last > first
                and log_begin[first] + cumulative_inside[last + 1] - cumulative_inside[first + 1]
                < minimum
            ):
                break
            value = log_score(first, last)
            key = (words[first][0], words[last][1])
            if value >= minimum and key not in found:
                found[key] = ScoredSpan(*key, value, False, inputs(first, last, value, set()))
    return list(found.values())


SPAN_INPUTS = 14 + len(RULES)
"""Per span: its tagger score, whether a rule proposed it, its begin, inside (mean, least) and
after-end log probabilities, its length, quotes around it, capitals at its ends, a small word or
"by" at its end, "by" before it, and which rules proposed it."""


def calibration_inputs(spans: Sequence[ScoredSpan]) -> NDArray[np.float64]:
    return np.array([s.inputs for s in spans], dtype=np.float64).reshape(-1, SPAN_INPUTS)


@dataclass
class SpanCalibration:
    """Logistic regression from a span's inputs to the probability it is marked exactly."""

    mean: NDArray[np.float64]
    scale: NDArray[np.float64]
    coef: NDArray[np.float64]
    intercept: float

    @classmethod
    def untrained(cls) -> SpanCalibration:
        """The tagger's own span probability, for want of held-out texts to calibrate on."""
        coef = np.zeros(SPAN_INPUTS)
        coef[0] = 1.0
        return cls(np.zeros(SPAN_INPUTS), np.ones(SPAN_INPUTS), coef, 0.0)

    @classmethod
    def fit(cls, inputs: NDArray[np.float64], marked: NDArray[np.bool_]) -> SpanCalibration:
        from sklearn.linear_model import LogisticRegression

        mean = inputs.mean(axis=0)
        scale = inputs.std(axis=0)
        scale[scale < 1e-9] = 1.0
        model = LogisticRegression(C=1.0, max_iter=1000)
        model.fit((inputs - mean) / scale, marked)
        return cls(mean, scale, model.coef_[0].astype(np.float64), float(model.intercept_[0]))

    def probability(self, inputs: NDArray[np.float64]) -> NDArray[np.float64]:
        logits = ((inputs - self.mean) / self.scale) @ self.coef + self.intercept
        probabilities: NDArray[np.float64] = 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))
        return probabilities


def with_neighbours(rows: NDArray[np.float32]) -> NDArray[np.float32]:
    """Each word's row followed by the previous and the next word's (zeros past either end)."""
    padding = np.zeros((1, rows.shape[1]), dtype=rows.dtype)
    previous = np.vstack([padding, rows[:-1]])
    following = np.vstack([rows[1:], padding])
    return np.hstack([rows, previous, following])


@dataclass
class Tagger:
    """Word states projected to a few principal components, cheap features kept as they are, each
    word read with its neighbours, and gradient-boosted trees over that (tags: outside, begins,
    inside). Trees, not a linear model: capitalisation, quotes and rule hits matter in combination
    ("capitalised inside quotes after 'read'"), and on the shared data they find spans far better."""

    components: NDArray[np.float64]
    """(k, dimension) principal axes of the word states."""
    centre: NDArray[np.float64]
    trees: Any
    """A fitted `sklearn.ensemble.HistGradientBoostingClassifier`."""

    def inputs(self, features: NDArray[np.float32]) -> NDArray[np.float32]:
        dimension = self.components.shape[1]
        # In float32: the projection is a few components, and the trees bin them coarsely.
        shift = (self.centre @ self.components.T).astype(np.float32)
        projected = features[:, :dimension] @ self.components.T.astype(np.float32) - shift
        return with_neighbours(np.hstack([projected, features[:, dimension:]]))

    def probabilities(self, features: NDArray[np.float32]) -> NDArray[np.float64]:
        return self.probabilities_of([features])[0]

    def probabilities_of(self, texts: Sequence[NDArray[np.float32]]) -> list[NDArray[np.float64]]:
        """Each text's (words, 3) tag probabilities, from one prediction over all their words:
        a call has a fixed cost (thread limits, input checks) that per-text calls pay again."""
        sizes = [features.shape[0] for features in texts]
        out = np.zeros((sum(sizes), 3))
        if out.shape[0]:
            from threadpoolctl import threadpool_limits

            # Neighbours are taken within each text, then the texts are stacked.
            inputs = np.vstack([self.inputs(features) for features in texts if features.shape[0]])
            with threadpool_limits(1):
                predicted = self.trees.predict_proba(inputs)
            for column, tag in enumerate(self.trees.classes_.tolist()):
                out[:, tag] = predicted[:, column]
        return np.split(out, np.cumsum(sizes)[:-1].tolist()) if sizes else []


def fit_tagger(
    texts: Sequence[NDArray[np.float32]],
    tags: NDArray[np.int64],
    dimension: int,
    config: SpanConfig,
) -> Tagger:
    """Fit a `Tagger` on the texts' words (`tags`: theirs, concatenated): every word in a span and
    a sample of the outside words, those with a cheap signal near them first, few with none, at
    most `max_outside_words` in all.

    No sample or class weights: the calibration maps the tagger's scores to probabilities anyway,
    and with weights the trees bin each feature by weighted percentiles, a third of the fit's time."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    sizes = np.array([t.shape[0] for t in texts], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    total = int(sizes.sum())
    rng = np.random.default_rng(0)
    # Principal axes by SVD of a sample: the states of a few thousand words fix them well.
    sampled = np.sort(rng.permutation(total)[: config.projection_sample])
    text_of = np.searchsorted(starts, sampled, side="right") - 1
    sample = np.array(
        [texts[t][r, :dimension] for t, r in zip(text_of, sampled - starts[text_of], strict=True)],
        dtype=np.float64,
    ).reshape(-1, dimension)
    centre = sample.mean(axis=0)
    _, _, axes = np.linalg.svd(sample - centre, full_matrices=False)
    components = axes[: min(config.components, axes.shape[0])]
    tagger = Tagger(components, centre, None)
    cheap = np.vstack([t[:, dimension:] for t in texts])
    # A cheap signal: capitalised, after an opening or before a closing quote, or in a rule's
    # candidate (the length column is positive for every word, so it cannot count); a word's
    # neighbours are in its own text.
    own = cheap[:, SIGNAL_COLUMNS].max(axis=1) > 0
    previous_has = np.concatenate([[False], own[:-1]])
    previous_has[starts] = False
    next_has = np.concatenate([own[1:], [False]])
    next_has[starts[1:] - 1] = False
    signal = own | previous_has | next_has
    outside = tags == OUTSIDE
    quiet = rng.random(total) < config.quiet_outside_share
    kept_outside = np.flatnonzero(outside & (signal | quiet))
    if kept_outside.size > config.max_outside_words:
        # Signal words before quiet ones, at random within each.
        order = np.lexsort((rng.random(kept_outside.size), ~signal[kept_outside]))
        kept_outside = kept_outside[order[: config.max_outside_words]]
    keep = ~outside
    keep[kept_outside] = True
    # Inputs for the kept words only, each text's with its own neighbours.
    inputs = np.vstack(
        [
            tagger.inputs(text)[keep[start : start + size]]
            for text, start, size in zip(texts, starts.tolist(), sizes.tolist(), strict=True)
            if size and keep[start : start + size].any()
        ]
    )
    trees = HistGradientBoostingClassifier(
        learning_rate=config.learning_rate,
        max_iter=config.trees,
        max_leaf_nodes=config.leaves,
        # 63 bins, not 255: the tags need no finer cuts, and each tree's histograms cost less.
        max_bins=config.bins,
        l2_regularization=1.0,
        # Leaves of 10 words, not 20: the first few marks (a handful of titles) can still be told
        # apart; no class weights (see above).
        min_samples_leaf=10,
        early_stopping=False,
        random_state=0,
    )
    # One thread: on a shared small machine more threads make the fit slower, not faster.
    with threadpool_limits(1):
        trees.fit(inputs, tags[keep])
    tagger.trees = trees
    return tagger


@dataclass
class LabelSpanModel:
    """One label's trained tagger and the calibration of its span scores."""

    label: str
    tagger: Tagger
    calibration: SpanCalibration
    config: SpanConfig = field(default_factory=SpanConfig)
    training: dict[str, Any] = field(default_factory=dict)

    def tag_probabilities(self, features: NDArray[np.float32]) -> NDArray[np.float64]:
        return self.tagger.probabilities(features)

    def calibrated(self, spans: Sequence[ScoredSpan]) -> NDArray[np.float64]:
        if not spans:
            return np.empty(0)
        return self.calibration.probability(calibration_inputs(spans))

    def ranked(
        self,
        text_features_: TextFeatures,
        probabilities: NDArray[np.float64] | None = None,
    ) -> list[SpanSuggestion]:
        """Every considered span, overlaps removed best first, best first (no threshold).

        `probabilities`: the text's tag probabilities, where `ranked_many` computed them."""
        if probabilities is None:
            probabilities = self.tag_probabilities(text_features_.features)
        spans = scored_spans(text_features_, probabilities, self.config)
        scores = self.calibrated(spans)
        kept: list[SpanSuggestion] = []
        for index in np.argsort(-scores, kind="stable").tolist():
            span = spans[index]
            if any(k.start < span.end and span.start < k.end for k in kept):
                continue
            source = "rule" if span.from_rule else "model"
            kept.append(
                SpanSuggestion(span.start, span.end, self.label, float(scores[index]), source)
            )
        return kept

    def ranked_many(self, texts: Sequence[TextFeatures]) -> list[list[SpanSuggestion]]:
        """`ranked` for each text, the tagger run once over all their words."""
        probabilities = self.tagger.probabilities_of([t.features for t in texts])
        return [self.ranked(t, p) for t, p in zip(texts, probabilities, strict=True)]

    def suggest(
        self, text_features_: TextFeatures, threshold: float | None = None
    ) -> list[SpanSuggestion]:
        """The spans scored at least `threshold` (default: the configured one), best first."""
        return self.suggest_many([text_features_], threshold)[0]

    def suggest_many(
        self, texts: Sequence[TextFeatures], threshold: float | None = None
    ) -> list[list[SpanSuggestion]]:
        limit = self.config.show_threshold if threshold is None else threshold
        return [[s for s in ranked if s.score >= limit] for ranked in self.ranked_many(texts)]

    def to_bytes(self) -> bytes:
        """The model as bytes to store (a pickle: it holds a fitted scikit-learn estimator)."""
        return pickle.dumps(
            {"format": FORMAT_VERSION, "model": self}, protocol=pickle.HIGHEST_PROTOCOL
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> LabelSpanModel:
        """A model stored by `to_bytes` (only ever one this database's scorer wrote)."""
        loaded = pickle.loads(data)
        if not isinstance(loaded, dict) or loaded.get("format") != FORMAT_VERSION:
            raise ValueError("a span model of another format; the next round trains a new one")
        model = loaded["model"]
        if not isinstance(model, cls):
            raise ValueError("not a span model")
        return model


def train_span_model(
    label: str,
    examples: Sequence[SpanExample],
    features: Sequence[TextFeatures],
    config: SpanConfig = SpanConfig(),
    random_state: int = 0,
) -> LabelSpanModel | None:
    """Fit `label`'s tagger on the examples (features computed by `text_features`, same order).

    The calibration is fitted on spans of texts each scored by a tagger fitted without them, then
    the tagger is fitted again on every text. None when no example marks a span: the rules alone
    are the better guess then.
    """

    tags = [word_tags(f.words, e.spans) for e, f in zip(examples, features, strict=True)]
    gold_count = sum(len(e.spans) for e in examples)
    with_spans = sum(1 for e in examples if e.spans)
    if gold_count == 0 or not features:
        return None
    dimension = features[0].features.shape[1] - CHEAP_FEATURES
    calibration = SpanCalibration.untrained()
    calibration_spans = 0
    if with_spans >= 4:
        # Cross-fitted: each fold's spans are scored by a tagger that never saw its texts, so the
        # calibration learns how far the tagger's scores hold on texts it has not seen.
        rng = np.random.default_rng(random_state)
        fold_of = rng.permutation(len(examples)) % config.calibration_folds
        inputs: list[NDArray[np.float64]] = []
        targets: list[NDArray[np.bool_]] = []
        for fold in range(config.calibration_folds):
            fit_rows = np.flatnonzero(fold_of != fold).tolist()
            fit_tags = np.concatenate([tags[i] for i in fit_rows]) if fit_rows else None
            if fit_tags is None or not (fit_tags != OUTSIDE).any():
                continue
            fold_model = LabelSpanModel(
                label,
                fit_tagger([features[i].features for i in fit_rows], fit_tags, dimension, config),
                calibration,
                config,
            )
            fold_rows = np.flatnonzero(fold_of == fold)
            if fold_rows.size > config.max_calibration_texts:
                fold_rows = np.sort(rng.permutation(fold_rows)[: config.max_calibration_texts])
            held_out: list[int] = fold_rows.tolist()
            probabilities = fold_model.tagger.probabilities_of(
                [features[i].features for i in held_out]
            )
            for i, text_probabilities in zip(held_out, probabilities, strict=True):
                spans = scored_spans(features[i], text_probabilities, config)
                gold = set(examples[i].spans)
                inputs.append(calibration_inputs(spans))
                targets.append(np.array([(s.start, s.end) in gold for s in spans], dtype=bool))
        x = np.vstack(inputs) if inputs else np.empty((0, SPAN_INPUTS))
        y = np.concatenate(targets) if targets else np.empty(0, dtype=bool)
        calibration_spans = int(y.size)
        if y.any() and not y.all():
            calibration = SpanCalibration.fit(x, y)
    all_tags = np.concatenate(tags)
    tagger = fit_tagger([f.features for f in features], all_tags, dimension, config)
    return LabelSpanModel(
        label,
        tagger,
        calibration,
        config,
        training={
            "texts": len(examples),
            "texts_with_spans": with_spans,
            "spans": gold_count,
            "words": int(all_tags.size),
            "calibration_spans": calibration_spans,
        },
    )


def rule_suggestions(text: str, label: str) -> list[SpanSuggestion]:
    """The cold start: every rule candidate at `RULE_PRIOR`, in text order."""
    return [
        SpanSuggestion(c.start, c.end, label, RULE_PRIOR, "rule") for c in suggest_candidates(text)
    ]


@dataclass
class SpanModel:
    """Every label's span model; a label without one is suggested by the rules alone."""

    labels: list[str]
    models: dict[str, LabelSpanModel] = field(default_factory=dict)

    @property
    def trained(self) -> bool:
        return bool(self.models)

    def suggest(
        self, texts: Sequence[str], token_states: TokenStatesOf | None
    ) -> list[list[SpanSuggestion]]:
        """Each text's suggestions, best first (the rules' at `RULE_PRIOR` for untrained labels).

        `token_states` is only called when some label has a trained model.
        """
        states = token_states(texts) if self.models and token_states is not None and texts else None
        features = (
            [text_features(text, s) for text, s in zip(texts, states, strict=True)]
            if states is not None
            else None
        )
        out: list[list[SpanSuggestion]] = [[] for _ in texts]
        for label in self.labels:
            model = self.models.get(label)
            if model is not None and features is not None:
                of_label = model.suggest_many(features)
            else:
                of_label = [rule_suggestions(text, label) for text in texts]
            for suggestions, found in zip(out, of_label, strict=True):
                suggestions.extend(found)
        for suggestions in out:
            suggestions.sort(key=lambda s: (-s.score, s.start, s.end))
        return out


def examples_from_answers(answers: Sequence[AnswerWithItem], label: str) -> list[SpanExample]:
    """One example per item from its latest current answer that says where `label`'s spans are.

    A span answer accepted gives its spans of `label` (none marked: the text has none); a span
    answer rejected, or a classification answer rejecting `label`, says the text has none. Ignored
    answers and classification accepts (which say nothing of where) are left out.
    """
    latest: dict[int, tuple[int, SpanExample]] = {}
    for entry in answers:
        answer, item = entry.answer, entry.item
        if answer.answer == "ignore":
            continue
        if answer.task_key == SPAN_TASK_KEY:
            spans = (
                tuple(sorted({(s.start, s.end) for s in answer.spans if s.label == label}))
                if answer.answer == "accept"
                else ()
            )
        elif answer.label == label and answer.answer == "reject":
            spans = ()
        else:
            continue
        previous = latest.get(item.id)
        if previous is None or previous[0] < answer.id:
            latest[item.id] = (answer.id, SpanExample(item.text, spans))
    return [latest[item_id][1] for item_id in sorted(latest)]


KEPT_FEATURE_WORDS = 200_000
"""Words whose features a `SpanSuggester` keeps between trainings, at most (~170 MB in float16:
the marked texts of a long session)."""
RETRAIN_NEW_SPANS = 10
RETRAIN_GROWTH = 0.1


class SpanSuggester:
    """What a scoring round does for spans: train every label's span model on the current span
    answers, keep it in the database, and store suggestions for each item of the batch published.

    `token_states` is the encoder's `token_states`, `model_hash` its graph's hash (a stored model
    is only used with the graph whose states it learned from).
    """

    def __init__(
        self,
        token_states: TokenStatesOf,
        model_hash: str | Callable[[], str],
        config: SpanConfig = SpanConfig(),
    ) -> None:
        self.token_states = token_states
        self._model_hash = model_hash
        self.config = config
        self.last_seconds: dict[str, float] = {}
        self.last_encoded = 0
        """Texts whose token states the last `features_of` computed (the others were kept)."""
        self._kept: OrderedDict[str, TextFeatures] = OrderedDict()
        self._kept_words = 0

    def features_of(self, texts: Sequence[str]) -> dict[str, TextFeatures]:
        """Each text's features, the token states computed only for texts not kept from an
        earlier call: a scorer that stays up (`--watch`) encodes each marked text once, not at
        every training. Kept in float16, the least recently used dropped past
        `KEPT_FEATURE_WORDS` words."""
        missing = [text for text in dict.fromkeys(texts) if text not in self._kept]
        self.last_encoded = len(missing)
        if missing:
            for text, states in zip(missing, self.token_states(missing), strict=True):
                computed = text_features(text, states)
                self._kept[text] = replace(computed, features=computed.features.astype(np.float16))
                self._kept_words += len(computed.words)
        out: dict[str, TextFeatures] = {}
        for text in texts:
            kept = self._kept[text]
            self._kept.move_to_end(text)
            out[text] = replace(kept, features=kept.features.astype(np.float32))
        while self._kept_words > KEPT_FEATURE_WORDS and len(self._kept) > len(out):
            _, dropped = self._kept.popitem(last=False)
            self._kept_words -= len(dropped.words)
        return out

    @property
    def model_hash(self) -> str:
        return self._model_hash if isinstance(self._model_hash, str) else self._model_hash()

    @classmethod
    def of_encoder(cls, encoder: Any, config: SpanConfig = SpanConfig()) -> SpanSuggester:
        """The suggester over an `Encoder`, its token states and graph hash read only when needed
        (a round without span answers never touches them)."""
        return cls(
            lambda texts: list(encoder.token_states(texts)), lambda: str(encoder.model_hash), config
        )

    def train(self, store: Store) -> SpanModel:
        """Train and store every label's span model (labels with no marked span keep the rules)."""
        clock = time.perf_counter()
        through_answer_id = store.latest_answer_id()
        answers = store.current_answers_with_items()
        labels = store.labels()
        examples_of = {label: examples_from_answers(answers, label) for label in labels}
        texts = sorted(
            {
                e.text
                for examples in examples_of.values()
                if any(x.spans for x in examples)
                for e in examples
            }
        )
        features_of = self.features_of(texts)
        models: dict[str, LabelSpanModel] = {}
        for label, examples in examples_of.items():
            if not any(e.spans for e in examples):
                continue
            model = train_span_model(
                label, examples, [features_of[e.text] for e in examples], self.config
            )
            if model is None:
                continue
            models[label] = model
            store.save_span_model(
                label,
                self.model_hash,
                model.to_bytes(),
                through_answer_id=through_answer_id,
                report=model.training,
            )
        self.last_seconds["span_train"] = time.perf_counter() - clock
        return SpanModel(labels, models)

    def load(self, store: Store) -> SpanModel | None:
        """The span models the database holds for this encoder graph; None when it holds none."""
        return self._loaded(store, store.span_models(self.model_hash))

    @staticmethod
    def _loaded(store: Store, stored: Sequence[StoredSpanModel]) -> SpanModel | None:
        models: dict[str, LabelSpanModel] = {}
        for entry in stored:
            try:
                model = LabelSpanModel.from_bytes(entry.weights)
            except (ValueError, pickle.UnpicklingError, AttributeError, ImportError):
                continue
            # The stored row names the label (a rename updates it, not the pickle).
            models[entry.label] = replace(model, label=entry.label)
        return SpanModel(store.labels(), models) if models else None

    def load_or_train(self, store: Store) -> SpanModel:
        """The stored span models, trained first when the database holds none for this graph."""
        return self.load(store) or self.train(store)

    def suggest_for_batch(self, store: Store, batch_id: int, model: SpanModel) -> int:
        """Store the model's suggestions for every item of `batch_id`; return how many."""
        item_ids = sorted(store.batch_strategies(batch_id))
        return store.store_span_suggestions(batch_id, self._suggestions(store, item_ids, model))

    def _suggestions(
        self, store: Store, item_ids: Sequence[int], model: SpanModel
    ) -> dict[int, list[SpanSuggestion]]:
        clock = time.perf_counter()
        items = store.items_by_ids(sorted(item_ids))
        suggestions = model.suggest([item.text for item in items], self.token_states)
        self.last_seconds["span_suggest"] = time.perf_counter() - clock
        return {item.id: s for item, s in zip(items, suggestions, strict=True)}

    def retrain_due(self, store: Store, stored: Sequence[StoredSpanModel]) -> bool:
        """Whether the marks have grown enough since `stored` were trained to train again: at
        least `RETRAIN_NEW_SPANS` new spans and `RETRAIN_GROWTH` of those trained on (a training
        takes seconds, a round's suggestions a fraction of one), or no model stored at all."""
        if not stored:
            return store.marked_span_count() > 0
        trained_on = sum(int(entry.report.get("spans", 0)) for entry in stored)
        new_spans = store.marked_span_count() - trained_on
        return new_spans >= max(RETRAIN_NEW_SPANS, RETRAIN_GROWTH * trained_on)

    def suggestions_for(
        self, store: Store, item_ids: Sequence[int]
    ) -> dict[int, list[SpanSuggestion]] | None:
        """Suggestions for a batch about to be published, from the span models stored (none
        trained here: the batch should not wait for a training); None when none is stored."""
        model = self.load(store)
        return self._suggestions(store, item_ids, model) if model is not None else None

    def after_publish(self, store: Store, batch_id: int) -> None:
        """A round's span step once its batch is out: where `retrain_due`, train the models and
        replace the batch's suggestions (items already shown keep what they showed)."""
        if not self.retrain_due(store, store.span_models(self.model_hash)):
            return
        model = self.train(store)
        if model.trained:
            self.suggest_for_batch(store, batch_id, model)
