"""Prodigy-compatible tokens and hashes, checked against Prodigy's own output in the bookfinder files."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from hnbooks.prodigy import input_hash, prodigy_tokens, task_hash, token_bounds


def _records(files: list[Path], *names: str) -> list[dict[str, Any]]:
    chosen = [f for f in files if not names or f.name in names]
    return [json.loads(line) for f in chosen for line in f.read_text().splitlines() if line]


NER_FILES = ("hnbook_ner_manual.jsonl", "hnbook_ner_confirmed.jsonl")


def test_tokens_equal_prodigys_but_for_the_last_tokens_ws(bookfinder_files: list[Path]) -> None:
    stored = {r["text"]: r["tokens"] for r in _records(bookfinder_files, *NER_FILES)}
    exact = 0
    for text, tokens in stored.items():
        rebuilt = prodigy_tokens(text)
        exact += rebuilt == tokens
        # Some texts were stripped after Prodigy tokenized them: their last "ws" is unrecoverable.
        rebuilt[-1]["ws"] = tokens[-1]["ws"]
        assert rebuilt == tokens, text
    assert exact / len(stored) >= 0.82


def test_token_bounds_give_the_stored_span_token_indices(bookfinder_files: list[Path]) -> None:
    spans_checked = 0
    for record in _records(bookfinder_files, *NER_FILES):
        for span in record.get("spans", []):
            bounds = token_bounds(record["tokens"], span["start"], span["end"])
            assert bounds == (span["token_start"], span["token_end"])
            spans_checked += 1
    assert spans_checked > 300


def test_token_bounds_is_none_off_token_boundaries() -> None:
    tokens = prodigy_tokens("Read Missile Gap, by Stross.")
    assert token_bounds(tokens, 5, 16) == (1, 2)
    assert token_bounds(tokens, 6, 16) is None
    assert token_bounds(tokens, 5, 15) is None
    assert token_bounds(tokens, 16, 5) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I don't know, it's fine.", ["I", "do", "n't", "know", ",", "it", "'s", "fine", "."]),
        ("Read (https://example.com/a?b=1).", ["Read", "(", "https://example.com/a?b=1", ")", "."]),
        ("rock-and-roll in the 1990s", ["rock", "-", "and", "-", "roll", "in", "the", "1990s"]),
        ("e.g. U.S. and/or :) p. 12", ["e.g.", "U.S.", "and/or", ":)", "p.", "12"]),
        ("gonna cannot", ["gon", "na", "can", "not"]),
        ("end.\n\nNext", ["end", ".", "\n\n", "Next"]),
        ("a  b", ["a", " ", "b"]),
    ],
)
def test_tokens_follow_spacy_english_rules(text: str, expected: list[str]) -> None:
    assert [t["text"] for t in prodigy_tokens(text)] == expected


@pytest.mark.parametrize(
    "text",
    [
        "Hello 👋🏽 world 🇫🇷!",
        "東京は日本の首都です。本を読む",
        unicodedata.normalize("NFD", "café naïve — résumé"),
        "  leading and trailing  \n",
        "",
        "\u200b zero width",
    ],
)
def test_tokens_cover_any_text_with_valid_offsets(text: str) -> None:
    tokens = prodigy_tokens(text)
    position = 0
    for index, token in enumerate(tokens):
        assert token["id"] == index
        assert token["start"] >= position and token["end"] > token["start"]
        assert text[token["start"] : token["end"]] == token["text"]
        assert text[position : token["start"]] in ("", " ")
        assert token["ws"] == (text[token["end"] : token["end"] + 1] == " ")
        position = token["end"] + token["ws"]
    assert text[position:] == ""


def test_input_hashes_equal_prodigys_for_every_record(bookfinder_files: list[Path]) -> None:
    records = _records(bookfinder_files)
    assert len(records) > 1400
    mismatched = [r["text"][:40] for r in records if input_hash(r) != r["_input_hash"]]
    assert mismatched == []


def test_task_hashes_equal_prodigys_for_the_task_as_streamed(bookfinder_files: list[Path]) -> None:
    """Prodigy keeps the task hash of the task it streamed, before the annotator's answer.

    ner_manual streamed bare texts (text and meta); classification and ner_confirmed tasks
    carried their label or suggested spans, which the file still holds unless the annotator
    edited the spans (89 ner_confirmed records).
    """
    matched = total = 0
    for path in bookfinder_files:
        for record in _records([path]):
            streamed = record
            if path.name == "hnbook_ner_manual.jsonl":
                streamed = {"text": record["text"], "meta": record["meta"]}
            matched += task_hash(streamed, input_hash(record)) == record["_task_hash"]
            total += 1
            if path.name != "hnbook_ner_confirmed.jsonl":
                assert task_hash(streamed, input_hash(record)) == record["_task_hash"]
    assert total > 1400 and matched >= 1360


def test_hashes_are_signed_32_bit_and_deterministic() -> None:
    task = {"text": "Read Dune.", "label": "BOOK"}
    first = input_hash(task)
    assert first == input_hash(dict(task)) and -(2**31) <= first < 2**31
    assert -(2**31) <= task_hash(task, first) < 2**31


def test_input_hash_ignores_everything_but_the_input_keys() -> None:
    task = {"text": "Read Dune."}
    noisy = {**task, "meta": {"id": 1}, "answer": "accept", "_view_id": "ner", "score": 0.5}
    assert input_hash(noisy) == input_hash(task)
    assert input_hash({"text": "Read Emma."}) != input_hash(task)


def test_task_hash_changes_with_label_and_spans() -> None:
    task = {"text": "Read Dune."}
    h = input_hash(task)
    book = task_hash({**task, "label": "BOOK"}, h)
    assert book != task_hash({**task, "label": "MOVIE"}, h)
    span = {"start": 5, "end": 9, "label": "BOOK"}
    assert task_hash({**task, "spans": [span]}, h) != task_hash({**task, "spans": []}, h)
    assert task_hash({**task, "label": "BOOK", "answer": "reject"}, h) == book
