"""Discovery benchmark: how many rare positives each strategy finds per 100 labels, side by side.

Runs `hnbooks.lab.simulate` (the scorer's own head and selection, an oracle answering from gold
labels) on the standard suite and prints one table: rows are tasks, columns strategies, each cell the
new positives per 100 labels with its ratio to analytic random labelling and to `stream-ema` (a
re-creation of Prodigy's prefer_uncertain). Discovery curves are drawn as a terminal chart.

Tasks (every one a one-vs-rest problem made rare by dropping positives from the pool):
  20ng-4     20 Newsgroups, 4 texts kept of the positive group (~1 in 3,600), 1 seed
  20ng-18    20 Newsgroups, 18 kept (~0.13%), 2 seeds
  r52        Reuters R52 topics with 10-95 texts, all kept, 1 seed
  disjunct   20 Newsgroups, 5 texts kept from each of 4 groups, all positive, 1 seed
  bookfinder the shared Hacker News answers, 10 BOOK texts kept among the others, 1 seed

    python bench/discovery.py                          # the suite, ~5 min on 2 cores (cached embeddings)
    python bench/discovery.py --jobs 1                 # the same figures in one process
    python bench/discovery.py --quick                  # a smoke run
    python bench/discovery.py --groups 20 --topics 16 --quads 12 --bookfinder-runs 20 \
        --repeats 2 --write-doc docs/discovery.md      # the published tables (~38 min)
"""

from __future__ import annotations

import os

# Set before numpy loads: a few hundred rows per fit gain nothing from BLAS threads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import datetime
import json
import platform
import re
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from hnbooks.lab.cli import SHIPPED_FEATURES
from hnbooks.lab.datasets import Dataset, default_cache_dir, load_dataset
from hnbooks.lab.simulate import (
    FeatureSet,
    LoopConfig,
    SimulationSummary,
    TaskSpec,
    build_features,
    labels_by_channel,
    mean_interval,
    mean_of,
    positives_by_channel,
    simulate_all,
)
from hnbooks.scoring.head import HeadConfig
from hnbooks.scoring.pool import WORD_WEIGHT
from hnbooks.scoring.select import NOVELTY_AMONG_BEST, Mix, parse_mix

DOC_START = "<!-- bench:discovery:start -->"
DOC_END = "<!-- bench:discovery:end -->"
README_START = "<!-- bench:discovery-summary:start -->"
README_END = "<!-- bench:discovery-summary:end -->"


@dataclass(frozen=True)
class Column:
    """One column of the table: a strategy, with or without the seed query."""

    name: str
    strategy: str
    seed_query: bool = False
    marker: str = "*"
    mix: Mix | None = None
    adaptive: bool = False
    keyword_feedback: int = 0


COLUMNS = (
    Column("top", "top", marker="t"),
    Column("uncertain", "uncertain", marker="u"),
    Column("novel", "novel", marker="n"),
    Column("stratified", "stratified", marker="s"),
    Column("default", "default", marker="D"),
    Column("default+query", "default", seed_query=True, marker="Q"),
    Column("default+feedback", "default", marker="F", keyword_feedback=2),
    Column("default+query+feedback", "default", seed_query=True, marker="G", keyword_feedback=2),
    Column("adaptive", "default", marker="A", adaptive=True),
    Column("adaptive+query", "default", seed_query=True, marker="B", adaptive=True),
    Column("random", "random", marker="r"),
    Column("stream-ema", "stream-ema", marker="E"),
)


@dataclass(frozen=True)
class Task:
    key: str
    title: str
    dataset: str
    specs: Callable[[Dataset, int, np.random.Generator], list[TaskSpec]]
    """The task's variants (one per positive group or topic), `count` of them at most."""
    one_variant: bool = False
    """The task has a single variant, run `count` times (each run a new draw of the pool)."""


USER_QUERIES = {
    # What a user looking for each group might type first: a few words about the topic, written
    # from the group's name and charter before any measurement, never tuned on results.
    "alt.atheism": "atheism atheist god religion",
    "comp.graphics": "graphics image rendering 3d",
    "comp.os.ms-windows.misc": "windows dos microsoft",
    "comp.sys.ibm.pc.hardware": "pc hardware ide scsi motherboard",
    "comp.sys.mac.hardware": "mac apple hardware",
    "comp.windows.x": "x window xterm motif server",
    "misc.forsale": "for sale offer shipping price",
    "rec.autos": "car engine dealer",
    "rec.motorcycles": "motorcycle bike riding",
    "rec.sport.baseball": "baseball pitcher season",
    "rec.sport.hockey": "hockey nhl playoffs",
    "sci.crypt": "encryption cryptography key clipper",
    "sci.electronics": "electronics circuit voltage",
    "sci.med": "medical doctor disease treatment",
    "sci.space": "space nasa orbit shuttle",
    "soc.religion.christian": "christian church jesus bible",
    "talk.politics.guns": "guns firearms weapons",
    "talk.politics.mideast": "israel arab palestinian",
    "talk.politics.misc": "politics government tax",
    "talk.religion.misc": "religion moral christian",
    # R52 topic codes a user would spell out.
    "bop": "balance of payments",
    "cpi": "consumer prices inflation",
    "gnp": "gnp gross national product",
    "ipi": "industrial production",
    "lei": "leading indicators",
    "wpi": "wholesale prices",
    "pet-chem": "petrochemicals",
    "nat-gas": "natural gas",
    "veg-oil": "vegetable oil",
    "iron-steel": "iron steel",
    "strategic-metal": "strategic metals",
    # The shared Hacker News answers.
    "BOOK": "book books reading",
}


def class_query(*names: str) -> str:
    """A keyword query per class, as a user might type it: `USER_QUERIES`, else the class name's
    words (`sci.space` -> `sci space`)."""
    return " ".join(USER_QUERIES.get(name) or re.sub(r"[._-]+", " ", name) for name in names)


def per_group(
    keep: int, seeds: int
) -> Callable[[Dataset, int, np.random.Generator], list[TaskSpec]]:
    def specs(dataset: Dataset, count: int, rng: np.random.Generator) -> list[TaskSpec]:
        groups = sorted(dataset.class_counts())
        chosen = [groups[i] for i in sorted(rng.permutation(len(groups))[:count])]
        return [
            TaskSpec((g,), keep_positives=keep, seeds=seeds, seed_query=class_query(g))
            for g in chosen
        ]

    return specs


def r52_topics(dataset: Dataset, count: int, rng: np.random.Generator) -> list[TaskSpec]:
    topics = sorted(name for name, n in dataset.class_counts().items() if 10 <= n <= 95)
    chosen = [topics[i] for i in sorted(rng.permutation(len(topics))[:count])]
    return [TaskSpec((t,), seeds=1, seed_query=class_query(t)) for t in chosen]


def disjunct(dataset: Dataset, count: int, rng: np.random.Generator) -> list[TaskSpec]:
    groups = sorted(dataset.class_counts())
    specs = []
    for _ in range(count):
        quad = tuple(sorted(groups[i] for i in rng.choice(len(groups), 4, replace=False)))
        specs.append(TaskSpec(quad, keep_positives=5, seeds=1, seed_query=class_query(*quad)))
    return specs


def bookfinder_task(dataset: Dataset, count: int, rng: np.random.Generator) -> list[TaskSpec]:
    """Real HN comments (the shared answers): 10 of the BOOK texts kept among the others."""
    return [TaskSpec(("BOOK",), keep_positives=10, seeds=1, seed_query=class_query("BOOK"))]


TASKS = (
    Task("20ng-4", "20NG, 4 kept per group, 1 seed", "20ng", per_group(4, 1)),
    Task("20ng-18", "20NG, 18 kept per group, 2 seeds", "20ng", per_group(18, 2)),
    Task("r52", "R52 topics with 10-95 texts, 1 seed", "r52", r52_topics),
    Task("disjunct", "20NG disjunct: 5 from each of 4 groups, 1 seed", "20ng", disjunct),
    Task(
        "bookfinder",
        "HN bookfinder answers: 10 BOOK texts kept, 1 seed",
        "bookfinder",
        bookfinder_task,
        one_variant=True,
    ),
)


@dataclass
class Cell:
    """One (task, column): the summaries of every variant run."""

    summaries: list[SimulationSummary]

    def mean(self, key: str) -> float | None:
        return mean_of([s.as_dict()[key] for s in self.summaries])

    def runs(self) -> int:
        return sum(len(s.runs) for s in self.summaries)

    def per_run(self, key: str) -> list[float | None]:
        """`key` of every run of every variant."""
        return [r.metrics()[key] for s in self.summaries for r in s.runs]

    def interval(self, key: str) -> tuple[float, float] | None:
        """The 90% interval of the mean of `key` over the runs."""
        return mean_interval(self.per_run(key))

    def curve(self) -> np.ndarray:
        return np.mean([s.mean_curve() for s in self.summaries], axis=0)


def spec_for(column: Column, spec: TaskSpec) -> TaskSpec:
    """The task as this column runs it: without the seed query unless the column types one."""
    return spec if column.seed_query else replace(spec, seed_query=None)


def loop_config(column: Column, args: argparse.Namespace) -> LoopConfig:
    return LoopConfig(
        strategy=column.strategy,
        mix=column.mix,
        batch_size=args.batch_size,
        budget=args.budget,
        near_duplicates_of_positives=args.near_duplicates_of_positives,
        query_as_positive=args.query_as_positive,
        novelty_among_best=args.novelty_among_best,
        head=HeadConfig(
            query_weight=args.query_weight,
            regularisation=args.regularisation,
            pseudo_negatives=args.pseudo_negatives,
            pseudo_negative_weight=args.pseudo_negative_weight,
        ),
        adaptive_mix=column.adaptive,
        keyword_feedback=column.keyword_feedback,
    )


def embedding_progress(name: str, total: int, log: Callable[[str], None]) -> Callable[[int], None]:
    """A line per tenth of the texts embedded: a dataset's first run embeds it (20NG: ~10 min on 2
    cores); later runs read the cache and never call this."""
    done = 0
    started = time.perf_counter()

    def advance(count: int) -> None:
        nonlocal done
        before, done = done, done + count
        if before * 10 // total != done * 10 // total or done == total:
            rate = done / max(time.perf_counter() - started, 1e-9)
            log(
                f"{name}: embedded {done:,} of {total:,} texts ({rate:.0f}/s, cached for the next run)"
            )

    return advance


def run_suite(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, dict[str, Cell]]:
    counts = {
        "20ng-4": args.groups,
        "20ng-18": args.groups,
        "r52": args.topics,
        "disjunct": args.quads,
        "bookfinder": args.bookfinder_runs,
    }
    features_by_dataset: dict[str, tuple[Dataset, FeatureSet]] = {}
    results: dict[str, dict[str, Cell]] = {}
    for task in TASKS:
        if task.key not in args.tasks:
            continue
        if task.dataset not in features_by_dataset:
            started = time.perf_counter()
            dataset = load_dataset(task.dataset)
            features_by_dataset[task.dataset] = (
                dataset,
                build_features(
                    dataset,
                    args.features,
                    cache_dir=default_cache_dir(),
                    word_weight=args.word_weight,
                    progress=embedding_progress(task.dataset, len(dataset), log),
                ),
            )
            log(
                f"{task.dataset}: {len(dataset):,} texts, {args.features} features in {time.perf_counter() - started:.0f} s"
            )
        dataset, features = features_by_dataset[task.dataset]
        specs = task.specs(
            dataset, counts[task.key], np.random.default_rng([args.random_seed, len(task.key)])
        )
        columns = [c for c in args.all_columns if c.name in args.columns]
        repeats = args.repeats * (counts[task.key] if task.one_variant else 1)
        started = time.perf_counter()
        # Column by column, each over every spec: column n's summaries are the n-th run of specs.
        summaries = simulate_all(
            dataset,
            features,
            [
                (spec_for(column, spec), loop_config(column, args), repeats)
                for column in columns
                for spec in specs
            ],
            random_seed=args.random_seed,
            processes=args.jobs,
        )
        results[task.key] = {}
        for n, column in enumerate(columns):
            cell = Cell(summaries[n * len(specs) : (n + 1) * len(specs)])
            results[task.key][column.name] = cell
            log(
                f"{task.key:9s} {column.name:14s} {cell.mean('positives_per_100'):6.3f} /100 labels, "
                f"recall {cell.mean('recall_at_budget') or 0:.3f} ({cell.runs()} runs)"
            )
        log(f"{task.key}: {time.perf_counter() - started:.0f} s on {args.jobs} processes")
    return results


@dataclass(frozen=True)
class Goal:
    """A target of the discovery issue, checked against one cell of the suite."""

    task: str
    column: str
    key: str
    target: float
    text: str
    at_most: bool = False
    """The goal is a ceiling (runs finding none), not a floor."""


GOALS = (
    Goal("20ng-4", "default", "positives_per_100", 0.5, "20NG 4 kept, one seed ≥ 0.5"),
    Goal(
        "20ng-4", "default+query", "positives_per_100", 0.6, "20NG 4 kept with the seed query ≥ 0.6"
    ),
    Goal(
        "20ng-4", "default", "share_found_none", 0.25, "20NG 4 kept, runs finding none ≤ 25%", True
    ),
    Goal(
        "20ng-4",
        "default+query",
        "share_found_none",
        0.25,
        "20NG 4 kept with the seed query, runs finding none ≤ 25%",
        True,
    ),
    Goal("20ng-18", "default", "positives_per_100", 3.5, "20NG 18 kept ≥ 3.5"),
    Goal("r52", "default", "recall_at_budget", 0.97, "R52 recall@300 ≥ 0.97"),
    Goal("disjunct", "default", "positives_per_100", 1.8, "disjunct ≥ 1.8"),
)
STREAM_EMA_GOAL = 8.0
"""20NG 18 kept: the default mix finds at least this many times what stream-ema does."""
COVERAGE_GOAL = 0.85


def goal_verdict(value: float, interval: tuple[float, float] | None, goal: Goal) -> str:
    """Met or not by the mean; "within noise" where the 90% interval holds the target too."""
    met = value <= goal.target if goal.at_most else value >= goal.target
    if interval is not None and interval[0] <= goal.target <= interval[1]:
        return "yes, within noise" if met else "no, within noise"
    return "yes" if met else "**no**"


def goals_table(results: dict[str, dict[str, Cell]]) -> str:
    """Markdown: each goal the suite measured, its cell's mean with the 90% interval over the
    runs, and whether it is met."""
    lines = ["| goal | measured | 90% interval | runs | met |", "|---|---|---|---|---|"]
    for goal in GOALS:
        cell = results.get(goal.task, {}).get(goal.column)
        if cell is None:
            continue
        value = cell.mean(goal.key)
        if value is None:
            continue
        interval = cell.interval(goal.key)
        if interval is not None:
            # Every goal's metric is a count or a share: a normal interval's tail past 0 or 1 says
            # only that the runs are few.
            ceiling = 1.0 if goal.key in ("share_found_none", "recall_at_budget") else float("inf")
            interval = (max(0.0, interval[0]), min(ceiling, interval[1]))
        shown = f"{interval[0]:.3g}-{interval[1]:.3g}" if interval else "-"
        lines.append(
            f"| {goal.text} | {value:.3g} | {shown} | {cell.runs()} "
            f"| {goal_verdict(value, interval, goal)} |"
        )
    row = results.get("20ng-18", {})
    if "default" in row and "stream-ema" in row:
        default = row["default"].mean("positives_per_100") or 0.0
        stream = row["stream-ema"].mean("positives_per_100") or 0.0
        times = default / stream if stream else float("inf")
        lines.append(
            f"| 20NG 18 kept ≥ {STREAM_EMA_GOAL:g}× stream-ema | ×{times:.1f} ({default:.3g} against"
            f" {stream:.3g}) | - | {row['default'].runs()} "
            f"| {'yes' if times >= STREAM_EMA_GOAL else '**no**'} |"
        )
    coverages = [
        results[task.key]["default"].mean("found_so_far_coverage")
        for task in TASKS
        if "default" in results.get(task.key, {})
    ]
    measured = [value for value in coverages if value is not None]
    if measured:
        lines.append(
            f"| found-so-far interval covers the truth ≥ {COVERAGE_GOAL:g} of rounds, every task"
            f" (default mix) | {min(measured):.2f}-{max(measured):.2f} | - | - "
            f"| {'yes' if min(measured) >= COVERAGE_GOAL else '**no**'} |"
        )
    return "\n".join(lines)


def ratio(value: float | None, baseline: float | None) -> str:
    if value is None or not baseline:
        return "-"
    return f"×{value / baseline:.1f}" if value / baseline < 100 else f"×{value / baseline:.0f}"


def present(results: dict[str, dict[str, Cell]], columns: list[Column]) -> list[Column]:
    return [c for c in columns if any(c.name in row for row in results.values())]


def main_table(results: dict[str, dict[str, Cell]], columns: list[Column]) -> str:
    """Markdown: cells are positives/100 labels (× analytic random, × stream-ema)."""
    columns = present(results, columns)
    header = ["task", "prevalence", "analytic random"] + [c.name for c in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for task in TASKS:
        if task.key not in results:
            continue
        row = results[task.key]
        any_cell = next(iter(row.values()))
        analytic = any_cell.mean("random_per_100")
        stream = row["stream-ema"].mean("positives_per_100") if "stream-ema" in row else None
        prevalence = any_cell.mean("prevalence") or 0.0
        cells = [task.title, f"1/{1 / prevalence:,.0f}" if prevalence else "0", f"{analytic:.3g}"]
        for column in columns:
            if column.name not in row:
                cells.append("")
                continue
            value = row[column.name].mean("positives_per_100")
            parts = [ratio(value, analytic)]
            if column.name != "stream-ema" and stream is not None:
                parts.append(ratio(value, stream))
            cells.append(f"**{value:.3g}** ({', '.join(parts)})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def metric_table(
    results: dict[str, dict[str, Cell]], key: str, columns: list[Column], digits: int = 2
) -> str:
    columns = present(results, columns)
    lines = [
        "| task | " + " | ".join(c.name for c in columns) + " |",
        "|" + "---|" * (len(columns) + 1),
    ]
    for task in TASKS:
        if task.key not in results:
            continue
        row = results[task.key]
        cells = []
        for column in columns:
            value = row[column.name].mean(key) if column.name in row else None
            cells.append("-" if value is None else f"{value:.{digits}f}")
        lines.append(f"| {task.title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def curves_chart(
    results: dict[str, dict[str, Cell]],
    budget: int,
    columns: list[Column],
    width: int = 100,
    height: int = 22,
) -> str:
    """Mean discovery curves per task (positives found against labels), one letter per strategy."""
    import plotext as plt

    charts = []
    for task in TASKS:
        if task.key not in results:
            continue
        plt.clf()
        plt.plotsize(width, height)
        plt.theme("clear")
        labels = list(range(1, budget + 1))
        for column in present(results, columns):
            if column.name in results[task.key]:
                curve = results[task.key][column.name].curve()
                plt.plot(
                    labels,
                    curve.tolist(),
                    marker=column.marker,
                    label=f"{column.marker} {column.name}",
                )
        plt.xlabel("labels")
        chart = re.sub(r"\x1b\[[0-9;]*m", "", plt.build())
        charts.append(
            f"{task.title}: new positives found (mean over runs) against labels spent\n{chart}"
        )
    return "\n\n".join(charts)


def render(
    results: dict[str, dict[str, Cell]], args: argparse.Namespace, command: str, seconds: float
) -> str:
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    runs = {task: next(iter(row.values())).runs() for task, row in results.items()}
    parts = [
        f"Measured {when} on {platform.machine()} with {os.cpu_count()} CPU cores (shared, timings noisy), "
        f"{seconds / 60:.0f} min in all.",
        "",
        "```",
        command,
        "```",
        "",
        f"Features: `{args.features}`; budget {args.budget} labels in batches of {args.batch_size}; "
        f"near-duplicates of positives {'eligible, a tenth of a batch at most (the default)' if args.near_duplicates_of_positives else 'blocked'}; "
        f"the cold-start query {f'trained on as a positive of weight {args.query_weight:g}' if args.query_as_positive else 'not trained on'}; "
        f"the head's C {args.regularisation:g}; pseudo-negatives while true negatives are fewer than"
        f" {args.pseudo_negatives}, of weight {args.pseudo_negative_weight:g}; novel picks among"
        f" the best-scored {args.novelty_among_best:.0%} of the pool; runs per cell: "
        + ", ".join(f"{task} {n}" for task, n in runs.items())
        + f"; random seed {args.random_seed}.",
        "",
        "Goals (the issue's targets, each against its cell below; within noise: the 90% interval"
        " of the mean over the runs holds the target too, so more runs could fall either side):",
        "",
        goals_table(results),
        "",
        "New positives per 100 labels (× analytic random, × stream-ema):",
        "",
        main_table(results, args.all_columns),
        "",
        "Recall at the budget (share of the positives not given as seeds that were found):",
        "",
        metric_table(results, "recall_at_budget", args.all_columns),
        "",
        "Area under the discovery curve over the oracle's (1 = every positive first):",
        "",
        metric_table(results, "audc", args.all_columns),
        "",
        "Labels spent up to the first new positive (mean over the runs that found one):",
        "",
        metric_table(results, "labels_to_first", args.all_columns, digits=0),
        "",
        "Share of runs that found no new positive:",
        "",
        metric_table(results, "share_found_none", args.all_columns),
        "",
        "Average precision of the final head on the held-out split:",
        "",
        metric_table(results, "heldout_ap", args.all_columns),
        "",
        "Coverage of the 90% found-so-far interval `hnbooks stats` shows: the share of rounds"
        " (after each batch, every run) whose interval held the true share of the pool's positives"
        " found (goal ≥ 0.85; mix columns only, the baselines draw no stratified random picks):",
        "",
        metric_table(results, "found_so_far_coverage", args.all_columns),
        "",
        "Discovery curves:",
        "",
        "```",
        curves_chart(results, args.budget, args.all_columns),
        "```",
    ]
    return "\n".join(parts)


def summary_cell(cell: Cell, with_recall: bool) -> str:
    value = cell.mean("positives_per_100") or 0.0
    recall = cell.mean("recall_at_budget")
    return f"{value:.3g}" + (f" (recall {recall:.3f})" if with_recall and recall else "")


def summary_table(
    results: dict[str, dict[str, Cell]], args: argparse.Namespace, command: str
) -> str:
    """The README's table: per task the default mix with and without the seed query, against
    analytic random and stream-ema, with the command and date that measured it."""
    when = datetime.date.today().isoformat()
    lines = [
        f"Measured {when} with `{command}` (`{args.features}` features; new positives per 100"
        f" labels, {args.budget} labels in batches of {args.batch_size}):",
        "",
        "| task | prevalence | analytic random | stream-ema | default mix | default mix + seed query"
        " | × random | × stream-ema |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task in TASKS:
        row = results.get(task.key)
        if not row or "default" not in row:
            continue
        analytic = row["default"].mean("random_per_100") or 0.0
        prevalence = row["default"].mean("prevalence") or 0.0
        stream = row["stream-ema"].mean("positives_per_100") if "stream-ema" in row else None
        default = row["default"].mean("positives_per_100") or 0.0
        query = row["default+query"].mean("positives_per_100") if "default+query" in row else None
        best = query if query is not None else default

        lines.append(
            f"| {task.title} | {f'1/{1 / prevalence:,.0f}' if prevalence else '0'} | {analytic:.3g} | "
            + (f"{stream:.3g}" if stream is not None else "-")
            + f" | {summary_cell(row['default'], task.key == 'r52')} | "
            + (summary_cell(row["default+query"], task.key == "r52") if query is not None else "-")
            + f" | {ratio(best, analytic)} | "
            + (ratio(best, stream) if stream else "-")
            + " |"
        )
    return "\n".join(lines)


def write_doc(path: Path, body: str, start: str = DOC_START, end: str = DOC_END) -> None:
    """Replace the measured section of `path` (between the `start` and `end` markers), keeping
    the prose around it."""
    block = f"{start}\n{body}\n{end}"
    if path.exists():
        text = path.read_text(encoding="utf-8")
        if start in text and end in text:
            before, rest = text.split(start, 1)
            after = rest.split(end, 1)[1]
            path.write_text(before + block + after, encoding="utf-8")
            return
        path.write_text(text.rstrip() + "\n\n" + block + "\n", encoding="utf-8")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Discovery benchmark\n\n" + block + "\n", encoding="utf-8")


def as_json(results: dict[str, dict[str, Cell]]) -> dict[str, Any]:
    keys = (
        "positives_per_100",
        "random_per_100",
        "recall_at_budget",
        "labels_to_first",
        "audc",
        "share_found_none",
        "heldout_ap",
        "prevalence",
        "found_so_far_coverage",
    )

    def cell_record(cell: Cell) -> dict[str, Any]:
        runs = [run for summary in cell.summaries for run in summary.runs]
        return {
            **{key: cell.mean(key) for key in keys},
            "positives_by_channel": positives_by_channel(runs),
            "labels_by_channel": labels_by_channel(runs),
        }

    return {
        task: {name: cell_record(cell) for name, cell in row.items()}
        for task, row in results.items()
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )

    def shipped_setting(flag: str, kind: type, shipped: float, where: str, meaning: str) -> None:
        """An option for a setting of the scorer, its default what `hnbooks-score` ships."""
        parser.add_argument(
            flag,
            type=kind,
            default=shipped,
            help=f"{meaning} (default: {shipped:g}, what hnbooks-score ships: {where})",
        )

    parser.add_argument(
        "--features",
        choices=["words", "onnx", "tfidf", "both"],
        default=SHIPPED_FEATURES,
        help="default: what hnbooks-score ranks with",
    )
    parser.add_argument(
        "--tasks", default=",".join(t.key for t in TASKS), help="comma-separated task keys"
    )
    parser.add_argument(
        "--columns", default=",".join(c.name for c in COLUMNS), help="comma-separated column names"
    )
    parser.add_argument(
        "--groups", type=int, default=10, help="positive groups per 20NG task (of 20)"
    )
    parser.add_argument(
        "--topics", type=int, default=12, help="R52 topics (of 32 with 10-95 texts)"
    )
    parser.add_argument("--quads", type=int, default=8, help="4-group sets for the disjunct task")
    parser.add_argument(
        "--bookfinder-runs", type=int, default=10, help="runs of the bookfinder task (real HN)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs per group / topic / set")
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--random-seed", type=int, default=0)
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="processes running the simulations side by side; the figures do not depend on it"
        " (default: one per core)",
    )
    shipped_setting(
        "--word-weight",
        float,
        WORD_WEIGHT,
        "scoring.pool.WORD_WEIGHT",
        "norm of the words' TF-IDF beside the unit embedding, --features words only",
    )
    parser.add_argument(
        "--block-near-duplicates-of-positives",
        dest="near_duplicates_of_positives",
        action="store_false",
        help="refuse near-duplicates of accepted texts too (the scorer lets a tenth of a batch"
        " through: RoundConfig.near_duplicates_of_positives)",
    )
    shipped_setting(
        "--query-weight",
        float,
        HeadConfig().query_weight,
        "HeadConfig.query_weight",
        "weight of the query's row in the head's training against an answer's 1",
    )
    shipped_setting(
        "--regularisation",
        float,
        HeadConfig().regularisation,
        "HeadConfig.regularisation",
        "the head's inverse regularisation strength (scikit-learn's C)",
    )
    shipped_setting(
        "--novelty-among-best",
        float,
        NOVELTY_AMONG_BEST,
        "RoundConfig.novelty_among_best",
        "the best-scored share of the pool that novel picks come from; 1: the whole pool",
    )
    shipped_setting(
        "--pseudo-negatives",
        int,
        HeadConfig().pseudo_negatives,
        "HeadConfig.pseudo_negatives",
        "random unlabelled texts the head trains on as negatives while the answers hold fewer"
        " true negatives than this",
    )
    shipped_setting(
        "--pseudo-negative-weight",
        float,
        HeadConfig().pseudo_negative_weight,
        "HeadConfig.pseudo_negative_weight",
        "weight of a pseudo-negative against an answer's 1",
    )
    parser.add_argument(
        "--no-query-as-positive",
        dest="query_as_positive",
        action="store_false",
        help="train the head on the answers alone (the scorer also trains on the cold-start query"
        " as a positive: RoundConfig.query_as_positive)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="3 groups, 3 topics, 2 sets: a smoke run"
    )
    parser.add_argument(
        "--write-doc",
        type=Path,
        default=None,
        help="put the tables and chart into this markdown file",
    )
    parser.add_argument(
        "--write-readme",
        type=Path,
        default=None,
        help="put the summary table into this markdown file (between its discovery-summary markers)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the means as JSON here")
    parser.add_argument(
        "--mix",
        action="append",
        default=[],
        metavar="NAME:SHARES",
        help="two extra columns with these mix shares, NAME and NAME+query (with the seed query),"
        " e.g. query10:top=0.6,uncertain=0.1,novel=0.1,query=0.1,random=0.1",
    )
    args = parser.parse_args(argv)
    args.all_columns = list(COLUMNS)
    for number, text in enumerate(args.mix):
        name, _, shares = text.partition(":")
        mix = parse_mix(shares)
        args.all_columns.append(Column(name, "mix", marker="123456789"[2 * number % 9], mix=mix))
        args.all_columns.append(
            Column(f"{name}+query", "mix", True, "123456789"[(2 * number + 1) % 9], mix)
        )
    if args.quick:
        args.groups, args.topics, args.quads, args.bookfinder_runs = 3, 3, 2, 3
    args.tasks = set(args.tasks.split(","))
    args.columns = set(args.columns.split(",")) | {
        column.name for column in args.all_columns[len(COLUMNS) :]
    }
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    command = "python bench/discovery.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    started = time.perf_counter()
    results = run_suite(args, lambda line: print(line, file=sys.stderr, flush=True))
    seconds = time.perf_counter() - started
    body = render(results, args, command.strip(), seconds)
    print(body)
    if args.write_doc:
        write_doc(args.write_doc, body)
    if args.write_readme:
        write_doc(
            args.write_readme,
            summary_table(results, args, command.strip()),
            README_START,
            README_END,
        )
    if args.json:
        args.json.write_text(json.dumps(as_json(results), indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
