"""The `s` stats screen: per scorer round, answers and positives per strategy, estimated prevalence and
recall, as a table and terminal charts (textual-plotext).

Round reports are the scorer's JSON; any key may be missing (a seed round has no estimates), so every
value is read through `report_number` / `report_interval` and shown as "–" when absent.
Prevalence is shown as "1 in N" (about 1/5000 for books), recall as a percentage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual_plotext import PlotextPlot

from hnbooks.store.db import StoreError
from hnbooks.store.records import Round
from hnbooks.tui.app import AnnotateApp
from hnbooks.tui.render import one_line

ESTIMATE_KEYS = ("estimate", "value", "point", "mean")
INTERVAL_KEYS = (("low", "high"), ("lo", "hi"), ("lower", "upper"))


def report_number(value: Any) -> float | None:
    """A number from a report value: a plain number, or an {"estimate": ...}-style dict."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        for key in ESTIMATE_KEYS:
            if key in value:
                return report_number(value[key])
    return None


def report_interval(value: Any) -> tuple[float, float] | None:
    if not isinstance(value, dict):
        return None
    for low_key, high_key in INTERVAL_KEYS:
        low, high = report_number(value.get(low_key)), report_number(value.get(high_key))
        if low is not None and high is not None:
            return low, high
    interval = value.get("interval") or value.get("ci")
    if isinstance(interval, list | tuple) and len(interval) == 2:
        low, high = report_number(interval[0]), report_number(interval[1])
        if low is not None and high is not None:
            return low, high
    return None


def per_strategy(report: dict[str, Any], key: str) -> dict[str, float]:
    """{strategy: number} from a report's `key` (e.g. positives_per_strategy), numbers only."""
    raw = report.get(key)
    if not isinstance(raw, dict):
        return {}
    found = {}
    for strategy, value in raw.items():
        number = report_number(value)
        if number is not None:
            found[str(strategy)] = number
    return found


def format_prevalence(value: Any) -> str:
    """A rare class reads best as "1 in N": '1/5000 (1/10000–1/2500)', or '–' when absent."""
    number = report_number(value)
    if number is None:
        return "–"
    if number <= 0:
        return "0"
    interval = report_interval(value)
    shown = f"1/{compact(1 / number)}"
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


def format_recall(value: Any) -> str:
    """'40% (20–70)', or '–' when the report has no recall estimate."""
    number = report_number(value)
    if number is None:
        return "–"
    interval = report_interval(value)
    shown = f"{100 * number:.0f}%"
    return f"{shown} ({100 * interval[0]:.0f}–{100 * interval[1]:.0f})" if interval else shown


def format_counts(counts: dict[str, float]) -> str:
    return " ".join(f"{strategy} {count:g}" for strategy, count in sorted(counts.items())) or "–"


@dataclass
class StatsLoaded(Message, bubble=False):
    rounds: tuple[Round, ...]
    my_answers: int
    all_answers: int


@dataclass
class StatsFailed(Message, bubble=False):
    error: str


class StatsScreen(Screen[None]):
    """How the rounds went."""

    BINDINGS = [
        Binding("escape,s", "close", "Back", id="stats-back"),
        Binding("g", "reload", "Reload", id="stats-reload"),
    ]

    @property
    def annotate_app(self) -> AnnotateApp:
        assert isinstance(self.app, AnnotateApp)
        return self.app

    def compose(self) -> ComposeResult:
        yield Static(id="stats-summary")
        yield DataTable(id="rounds", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="charts"):
            yield PlotextPlot(id="positives-chart")
            yield PlotextPlot(id="estimates-chart")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#rounds", DataTable)
        for column in ("#", "mode", "answers", "pos.", "pos. per strategy", "prevalence", "recall"):
            table.add_column(column, key=column)
        self.query_one("#stats-summary", Static).update("loading…")
        self.load_stats()

    def action_reload(self) -> None:
        self.load_stats()

    def action_close(self) -> None:
        self.dismiss()

    @work(thread=True, exclusive=True, group="stats", exit_on_error=False)
    def load_stats(self) -> None:
        app = self.annotate_app
        try:
            rounds = app.store.rounds()
            mine = app.store.answer_count(app.annotator)
            everyone = app.store.answer_count()
        except StoreError as error:
            self.post_message(StatsFailed(str(error)))
            return
        self.post_message(StatsLoaded(tuple(rounds), mine, everyone))

    @on(StatsFailed)
    def show_failure(self, event: StatsFailed) -> None:
        self.query_one("#stats-summary", Static).update(Text(event.error, style="bold red"))

    @on(StatsLoaded)
    def show_stats(self, event: StatsLoaded) -> None:
        app = self.annotate_app
        summary = Text(no_wrap=True, overflow="ellipsis")
        summary.append(f"{len(event.rounds)} rounds", "bold")
        summary.append(f" · {event.all_answers} answers in force ({event.my_answers} yours)")
        summary.append(
            f" · this session {app.tally.answers} answered, {app.tally.positives} positive"
        )
        self.query_one("#stats-summary", Static).update(summary)

        table = self.query_one("#rounds", DataTable)
        table.clear()
        for number, round_ in enumerate(event.rounds, start=1):
            report = round_.report
            answers, positives = (
                report_number(report.get("answers")),
                report_number(report.get("positives")),
            )
            table.add_row(
                str(number),
                str(report.get("mode", "–"))[:10],
                "–" if answers is None else f"{answers:g}",
                "–" if positives is None else f"{positives:g}",
                one_line(format_counts(per_strategy(report, "positives_per_strategy")), 20),
                format_prevalence(report.get("prevalence")),
                format_recall(report.get("recall")),
                key=str(round_.id),
            )
        self.plot_positives(event.rounds)
        self.plot_estimates(event.rounds)

    def plot_positives(self, rounds: tuple[Round, ...]) -> None:
        """Positives found per round, stacked by the strategy that served them."""
        plot = self.query_one("#positives-chart", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        numbers = list(range(1, len(rounds) + 1))
        strategies = sorted(
            {s for r in rounds for s in per_strategy(r.report, "positives_per_strategy")}
        )
        if strategies:
            plt.title("positives per strategy")
            counts = [
                [
                    per_strategy(r.report, "positives_per_strategy").get(strategy, 0.0)
                    for r in rounds
                ]
                for strategy in strategies
            ]
            plt.stacked_bar(numbers, counts, labels=strategies)
        else:
            plt.title("positives per strategy: none yet")
        plt.xlabel("round")
        plot.refresh()

    def plot_estimates(self, rounds: tuple[Round, ...]) -> None:
        """Recall per round with its interval (prevalence, ~1/5000, would be a flat line on the same
        axis: it is in the table)."""
        plot = self.query_one("#estimates-chart", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        numbers, estimates, lows, highs = [], [], [], []
        for number, round_ in enumerate(rounds, start=1):
            recall = round_.report.get("recall")
            estimate = report_number(recall)
            if estimate is None:
                continue
            low, high = report_interval(recall) or (estimate, estimate)
            numbers.append(number)
            estimates.append(estimate)
            lows.append(low)
            highs.append(high)
        if numbers:
            plt.title("estimated recall (interval dotted)")
            plt.plot(numbers, highs, marker="dot", color="gray")
            plt.plot(numbers, lows, marker="dot", color="gray")
            plt.plot(numbers, estimates, marker="braille", color="cyan")
            plt.scatter(numbers, estimates, marker="●", color="cyan")
            plt.ylim(0, 1)
            plt.xticks(numbers)
        else:
            plt.title("estimated recall: none yet")
        plt.xlabel("round")
        plot.refresh()
