"""Import speed: `hnbooks import` of synthetic HN comments beside sqlite-utils `insert_all`.

Both sides start from the same JSONL file of HN-API-like comments (realistic HTML: `<p>`, `<a href>`,
`<i>`, `&#x27;` entities). hnbooks runs `import_file`, the library call `hnbooks import` makes, in
this process into a fresh database (HTML cleaning, dedup, FTS index and all). The baseline is what a
user would write with sqlite-utils: the same lines parsed and HTML-cleaned with the same function
(before its clock starts, so the baseline is the writing alone), then `insert_all` of those rows
(text + meta JSON) into a table whose FTS index was enabled first
(`enable_fts(["text"], create_triggers=True)`), timed to the commit. hnbooks' time includes
reading, JSON, HTML cleaning and dedup; the baseline's does not.

    .venv/bin/python bench/import.py                  # 100k lines
    .venv/bin/python bench/import.py --lines 1000000  # 1M lines
    .venv/bin/python bench/import.py --parse-workers 0  # all parsing in this process

The last line of output is one JSON object: items, items_per_s, baseline_items_per_s,
ratio_vs_sqlite_utils, seconds of each side.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import sqlite_utils

from hnbooks.hn_html import clean_comment_html
from hnbooks.importing import default_parse_workers, import_file
from hnbooks.store.db import Store

WORDS = (
    "the a book I read this that about was is it and of to in for you on with really great "
    "recommend novel author series fiction history story thing people think would could "
    "years ago first second best worst favourite memoir science programming design"
).split()
TITLES = ("Gödel, Escher, Bach", "The Mythical Man-Month", "SICP", "Dune", "Thinking in Systems")


def synthetic_comment(rng: random.Random, item_id: int) -> dict[str, object]:
    """One HN API comment: a few `<p>` paragraphs with an occasional link, italics and entity."""
    paragraphs = []
    for _ in range(rng.randint(1, 4)):
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 40))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), f"<i>{rng.choice(TITLES)}</i>")
        if rng.random() < 0.2:
            url = f"https://example.com/{rng.choice(WORDS)}/{item_id}"
            words.append(f'<a href="{url}" rel="nofollow">{url[:30]}...</a>')
        if rng.random() < 0.5:
            words.insert(rng.randrange(len(words)), "it&#x27;s")
        paragraphs.append(" ".join(words))
    return {
        "by": f"user{rng.randrange(50_000)}",
        "id": item_id,
        "parent": item_id - rng.randint(1, 1000),
        "text": "<p>".join(paragraphs),
        "time": 1_600_000_000 + item_id,
        "type": "comment",
    }


def write_lines(path: Path, lines: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as handle:
        for n in range(lines):
            handle.write(json.dumps(synthetic_comment(rng, 10_000_000 + n)) + "\n")


def run_hnbooks(source: Path, db_path: Path, parse_workers: int) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of this process, items) of `import_file` into a new database,
    with `parse_workers` parser processes (`hnbooks import` gives `default_parse_workers()`)."""
    started, started_cpu = time.perf_counter(), time.process_time()
    with Store(db_path) as store:
        summary = import_file(store, source, parse_workers=parse_workers)
    return time.perf_counter() - started, time.process_time() - started_cpu, summary.new_items


def parsed_rows(source: Path) -> list[dict[str, object]]:
    """The rows the baseline inserts, parsed before its clock starts (text + meta JSON)."""
    rows = []
    with source.open("r", encoding="utf-8") as handle:
        for line in handle:
            raw = json.loads(line)
            meta = {k: raw[k] for k in ("by", "time", "parent", "type")}
            rows.append(
                {"id": raw["id"], "text": clean_comment_html(raw["text"]), "meta": json.dumps(meta)}
            )
    return rows


def run_sqlite_utils(source: Path, db_path: Path) -> tuple[float, float, int]:
    """(seconds writing, seconds parsing before, items) of the sqlite-utils baseline."""
    parse_started = time.perf_counter()
    rows = list(parsed_rows(source))
    parse_s = time.perf_counter() - parse_started
    started = time.perf_counter()
    db = sqlite_utils.Database(db_path)
    table = db["items"]
    table.create({"id": int, "text": str, "meta": str}, pk="id")  # type: ignore[union-attr]
    table.enable_fts(["text"], create_triggers=True)  # type: ignore[union-attr]

    with db.conn:
        table.insert_all(rows, batch_size=1000)  # type: ignore[union-attr]
    count = table.count
    db.close()
    return time.perf_counter() - started, parse_s, count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=100_000, help="JSONL lines (default 100000)")
    parser.add_argument("--skip-baseline", action="store_true", help="time hnbooks only")
    parser.add_argument(
        "--parse-workers",
        type=int,
        default=default_parse_workers(),
        help="parser processes (default: what `hnbooks import` uses on this machine)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        source = root / "comments.jsonl"
        write_lines(source, args.lines)
        hn_s, hn_cpu_s, hn_items = run_hnbooks(source, root / "hnbooks.db", args.parse_workers)
        print(f"hnbooks import: {hn_items} items in {hn_s:.2f} s = {hn_items / hn_s:,.0f} items/s")
        result: dict[str, object] = {
            "lines": args.lines,
            "items": hn_items,
            "seconds": round(hn_s, 3),
            "items_per_s": round(hn_items / hn_s, 1),
            "parse_workers": args.parse_workers,
            "cpu_seconds_writer_process": round(hn_cpu_s, 3),
        }
        if not args.skip_baseline:
            base_s, base_parse_s, base_items = run_sqlite_utils(source, root / "baseline.db")
            print(
                f"sqlite-utils insert_all + FTS: {base_items} items in {base_s:.2f} s"
                f" = {base_items / base_s:,.0f} items/s"
            )
            result.update(
                baseline_items=base_items,
                baseline_seconds=round(base_s, 3),
                baseline_items_per_s=round(base_items / base_s, 1),
                ratio_vs_sqlite_utils=round((hn_items / hn_s) / (base_items / base_s), 2),
                # The user's whole pipeline: the same parsing and cleaning, then insert_all.
                baseline_with_parsing_items_per_s=round(base_items / (base_s + base_parse_s), 1),
            )
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
