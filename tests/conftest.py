"""Shared fixtures. Tests never touch the network: the hub is switched off for every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

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
