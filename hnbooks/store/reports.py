"""A scoring round's report: written by `hnbooks-score`, read by `hnbooks stats`, the scorer's own
summary and the TUI's stats screen, all through `RoundReport`.

Stored as JSON in `rounds.report`. `from_json` also reads the flat reports written before this record
existed (device and embedding figures at the top level), so old databases show their history.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
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


@dataclass(frozen=True)
class EstimateReport:
    """An estimate with its 95% interval; `n` random answers are what it rests on."""

    estimate: float | None = None
    low: float | None = None
    high: float | None = None
    n: int = 0

    @classmethod
    def from_json(cls, data: Any) -> EstimateReport | None:
        if not isinstance(data, dict):
            return None
        return cls(
            _number(data.get("estimate")),
            _number(data.get("low")),
            _number(data.get("high")),
            _integer(data.get("n")),
        )

    @property
    def interval(self) -> tuple[float, float] | None:
        if self.low is None or self.high is None:
            return None
        return self.low, self.high


@dataclass(frozen=True)
class EmbeddingReport:
    """The encoder that embedded the pool this round, and what it embedded."""

    model: str | None = None
    device: str | None = None
    embedded: int = 0
    already_cached: int = 0
    texts_per_s: float | None = None
    pad_waste: float | None = None

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
    mix: str | None = None
    picked_per_strategy: dict[str, int] = field(default_factory=dict)
    pseudo_negatives: int | None = None
    cv_average_precision: float | None = None
    prevalence: EstimateReport | None = None
    recall: EstimateReport | None = None
    last_batch: BatchYieldReport | None = None
    embedding: EmbeddingReport | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), allow_nan=False)

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
            note=str(data["note"]) if data.get("note") is not None else None,
            seed_query=str(data["seed_query"]) if data.get("seed_query") is not None else None,
            mix=str(data["mix"]) if data.get("mix") is not None else None,
            picked_per_strategy=_counts(data.get("picked_per_strategy")),
            pseudo_negatives=_integer(data["pseudo_negatives"])
            if _number(data.get("pseudo_negatives")) is not None
            else None,
            cv_average_precision=_number(data.get("cv_average_precision")),
            prevalence=EstimateReport.from_json(data.get("prevalence")),
            recall=EstimateReport.from_json(data.get("recall")),
            last_batch=last_batch,
            embedding=embedding,
            seconds={str(k): float(v) for k, v in seconds.items() if _number(v) is not None}
            if isinstance(seconds, dict)
            else {},
        )
