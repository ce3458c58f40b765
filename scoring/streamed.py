"""The score ranking of a pool too large to sort in memory: scores in a temporary file, read in blocks.

A round scores every pool item once. Holding those scores, the eligible ids and their sorted order
in memory costs ~30 bytes an item (300 MB at 10M items). `ScoreFile` keeps one float32 per id in an
unlinked temporary file instead (the page cache holds it, not the process), and `StreamedRanking`
answers what selection asks of the ranking (the best rows, the rows around the threshold, the rows
at given ranks, the rank of given rows) with a few sequential scans of it and a histogram of the
scores. The answers are exactly those of sorting the eligible rows by (score descending, id
ascending), as `select.SortedRanking` does in memory.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

SCAN_IDS = 1 << 20
"""Ids read per block of a scan: 4 MB of scores, 1 MB of the eligible mask."""
BIN_SHIFT = 12
"""Histogram bins are float32 bit patterns without their low 12 bits: scores within ~0.05% of each
other share a bin (scores are probabilities, non-negative, so bit order is score order)."""
BIN_COUNT = (int(np.array(1.0, dtype=np.float32).view(np.uint32)) >> BIN_SHIFT) + 1
FIRST_BEST = 1024


def score_bins(scores: NDArray[np.float32]) -> NDArray[np.int64]:
    bins = (np.ascontiguousarray(scores, dtype=np.float32).view(np.uint32) >> BIN_SHIFT).astype(
        np.int64
    )
    return np.minimum(bins, BIN_COUNT - 1)


class ScoreFile:
    """One float32 score per id in [0, stop), NaN where none was written, in a temporary file."""

    def __init__(self, stop: int) -> None:
        self.stop = stop
        self._file = tempfile.TemporaryFile()
        self._written = 0

    def _pad_to(self, end: int) -> None:
        while self._written < end:
            count = min(SCAN_IDS, end - self._written)
            self._file.write(np.full(count, np.nan, dtype=np.float32).tobytes())
            self._written += count

    def append(self, ids: NDArray[np.int64], values: NDArray[np.floating[Any]]) -> None:
        """Scores of `ids` (ascending, all above the ids appended before)."""
        if ids.size == 0:
            return
        first = int(ids[0])
        if first < self._written:
            raise ValueError("scores must be appended in ascending id order")
        self._pad_to(first)
        block = np.full(int(ids[-1]) - first + 1, np.nan, dtype=np.float32)
        block[ids - first] = values
        self._file.write(block.tobytes())
        self._written += block.size

    def finish(self) -> None:
        self._pad_to(self.stop)
        self._file.flush()

    def read(self, start: int, stop: int) -> NDArray[np.float32]:
        data = os.pread(self._file.fileno(), (stop - start) * 4, start * 4)
        return np.frombuffer(data, dtype=np.float32)

    def blocks(self) -> Iterator[tuple[int, NDArray[np.float32]]]:
        for start in range(0, self.stop, SCAN_IDS):
            yield start, self.read(start, min(self.stop, start + SCAN_IDS))

    def values_of(self, ids: NDArray[np.integer]) -> NDArray[np.float32]:
        ids = np.asarray(ids, dtype=np.int64).ravel()
        out = np.full(ids.size, np.nan, dtype=np.float32)
        for n, item_id in enumerate(ids.tolist()):
            if 0 <= item_id < self.stop:
                out[n] = self.read(item_id, item_id + 1)[0]
        return out

    def close(self) -> None:
        self._file.close()


def nth_true(mask: NDArray[np.bool_], positions: NDArray[np.integer]) -> NDArray[np.intp]:
    """The index of the p-th True of `mask` for each p of `positions` (any order), without
    materialising every True's index."""
    positions = np.asarray(positions, dtype=np.int64).ravel()
    out = np.empty(positions.size, dtype=np.intp)
    if positions.size == 0:
        return out
    counts = np.array(
        [np.count_nonzero(mask[s : s + SCAN_IDS]) for s in range(0, mask.size, SCAN_IDS)],
        dtype=np.int64,
    )
    before = np.concatenate([[0], np.cumsum(counts)])
    block_of = np.searchsorted(before, positions, side="right") - 1
    for block in np.unique(block_of).tolist():
        chosen = np.flatnonzero(block_of == block)
        start = block * SCAN_IDS
        rows = np.flatnonzero(mask[start : start + SCAN_IDS]) + start
        out[chosen] = rows[positions[chosen] - before[block]]
    return out


def best_by_key(
    rows: NDArray[np.intp], primary: NDArray[np.floating[Any]], secondary: NDArray[Any], k: int
) -> tuple[NDArray[np.intp], NDArray[np.floating[Any]]]:
    """The `k` entries smallest by (primary, secondary), in that order, and their primaries."""
    if rows.size > k:
        cut = np.partition(primary, k - 1)[k - 1]
        keep = primary <= cut
        rows, primary, secondary = rows[keep], primary[keep], secondary[keep]
    order = np.lexsort((secondary, primary))[:k]
    return rows[order], primary[order]


class StreamedRanking:
    """The eligible rows of a `ScoreFile` ordered by (score descending, id ascending), read lazily."""

    def __init__(self, scores: ScoreFile, eligible: NDArray[np.bool_]) -> None:
        if eligible.size != scores.stop:
            raise ValueError(f"eligible mask of {eligible.size} ids for {scores.stop} scores")
        self.scores = scores
        self.eligible = eligible
        histogram = np.zeros(BIN_COUNT, dtype=np.int64)
        for _, _, values in self._rankable():
            histogram += np.bincount(score_bins(values), minlength=BIN_COUNT)
        self.size = int(histogram.sum())
        # above[b]: rows in bins above b, i.e. the rank of the first row of bin b.
        self._above = self.size - np.cumsum(histogram)
        self._best: NDArray[np.intp] = np.empty(0, dtype=np.intp)
        self._best_position: dict[int, int] = {}

    def _rankable(self) -> Iterator[tuple[int, NDArray[np.intp], NDArray[np.float32]]]:
        """(block start, rankable ids, their scores) block by block."""
        for start, values in self.scores.blocks():
            usable = self.eligible[start : start + values.size] & ~np.isnan(values)
            local = np.flatnonzero(usable)
            yield start, local + start, values[local]

    def _top(self, k: int) -> NDArray[np.intp]:
        rows: NDArray[np.intp] = np.empty(0, dtype=np.intp)
        keys: NDArray[np.float32] = np.empty(0, dtype=np.float32)
        for _, block_rows, values in self._rankable():
            rows, keys = best_by_key(
                np.concatenate([rows, block_rows]),
                np.concatenate([keys, -values]),
                np.concatenate([rows, block_rows]),
                k,
            )
        return rows

    def best(self) -> Iterator[int]:
        """Rows best first, the whole ranking if read to the end."""
        position = 0
        wanted = FIRST_BEST
        while position < self.size:
            if position >= self._best.size:
                self._best = self._top(min(self.size, wanted))
                self._best_position = {int(r): n for n, r in enumerate(self._best)}
                wanted *= 8
            while position < self._best.size:
                yield int(self._best[position])
                position += 1

    def window_around(self, threshold: float, reach: int) -> NDArray[np.intp]:
        """The ranking's rows from `reach` before the first row scored below `threshold` to `reach`
        after it."""
        above_rows: NDArray[np.intp] = np.empty(0, dtype=np.intp)
        above_keys: NDArray[np.float32] = np.empty(0, dtype=np.float32)
        below_rows: NDArray[np.intp] = np.empty(0, dtype=np.intp)
        below_keys: NDArray[np.float32] = np.empty(0, dtype=np.float32)
        if reach <= 0:
            return above_rows
        for _, rows, values in self._rankable():
            high = values >= threshold
            # The last `reach` of the rows at or above: lowest score first, then highest id.
            above_rows, above_keys = best_by_key(
                np.concatenate([above_rows, rows[high]]),
                np.concatenate([above_keys, values[high]]),
                -np.concatenate([above_rows, rows[high]]),
                reach,
            )
            below_rows, below_keys = best_by_key(
                np.concatenate([below_rows, rows[~high]]),
                np.concatenate([below_keys, -values[~high]]),
                np.concatenate([below_rows, rows[~high]]),
                reach,
            )
        return np.concatenate([above_rows[::-1], below_rows])

    def _bin_members(
        self, bins: set[int]
    ) -> dict[int, tuple[NDArray[np.intp], NDArray[np.float32]]]:
        """For each bin, its rows in ranking order with their scores."""
        wanted = np.array(sorted(bins), dtype=np.int64)
        row_parts: list[NDArray[np.intp]] = []
        value_parts: list[NDArray[np.float32]] = []
        for _, rows, values in self._rankable():
            inside = np.isin(score_bins(values), wanted)
            row_parts.append(rows[inside])
            value_parts.append(values[inside])
        rows = np.concatenate(row_parts) if row_parts else np.empty(0, np.intp)
        values = np.concatenate(value_parts) if value_parts else np.empty(0, np.float32)
        order = np.lexsort((rows, -values))
        rows, values = rows[order], values[order]
        # In ranking order a bin's rows are one run (bins follow the score): split at the changes,
        # not with a pass per bin, since a sample of positions can touch thousands of bins.
        value_bins = score_bins(values)
        changes = np.flatnonzero(np.diff(value_bins)) + 1
        members = {b: (np.empty(0, np.intp), np.empty(0, np.float32)) for b in bins}
        for run_rows, run_values, run_bins in zip(
            np.split(rows, changes), np.split(values, changes), np.split(value_bins, changes)
        ):
            if run_bins.size:
                members[int(run_bins[0])] = (run_rows, run_values)
        return members

    def rows_at(self, positions: NDArray[np.integer]) -> NDArray[np.intp]:
        positions = np.asarray(positions, dtype=np.int64).ravel()
        bins = np.searchsorted(-self._above, -positions, side="left")
        members = self._bin_members(set(bins.tolist()))
        return np.array(
            [
                members[int(b)][0][int(p - self._above[b])]
                for p, b in zip(positions, bins, strict=True)
            ],
            dtype=np.intp,
        )

    def positions_of(self, rows: list[int]) -> list[int]:
        positions: dict[int, int] = {
            r: self._best_position[r] for r in rows if r in self._best_position
        }
        rest = [r for r in rows if r not in positions]
        if rest:
            values = self.scores.values_of(np.array(rest))
            bins = score_bins(values)
            members = self._bin_members(set(bins.tolist()))
            for row, b in zip(rest, bins.tolist(), strict=True):
                in_bin = int(np.flatnonzero(members[b][0] == row)[0])
                positions[row] = int(self._above[b]) + in_bin
        return [positions[r] for r in rows]

    def scores_of(self, rows: NDArray[np.integer]) -> NDArray[np.float32]:
        return self.scores.values_of(rows)
