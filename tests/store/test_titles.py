"""The titles found: normalisation, which answers count, and `hnbooks titles` over the shared NER data."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from hnbooks.cli import cli
from hnbooks.store.db import Store
from hnbooks.store.records import IncomingItem, NewAnswer, Span
from hnbooks.titles import normalised_form, title_key, titles_found, write_titles_csv
from tests.conftest import BOOKFINDER_DIR

NER_FILE = BOOKFINDER_DIR / "hnbook_ner_manual.jsonl"


@pytest.mark.parametrize(
    ("marked", "shown"),
    [
        ('"The Hobbit"', "The Hobbit"),
        ("“Dune”,", "Dune"),
        ("(Snow  Crash).", "Snow Crash"),
        ("'Anathem'!", "Anathem"),
        ("Gödel, Escher, Bach", "Gödel, Escher, Bach"),
        ("Ｄｕｎｅ", "Dune"),  # fullwidth letters: NFKC
        ("...", ""),
    ],
)
def test_normalised_form(marked: str, shown: str) -> None:
    assert normalised_form(marked) == shown


def test_title_key_folds_case_and_quotes() -> None:
    assert title_key('"the HOBBIT"') == title_key("The Hobbit") == "the hobbit"
    assert title_key("Dune") != title_key("Dune Messiah")


def add(store: Store, texts: list[str]) -> list[int]:
    return store.add_items(
        [
            IncomingItem(line=n + 1, text=t, meta={"id": 500 + n}, external_id=f"t:{n}")
            for n, t in enumerate(texts)
        ],
        "test",
    )


def accept(store: Store, item_id: int, text: str, *marked: str, who: str = "ann") -> int:
    spans = tuple(Span(text.index(m), text.index(m) + len(m), "BOOK") for m in marked)
    return store.record_answer(
        item_id, NewAnswer(annotator=who, answer="accept", spans=spans, created_at=100.0 + item_id)
    )


def test_titles_count_the_accepted_answers_in_force(tmp_path: Path) -> None:
    texts = [
        'Read "Dune" twice.',
        "dune, then Snow Crash.",
        "Snow Crash is dated.",
        "Dune again.",
    ]
    with Store(tmp_path / "t.db") as store:
        ids = add(store, texts)
        accept(store, ids[0], texts[0], '"Dune"')
        accept(store, ids[1], texts[1], "dune", "Snow Crash")
        accept(store, ids[1], texts[1], "dune,", "Snow Crash", who="bea")  # a second annotator
        accept(store, ids[2], texts[2], "Snow Crash")
        # Re-answered as a reject: that item's span no longer counts.
        store.record_answer(ids[2], NewAnswer(annotator="ann", answer="reject", created_at=200.0))
        accept(store, ids[3], texts[3], "Dune")
        store.undo_last("ann")  # and this one taken back
        found = {t.title: t for t in titles_found(store)}
        # "dune" was marked twice, "Dune" once: the form marked most often names the title.
        assert sorted(found) == ["Snow Crash", "dune"]
        dune, crash = found["dune"], found["Snow Crash"]
        assert [i.hn_id for i in dune.items] == ["500", "501"] and dune.mentions == 3
        assert [i.hn_id for i in crash.items] == ["501"] and crash.mentions == 2
        assert dune.first_seen == 100.0 + ids[0] and dune.last_seen == 100.0 + ids[1]
        assert dune.items[0].link == "https://news.ycombinator.com/item?id=500"
        assert titles_found(store, "AUTHOR") == []
        out = io.StringIO()
        assert write_titles_csv(titles_found(store), out) == 2
        rows = list(csv.DictReader(io.StringIO(out.getvalue())))
        assert [(r["title"], r["items"], r["mentions"], r["hn_ids"]) for r in rows] == [
            ("dune", "2", "3", "500 501"),
            ("Snow Crash", "1", "2", "501"),
        ]


def test_hnbooks_titles_lists_the_shared_ner_data(tmp_path: Path) -> None:
    if not NER_FILE.exists():
        pytest.skip(f"{NER_FILE} not found")
    db = str(tmp_path / "ner.db")
    runner = CliRunner()
    imported = runner.invoke(cli, ["import", str(NER_FILE), "--db", db])
    assert imported.exit_code == 0, imported.output
    # What the file says, read here on its own: accepted tasks' spans, by title, HN ids.
    expected_ids: dict[str, set[str]] = defaultdict(set)
    expected_mentions: dict[str, int] = defaultdict(int)
    for line in NER_FILE.read_text(encoding="utf-8").splitlines():
        task = json.loads(line)
        if task.get("answer") != "accept":
            continue
        for span in task.get("spans", []):
            key = title_key(task["text"][span["start"] : span["end"]])
            expected_ids[key].add(str(task["meta"]["id"]))
            expected_mentions[key] += 1
    result = runner.invoke(cli, ["titles", "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert len(listed) == len(expected_ids) > 100
    for title in listed:
        key = title_key(title["title"])
        assert {m["hn_id"] for m in title["mentioned_in"]} == expected_ids[key], title["title"]
        assert title["mentions"] == expected_mentions[key]
        assert title["items"] == len(title["mentioned_in"])
    # Most items first; the shared data's most mentioned titles.
    assert [t["items"] for t in listed] == sorted((t["items"] for t in listed), reverse=True)
    top = {t["title"]: (t["items"], t["mentions"]) for t in listed[:4]}
    assert top["Clean Code"] == (5, 6) and top["Dune"] == (5, 5)
    # The table and a CSV file.
    table = runner.invoke(cli, ["titles", "--db", db, "--label", "BOOK", "--limit", "3"])
    assert table.exit_code == 0 and "Clean Code" in table.output
    out = tmp_path / "titles.csv"
    written = runner.invoke(cli, ["titles", "--db", db, "-o", str(out)])
    assert written.exit_code == 0, written.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == len(listed) and rows[0]["title"] == listed[0]["title"]
