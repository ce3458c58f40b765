"""The estimators on hand-counted inputs: exact intervals, per-round draws, calibration, and what a
round records of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hnbooks.scoring.estimate import (
    RandomAnswers,
    calibration_bins,
    clopper_pearson,
    pool_estimates,
    prevalence_estimate,
    recall_estimate,
    weighted_share,
)
from hnbooks.scoring.job import RoundConfig, run_round
from hnbooks.store.records import NewAnswer
from hnbooks.store.reports import CalibrationBinReport, EstimateReport, RoundReport
from tests.selection.test_round import POSITIVE_IDS, build


def test_clopper_pearson_matches_known_values() -> None:
    # 0 of n: (0, 1 - (α/2)^(1/n)); n of n: ((α/2)^(1/n), 1); 5 of 10 at 95%: (0.187, 0.813).
    assert clopper_pearson(0, 10, 0.95) == pytest.approx((0.0, 1 - 0.025 ** (1 / 10)))
    assert clopper_pearson(2, 2, 0.9) == pytest.approx((0.05**0.5, 1.0))
    assert clopper_pearson(5, 10, 0.95) == pytest.approx((0.18709, 0.81291), abs=1e-5)
    assert clopper_pearson(0, 0) == (0.0, 1.0)


def test_a_weighted_share_with_equal_weights_is_the_exact_binomial_interval() -> None:
    values = np.array([True, False, False, False])
    share, low, high = weighted_share(values, np.full(4, 250.0), level=0.9)
    assert share == 0.25
    assert (low, high) == pytest.approx(clopper_pearson(1, 4, 0.9))
    # Unequal weights: fewer effective draws, a wider interval around the weighted share.
    share, low_w, high_w = weighted_share(values, np.array([400.0, 100.0, 100.0, 400.0]), 0.9)
    assert share == pytest.approx(0.4)
    assert high_w - low_w > high - low


def test_no_random_positive_gives_an_interval_open_above_never_zero_width() -> None:
    estimate = prevalence_estimate(
        np.zeros(2, dtype=bool),
        np.full(2, 0.001),
        known_positives=0,
        unlabelled_count=2000,
        pool_count=2000,
    )
    assert estimate.estimate == 0.0 and estimate.low == 0.0
    assert estimate.high is not None and estimate.high > 0.5  # two draws can't rule out much
    assert estimate.n == 2 and estimate.level == 0.9 and estimate.method


def test_found_so_far_from_two_negative_draws_is_wide() -> None:
    answers = RandomAnswers.from_current_pool(
        np.zeros(2, dtype=bool), np.full(2, 0.001), unlabelled_count=2000, known_positives=3
    )
    found = pool_estimates(
        answers, known_positives=3, pool_count=2010, unlabelled_count=2000
    ).found_so_far
    assert found.estimate == 1.0 and found.high == 1.0
    assert found.low is not None and 0 < found.low < 0.01


def test_two_positives_of_two_draws_give_a_wide_interval() -> None:
    answers = RandomAnswers.from_current_pool(
        np.ones(2, dtype=bool), np.full(2, 0.01), unlabelled_count=200, known_positives=4
    )
    estimates = pool_estimates(answers, known_positives=4, pool_count=210, unlabelled_count=200)
    total = estimates.total_positives
    # Every unlabelled item positive is the point estimate; the interval reaches far below it.
    assert total.estimate == pytest.approx(204)
    assert total.low == pytest.approx(4 + 200 * 0.05**0.5)
    found = estimates.found_so_far
    assert found.low is not None and found.high is not None
    assert found.low == pytest.approx(4 / 204) and found.high == pytest.approx(4 / total.low)
    assert total.high is not None and total.high - total.low > 0.75 * 200
    assert found.high > 4 * found.low


def test_pool_estimates_agree_with_a_hand_computed_draw() -> None:
    # 100 draws of 1,000 unlabelled items (π = 0.1), 10 positive; 5 positives already found.
    positive = np.arange(100) < 10
    answers = RandomAnswers.from_current_pool(
        positive, np.full(100, 0.1), unlabelled_count=1000, known_positives=5
    )
    estimates = pool_estimates(
        answers, known_positives=5, pool_count=1100, unlabelled_count=1000, known_negatives=95
    )
    low, high = clopper_pearson(10, 100)
    total = estimates.total_positives
    assert (total.estimate, total.low, total.high) == pytest.approx(
        (5 + 100, 5 + 1000 * low, 5 + 1000 * high)
    )
    assert estimates.prevalence.estimate == pytest.approx(105 / 1100)
    assert estimates.found_so_far.estimate == pytest.approx(5 / 105)
    assert estimates.found_so_far.low == pytest.approx(5 / (5 + 1000 * high))


def test_each_draw_speaks_for_the_pool_it_was_drawn_from() -> None:
    # Round 0 drew 2 of 1,000 items when 1 positive was known, and met a positive; round 1 drew
    # 2 of 900 after the top picks had found 40 more, and met none. Today 41 are known.
    answers = RandomAnswers(
        positive=np.array([True, False, False, False]),
        inclusion_probability=np.array([2 / 1000, 2 / 1000, 2 / 900, 2 / 900]),
        draw=np.array([0, 0, 1, 1]),
        draw_pool=np.array([1000.0, 1000, 900, 900]),
        known_outside=np.array([1.0, 1, 41, 41]),
    )
    estimates = pool_estimates(answers, known_positives=41, pool_count=1000, unlabelled_count=850)
    # Each round's own estimate of the total: 1 + 1000 · 1/2 and 41 + 900 · 0; their mean.
    assert estimates.total_positives.estimate == pytest.approx(((1 + 500) + 41) / 2)
    # Applying the round-0 positive to today's pool instead claims 41 + 850 · 500/1900 positives.
    today = RandomAnswers.from_current_pool(
        answers.positive, answers.inclusion_probability, unlabelled_count=850, known_positives=41
    )
    naive = pool_estimates(today, known_positives=41, pool_count=1000, unlabelled_count=850)
    assert naive.total_positives.estimate == pytest.approx(41 + 850 * 500 / 1900)


def test_the_upper_bound_never_falls_below_what_the_draws_could_miss() -> None:
    # The only draw foresaw at most ~30 positives, yet 50 were found since: the interval still
    # leaves room for positives no draw has looked at.
    answers = RandomAnswers(
        np.zeros(100, dtype=bool),
        np.full(100, 0.1),
        np.zeros(100, dtype=np.int64),
        np.full(100, 1000.0),
        np.zeros(100),
    )
    estimates = pool_estimates(answers, known_positives=50, pool_count=1000, unlabelled_count=800)
    found = estimates.found_so_far
    assert found.low is not None and found.high == 1.0
    assert found.low == pytest.approx(50 / (50 + 800 * clopper_pearson(0, 100)[1]))


def test_nothing_to_estimate_from() -> None:
    empty = RandomAnswers.from_current_pool(
        np.zeros(0, dtype=bool), np.zeros(0), unlabelled_count=10, known_positives=1
    )
    estimates = pool_estimates(empty, known_positives=1, pool_count=10, unlabelled_count=10)
    assert estimates.found_so_far.estimate is None and estimates.prevalence.estimate is None


def test_recall_intervals_at_small_counts() -> None:
    probability = np.full(2, 0.01)
    none_found = recall_estimate(np.ones(2, dtype=bool), probability, np.array([0.1, 0.2]), 0.5)
    assert none_found.estimate == 0.0 and none_found.low == 0.0
    assert none_found.high == pytest.approx(1 - 0.05**0.5)
    both = recall_estimate(np.ones(2, dtype=bool), probability, np.array([0.9, 0.7]), 0.5)
    assert (both.estimate, both.low, both.high) == pytest.approx((1.0, 0.05**0.5, 1.0))
    assert both.n == 2
    no_positive = recall_estimate(np.zeros(2, dtype=bool), probability, np.array([0.9, 0.1]), 0.5)
    assert no_positive.estimate is None


def test_calibration_bins_count_predicted_against_observed() -> None:
    scores = np.array([0.00001, 0.00005, 0.002, 0.004, 0.3, 1.0, np.nan])
    positive = np.array([False, False, False, True, True, True, True])
    bins = calibration_bins(scores, positive)
    assert [(b.low, b.high, b.count, b.positives) for b in bins] == [
        (0.0, 1e-4, 2, 0),
        (1e-3, 1e-2, 2, 1),
        (0.1, 0.5, 1, 1),
        (0.5, 1.0, 1, 1),  # the top edge belongs to the last bin
    ]
    assert bins[1].mean_predicted == pytest.approx(0.003)
    assert bins[1].observed == 0.5
    assert (bins[0].observed_low, bins[0].observed_high) == pytest.approx(clopper_pearson(0, 2))


def test_reports_keep_the_new_fields_and_read_older_ones() -> None:
    report = RoundReport(
        mode="model",
        label="BOOK",
        found_so_far=EstimateReport(0.5, 0.2, 0.9, 30, "exact", 0.9),
        eligible=1234,
        calibration=(CalibrationBinReport(0.0, 1e-4, 30, 0, 2e-5, 0.0, 0.1),),
    )
    assert RoundReport.from_json(report.to_json()) == report
    older = RoundReport.from_json(
        '{"mode": "model", "label": "BOOK", "prevalence": {"estimate": 0.01, "low": 0.0,'
        ' "high": 0.02, "n": 5}, "calibration": [{"low": "x"}, 3]}'
    )
    assert older.found_so_far is None and older.eligible is None and older.calibration == ()
    assert older.prevalence == EstimateReport(0.01, 0.0, 0.02, 5)
    assert EstimateReport(0.5, 0.25, 0.75).as_percent() == "50% (25–75)"
    assert EstimateReport(0.004, 0.0004, 0.03).as_percent() == "0.4% (0.04–3)"
    assert EstimateReport(None).as_percent() is None


def test_a_round_records_found_so_far_calibration_and_its_draw_pool(db_path: Path) -> None:
    store, ids, pool = build(db_path)
    for item_id in (1, 2, 3):
        store.record_answer(item_id, NewAnswer("ann", "accept"))
    for item_id in range(100, 110):
        store.record_answer(item_id, NewAnswer("ann", "reject"))
    config = RoundConfig(label="BOOK", batch_size=40, random_seed=1)
    first = run_round(store, pool, config)
    assert first.report.eligible == len(ids) - 13
    # No random answer yet: nothing to estimate the pool from.
    assert first.report.found_so_far is not None and first.report.found_so_far.estimate is None
    for entry in first.entries:
        verdict = "accept" if entry.item_id in POSITIVE_IDS else "reject"
        store.record_answer(
            entry.item_id,
            NewAnswer(
                "ann", verdict, batch_id=first.batch_id, strategy=entry.strategy, score=entry.score
            ),
        )
    second = run_round(store, pool, config).report
    found = second.found_so_far
    assert found is not None and found.n == 4 and found.level == 0.9
    assert found.low is not None and found.high is not None and found.estimate is not None
    assert 0 < found.low <= found.estimate <= found.high <= 1
    assert sum(b.count for b in second.calibration) == 4
    assert second.prevalence is not None and second.prevalence.method == found.method
    stored = store.rounds()[-1].report
    assert stored.found_so_far == found and stored.calibration == second.calibration


def test_the_scorer_summary_and_hnbooks_stats_show_found_so_far(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rich.console import Console

    from hnbooks import cli as hnbooks_cli
    from hnbooks.scoring import cli as scoring_cli
    from hnbooks.store.records import Round

    report = RoundReport(
        mode="model",
        label="BOOK",
        batch_id=2,
        found_so_far=EstimateReport(0.6, 0.1, 1.0, 40, "exact", 0.9),
    )
    wide = Console(width=200, record=True)
    monkeypatch.setattr(scoring_cli, "console", wide)
    scoring_cli.print_round(report, 20)
    assert "share of positives found so far │ 60% (10–100), 90% interval" in wide.export_text()

    wide = Console(width=200, record=True)
    wide.print(hnbooks_cli.rounds_table([Round(1, 0.0, 1.0, "BOOK", report)]))
    table = wide.export_text()
    assert "found so far" in table and "60% (10–100)" in table


def test_the_rounds_table_keeps_one_line_a_round_in_an_80_column_terminal() -> None:
    from rich.console import Console

    from hnbooks import cli as hnbooks_cli
    from hnbooks.store.records import Round
    from hnbooks.store.reports import BatchYieldReport

    interval = EstimateReport(0.0012, 0.0004, 0.003, 40, "exact", 0.9)
    report = RoundReport(
        mode="model",
        label="BOOK",
        pool=40_000_000,
        answers=1_200,
        positives=7,
        cv_average_precision=0.61,
        prevalence=EstimateReport(0.000213, 0.0000812, 0.000499, 40, "exact", 0.9),
        recall=interval,
        found_so_far=interval,
        last_batch=BatchYieldReport(3, {"top": 14}, {"top": 3, "uncertain": 1, "novel": 0}),
    )
    rounds = [Round(n, 0.0, 1.0, "BOOK", report) for n in (1, 2, 3)]

    narrow = Console(width=80, record=True)
    narrow.print(hnbooks_cli.rounds_table(rounds, narrow.width))
    text = narrow.export_text()
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert [line.split("│")[1].strip() for line in lines if line.startswith("│")] == ["1", "2", "3"]
    assert "8,513 [3,241-19,953]" in text and "…" not in text
    assert "wider terminal" in text

    wide = Console(width=160, record=True)
    wide.print(hnbooks_cli.rounds_table(rounds, wide.width))
    text = wide.export_text()
    assert "top 3, uncertain 1" in text and "novel 0" not in text
    assert "0.02% (0.008–0.05)" in text and "wider terminal" not in text
    assert len([line for line in text.splitlines() if line.startswith("│")]) == 3
