"""A re-creation of Prodigy's `prefer_uncertain` stream sorter (the default `algorithm="ema"`).

What Prodigy does, as documented by its authors and measured by its users:
- the input is a stream (random order here), scored lazily in small batches by the model *as it is
  when the batch is scored*; the model is updated after each answered batch;
- each scored item gets an uncertainty, `1 - 2 * |score - 0.5|` (1 at 0.5, 0 at 0 or 1; `bias` moves
  the centre, as Prodigy's `bias` does);
- the sorter keeps an exponential moving average of the uncertainties it has seen and emits an item
  only if its uncertainty is at least that average (plus `std_factor` moving standard deviations:
  0 by default, which reproduces the measured behaviour of dropping about half of a uniform stream);
- items not emitted are dropped for good: the stream never goes back.

The sorter is a plain generator over `(score, item)` pairs, so the simulation can instrument it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

T = TypeVar("T")

DEFAULT_ALPHA = 0.1
"""Weight of the newest uncertainty in the moving average (Prodigy does not document its value)."""


def uncertainty(score: float, bias: float = 0.0) -> float:
    """1 at the centre (0.5 + bias), falling linearly to 0 at 0 and 1."""
    return max(0.0, 1.0 - 2.0 * abs(score - (0.5 + bias)))


@dataclass
class MovingAverage:
    """Exponential moving average and variance of a stream of values."""

    alpha: float = DEFAULT_ALPHA
    mean: float | None = None
    variance: float = 0.0

    def update(self, value: float) -> None:
        if self.mean is None:
            self.mean = value
            return
        difference = value - self.mean
        increment = self.alpha * difference
        self.mean += increment
        self.variance = (1 - self.alpha) * (self.variance + difference * increment)


@dataclass
class EmaUncertaintySorter:
    """Prodigy's `prefer_uncertain(stream, bias, algorithm="ema")`: emit an item when its
    uncertainty is at least the moving average of the uncertainties seen so far (the item's own
    included, as a running filter does), drop it otherwise."""

    alpha: float = DEFAULT_ALPHA
    bias: float = 0.0
    std_factor: float = 0.0
    average: MovingAverage = field(init=False)
    seen: int = 0
    emitted: int = 0

    def __post_init__(self) -> None:
        self.average = MovingAverage(self.alpha)

    def admits(self, score: float) -> bool:
        """Feed one score to the moving average; True if its item is to be shown."""
        value = uncertainty(score, self.bias)
        self.average.update(value)
        self.seen += 1
        assert self.average.mean is not None
        cutoff = self.average.mean + self.std_factor * math.sqrt(self.average.variance)
        if value >= cutoff:
            self.emitted += 1
            return True
        return False

    def __call__(self, scored: Iterable[tuple[float, T]]) -> Iterator[T]:
        for score, item in scored:
            if self.admits(score):
                yield item


@dataclass
class ScoredStream(Generic[T]):
    """Items in a fixed order, scored `chunk_size` at a time by whatever model is current when the
    chunk is reached; items no longer `available` (answered through another channel) are passed
    over unscored. Records every item it scored, in order."""

    items: Sequence[T]
    score_chunk: Callable[[list[T]], NDArray[np.float64]]
    chunk_size: int = 20
    available: Callable[[T], bool] = lambda item: True
    scored: list[T] = field(default_factory=list)
    position: int = 0

    def __iter__(self) -> Iterator[tuple[float, T]]:
        while self.position < len(self.items):
            chunk: list[T] = []
            while self.position < len(self.items) and len(chunk) < self.chunk_size:
                item = self.items[self.position]
                self.position += 1
                if self.available(item):
                    chunk.append(item)
            if not chunk:
                continue
            scores = np.asarray(self.score_chunk(chunk), dtype=np.float64)
            for score, item in zip(scores, chunk):
                self.scored.append(item)
                yield float(score), item

    @property
    def exhausted(self) -> bool:
        return self.position >= len(self.items)
