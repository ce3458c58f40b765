"""Hostile input for the importers: every file either imports correctly or fails with one clear line
naming the file (and the line, when one line is at fault), and a failed import leaves the database
holding exactly the rows it held before — through `import_file` and through `hnbooks import`.

Files are valid Prodigy / JSONL / Hacker News / CSV / text files with one line spoiled (invalid
UTF-8, NUL bytes, deep nesting, wrong types, spans out of range or overlapping, an id reused for a
different text), truncated at a random byte, or random bytes under a random extension.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hnbooks.cli import cli
from hnbooks.importing import ImportFault, import_file, text_key
from hnbooks.store.db import Store
from tests.reliability.conftest import LedgerLine
from tests.reliability.processes import table_dump

EXAMPLES = {"default": 100, "slow": 1000}


@dataclass(frozen=True)
class Case:
    """A file to import and what is known about it."""

    name: str
    content: bytes
    fmt: str = "auto"
    spoiled_line: int | None = None
    """The one line spoiled (1-based), when a fault must name exactly that line."""
    expected_texts: tuple[str, ...] | None = None
    """Texts a correct import stores (None: not known, e.g. cleaned HTML or a spoiled file)."""
    expected_answers: int | None = None
    """Answers a correct import stores (None: not known)."""


# -- valid records ----------------------------------------------------------------------------------

words = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12
)
texts = st.lists(words, min_size=1, max_size=6).map(" ".join).filter(lambda t: t.strip() != "")


@st.composite
def prodigy_record(draw: st.DrawFn) -> dict[str, Any]:
    text = draw(texts)
    record: dict[str, Any] = {"text": text, "meta": {"source": draw(words)}}
    if draw(st.booleans()):
        record["answer"] = draw(st.sampled_from(["accept", "reject", "ignore"]))
        record["_timestamp"] = draw(st.integers(1_500_000_000, 1_800_000_000))
        record["_annotator_id"] = draw(st.sampled_from(["ann", "bob"]))
        record["label"] = "BOOK"
        if len(text) > 1 and draw(st.booleans()):
            start = draw(st.integers(0, len(text) - 1))
            end = draw(st.integers(start + 1, len(text)))
            record["spans"] = [{"start": start, "end": end, "label": "BOOK"}]
            record["_view_id"] = "ner_manual"
    return record


@st.composite
def hn_record(draw: st.DrawFn, item_id: int) -> dict[str, Any]:
    return {
        "id": item_id,
        "by": draw(st.sampled_from(["pg", "dang", "tptacek"])),
        "time": draw(st.integers(1_200_000_000, 1_800_000_000)),
        "type": "comment",
        "parent": draw(st.integers(1, 10**7)),
        "text": draw(st.sampled_from(["<p>", "", "<i>", "&amp;", '<a href="https://x.org">x</a>']))
        + draw(texts),
    }


def jsonl(records: list[Any]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


# -- spoiling one line ------------------------------------------------------------------------------

WRONG_VALUES: dict[str, list[Any]] = {
    "text": [1, 1.5, True, None, [], {}, ["a"], "\u0000nul", "lone \ud800 surrogate"],
    "meta": [[], "x", 1, True],
    "spans": [
        {},
        "x",
        1,
        [1],
        [{"start": "0", "end": 1, "label": "BOOK"}],
        [{"start": 0.0, "end": 1, "label": "BOOK"}],
        [{"start": True, "end": 1, "label": "BOOK"}],
        [{"start": 0, "end": 1}],
        [{"start": 0, "end": 1, "label": ""}],
        [{"start": -1, "end": 1, "label": "BOOK"}],
        [{"start": 0, "end": 10**6, "label": "BOOK"}],
        [{"start": 1, "end": 1, "label": "BOOK"}],
        [{"start": 2, "end": 1, "label": "BOOK"}],
        [{"start": 0, "end": 1, "label": "BOOK"}, {"start": 0, "end": 1, "label": "BOOK"}],
    ],
    "answer": ["yes", 1, [], {}, "ACCEPT"],
    "label": [1, [], {}],
    "_input_hash": ["x", 1.5, 2**70, -(2**70), True, []],
    "_task_hash": ["x", 2**64, []],
    "_timestamp": ["x", math.nan, math.inf, -math.inf, 1e308, [], True],
    "_annotator_id": [1, [], {"a": 1}, "", "\ud800"],
    "_view_id": [1, [], {}],
    "_hnbooks": [[], "x", {"score": math.nan, "strategy": []}],
}
HN_WRONG_VALUES: dict[str, list[Any]] = {
    "id": [None, "", [], {}, 1.5, True, math.nan, 10**30],
    "text": [1, [], {}, "\u0000", "<p>" * 5000],
    "by": [[], {}, 1],
    "time": ["x", [], 1e308, math.inf],
    "parent": ["x", [], math.nan],
    "deleted": ["x", 1, [], "true"],
    "dead": [0, "false", None],
}


def deep(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "list" else '{"a":' * depth + "1" + "}" * depth


@st.composite
def spoiled_json_file(
    draw: st.DrawFn,
    kinds: tuple[str, ...] = ("prodigy", "jsonl", "hn", "mixed"),
    spoils: tuple[str, ...] = (
        "none",
        "wrong-type",
        "invalid-utf8",
        "raw-nul",
        "deep-line",
        "deep-meta",
        "not-object",
        "duplicate-id",
    ),
) -> Case:
    kind = draw(st.sampled_from(kinds))
    count = draw(st.integers(1, 6))
    if kind == "hn":
        records = [draw(hn_record(1000 + n)) for n in range(count)]
    elif kind == "mixed":
        # Each line its own flavour, as in concatenated files; distinct texts, so that every
        # answer lands on an item of its own and none is a duplicate of another.
        records = []
        for n in range(count):
            flavour = draw(st.sampled_from(["prodigy", "jsonl", "hn"]))
            if flavour == "hn":
                records.append(draw(hn_record(1000 + n)))
                continue
            record = draw(prodigy_record())
            record["text"] = f"{record['text']} #{n}"
            record.pop("spans", None)
            record.pop("_view_id", None)
            records.append(record if flavour == "prodigy" else {"text": record["text"]})
    else:
        records = [draw(prodigy_record()) for _ in range(count)]
        if kind == "jsonl":
            records = [{"text": r["text"], "meta": r["meta"]} for r in records]
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    spoil = draw(st.sampled_from(spoils))
    at = draw(st.integers(0, count - 1))
    suffix = ".jsonl"
    raw = [line.encode("utf-8") for line in lines]
    spoiled_line: int | None = at + 1
    if spoil == "none":
        spoiled_line = None
    elif spoil == "wrong-type":
        table = HN_WRONG_VALUES if kind == "hn" else WRONG_VALUES
        field = draw(st.sampled_from(sorted(table)))
        records[at][field] = draw(st.sampled_from(table[field]))
        # json.dumps writes NaN/Infinity, which Python's json (and so the importer) reads back.
        raw[at] = json.dumps(records[at], ensure_ascii=draw(st.booleans())).encode(
            "utf-8", "surrogatepass"
        )
        spoiled_line = (
            None  # a wrong type may also be read in a tolerant way: either outcome is fine
        )
    elif spoil == "invalid-utf8":
        cut = draw(st.integers(0, len(raw[at])))
        bad = draw(
            st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf", b"\x80"])
        )
        raw[at] = raw[at][:cut] + bad + raw[at][cut:]
    elif spoil == "raw-nul":
        cut = draw(st.integers(0, len(raw[at])))
        raw[at] = raw[at][:cut] + b"\x00" + raw[at][cut:]
    elif spoil == "deep-line":
        raw[at] = deep(
            draw(st.sampled_from([50, 900, 5000, 100_000])), draw(st.sampled_from(["list", "dict"]))
        ).encode()
    elif spoil == "deep-meta":
        depth = draw(st.sampled_from([50, 500, 900, 990, 1500, 5000, 100_000]))
        raw[at] = (
            json.dumps({"text": "deep " + lines[at][:5]})[:-1]
            + ', "meta": '
            + deep(depth, "dict")
            + "}"
        ).encode()
        if kind == "hn":
            raw[at] = f'{{"id": 77, "text": "deep", "by": {deep(depth, "list")}}}'.encode()
        spoiled_line = None  # shallow enough nesting is a valid record
    elif spoil == "not-object":
        raw[at] = draw(
            st.sampled_from([b"[]", b"1", b'"text"', b"null", b"true", b'{"text": "x"} {}', b"{"])
        )
    elif spoil == "duplicate-id":
        if kind != "hn":
            spoiled_line = None
        else:
            twin = dict(records[at], text=records[at]["text"] + " but different")
            raw.insert(at + 1, json.dumps(twin, ensure_ascii=False).encode())
            spoiled_line = at + 2
    # Each line is read for what it is, the first one too: a spoiled first line is named like any.
    content = b"\n".join(raw) + draw(st.sampled_from([b"\n", b"", b"\r\n", b"\n\n"]))
    expected = None
    answers = None
    if spoil == "none" and kind not in ("hn", "mixed"):
        expected = tuple(r["text"] for r in records)
    if spoil == "none" and kind == "mixed":
        answers = sum("answer" in r for r in records)
    return Case(f"{kind}-{spoil}{suffix}", content, "auto", spoiled_line, expected, answers)


@st.composite
def csv_file(draw: st.DrawFn) -> Case:
    delimiter, suffix = draw(st.sampled_from([(",", ".csv"), ("\t", ".tsv")]))
    rows = draw(st.lists(st.tuples(texts, words), min_size=1, max_size=6))
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(["text", "note"])
    writer.writerows(rows)
    content = buffer.getvalue().encode("utf-8")
    spoil = draw(
        st.sampled_from(["none", "quote", "nul", "invalid-utf8", "extra-field", "no-text-column"])
    )
    expected: tuple[str, ...] | None = None
    if spoil == "none":
        expected = tuple(t for t, _ in rows)
    elif spoil == "quote":
        content += b'"unterminated, field\n'
    elif spoil == "nul":
        content += b"a\x00b,c\n"
    elif spoil == "invalid-utf8":
        content += b"caf\xe9,x\n"
    elif spoil == "extra-field":
        content += delimiter.join(["a", "b", "c"]).encode() + b"\n"
    elif spoil == "no-text-column":
        content = content.replace(b"text", b"body", 1)
    return Case(f"table-{spoil}{suffix}", content, "auto", None, expected)


@st.composite
def text_file(draw: st.DrawFn) -> Case:
    lines = draw(
        st.lists(texts.filter(lambda t: "\n" not in t and "\r" not in t), min_size=1, max_size=6)
    )
    content = "\n".join(lines).encode("utf-8") + b"\n"
    expected: tuple[str, ...] | None = tuple(lines)
    if draw(st.booleans()):
        content += draw(st.sampled_from([b"nul \x00 inside\n", b"bad \xff byte\n"]))
        expected = None
    return Case("lines.txt", content, "auto", None, expected)


@st.composite
def truncated(draw: st.DrawFn) -> Case:
    case = draw(st.one_of(spoiled_json_file(), csv_file(), text_file()))
    cut = draw(st.integers(0, len(case.content)))
    return Case("truncated-" + case.name, case.content[:cut], case.fmt)


random_bytes = st.builds(
    lambda content, suffix, fmt: Case(f"random{suffix}", content, fmt),
    st.binary(max_size=600),
    st.sampled_from([".jsonl", ".json", ".txt", ".csv", ".tsv", ".parquet", ".bin"]),
    st.sampled_from(["auto", "auto", "prodigy", "hn", "jsonl", "text", "csv"]),
)
hostile_files = st.one_of(spoiled_json_file(), csv_file(), text_file(), truncated(), random_bytes)


# -- the check ------------------------------------------------------------------------------------


class Attempts:
    """Imports files, each into a fresh copy of a small database, and checks the outcome."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.template = folder / "template.db"
        with Store(self.template) as store:
            # Rows that must survive every failed import untouched.
            import_file(
                store,
                self.write("seed.jsonl", jsonl([{"text": "already here"}, {"text": "and here"}])),
            )
        self.db_path = folder / "fuzz.db"
        self.store = self.fresh_store()
        self.count = 0
        self.imported = 0
        self.refused = 0

    def fresh_store(self) -> Store:
        """A new copy of the template: what one example imported never meets the next one."""
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.db_path}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(self.template, self.db_path)
        return Store(self.db_path)

    def write(self, name: str, content: bytes) -> Path:
        path = self.folder / name
        path.write_bytes(content)
        return path

    def check(self, case: Case) -> None:
        self.count += 1
        self.store.close()
        self.store = self.fresh_store()
        path = self.write(f"{self.count:05d}-{case.name}", case.content)
        before = table_dump(self.db_path)
        try:
            import_file(self.store, path, fmt=case.fmt)
        except ImportFault as fault:
            self.refused += 1
            message = str(fault)
            assert "\n" not in message and message.startswith(f"{path}:"), message
            assert "Traceback" not in message
            if case.spoiled_line is not None:
                assert fault.line == case.spoiled_line, (
                    f"{message} (line {case.spoiled_line} was spoiled)"
                )
            assert table_dump(self.db_path) == before, "a refused file changed the database"
            self.check_cli_refuses(path, message, before)
            return
        self.imported += 1
        after = table_dump(self.db_path)
        for table, rows in before.items():
            assert after[table][: len(rows)] == rows, f"importing changed existing rows of {table}"
        if case.expected_texts is not None:
            stored = {text_key(text) for (text,) in self.store._query("SELECT text FROM items")}
            assert {text_key(t) for t in case.expected_texts} <= stored
        if case.expected_answers is not None:
            added = len(after["answers"]) - len(before["answers"])
            assert added == case.expected_answers, "answers were lost (or made up) by the import"
        # A second import of the same file adds no item and no answer.
        import_file(self.store, path, fmt=case.fmt)
        again = table_dump(self.db_path)
        assert len(again["items"]) == len(after["items"])
        assert again["answers"] == after["answers"]

    def check_cli_refuses(self, path: Path, message: str, before: dict[str, Any]) -> None:
        result = CliRunner().invoke(
            cli, ["import", str(path), "--db", str(self.db_path), "--format", "auto"]
        )
        assert result.exit_code in (0, 1), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        assert "Traceback" not in result.output
        if result.exit_code == 1:
            assert f"error: {path}" in result.stderr
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert table_dump(self.db_path) == before or result.exit_code == 0


@pytest.fixture
def attempts(tmp_path: Path) -> Attempts:
    made = Attempts(tmp_path)
    yield made
    made.store.close()


def test_hostile_files_import_cleanly_or_are_refused_with_one_line(
    attempts: Attempts, slow: bool, ledger: LedgerLine
) -> None:
    @settings(
        max_examples=EXAMPLES["slow" if slow else "default"],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @given(hostile_files)
    def run(case: Case) -> None:
        attempts.check(case)

    run()
    ledger.add("files tried", attempts.count)
    ledger.add("imported", attempts.imported)
    ledger.add("refused with one line", attempts.refused)
    ledger.add("partial imports", 0)


def test_every_line_of_a_mixed_file_is_read_for_what_it_is(
    attempts: Attempts, ledger: LedgerLine
) -> None:
    """Plain texts, Prodigy answers and HN items in one file, in any order: every answer is
    imported as an answer, whatever the first line is."""

    @settings(max_examples=40, deadline=None, database=None)
    @given(
        spoiled_json_file(kinds=("mixed",), spoils=("none",)).filter(
            lambda case: bool(case.expected_answers)
        )
    )
    def run(case: Case) -> None:
        attempts.check(case)

    run()
    ledger.add("mixed files tried", attempts.count)
    ledger.add("answers lost", 0)


WRONG_TYPE_CASES = [
    pytest.param("prodigy", field, value, id=f"prodigy-{field}-{n}")
    for field, values in WRONG_VALUES.items()
    for n, value in enumerate(values)
] + [
    pytest.param("hn", field, value, id=f"hn-{field}-{n}")
    for field, values in HN_WRONG_VALUES.items()
    for n, value in enumerate(values)
]


@pytest.mark.parametrize(("kind", "field", "value"), WRONG_TYPE_CASES)
def test_every_wrong_type_is_read_or_refused_naming_its_line(
    attempts: Attempts, kind: str, field: str, value: Any
) -> None:
    if kind == "hn":
        good = [
            {"id": 1, "by": "pg", "text": "first", "type": "comment"},
            {"id": 3, "by": "pg", "text": "third"},
        ]
        spoiled = {"id": 2, "by": "dang", "text": "second", "time": 1_600_000_000, "parent": 1}
    else:
        good = [
            {"text": "first", "answer": "accept", "_timestamp": 1},
            {"text": "third", "answer": "reject"},
        ]
        spoiled = {
            "text": "the second text",
            "answer": "accept",
            "label": "BOOK",
            "_annotator_id": "ann",
            "_timestamp": 1_600_000_000,
            "spans": [{"start": 4, "end": 10, "label": "BOOK"}],
        }
    spoiled[field] = value
    lines = [json.dumps(good[0]), json.dumps(spoiled), json.dumps(good[1])]
    content = "\n".join(lines).encode("utf-8", "surrogatepass") + b"\n"
    attempts.check(Case(f"{kind}-{field}.jsonl", content, "auto", spoiled_line=2))


HUGE_CASES = [
    pytest.param(
        "huge-text.jsonl",
        b'{"text": "ok"}\n{"text": "' + b"a" * 1_200_000 + b'"}\n',
        2,
        "characters",
        id="text-1.2M-chars",
    ),
    pytest.param("huge-line.txt", b"fine\n" + b"b" * 4_500_000 + b"\n", 2, "MB", id="line-4.5MB"),
    pytest.param(
        "huge-prodigy.jsonl",
        b'{"text": "ok", "answer": "accept"}\n{"text": "x", "meta": {"pad": "'
        + b"c" * 4_100_000
        + b'"}}\n',
        2,
        "MB",
        id="meta-4.1MB",
    ),
]


@pytest.mark.parametrize(("name", "content", "line", "says"), HUGE_CASES)
def test_huge_lines_are_refused_naming_the_line(
    attempts: Attempts, name: str, content: bytes, line: int, says: str, ledger: LedgerLine
) -> None:
    path = attempts.write(name, content)
    before = table_dump(attempts.db_path)
    with pytest.raises(ImportFault) as refused:
        import_file(attempts.store, path)
    assert refused.value.line == line and says in str(refused.value)
    assert table_dump(attempts.db_path) == before
    attempts.check_cli_refuses(path, str(refused.value), before)
    ledger.add("huge files refused", 1)
