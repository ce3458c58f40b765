"""Start simulated annotator processes and check their logs against the database."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.reliability.processes import REPO_ROOT, child_env, read_rows


@dataclass
class AnnotatorProcess:
    name: str
    log: Path
    process: subprocess.Popen[str]


def spawn_annotator(
    db_path: Path, name: str, *, seed: int, log_name: str | None = None, **options: Any
) -> AnnotatorProcess:
    """Start `annotator_child` for `name`; it waits for `start_all` before answering. Several
    children of one annotator (sessions) need a `log_name` each."""
    log = db_path.parent / f"annotator-{log_name or name}.jsonl"
    flags = []
    for option, value in options.items():
        flag = "--" + option.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is not False:
            flags += [flag, str(value)]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.reliability.annotator_child",
            str(db_path),
            name,
            str(log),
            "--seed",
            str(seed),
            *flags,
        ],
        cwd=REPO_ROOT,
        env=child_env(db_path.parent),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return AnnotatorProcess(name, log, process)


def start_all(annotators: list[AnnotatorProcess]) -> None:
    """Once every child has imported what it needs, let them all go."""
    for annotator in annotators:
        assert annotator.process.stdout is not None
        ready = annotator.process.stdout.readline()
        assert ready.strip() == "ready", f"{annotator.name} did not start: {ready!r}"
    for annotator in annotators:
        assert annotator.process.stdin is not None
        annotator.process.stdin.write("go\n")
        annotator.process.stdin.close()


def finish(annotator: AnnotatorProcess, timeout: float = 120) -> list[dict[str, Any]]:
    assert annotator.process.stdout is not None
    output = annotator.process.stdout.read()
    assert annotator.process.wait(timeout=timeout) == 0, output
    return [json.loads(line) for line in annotator.log.read_text(encoding="utf-8").splitlines()]


@dataclass
class LogCheck:
    answers: int
    undos: int
    served: int
    batches_served: set[int]
    slowest_write_s: float


def check_log(db_path: Path, name: str, events: list[dict[str, Any]]) -> LogCheck:
    """The annotator's rows in the file are exactly the ones it wrote, in order; it was never served
    an item twice (unless it undid its answer first); no write failed."""
    errors = [e["error"] for e in events if e["event"] == "error"]
    assert errors == [], f"{name}: {len(errors)} failed writes, e.g. {errors[:3]}"
    written_answers = [(e["id"], e["item"], e["answer"]) for e in events if e["event"] == "answer"]
    written_undos = [e["undone"] for e in events if e["event"] == "undo"]
    rows = read_rows(
        db_path,
        "SELECT id, item_id, answer, undoes FROM answers WHERE annotator = ? ORDER BY id",
        (name,),
    )
    assert [
        (i, item, answer) for i, item, answer, _ in rows if answer != "undo"
    ] == written_answers, f"{name}: the answers in the file are not the ones it wrote"
    assert [undoes for _, _, answer, undoes in rows if answer == "undo"] == written_undos
    served: set[int] = set()
    for event in events:
        if event["event"] == "served":
            assert event["item"] not in served, f"{name} was served item {event['item']} twice"
            served.add(event["item"])
        elif event["event"] == "undo" and event["item"] is not None:
            served.discard(event["item"])
    return LogCheck(
        answers=len(written_answers),
        undos=len(written_undos),
        served=sum(1 for e in events if e["event"] == "served"),
        batches_served={e["batch"] for e in events if e["event"] == "served"},
        slowest_write_s=max((e["seconds"] for e in events if "seconds" in e), default=0.0),
    )


def check_sessions(db_path: Path, name: str, logs: list[list[dict[str, Any]]]) -> LogCheck:
    """Several sessions of one annotator, without undos: together their answers are exactly the
    annotator's rows in the file, and no item was served to two sessions nor answered twice."""
    errors = [e["error"] for events in logs for e in events if e["event"] == "error"]
    assert errors == [], f"{name}: {len(errors)} failed writes, e.g. {errors[:3]}"
    written = sorted(
        (e["id"], e["item"], e["answer"])
        for events in logs
        for e in events
        if e["event"] == "answer"
    )
    rows = read_rows(
        db_path,
        "SELECT id, item_id, answer FROM answers WHERE annotator = ? ORDER BY id",
        (name,),
    )
    assert [tuple(r) for r in rows] == written, f"{name}: the file holds other answers"
    answered = [item for _, item, _ in written]
    assert len(answered) == len(set(answered)), f"{name}: an item was answered twice"
    served = [{e["item"] for e in events if e["event"] == "served"} for events in logs]
    for n, mine in enumerate(served):
        for other in served[n + 1 :]:
            shared = mine & other
            assert not shared, f"{name}: items {sorted(shared)[:5]} were served to two sessions"
    return LogCheck(
        answers=len(written),
        undos=0,
        served=sum(len(s) for s in served),
        batches_served={e["batch"] for events in logs for e in events if e["event"] == "served"},
        slowest_write_s=max(
            (e["seconds"] for events in logs for e in events if "seconds" in e), default=0.0
        ),
    )
