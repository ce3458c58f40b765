"""The `s` stats screen: per scorer round, answers and positives per strategy, estimated prevalence and
recall, as a table and terminal charts (textual-plotext).

Each round's `RoundReport` may lack an estimate (a seed round has none); absent values show as "–".
Prevalence is shown as "1 in N" (about 1/5000 for books), recall as a percentage.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Static
from textual_plotext import PlotextPlot

from hnbooks.store.db import StoreError
from hnbooks.store.records import Round
from hnbooks.store.reports import EstimateReport, RoundReport
from hnbooks.tui.base import SessionScreen
from hnbooks.tui.messages import StatsFailed, StatsLoaded
from hnbooks.tui.render import one_line


def positives_per_strategy(report: RoundReport) -> dict[str, int]:
    """Positives among the answers to the batch before this round, by the strategy that served them."""
    return dict(report.last_batch.positives) if report.last_batch is not None else {}


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


def format_recall(recall: EstimateReport | None) -> str:
    """'40% (20–70)', or '–' when the report has no recall estimate."""
    if recall is None or recall.estimate is None:
        return "–"
    shown = f"{100 * recall.estimate:.0f}%"
    interval = recall.interval
    return f"{shown} ({100 * interval[0]:.0f}–{100 * interval[1]:.0f})" if interval else shown


def format_counts(counts: dict[str, int]) -> str:
    return " ".join(f"{strategy} {count:g}" for strategy, count in sorted(counts.items())) or "–"


class StatsScreen(SessionScreen):
    """How the rounds went."""

    BINDINGS = [
        Binding("escape,s", "close", "Back", id="stats-back"),
        Binding("g", "reload", "Reload", id="stats-reload"),
    ]

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
        summary.append(f" · {event.all_answers} answers in force ({event.my_answers} yours)")
        summary.append(
            f" · this session {session.tally.answers} answered, {session.tally.positives} positive"
        )
        self.query_one("#stats-summary", Static).update(summary)

        table = self.query_one("#rounds", DataTable)
        table.clear()
        for number, round_ in enumerate(event.rounds, start=1):
            report = round_.report
            table.add_row(
                str(number),
                report.mode[:10],
                str(report.answers),
                str(report.positives),
                one_line(format_counts(positives_per_strategy(report)), 20),
                format_prevalence(report.prevalence),
                format_recall(report.recall),
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
        per_round = [positives_per_strategy(r.report) for r in rounds]
        strategies = sorted({strategy for counts in per_round for strategy in counts})
        if strategies:
            plt.title("positives per strategy")
            counts = [[float(c.get(strategy, 0)) for c in per_round] for strategy in strategies]
            # plotext reads `labels` (its type stub says `label`).
            plt.stacked_bar(numbers, counts, labels=strategies)  # type: ignore[call-arg]
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
        numbers: list[float] = []
        estimates: list[float] = []
        lows: list[float] = []
        highs: list[float] = []
        for number, round_ in enumerate(rounds, start=1):
            recall = round_.report.recall
            if recall is None or recall.estimate is None:
                continue
            estimate = recall.estimate
            low, high = recall.interval or (estimate, estimate)
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
