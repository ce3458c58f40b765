"""The `s` stats screen: per scorer round, how many positives each strategy found per 100 labels,
the head's cross-validated AP, the estimated share of positives found so far, prevalence and recall
(each with its interval), and how well the head's scores matched the random answers.

Each round's `RoundReport` may lack an estimate (a seed round has none, older reports lack found so
far and calibration); absent values show as "–". Prevalence is shown as "1 in N" (about 1/5000 for
books), shares as percentages.

Narrower than 110 columns (an 80×24 terminal) the per-strategy chart is left out, since the table's
"pos. per 100 labels" column holds the same figures, and so are the table's CV AP and recall
columns, which the per-round chart draws (the newest round's values are on the estimates line):
every figure shown fits, none is cut.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Static
from textual_plotext import PlotextPlot

from hnbooks.store.db import StoreError
from hnbooks.store.records import Round
from hnbooks.store.reports import CalibrationBinReport, EstimateReport, RoundReport, percent
from hnbooks.tui.base import SessionScreen
from hnbooks.tui.context import AnnotationSession
from hnbooks.tui.messages import StatsFailed, StatsLoaded
from hnbooks.tui.render import one_line

WIDE_COLUMNS = (
    "#",
    "mode",
    "answers",
    "pos.",
    "found so far",
    "CV AP",
    "pos. per 100 labels",
    "prevalence",
    "recall",
)
NARROW_COLUMNS = tuple(column for column in WIDE_COLUMNS if column not in ("CV AP", "recall"))
WIDE_FROM = 110
"""Columns from which the screen is wide: every chart and every table column."""

STRATEGY_COLORS = {
    "top": "cyan",
    "uncertain": "yellow",
    "novel": "magenta",
    "random": "green",
    "query": "bright_blue",
    "seed": "blue",
}


def positives_per_strategy(report: RoundReport) -> dict[str, int]:
    """Positives among the answers to the batch before this round, by the strategy that served
    them."""
    return dict(report.last_batch.positives) if report.last_batch is not None else {}


def positives_per_100(report: RoundReport) -> dict[str, float]:
    """Positives per 100 answers to the batch before this round, by strategy (answered ones
    only)."""
    if report.last_batch is None:
        return {}
    answered, positives = report.last_batch.answered, report.last_batch.positives
    return {
        strategy: 100 * positives.get(strategy, 0) / count
        for strategy, count in answered.items()
        if count > 0
    }


def format_prevalence(prevalence: EstimateReport | None) -> str:
    """A rare class reads best as "1 in N": '1/5000 (1/10000–1/2500)', or '–' when absent."""
    if prevalence is None or prevalence.estimate is None:
        return "–"
    if prevalence.estimate <= 0:
        return "0"
    shown = f"1/{compact(1 / prevalence.estimate)}"
    interval = prevalence.interval
    if interval and interval[0] > 0 and interval[1] > 0:
        return f"{shown} ({compact(1 / interval[1])}–{compact(1 / interval[0])})"
    return shown


def compact(number: float) -> str:
    """2500 → '2.5k', 1200000 → '1.2M', 12 → '12'."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if number >= size:
            return (
                f"{number / size:.2g}{suffix}"
                if number < 10 * size
                else f"{number / size:.0f}{suffix}"
            )
    return f"{number:.0f}"


def format_count(count: EstimateReport) -> str:
    """An estimated count with its interval: '7 (2–17)'."""
    shown = f"{count.estimate:,.0f}"
    if count.low is not None and count.high is not None:
        return f"{shown} ({count.low:,.0f}–{count.high:,.0f})"
    return shown


def format_recall(recall: EstimateReport | None) -> str:
    """'40% (20–70)', or '–' when the report has no such estimate (recall, found so far)."""
    if recall is None:
        return "–"
    return recall.as_percent() or "–"


def format_counts(counts: dict[str, float]) -> str:
    """'top 30 random 10': the strategies in the scorer's order, then any others by name."""
    order = {strategy: position for position, strategy in enumerate(STRATEGY_COLORS)}
    ranked = sorted(counts.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))
    return " ".join(f"{strategy} {count:.0f}" for strategy, count in ranked) or "–"


def format_score(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def latest_estimates(rounds: tuple[Round, ...]) -> Text:
    """The newest round's estimates on two lines (each fits 80 columns), with the intervals'
    level."""
    line = Text(no_wrap=True, overflow="ellipsis")
    for round_ in reversed(rounds):
        report = round_.report
        if report.mode != "model":
            continue
        found = report.found_so_far
        level = next(
            (e.level for e in (found, report.prevalence, report.recall) if e and e.level), None
        )
        line.append("found so far ", "bold")
        line.append(format_recall(found), "bold cyan")
        line.append(f" · CV AP {format_score(report.cv_average_precision)}")
        left = report.positives_left()
        if left is not None and left.estimate is not None:
            line.append(f" · left to find {format_count(left)}")
        if level is not None:
            line.append(f" · {100 * level:.0f}% intervals", "dim")
        line.append(f"\nrecall {format_recall(report.recall)}")
        line.append(f" · prevalence {format_prevalence(report.prevalence)}")
        return line
    line.append("no model round yet: estimates come once a positive is answered", "dim")
    return line


def calibration_table(rounds: tuple[Round, ...]) -> Table | Text:
    """The newest recorded calibration: per score bin, random answers, positives, mean score and
    the observed positive rate with its interval."""
    for number in range(len(rounds), 0, -1):
        bins = rounds[number - 1].report.calibration
        if bins:
            break
    else:
        return Text("calibration: no scored random answer yet", style="dim")
    table = Table(
        title=f"calibration (round {number})",
        caption="random answers by serving score",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    table.add_column("score %", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    table.add_column("pos", justify="right", no_wrap=True)
    table.add_column("mean", justify="right", no_wrap=True)
    table.add_column("observed", no_wrap=True)
    for calibration_bin in bins:
        table.add_row(*calibration_row(calibration_bin))
    return table


def calibration_row(calibration_bin: CalibrationBinReport) -> tuple[str, str, str, str, str]:
    mean = calibration_bin.mean_predicted
    observed = calibration_bin.observed
    shown = "–" if observed is None else f"{percent(observed)}%"
    if calibration_bin.observed_low is not None and calibration_bin.observed_high is not None:
        shown += (
            f" ({percent(calibration_bin.observed_low)}–{percent(calibration_bin.observed_high)})"
        )
    return (
        f"{percent(calibration_bin.low)}–{percent(calibration_bin.high)}",
        str(calibration_bin.count),
        str(calibration_bin.positives),
        "–" if mean is None else f"{percent(mean)}%",
        shown,
    )


def round_ticks(plt: Any, numbers: list[int]) -> None:
    """One tick per round while they fit; plotext's own ticks beyond that."""
    if len(numbers) <= 12:
        plt.xticks(numbers)


class StatsScreen(SessionScreen):
    """How the rounds went."""

    BINDINGS = [
        Binding("escape,s", "close", "Back", id="stats-back"),
        Binding("q", "close", "Back", id="stats-back-q", show=False),
        Binding("g", "reload", "Reload", id="stats-reload"),
    ]
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (WIDE_FROM, "-wide")]
    DEFAULT_CSS = """
    StatsScreen #stats-latest {
        height: auto;
        max-height: 2;
        padding: 0 1;
    }
    StatsScreen #calibration {
        width: 46;
        padding: 0 1;
    }
    StatsScreen.-narrow #yield-chart {
        display: none;
    }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="stats-summary")
        yield Static(id="stats-latest")
        yield DataTable(id="rounds", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="charts"):
            yield PlotextPlot(id="estimates-chart")
            yield PlotextPlot(id="yield-chart")
            yield Static(id="calibration")
        yield Footer()

    def __init__(self, session: AnnotationSession) -> None:
        super().__init__(session)
        self.rounds_shown: tuple[Round, ...] = ()
        self.columns_shown: tuple[str, ...] = ()

    def on_mount(self) -> None:
        self.query_one("#stats-summary", Static).update("loading…")
        self.load_stats()

    def on_resize(self) -> None:
        if self.columns_shown and self.columns_shown != self.columns_for_width():
            self.fill_table(self.rounds_shown)

    def columns_for_width(self) -> tuple[str, ...]:
        return WIDE_COLUMNS if self.size.width >= WIDE_FROM else NARROW_COLUMNS

    def action_reload(self) -> None:
        self.load_stats()

    def action_close(self) -> None:
        self.dismiss()

    @work(thread=True, exclusive=True, group="stats", exit_on_error=False)
    def load_stats(self) -> None:
        session = self.session
        try:
            rounds = session.store.rounds()
            mine = session.store.answer_count(session.annotator)
            everyone = session.store.answer_count()
        except StoreError as error:
            self.post_message(StatsFailed(str(error)))
            return
        self.post_message(StatsLoaded(tuple(rounds), mine, everyone))

    @on(StatsFailed)
    def show_failure(self, event: StatsFailed) -> None:
        self.query_one("#stats-summary", Static).update(Text(event.error, style="bold red"))

    def worker_failed(self, group: str, error: str) -> None:
        if group == "stats":
            self.query_one("#stats-summary", Static).update(Text(error, style="bold red"))

    @on(StatsLoaded)
    def show_stats(self, event: StatsLoaded) -> None:
        session = self.session
        summary = Text(no_wrap=True, overflow="ellipsis")
        summary.append(f"{len(event.rounds)} rounds", "bold")
        summary.append(f" · {event.all_answers:,} answers ({event.my_answers:,} yours)")
        summary.append(
            f" · session {session.tally.answers:,} answered, {session.tally.positives:,} positive"
        )
        self.query_one("#stats-summary", Static).update(summary)
        self.query_one("#stats-latest", Static).update(latest_estimates(event.rounds))
        self.fill_table(event.rounds)
        self.plot_estimates(event.rounds)
        self.plot_yield(event.rounds)
        self.query_one("#calibration", Static).update(calibration_table(event.rounds))

    def fill_table(self, rounds: tuple[Round, ...]) -> None:
        """One row per round, with the columns that fit the screen's width."""
        self.rounds_shown = rounds
        self.columns_shown = self.columns_for_width()
        table = self.query_one("#rounds", DataTable)
        table.clear(columns=True)
        for column in self.columns_shown:
            table.add_column(column, key=column)
        for number, round_ in enumerate(rounds, start=1):
            report = round_.report
            cells = {
                "#": str(number),
                "mode": report.mode[:10],
                "answers": f"{report.answers:,}",
                "pos.": f"{report.positives:,}",
                "found so far": format_recall(report.found_so_far),
                "CV AP": format_score(report.cv_average_precision),
                "pos. per 100 labels": one_line(format_counts(positives_per_100(report)), 24),
                "prevalence": format_prevalence(report.prevalence),
                "recall": format_recall(report.recall),
            }
            table.add_row(*(cells[column] for column in self.columns_shown), key=str(round_.id))
        if rounds:
            # The newest rounds matter most: keep them in view when the table scrolls.
            table.move_cursor(row=len(rounds) - 1)

    def plot_estimates(self, rounds: tuple[Round, ...]) -> None:
        """Per round: found so far with its interval (dotted), the head's CV AP (its train curve)
        and its recall, all shares on one 0–1 axis."""
        plot = self.query_one("#estimates-chart", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        numbers = list(range(1, len(rounds) + 1))
        found = [(n, r.report.found_so_far) for n, r in zip(numbers, rounds, strict=True)]
        found_points = [(n, e) for n, e in found if e is not None and e.estimate is not None]
        drawn = False
        if found_points:
            xs = [n for n, _ in found_points]
            for bound in (0, 1):
                ys = [(e.interval or (e.estimate, e.estimate))[bound] for _, e in found_points]
                plt.plot(xs, ys, marker="dot", color="gray")
            estimates = [e.estimate for _, e in found_points]
            plt.plot(xs, estimates, marker="braille", color="cyan", label="found so far")
            plt.scatter(xs, estimates, marker="●", color="cyan")
            drawn = True
        for name, color, values in (
            ("CV AP", "green", [r.report.cv_average_precision for r in rounds]),
            (
                "recall",
                "magenta",
                [r.report.recall.estimate if r.report.recall else None for r in rounds],
            ),
        ):
            points = [(n, v) for n, v in zip(numbers, values, strict=True) if v is not None]
            if points:
                plt.plot(
                    [n for n, _ in points],
                    [v for _, v in points],
                    marker="braille",
                    color=color,
                    label=name,
                )
                drawn = True
        if drawn:
            plt.title("per round")
            plt.ylim(0, 1)
            round_ticks(plt, numbers)
        else:
            plt.title("found so far, CV AP, recall: none yet")
        plt.xlabel("round")
        plot.refresh()

    def plot_yield(self, rounds: tuple[Round, ...]) -> None:
        """Positives per 100 labels of each strategy, per round: which strategy is finding them."""
        plot = self.query_one("#yield-chart", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        numbers = list(range(1, len(rounds) + 1))
        per_round = [positives_per_100(r.report) for r in rounds]
        strategies = sorted({strategy for rates in per_round for strategy in rates})
        if strategies:
            plt.title("positives per 100 labels")
            for strategy in strategies:
                points = [
                    (n, rates[strategy])
                    for n, rates in zip(numbers, per_round, strict=True)
                    if strategy in rates
                ]
                plt.plot(
                    [n for n, _ in points],
                    [v for _, v in points],
                    marker="braille",
                    color=STRATEGY_COLORS.get(strategy, "white"),
                    label=strategy,
                )
            plt.ylim(0, max(max(rates.values(), default=0) for rates in per_round) or 1)
            round_ticks(plt, numbers)
        else:
            plt.title("positives per 100 labels: none yet")
        plt.xlabel("round")
        plot.refresh()
