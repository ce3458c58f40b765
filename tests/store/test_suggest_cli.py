"""`hnbooks suggest` end to end on the real exported encoder: trained on first use from the
database's span answers, kept for the next run, and valid `str` offsets for emoji, CJK and
combining marks."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from hnbooks.cli import cli
from hnbooks.models.folder import is_exported
from hnbooks.models.registry import DEFAULT_MODEL, model_dir
from hnbooks.suggest import word_spans

pytestmark = pytest.mark.model

TITLES = ["Dune", "三体", "Blindsight", "Anathem", "Ubik", "Solaris", "Neuromancer", "Piranesi"]
FRAMES = [
    "I just read {} 😀 and loved it.",
    "e\u0301te\u0301 reading: {}, 👩‍👩‍👧 all of us liked it.",
    "Has anyone read {}? 語 it changed how I think.",
]
QUERIES = [
    'I just read Solaris 😀 and loved it, then "The Dark Forest" by 刘慈欣.',
    "Cafe\u0301 e\u0301te\u0301 👩‍👩‍👧 Has anyone read Piranesi? 三体 too.",
    "🇫🇷🙂 nothing to see here, 語語語.",
]


def marked_tasks() -> list[dict[str, object]]:
    tasks: list[dict[str, object]] = []
    for n, title in enumerate(TITLES[:6]):
        frame = FRAMES[n % len(FRAMES)]
        text = frame.format(title)
        start = frame.index("{}")
        span = {"start": start, "end": start + len(title), "label": "BOOK"}
        tasks.append({"text": text, "answer": "accept", "spans": [span], "_view_id": "ner_manual"})
    for text in ("We moved to SQLite at Big Corp Inc.", "The New York office is closed 😀."):
        tasks.append({"text": text, "answer": "accept", "spans": [], "_view_id": "ner_manual"})
    return tasks


@pytest.fixture(scope="module")
def real_model() -> Path:
    folder = model_dir(DEFAULT_MODEL)
    if not is_exported(folder):
        pytest.skip(f"{DEFAULT_MODEL} is not exported (run `hnbooks models export`)")
    return folder


def write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    return path


def test_suggest_trains_on_first_use_and_prints_valid_offsets(
    tmp_path: Path, real_model: Path
) -> None:
    db = tmp_path / "books.db"
    runner = CliRunner()
    imported = runner.invoke(
        cli,
        ["import", str(write_jsonl(tmp_path / "marked.jsonl", marked_tasks())), "--db", str(db)],
    )
    assert imported.exit_code == 0, imported.output
    queries = write_jsonl(
        tmp_path / "queries.jsonl", [{"text": t, "id": n} for n, t in enumerate(QUERIES)]
    )
    args = ["suggest", str(queries), "--db", str(db), "--json", "--device", "cpu"]
    args += ["--models-dir", str(real_model.parent), "--threshold", "0"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [line["id"] for line in lines] == [0, 1, 2]
    for line in lines:
        text = line["text"]
        boundaries = {offset for span in word_spans(text) for offset in span}
        scores = [s["score"] for s in line["suggestions"]]
        assert scores == sorted(scores, reverse=True)
        for s in line["suggestions"]:
            assert 0 <= s["start"] < s["end"] <= len(text)
            assert text[s["start"] : s["end"]] == s["text"]
            # Whole words: never half an emoji sequence nor a letter without its combining mark.
            assert s["start"] in boundaries and s["end"] in boundaries
            assert s["source"] in ("rule", "model") and s["label"] == "BOOK"
            assert 0 <= s["score"] <= 1
    # The titles sit where the marked ones did: the learned model puts each first.
    assert lines[0]["suggestions"][0]["text"] == "Solaris"
    assert lines[1]["suggestions"][0]["text"] == "Piranesi"
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT label, trained_at FROM span_models").fetchall()
    assert [label for label, _ in stored] == ["BOOK"]
    # The next run uses the stored model rather than training again.
    again = runner.invoke(cli, args)
    assert again.exit_code == 0, again.output
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT label, trained_at FROM span_models").fetchall() == stored


def test_suggest_without_span_answers_gives_the_rules(tmp_path: Path, real_model: Path) -> None:
    db = tmp_path / "unmarked.db"
    queries = write_jsonl(tmp_path / "q.jsonl", [{"text": 'I read "The Hobbit" 😀.'}, {"n": 1}])
    runner = CliRunner()
    unmarked = write_jsonl(tmp_path / "texts.jsonl", [{"text": "Some comment, no answers."}])
    assert runner.invoke(cli, ["import", str(unmarked), "--db", str(db)]).exit_code == 0
    result = runner.invoke(
        cli,
        ["suggest", str(queries), "--db", str(db), "--models-dir", str(real_model.parent)],
    )
    assert result.exit_code == 0, result.output
    assert "line 1: 1 suggestion\n  8-18 BOOK 0.30 rule: The Hobbit" in result.stdout
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM span_models").fetchone() == (0,)
    assert "1 line without a `text` skipped" in result.stderr


def test_suggest_help_has_an_example() -> None:
    result = CliRunner().invoke(cli, ["suggest", "--help"])
    assert result.exit_code == 0
    assert "hnbooks suggest comments.jsonl" in result.output
