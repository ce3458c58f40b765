"""`hnbooks simulate` from the command line: the JSON contract, errors, and a light import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from hnbooks.lab.cli import simulate
from tests.simulation.corpus import topic_corpus

JSON_KEYS = {
    "positives_per_100",
    "recall_at_budget",
    "labels_to_first",
    "audc",
    "share_found_none",
    "heldout_ap",
    "prevalence",
    "found_so_far_coverage",
    "runs",
}


def tiny_file(tmp_path: Path) -> Path:
    dataset = topic_corpus(per_topic=40)
    path = tmp_path / "topics.jsonl"
    path.write_text(
        "".join(
            json.dumps({"text": t, "label": c}) + "\n"
            for t, c in zip(dataset.texts, dataset.classes.tolist())
        ),
        encoding="utf-8",
    )
    return path


def test_json_output_is_one_object_with_the_metrics(tmp_path: Path) -> None:
    args = [
        "--dataset",
        str(tiny_file(tmp_path)),
        "--positive",
        "zoo",
        "--keep-positives",
        "6",
        "--seeds",
        "1",
        "--features",
        "tfidf",
        "--budget",
        "30",
        "--batch-size",
        "10",
        "--repeats",
        "2",
        "--json",
        "--data-dir",
        str(tmp_path / "cache"),
    ]
    result = CliRunner().invoke(simulate, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert JSON_KEYS <= set(payload)
    assert len(payload["runs"]) == payload["repeats"] == 2
    assert payload["strategy"] == "default" and payload["features"] == "tfidf"
    # Seeds are given, so every batch is a model round, each checked once: 3 a run.
    assert payload["found_so_far_checks"] == 3 * len(payload["runs"])
    assert 0 <= payload["found_so_far_coverage"] <= 1
    again = CliRunner().invoke(simulate, args)
    assert json.loads(again.stdout) == payload


def test_the_table_names_the_metrics(tmp_path: Path) -> None:
    args = [
        "--dataset",
        str(tiny_file(tmp_path)),
        "--positive",
        "cars",
        "--keep-positives",
        "5",
        "--seeds",
        "1",
        "--features",
        "tfidf",
        "--budget",
        "20",
        "--batch-size",
        "10",
        "--repeats",
        "1",
        "--strategy",
        "stream-ema",
        "--data-dir",
        str(tmp_path / "cache"),
    ]
    result = CliRunner().invoke(simulate, args)
    assert result.exit_code == 0, result.output
    assert "new positives per 100 labels" in result.stdout
    assert "held-out average precision" in result.stdout


def test_a_missing_or_unknown_positive_is_explained(tmp_path: Path) -> None:
    path = tiny_file(tmp_path)
    result = CliRunner().invoke(simulate, ["--dataset", str(path), "--features", "tfidf"])
    assert result.exit_code == 1 and "--positive" in result.stderr and "zoo" in result.stderr
    result = CliRunner().invoke(
        simulate, ["--dataset", str(path), "--positive", "nope", "--features", "tfidf"]
    )
    assert result.exit_code == 1 and "no text of class 'nope'" in result.stderr


def test_importing_the_command_loads_no_model_runtime() -> None:
    code = "import json, sys; import hnbooks.lab.cli; print(json.dumps(sorted(sys.modules)))"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = {name.split(".")[0] for name in json.loads(output)}
    assert not loaded & {"sklearn", "onnxruntime", "tokenizers", "torch", "textual", "scipy"}


def test_help_shows_the_scorers_features_as_the_default() -> None:
    result = CliRunner().invoke(simulate, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    flat = " ".join(result.output.split())
    assert "what hnbooks-score ranks with" in flat and "[default: words]" in flat
    near = "--near-duplicates-of-positives / --no-near-duplicates-of-positives"
    assert near in flat
