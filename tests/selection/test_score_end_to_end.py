"""The real exported model end to end: import the demo data, score, seed, score again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hnbooks.store.db import Store
from hnbooks.store.records import NewAnswer
from tests.conftest import DEMO_FILE

pytestmark = pytest.mark.model


def hnbooks(*args: str) -> subprocess.CompletedProcess[str]:
    script = "from hnbooks.cli import main; main()"
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True)


def score(*args: str) -> subprocess.CompletedProcess[str]:
    script = "from hnbooks.scoring.cli import main; main()"
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True)


def test_demo_data_scored_seeded_and_rescored_with_the_real_model(tmp_path: Path) -> None:
    db = str(tmp_path / "demo.db")
    assert hnbooks("import", str(DEMO_FILE), "--db", db).returncode == 0

    first = score("--db", db, "--random-seed", "1")
    assert first.returncode == 0, first.stderr
    assert "on CPU" in first.stderr or "CUDA" in first.stderr
    assert "seed channel only" in first.stderr
    assert "Traceback" not in first.stderr
    queue = json.loads(hnbooks("queue", "--db", db, "--json").stdout)
    assert len(queue) == 50 and {q["strategy"] for q in queue} == {"seed"}
    # Semantic seeding on the real model puts book talk first.
    assert sum("book" in q["text"].lower() or "read" in q["text"].lower() for q in queue[:10]) >= 5

    store = Store(db)
    for entry in queue:
        text = entry["text"].lower()
        answer = "accept" if "book" in text or "novel" in text else "reject"
        store.record_answer(
            entry["item_id"], NewAnswer("tester", answer, batch_id=entry["batch"], strategy="seed")
        )
    store.close()

    seeded = hnbooks("seed", "--db", db, "--query", "book")
    assert seeded.returncode == 0 and "published seed batch" in seeded.stdout

    second = score("--db", db, "--random-seed", "2")
    assert second.returncode == 0, second.stderr
    assert "embedded nothing new" in second.stderr
    queue = json.loads(hnbooks("queue", "--db", db, "--json").stdout)
    scored = [q for q in queue if q["strategy"] != "seed"]
    assert len(scored) == 50
    assert {q["strategy"] for q in scored} == {"top", "uncertain", "novel", "query", "random"}
    assert len({q["item_id"] for q in queue}) == len(queue)
    rounds = Store(db).rounds()
    assert [r.report.mode for r in rounds] == ["seed", "model"]
    assert rounds[-1].report.positives > 0
