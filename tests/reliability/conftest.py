"""Fixtures of the reliability suite, and a summary of what each test tried and lost.

Every test reports, through the `ledger` fixture, how many operations it tried (answers, kills,
imports, writes) and how many were lost; the counts are printed at the end of the run
(`tests/conftest.py`, which sees every worker's reports), so a run's log states what it proved
("kill -9 while annotating: 214 answers over 20 kills, 0 lost").
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.conftest import LEDGER_PROPERTY

# Drawn once per run by tests/conftest.py, before any worker starts, so every worker shares it.
SEED = int(os.environ["HNBOOKS_RELIABILITY_SEED"])


@dataclass
class LedgerLine:
    test: str
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, what: str, count: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + count


@pytest.fixture
def ledger(request: pytest.FixtureRequest) -> Iterator[LedgerLine]:
    """Counts this test tried and lost, printed in the run's summary. They travel in the test's
    report (its user properties), which pytest-xdist carries from a worker to the main process."""
    line = LedgerLine(request.node.nodeid.split("::", 1)[-1])
    yield line
    request.node.user_properties.append((LEDGER_PROPERTY, (line.test, line.counts)))


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """A seeded random source; the run's seed is printed in the summary (HNBOOKS_RELIABILITY_SEED
    reruns it)."""
    return random.Random(SEED + sum(map(ord, request.node.nodeid)))


@pytest.fixture
def slow(request: pytest.FixtureRequest) -> bool:
    """True in a `--slow` run: tests then run their long variants."""
    return bool(request.config.getoption("--slow"))
