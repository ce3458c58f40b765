"""A label's words, kept in the database: `hnbooks seed --query` and `hnbooks labels query` set
them, and every later round searches and trains on them without being told again."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hnbooks.cli import cli
from hnbooks.scoring.job import RoundConfig, run_round
from hnbooks.store.connection import StoreError
from hnbooks.store.db import Store
from hnbooks.store.records import NewAnswer
from tests.helpers import store_with_texts
from tests.selection.test_round import build


def test_a_label_keeps_its_words_through_a_rename_and_forgets_them_when_cleared(
    db_path: Path,
) -> None:
    with Store(db_path) as store:
        assert store.label_query("BOOK") is None
        store.set_label_query("BOOK", "  a novel   I recommend ")
        store.rename_label("BOOK", "WORK")
        assert store.label_query("WORK") == "a novel I recommend"
        store.set_label_query("WORK", None)
        assert store.label_query("WORK") is None
        with pytest.raises(StoreError, match="no label 'MOVIE'"):
            store.set_label_query("MOVIE", "a film")


def test_a_database_from_before_label_queries_reads_as_is_and_is_upgraded(db_path: Path) -> None:
    Store(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("ALTER TABLE labels DROP COLUMN query")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm010_label_queries'")
    conn.commit()
    conn.close()
    with Store(db_path, readonly=True) as old:
        assert old.label_query("BOOK") is None
    with Store(db_path) as upgraded:
        upgraded.set_label_query("BOOK", "a novel")
        assert upgraded.label_query("BOOK") == "a novel"


def test_seed_keeps_words_and_sentences_but_not_a_regular_expression(db_path: Path) -> None:
    store, _ = store_with_texts(
        db_path, [f"I loved the novel number {n}" for n in range(6)] + ["a kernel bug"] * 4
    )
    store.close()
    runner = CliRunner()
    db = ["--db", str(db_path)]
    regex = runner.invoke(cli, ["seed", "--regex", "--query", "nov.l", "--limit", "2", *db])
    assert regex.exit_code == 0, regex.output
    shown = runner.invoke(cli, ["labels", "query", "BOOK", *db])
    assert shown.exit_code == 0 and "no words given for BOOK" in shown.stderr
    assert shown.stdout.strip() == RoundConfig(label="BOOK").cold_start_query()

    words = runner.invoke(cli, ["seed", "--query", "novel", "--limit", "2", *db])
    assert words.exit_code == 0, words.output
    assert "trains on 'novel' as a BOOK positive" in words.stderr
    assert runner.invoke(cli, ["labels", "query", "BOOK", *db]).stdout.strip() == "novel"

    typed = runner.invoke(cli, ["labels", "query", "BOOK", "a novel I loved", *db])
    assert typed.exit_code == 0 and typed.stdout.strip() == "a novel I loved"
    cleared = runner.invoke(cli, ["labels", "query", "BOOK", "--clear", *db])
    assert cleared.exit_code == 0 and "fallback" in cleared.stderr
    for bad, message in (
        (["BOOK", "words", "--clear"], "not both"),
        (["BOOK", "  "], "TEXT is empty"),
        (["MOVIE"], "no label 'MOVIE'"),
    ):
        refused = runner.invoke(cli, ["labels", "query", *bad, *db])
        assert refused.exit_code != 0 and message in refused.stderr


def test_rounds_search_and_train_on_the_stored_words_unless_told_others(db_path: Path) -> None:
    store, ids, pool = build(db_path)
    store.set_label_query("BOOK", "a book I love")
    asked: list[str] = []

    def encode(text: str) -> np.ndarray:
        asked.append(text)
        return pool.rows(np.array([ids[4]]))[0]

    seed = run_round(store, pool, RoundConfig(label="BOOK", batch_size=5), encode_query=encode)
    assert seed.report.mode == "seed" and seed.report.seed_query == "a book I love"
    store.record_answer(ids[0], NewAnswer("ann", "accept"))
    model = run_round(store, pool, RoundConfig(label="BOOK", batch_size=5), encode_query=encode)
    assert model.report.mode == "model" and model.report.seed_query == "a book I love"
    assert model.head is not None and model.head.training["query_rows"] == 1
    told = RoundConfig(label="BOOK", batch_size=5, seed_query="other words")
    assert run_round(store, pool, told, encode_query=encode).report.seed_query == "other words"
    assert asked == ["a book I love", "a book I love", "other words"]
