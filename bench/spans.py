"""Span suggestions: the learned span model against the rules alone, by k-fold cross-validation.

On the shared Prodigy NER files (hnbook_ner_manual.jsonl: BOOK; hnbook_ner_confirmed.jsonl:
WORK_OF_ART), each file's texts are split into --folds folds; the span model
(`hnbooks.scoring.spans`) is trained on the other folds' answers and suggests spans for the held-out
accepted texts. Printed for the learned model and for the rules (`hnbooks.suggest`) on the same
texts:

- precision, recall and F1 of the suggestions shown, exact (same offsets as a gold span) and
  overlapping (sharing a character with one);
- the learned model's best exact recall among thresholds whose precision is at least 0.5;
- keys per gold span: a scripted marker runs the TUI's own marking state (`tui.marking.SpanMarker`)
  over the suggestions shown, in their order, and for each gold span in text order takes the
  cheapest of: `tab` to a candidate and `enter` (exact); `tab` to an overlapping candidate, one
  key per word moved at either end (shift+arrows / `SpanMarker.extend_start`), `enter`; jump mode
  (`f`, the start word's hint, the end word's hint among the words from the start on, `enter`).
  `enter` is always counted (an `a` could replace the last one). Median and p90 are reported.

Other processes share the machine, so the seconds printed are noisy; the figures are not.

    python bench/spans.py                 # 5 folds, both files (minutes on a shared 2-core box)
    python bench/spans.py --folds 3 --files hnbook_ner_manual.jsonl
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hnbooks.scoring.encoder import Encoder  # noqa: E402
from hnbooks.scoring.spans import (  # noqa: E402
    SpanConfig,
    SpanExample,
    rule_suggestions,
    text_features,
    train_span_model,
)
from hnbooks.suggest import word_spans  # noqa: E402
from hnbooks.tui.marking import SpanMarker, jump_hints  # noqa: E402

DATA = Path("/work/shared/data/bookfinder")
DEFAULT_FILES = ("hnbook_ner_manual.jsonl", "hnbook_ner_confirmed.jsonl")
DEFAULT_MODEL = Path.home() / ".cache/hnbooks/models/all-MiniLM-L6-v2"
THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7)


@dataclass
class Task:
    text: str
    answer: str
    gold: tuple[tuple[int, int], ...]
    label: str


def read_tasks(path: Path) -> list[Task]:
    tasks = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("answer") not in ("accept", "reject"):
            continue
        spans = record.get("spans") or []
        gold = tuple(sorted({(int(s["start"]), int(s["end"])) for s in spans}))
        label = spans[0]["label"] if spans else ""
        tasks.append(
            Task(
                record["text"],
                record["answer"],
                gold if record["answer"] == "accept" else (),
                label,
            )
        )
    main_label = max(
        {t.label for t in tasks if t.label} or {"BOOK"},
        key=lambda x: sum(t.label == x for t in tasks),
    )
    for task in tasks:
        task.label = main_label
    return tasks


@dataclass
class Counts:
    suggested: int = 0
    gold: int = 0
    exact_hits: int = 0
    overlap_suggested: int = 0
    overlap_gold: int = 0

    def add(self, suggested: list[tuple[int, int]], gold: tuple[tuple[int, int], ...]) -> None:
        gold_set = set(gold)
        self.suggested += len(suggested)
        self.gold += len(gold)
        self.exact_hits += sum(1 for s in set(suggested) if s in gold_set)
        self.overlap_suggested += sum(
            1 for s, e in suggested if any(s < ge and gs < e for gs, ge in gold)
        )
        self.overlap_gold += sum(
            1 for gs, ge in gold if any(s < ge and gs < e for s, e in suggested)
        )

    def figures(self) -> dict[str, float]:
        def f1(p: float, r: float) -> float:
            return 2 * p * r / (p + r) if p + r else 0.0

        p = self.exact_hits / self.suggested if self.suggested else 0.0
        r = self.exact_hits / self.gold if self.gold else 0.0
        op = self.overlap_suggested / self.suggested if self.suggested else 0.0
        orr = self.overlap_gold / self.gold if self.gold else 0.0
        return {
            "suggested": self.suggested,
            "gold": self.gold,
            "exact_precision": round(p, 3),
            "exact_recall": round(r, 3),
            "exact_f1": round(f1(p, r), 3),
            "overlap_precision": round(op, 3),
            "overlap_recall": round(orr, 3),
            "overlap_f1": round(f1(op, orr), 3),
        }


def word_range(words: list[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    covered = [i for i, (s, e) in enumerate(words) if s < end and start < e]
    return (covered[0], covered[-1]) if covered else None


def keys_for_text(
    text: str, candidates: list[tuple[int, int]], gold: tuple[tuple[int, int], ...]
) -> list[tuple[int, str]]:
    """(keys, how) for each gold span, marked in text order by the cheapest sequence."""
    words = word_spans(text)
    marker = SpanMarker(words=words, candidates=candidates)
    out: list[tuple[int, str]] = []
    for gold_start, gold_end in sorted(gold):
        target = word_range(words, gold_start, gold_end)
        options: list[tuple[int, str, SpanMarker]] = []
        if target is not None:
            first, last = target
            jump = (
                1
                + len(jump_hints(len(words))[first])
                + len(jump_hints(len(words) - first)[last - first])
                + 1
            )
            jumped = copy.deepcopy(marker)
            jumped.select_words(first, last)
            options.append((jump, "jump", jumped))
        probe = copy.deepcopy(marker)
        for tabs in range(1, len(candidates) + 1):
            probe.cycle_candidate(1)
            selection = probe.selection()
            assert selection is not None
            if selection == (gold_start, gold_end):
                options.append((tabs + 1, "accept", copy.deepcopy(probe)))
                continue
            picked = word_range(words, *selection)
            if (
                target is None
                or picked is None
                or not (selection[0] < gold_end and gold_start < selection[1])
            ):
                continue
            moves = abs(target[0] - picked[0]) + abs(target[1] - picked[1])
            extended = copy.deepcopy(probe)
            extended.select_words(target[0], target[1])
            options.append((tabs + moves + 1, "extend", extended))
        if not options:
            out.append((-1, "unreachable"))
            continue
        keys, how, state = min(options, key=lambda option: option[0])
        state.mark("GOLD")
        marker = state
        out.append((keys, how))
    return out


def evaluate(
    tasks: list[Task],
    features: list,
    folds: int,
    config: SpanConfig,
    seed: int,
) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(len(tasks)) % folds
    label = tasks[0].label
    learned = Counts()
    rules = Counts()
    sweep = {t: Counts() for t in THRESHOLDS}
    learned_keys: list[tuple[int, str]] = []
    rule_keys: list[tuple[int, str]] = []
    train_seconds = []
    for fold in range(folds):
        train_rows = np.flatnonzero(fold_of != fold).tolist()
        clock = time.perf_counter()
        model = train_span_model(
            label,
            [SpanExample(tasks[i].text, tasks[i].gold) for i in train_rows],
            [features[i] for i in train_rows],
            config,
        )
        train_seconds.append(time.perf_counter() - clock)
        held_out = [
            i for i in np.flatnonzero(fold_of == fold).tolist() if tasks[i].answer == "accept"
        ]
        ranked_of = (
            dict(zip(held_out, model.ranked_many([features[i] for i in held_out]), strict=True))
            if model is not None
            else {}
        )
        for i in held_out:
            task = tasks[i]
            rule_spans = [(s.start, s.end) for s in rule_suggestions(task.text, label)]
            rules.add(rule_spans, task.gold)
            rule_keys.extend(keys_for_text(task.text, rule_spans, task.gold))
            ranked = ranked_of.get(i, [])
            for threshold, counts in sweep.items():
                counts.add([(s.start, s.end) for s in ranked if s.score >= threshold], task.gold)
            shown = [(s.start, s.end) for s in ranked if s.score >= config.show_threshold]
            learned.add(shown, task.gold)
            learned_keys.extend(keys_for_text(task.text, shown, task.gold))
    best = max(
        (
            (c.figures()["exact_recall"], t)
            for t, c in sweep.items()
            if c.figures()["exact_precision"] >= 0.5
        ),
        default=(0.0, None),
    )
    return {
        "label": label,
        "texts": len(tasks),
        "learned": learned.figures(),
        "rules": rules.figures(),
        "sweep": {t: c.figures() for t, c in sweep.items()},
        "best_recall_at_precision_0.5": {"exact_recall": best[0], "threshold": best[1]},
        "keys_learned": key_figures(learned_keys),
        "keys_rules": key_figures(rule_keys),
        "train_seconds": round(float(np.mean(train_seconds)), 2),
    }


def key_figures(keys: list[tuple[int, str]]) -> dict[str, object]:
    counts = np.array([k for k, _ in keys if k >= 0])
    ways: dict[str, int] = {}
    for _, how in keys:
        ways[how] = ways.get(how, 0) + 1
    return {
        "gold": len(keys),
        "median": float(np.median(counts)) if counts.size else None,
        "p90": float(np.percentile(counts, 90)) if counts.size else None,
        "mean": round(float(counts.mean()), 2) if counts.size else None,
        "by": ways,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--files", nargs="*", default=list(DEFAULT_FILES))
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--threshold", type=float, default=SpanConfig().show_threshold)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    encoder = Encoder(args.model_dir, device="cpu")
    config = SpanConfig(show_threshold=args.threshold)
    results = []
    for name in args.files:
        tasks = read_tasks(DATA / name)
        clock = time.perf_counter()
        states = encoder.token_states([t.text for t in tasks])
        features = [text_features(t.text, s) for t, s in zip(tasks, states, strict=True)]
        encode_seconds = time.perf_counter() - clock
        result = evaluate(tasks, features, args.folds, config, args.seed)
        result["file"] = name
        result["encode_seconds"] = round(encode_seconds, 1)
        results.append(result)
        print_result(result)
    print(json.dumps(results))


def print_result(result: dict) -> None:
    print(
        f"\n{result['file']} ({result['label']}, {result['texts']} texts, encoded in {result['encode_seconds']} s, "
        f"head trained in {result['train_seconds']} s per fold)"
    )
    print(
        f"{'':10} {'shown':>6} {'P':>6} {'R':>6} {'F1':>6} | {'P~':>6} {'R~':>6} {'F1~':>6} | keys median p90"
    )
    for name in ("rules", "learned"):
        f = result[name]
        k = result[f"keys_{name}"]
        print(
            f"{name:10} {f['suggested']:6} {f['exact_precision']:6.3f} {f['exact_recall']:6.3f} {f['exact_f1']:6.3f} |"
            f" {f['overlap_precision']:6.3f} {f['overlap_recall']:6.3f} {f['overlap_f1']:6.3f} | {k['median']} {k['p90']} {k['by']}"
        )
    best = result["best_recall_at_precision_0.5"]
    print(
        f"learned: best exact recall at precision >= 0.5: {best['exact_recall']} (threshold {best['threshold']})"
    )
    for t, f in result["sweep"].items():
        print(
            f"  threshold {t:4}: P {f['exact_precision']:.3f} R {f['exact_recall']:.3f} F1 {f['exact_f1']:.3f} (shown {f['suggested']})"
        )


if __name__ == "__main__":
    main()
