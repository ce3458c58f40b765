"""The head: class-balanced logistic regression on frozen embeddings, Platt-calibrated, prior-corrected.

Under extreme imbalance the answers hold few negatives early on, so random pool items stand in as
pseudo-negatives (at 1/5,000 prevalence a random item is a true negative 99.98% of the time).
The user's description of the label (the seed query, as a text's features) is trained as one
more positive: with one or two answers the head otherwise knows the label only by its examples, and
the words the user chose say what those examples share. Class balancing trains at an effective
prior of 1/2; the Platt sigmoid is fitted on cross-validated
decision values and then shifted to the pool's estimated prior, so a probability of 0.01 means about
one positive in a hundred such items.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]


@dataclass(frozen=True)
class HeadConfig:
    regularisation: float = 1.0
    pseudo_negatives: int = 200
    """Random pool items labelled negative while true negatives number fewer than this."""
    pseudo_negative_weight: float = 0.5
    query_weight: float = 1.0
    """Weight of the query's row against an answered positive's 1."""
    cv_folds: int = 5
    max_iter: int = 1000


@dataclass
class Head:
    """A linear scorer plus its calibration; `probability` is what selection and reports use."""

    coef: NDArray[np.float64]
    intercept: float
    platt_slope: float
    platt_offset: float
    prior_shift: float
    training: dict[str, Any] = field(default_factory=dict)
    transform: Any = None
    """Optional feature transform (e.g. TF-IDF + embedding) applied before the linear layer."""

    def decision(self, features: Any) -> NDArray[np.float64]:
        if self.transform is not None:
            features = self.transform(features)
        coef = self.coef
        if isinstance(features, np.ndarray) and features.dtype == np.float32:
            # float32 keeps a chunk of the pool from being copied to float64 just to be scored.
            coef = coef.astype(np.float32)
        values = features @ coef
        return np.asarray(values, dtype=np.float64).ravel() + self.intercept

    def probability_from_decision(self, decision: NDArray[np.float64]) -> NDArray[np.float64]:
        logits = self.platt_slope * decision + self.platt_offset + self.prior_shift
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))

    def probability(self, features: Any) -> NDArray[np.float64]:
        return self.probability_from_decision(self.decision(features))


def logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


def train_head(
    labelled_features: Any,
    labels: NDArray[np.bool_],
    *,
    pseudo_negative_features: Any | None = None,
    query_features: Any | None = None,
    prior: float | None = None,
    config: HeadConfig = HeadConfig(),
    random_state: int = 0,
) -> Head:
    """Fit the head on labelled rows (1 = has the label) plus optional pseudo-negatives and
    `query_features`, rows standing for the label's description, trained as positives.

    `prior` is the estimated share of positives in the pool; without one the calibrated
    probabilities stay at the balanced training prior of 1/2.
    """
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels, dtype=bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0:
        raise ValueError("the head needs at least one positive answer")
    blocks, targets, weights = [labelled_features], [labels], [np.ones(len(labels))]

    def add_rows(rows: Any | None, target: bool, weight: float) -> int:
        if rows is None or not rows.shape[0]:
            return 0
        blocks.append(rows)
        targets.append(np.full(rows.shape[0], target))
        weights.append(np.full(rows.shape[0], weight))
        return int(rows.shape[0])

    query_count = add_rows(query_features, True, config.query_weight)
    pseudo_count = add_rows(pseudo_negative_features, False, config.pseudo_negative_weight)
    used_columns: NDArray[np.intp] | None = None
    if any(sparse.issparse(b) for b in blocks):
        features = sparse.vstack(blocks).tocsr()
        # Only the columns some training row uses: the L2-penalised weight of a column no row
        # uses is 0, so the fit is the same, and over hashed words (2^18 columns, a few thousand
        # used) it is ten times faster.
        used_columns = np.unique(features.indices)
        all_columns = features.shape[1]
        features = features[:, used_columns]
    else:
        features = np.vstack(blocks)
    target = np.concatenate(targets)
    weight = np.concatenate(weights)
    if target.all():
        raise ValueError("the head needs at least one negative (an answer or a pseudo-negative)")
    # Class balance by weight: each class carries half the total weight.
    for value in (True, False):
        mask = target == value
        weight[mask] *= 0.5 * weight.sum() / weight[mask].sum()

    def fit(rows: NDArray[np.intp]) -> Any:
        model = LogisticRegression(C=config.regularisation, max_iter=config.max_iter)
        model.fit(features[rows], target[rows], sample_weight=weight[rows])
        return model

    model = fit(np.arange(len(target)))
    folds = min(config.cv_folds, positives, int((~target).sum()))
    cv_decision = None
    cv_ap = None
    if folds >= 2:
        cv_decision = np.zeros(len(target))
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
        for train_rows, test_rows in splitter.split(np.zeros(len(target)), target):
            fold_model = fit(train_rows)
            cv_decision[test_rows] = fold_model.decision_function(features[test_rows])
        labelled_rows = np.arange(len(labels))
        if negatives and positives:
            cv_ap = float(average_precision_score(labels, cv_decision[labelled_rows]))
    slope, offset = 1.0, 0.0
    if cv_decision is not None:
        slope, offset = platt_fit(cv_decision, target, weight)
    prior_shift = 0.0 if prior is None else logit(prior) - logit(0.5)
    coef = np.asarray(model.coef_, dtype=np.float64).ravel()
    if used_columns is not None:
        coef = np.zeros(all_columns, dtype=np.float64)
        coef[used_columns] = model.coef_.ravel()
    return Head(
        coef=coef,
        intercept=float(model.intercept_[0]),
        platt_slope=slope,
        platt_offset=offset,
        prior_shift=prior_shift,
        training={
            "positives": positives,
            "negatives": negatives,
            "pseudo_negatives": pseudo_count,
            "query_rows": query_count,
            "cv_folds": folds if folds >= 2 else 0,
            "cv_average_precision": cv_ap,
            "prior": prior,
        },
    )


def platt_fit(
    decision: NDArray[np.float64], target: NDArray[np.bool_], weight: NDArray[np.float64]
) -> tuple[float, float]:
    """Fit p = sigmoid(a * decision + b) by weighted logistic regression on one feature."""
    from sklearn.linear_model import LogisticRegression

    if target.all() or not target.any():
        return 1.0, 0.0
    model = LogisticRegression(C=1e4, max_iter=1000)
    model.fit(decision.reshape(-1, 1), target, sample_weight=weight)
    slope = float(model.coef_[0, 0])
    # A non-positive slope means the cross-validated scores carry no signal yet: keep the raw scale.
    if slope <= 0:
        return 1.0, 0.0
    return slope, float(model.intercept_[0])
