"""Fixtures of the reliability suite, and a summary of what each test tried and lost.

Every test reports, through the `ledger` fixture, how many operations it tried (answers, kills,
imports, writes) and how many were lost; the counts are printed at the end of the run, so a run's
log states what it proved ("kill -9 while annotating: 214 answers over 20 kills, 0 lost").
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

SEED = int(os.environ.get("HNBOOKS_RELIABILITY_SEED", "0")) or random.SystemRandom().randrange(
    1, 2**31
)


@dataclass
class LedgerLine:
    test: str
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, what: str, count: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + count


LEDGER: list[LedgerLine] = []


@pytest.fixture
def ledger(request: pytest.FixtureRequest) -> Iterator[LedgerLine]:
    """Counts this test tried and lost, printed in the run's summary."""
    line = LedgerLine(request.node.nodeid.split("::", 1)[-1])
    yield line
    LEDGER.append(line)


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """A seeded random source; the run's seed is printed in the summary (HNBOOKS_RELIABILITY_SEED
    reruns it)."""
    return random.Random(SEED + sum(map(ord, request.node.nodeid)))


@pytest.fixture
def slow(request: pytest.FixtureRequest) -> bool:
    """True in a `--slow` run: tests then run their long variants."""
    return bool(request.config.getoption("--slow"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not LEDGER:
        return
    terminalreporter.section("reliability: tried and lost")
    for line in LEDGER:
        counts = ", ".join(f"{what} {count}" for what, count in line.counts.items())
        terminalreporter.write_line(f"{line.test}: {counts}")
    terminalreporter.write_line(f"(seed {SEED}; rerun with HNBOOKS_RELIABILITY_SEED={SEED})")
