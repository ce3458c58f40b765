"""Shared fixtures. Tests never touch the network: the hub is switched off for every test."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The reliability suite's seed: set here, in the main process before any test worker starts, so
# the workers inherit one seed and the summary prints the one they used.
os.environ.setdefault("HNBOOKS_RELIABILITY_SEED", str(random.SystemRandom().randrange(1, 2**31)))

LEDGER_PROPERTY = "hnbooks-ledger"
"""The user property under which a reliability test reports what it tried and lost."""
LEDGER: list[tuple[str, dict[str, int]]] = []

REPO_ROOT = Path(__file__).resolve().parents[1]
BOOKFINDER_DIR = Path(
    os.environ.get("HNBOOKS_BOOKFINDER", REPO_ROOT.parent / "shared" / "data" / "bookfinder")
)
DEMO_FILE = REPO_ROOT / "hnbooks" / "demo" / "hn_comments.jsonl"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", help="run the long variants too")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    skip_slow = pytest.mark.skip(reason="long variant: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "hnbooks.db"


@pytest.fixture
def bookfinder_files() -> list[Path]:
    files = sorted(BOOKFINDER_DIR.glob("*.jsonl"))
    if not files:
        pytest.skip(f"bookfinder data not found in {BOOKFINDER_DIR}")
    return files


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        LEDGER.extend(value for name, value in report.user_properties if name == LEDGER_PROPERTY)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not LEDGER:
        return
    terminalreporter.section("reliability: tried and lost")
    for test, counts in sorted(LEDGER):
        listed = ", ".join(f"{what} {count}" for what, count in counts.items())
        terminalreporter.write_line(f"{test}: {listed}")
    seed = os.environ["HNBOOKS_RELIABILITY_SEED"]
    terminalreporter.write_line(f"(seed {seed}; rerun with HNBOOKS_RELIABILITY_SEED={seed})")
