"""A scoring round's report: written by `hnbooks-score`, read by `hnbooks stats`, the scorer's own
summary and the TUI's stats screen, all through `RoundReport`.

Stored as JSON in `rounds.report`. `from_json` also reads the flat reports written before this record
existed (device and embedding figures at the top level), so old databases show their history.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

RoundMode = Literal["model", "seed", "empty"]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _integer(value: Any, default: int = 0) -> int:
    number = _number(value)
    return default if number is None else int(number)


def _counts(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(key): _integer(count) for key, count in value.items() if _number(count) is not None}


def _text(value: Any) -> str | None:
    return str(value) if value is not None else None


def percent(share: float) -> str:
    """A share as a percentage: 0.5 → '50', 0.025 → '2.5', 0.0004 → '0.04' (whole percents from 10%,
    one decimal from 1%, one significant figure below)."""
    value = 100 * share
    if value == 0 or value >= 9.95:
        return f"{value:.0f}"
    if value >= 0.995:
        return f"{value:.1f}".removesuffix(".0")
    return f"{value:.1g}"


@dataclass(frozen=True)
class EstimateReport:
    """An estimate with its interval; `n` random answers are what it rests on.

    `level` is the interval's confidence (0.9: a 90% interval) and `method` how it was computed
    (see hnbooks.scoring.estimate); reports written before they were recorded hold 95% bootstrap
    intervals and neither field."""

    estimate: float | None = None
    low: float | None = None
    high: float | None = None
    n: int = 0
    method: str | None = None
    level: float | None = None

    @classmethod
    def from_json(cls, data: Any) -> EstimateReport | None:
        if not isinstance(data, dict):
            return None
        return cls(
            _number(data.get("estimate")),
            _number(data.get("low")),
            _number(data.get("high")),
            _integer(data.get("n")),
            _text(data.get("method")),
            _number(data.get("level")),
        )

    @property
    def interval(self) -> tuple[float, float] | None:
        if self.low is None or self.high is None:
            return None
        return self.low, self.high

    def as_percent(self) -> str | None:
        """'75% (40–100)': the estimate and its interval in percent; None without an estimate."""
        if self.estimate is None:
            return None
        shown = f"{percent(self.estimate)}%"
        if self.interval is None:
            return shown
        return f"{shown} ({percent(self.interval[0])}–{percent(self.interval[1])})"


@dataclass(frozen=True)
class CalibrationBinReport:
    """Random answers whose score (the one that served them, before their answer) fell in
    [low, high): how many, how many were positive, their mean score, and the interval of the
    observed positive rate."""

    low: float
    high: float
    count: int = 0
    positives: int = 0
    mean_predicted: float | None = None
    observed_low: float | None = None
    observed_high: float | None = None

    @property
    def observed(self) -> float | None:
        return self.positives / self.count if self.count else None

    @classmethod
    def from_json(cls, data: Any) -> CalibrationBinReport | None:
        if not isinstance(data, dict):
            return None
        low, high = _number(data.get("low")), _number(data.get("high"))
        if low is None or high is None:
            return None
        return cls(
            low,
            high,
            _integer(data.get("count")),
            _integer(data.get("positives")),
            _number(data.get("mean_predicted")),
            _number(data.get("observed_low")),
            _number(data.get("observed_high")),
        )


def _calibration(value: Any) -> tuple[CalibrationBinReport, ...]:
    if not isinstance(value, list):
        return ()
    bins = (CalibrationBinReport.from_json(entry) for entry in value)
    return tuple(b for b in bins if b is not None)


@dataclass(frozen=True)
class EmbeddingReport:
    """The encoder that embedded the pool this round, and what it embedded."""

    model: str | None = None
    device: str | None = None
    embedded: int = 0
    already_cached: int = 0
    texts_per_s: float | None = None
    pad_waste: float | None = None
    engine: str | None = None
    """What ran the encoder: "local" (this process) or "ray" (a Ray cluster's workers); None in
    reports written before it was recorded (they all ran locally)."""
    workers: int | None = None
    """Ray workers that encoded (the "ray" engine only)."""

    @classmethod
    def from_json(cls, data: Any) -> EmbeddingReport | None:
        if not isinstance(data, dict):
            return None
        return cls(
            model=str(data["model"]) if data.get("model") is not None else None,
            device=str(data["device"]) if data.get("device") is not None else None,
            embedded=_integer(data.get("embedded")),
            already_cached=_integer(data.get("already_cached")),
            texts_per_s=_number(data.get("texts_per_s")),
            pad_waste=_number(data.get("pad_waste")),
            engine=_text(data.get("engine")),
            workers=_integer(data["workers"]) if _number(data.get("workers")) is not None else None,
        )


@dataclass(frozen=True)
class BatchYieldReport:
    """Per strategy, how many items of the previous scored batch were answered, and how many were positive."""

    batch_id: int
    answered: dict[str, int] = field(default_factory=dict)
    positives: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> BatchYieldReport | None:
        if not isinstance(data, dict) or _number(data.get("batch_id")) is None:
            return None
        return cls(
            _integer(data.get("batch_id")),
            _counts(data.get("answered")),
            _counts(data.get("positives")),
        )


@dataclass(frozen=True)
class RoundReport:
    """What one scoring round did and found."""

    mode: RoundMode
    """"model" (head trained, mix chosen), "seed" (no positive yet) or "empty" (nothing left)."""
    label: str
    pool: int = 0
    answers: int = 0
    labelled_items: int = 0
    positives: int = 0
    negatives: int = 0
    batch_size: int = 0
    batch_id: int | None = None
    """The batch the round published; None when it published none."""
    note: str | None = None
    seed_query: str | None = None
    """What the seed channel searched ("seed" rounds), or what the head was trained on as one
    more positive ("model" rounds)."""
    mix: str | None = None
    picked_per_strategy: dict[str, int] = field(default_factory=dict)
    pseudo_negatives: int | None = None
    cv_average_precision: float | None = None
    prevalence: EstimateReport | None = None
    recall: EstimateReport | None = None
    """The head's recall at the threshold, on the positives among the random answers."""
    found_so_far: EstimateReport | None = None
    """Share of the pool's positives already answered positive."""
    eligible: int | None = None
    """Items the round could choose from (in the pool, neither answered nor queued): the pool its
    random picks were drawn from, which later rounds' estimates need."""
    calibration: tuple[CalibrationBinReport, ...] = ()
    """The random answers so far, binned by the score that served them."""
    last_batch: BatchYieldReport | None = None
    embedding: EmbeddingReport | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    features: str | None = None
    """What the head read: "words + embeddings" or "embeddings"; None in reports written before it
    was recorded (embeddings)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), allow_nan=False)

    def positives_left(self) -> EstimateReport | None:
        """Positives estimated still to find in the pool when the round ran, with the interval:
        the pool's estimated positives (prevalence x pool) less those answered positive."""
        prevalence = self.prevalence
        if prevalence is None or prevalence.estimate is None or not self.pool:
            return None

        def left(share: float | None) -> float | None:
            return None if share is None else max(0.0, share * self.pool - self.positives)

        return replace(
            prevalence,
            estimate=left(prevalence.estimate),
            low=left(prevalence.low),
            high=left(prevalence.high),
        )

    @classmethod
    def from_json(cls, raw: str | dict[str, Any]) -> RoundReport:
        data = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(data, dict):
            data = {}
        mode = data.get("mode")
        last_batch = BatchYieldReport.from_json(data.get("last_batch"))
        if last_batch is None and _number(data.get("last_batch")) is not None:
            # The flat layout: the batch id at the top, its counts beside it.
            last_batch = BatchYieldReport(
                _integer(data["last_batch"]),
                _counts(data.get("answers_per_strategy")),
                _counts(data.get("positives_per_strategy")),
            )
        embedding = EmbeddingReport.from_json(data.get("embedding"))
        if embedding is None and any(key in data for key in ("device", "model", "embedded")):
            embedding = EmbeddingReport.from_json(data)
        seconds = data.get("seconds")
        return cls(
            mode=mode if mode in ("model", "seed", "empty") else "empty",
            label=str(data.get("label") or ""),
            pool=_integer(data.get("pool")),
            answers=_integer(data.get("answers")),
            labelled_items=_integer(data.get("labelled_items")),
            positives=_integer(data.get("positives")),
            negatives=_integer(data.get("negatives")),
            batch_size=_integer(data.get("batch_size")),
            batch_id=_integer(data["batch_id"])
            if _number(data.get("batch_id")) is not None
            else None,
            note=_text(data.get("note")),
            seed_query=_text(data.get("seed_query")),
            mix=_text(data.get("mix")),
            picked_per_strategy=_counts(data.get("picked_per_strategy")),
            pseudo_negatives=_integer(data["pseudo_negatives"])
            if _number(data.get("pseudo_negatives")) is not None
            else None,
            cv_average_precision=_number(data.get("cv_average_precision")),
            prevalence=EstimateReport.from_json(data.get("prevalence")),
            recall=EstimateReport.from_json(data.get("recall")),
            found_so_far=EstimateReport.from_json(data.get("found_so_far")),
            eligible=_integer(data["eligible"])
            if _number(data.get("eligible")) is not None
            else None,
            calibration=_calibration(data.get("calibration")),
            last_batch=last_batch,
            embedding=embedding,
            features=_text(data.get("features")),
            seconds={str(k): float(v) for k, v in seconds.items() if _number(v) is not None}
            if isinstance(seconds, dict)
            else {},
        )
