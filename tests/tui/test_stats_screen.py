"""The stats screen with the estimates a round records: found so far, the head's CV AP, positives
per 100 labels by strategy and the calibration table, at 80x24 and 120x40."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hnbooks.store.db import Store
from hnbooks.store.records import BatchEntry
from hnbooks.store.reports import (
    BatchYieldReport,
    CalibrationBinReport,
    EstimateReport,
    RoundReport,
)
from hnbooks.tui.stats import (
    StatsScreen,
    calibration_row,
    format_recall,
    positives_per_100,
)
from tests.tui.conftest import make_app, screen_text, settle

CALIBRATION = (
    CalibrationBinReport(0.0, 1e-4, 150, 0, 3e-5, 0.0, 0.02),
    CalibrationBinReport(0.01, 0.1, 6, 1, 0.04, 0.009, 0.58),
    CalibrationBinReport(0.5, 1.0, 2, 2, 0.8, 0.22, 1.0),
)


def model_report(number: int) -> RoundReport:
    return RoundReport(
        mode="model",
        label="BOOK",
        pool=50_000,
        answers=100 * number,
        positives=4 * number,
        cv_average_precision=0.2 + 0.2 * number,
        last_batch=BatchYieldReport(number, {"top": 30, "random": 10}, {"top": 6, "random": 1}),
        prevalence=EstimateReport(0.0002, 0.0001, 0.0004, 50, "exact", 0.9),
        recall=EstimateReport(0.5, 0.2, 0.8, 3, "exact", 0.9),
        found_so_far=EstimateReport(0.3 * number, 0.05 * number, 1.0, 50, "exact", 0.9),
        eligible=5000,
        calibration=CALIBRATION if number == 2 else (),
    )


@pytest.fixture
def rounds_db(db_path: Path, store: Store, item_ids: list[int]) -> Path:
    store.record_round(RoundReport(mode="seed", label="BOOK"))
    for number in (1, 2):
        store.publish_batch(
            [BatchEntry(item_ids[number], "top", 0.9, 1)],
            source="score",
            round_report=model_report(number),
        )
    return db_path


def shown_at(db_path: Path, size: tuple[int, int]) -> tuple[str, bool]:
    """What the stats screen shows at `size`, and whether the per-strategy chart is displayed."""
    result: list[tuple[str, bool]] = []

    async def scenario() -> None:
        app = make_app(db_path)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await pilot.press("s")
            await settle(pilot)
            assert isinstance(app.screen, StatsScreen)
            result.append((screen_text(app), app.screen.query_one("#yield-chart").display))

    asyncio.run(scenario())
    return result[0]


def test_the_newest_estimates_and_calibration_fit_80x24(rounds_db: Path) -> None:
    shown, yield_chart = shown_at(rounds_db, (80, 24))
    lines = shown.splitlines()
    assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
    # Every figure of the newest round, none cut at 80 columns.
    # 50,000 items at 1/5k (1/10k-1/2.5k) hold 10 (5-20) positives; 8 are found.
    assert "found so far 60% (10–100) · CV AP 0.60 · left to find 2 (0–12) · 90% intervals" in shown
    assert "recall 50% (20–80) · prevalence 1/5k (2.5k–10k)" in shown
    assert "3 rounds · 0 answers (0 yours) · session 0 answered, 0 positive" in shown
    assert "60% (10–100)" in shown and "30% (5–100)" in shown  # per round, in the table
    table_rows = [line for line in lines if line.startswith((" 2  model", " 3  model"))]
    assert len(table_rows) == 2 and all(row.endswith("1/5k (2.5k–10k)") for row in table_rows)
    assert "calibration (round 3)" in shown
    assert "1–10       6    1      4%  17% (0.9–58)" in shown
    assert "per round" in shown
    # Too narrow for the per-strategy chart: the table's column holds its figures.
    assert "top 20 random 10" in shown
    assert not yield_chart


def test_every_chart_shows_at_120x40(rounds_db: Path) -> None:
    shown, yield_chart = shown_at(rounds_db, (120, 40))
    assert yield_chart
    assert "positives per 100 labels" in shown
    assert "CV AP" in shown and "found so far" in shown and "recall" in shown
    assert "0.60" in shown and "0.40" in shown  # CV AP per round
    assert "random answers by serving score" in shown


def test_older_reports_show_dashes(db_path: Path, store: Store, item_ids: list[int]) -> None:
    store.record_round(
        RoundReport.from_json(
            '{"mode": "model", "label": "BOOK", "answers": 40, "positives": 2,'
            ' "prevalence": {"estimate": 0.001, "low": 0.0, "high": 0.003, "n": 20}}'
        )
    )
    shown, _ = shown_at(db_path, (120, 40))
    assert "found so far – · CV AP –" in shown
    assert "recall – · prevalence 1/1k" in shown
    assert "calibration: no scored random answer yet" in shown


def test_no_model_round_yet(db_path: Path, store: Store) -> None:
    store.record_round(RoundReport(mode="seed", label="BOOK"))
    shown, _ = shown_at(db_path, (80, 24))
    assert "no model round yet" in shown


def test_the_helpers_format_rates_and_bins() -> None:
    report = model_report(1)
    assert positives_per_100(report) == {"top": 20.0, "random": 10.0}
    assert positives_per_100(RoundReport(mode="seed", label="BOOK")) == {}
    no_answers = RoundReport(
        mode="model", label="BOOK", last_batch=BatchYieldReport(1, {"top": 0}, {})
    )
    assert positives_per_100(no_answers) == {}
    assert format_recall(EstimateReport(0.3, 0.05, 1.0)) == "30% (5–100)"
    assert format_recall(EstimateReport()) == "–"
    assert calibration_row(CALIBRATION[0]) == ("0–0.01", "150", "0", "0.003%", "0% (0–2)")
    assert calibration_row(CalibrationBinReport(0.1, 0.5, 0)) == ("10–50", "0", "0", "–", "–")
