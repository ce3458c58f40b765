"""The exported model folder: its files, its manifest (hnbooks-model.json) and how to check them.

The export recipe (`hnbooks.models.export`) writes such a folder and the encoder
(`hnbooks.scoring.encoder`) runs one; this module is the only place that knows the layout, so the
two cannot drift apart. It imports nothing heavy (numpy only, for the pooling the format defines).

    model.onnx          fp32 graph
    model_int8.onnx     int8 graph (optional)
    model_fp16.onnx     fp16 graph for CUDA, pooling and L2 norm inside (optional)
    tokenizer.json      truncating, never padding tokenizer
    hnbooks-model.json  the manifest: spec, files with sha256 and size, defaults, agreement figures
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from hnbooks.models.registry import ModelMissing, ModelSpec

__all__ = [
    "FP16_FILE",
    "FP32_FILE",
    "INT8_FILE",
    "POOLED_OUTPUT",
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "TOKENIZER_FILE",
    "VARIANT_NAMES",
    "Agreement",
    "Cosines",
    "DefaultVariants",
    "GraphFile",
    "ManifestError",
    "ModelFolderError",
    "ModelManifest",
    "VariantFiles",
    "describe_file",
    "is_exported",
    "load_manifest",
    "mean_pool",
    "read_manifest",
    "sha256_of",
    "verify",
    "write_manifest",
]

MANIFEST_NAME = "hnbooks-model.json"
MANIFEST_FORMAT = 1
FP32_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
FP16_FILE = "model_fp16.onnx"
TOKENIZER_FILE = "tokenizer.json"
VARIANT_NAMES = ("fp32", "int8", "fp16")
POOLED_OUTPUT = "sentence_embedding"
"""A graph output of unit-length pooled vectors (batch, dimension): the runtime then skips `mean_pool`."""

_T = TypeVar("_T")
JSON_TYPE_NAMES: dict[type, str] = {dict: "a JSON object", str: "a string", int: "an integer"}


class ManifestError(ValueError):
    """A manifest whose JSON does not have the shape this version of hnbooks reads."""


class ModelFolderError(ModelMissing):
    """A folder that holds no complete export; `reason` says what is wrong, `hint` what to run."""

    def __init__(self, folder: str | os.PathLike[str], reason: str, hint: str = "") -> None:
        self.folder = Path(folder)
        self.reason = reason
        self.hint = hint
        message = f"{self.folder} holds no complete exported model ({reason})"
        super().__init__(f"{message}; {hint}" if hint else message)


# -- the manifest ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphFile:
    """One exported ONNX graph: its file name in the folder, sha256 and size in bytes."""

    file: str
    sha256: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256, "bytes": self.size}

    @classmethod
    def from_json(cls, data: object, where: str) -> GraphFile:
        return cls(
            file=_required(data, "file", str, where),
            sha256=_required(data, "sha256", str, where),
            size=_required(data, "bytes", int, where),
        )


@dataclass(frozen=True)
class VariantFiles:
    """The graphs of an export: fp32 always, int8 when it was quantised, fp16 when converted."""

    fp32: GraphFile
    int8: GraphFile | None = None
    fp16: GraphFile | None = None

    def get(self, variant: str) -> GraphFile | None:
        """The graph of `variant` ("fp32", "int8" or "fp16"), None when it was not exported."""
        if variant not in VARIANT_NAMES:
            return None
        graph: GraphFile | None = getattr(self, variant)
        return graph

    def items(self) -> list[tuple[str, GraphFile]]:
        """(variant, graph) for each exported variant, fp32 first."""
        return [(name, graph) for name in VARIANT_NAMES if (graph := self.get(name)) is not None]

    def variants(self) -> list[str]:
        return [name for name, _ in self.items()]

    def to_json(self) -> dict[str, Any]:
        return {name: graph.to_json() for name, graph in self.items()}

    @classmethod
    def from_json(cls, data: object) -> VariantFiles:
        _mapping(data, "files")
        int8 = _optional(data, "int8", dict, "files")
        fp16 = _optional(data, "fp16", dict, "files")
        return cls(
            fp32=GraphFile.from_json(_required(data, "fp32", dict, "files"), "files.fp32"),
            int8=GraphFile.from_json(int8, "files.int8") if int8 is not None else None,
            fp16=GraphFile.from_json(fp16, "files.fp16") if fp16 is not None else None,
        )


@dataclass(frozen=True)
class DefaultVariants:
    """The variant an encoder runs when asked for "auto", per device."""

    # An export that names no default runs its full-precision graph everywhere.
    cpu: str = "fp32"
    cuda: str = "fp32"

    def for_device(self, device: str) -> str:
        return self.cuda if device == "cuda" else self.cpu

    def to_json(self) -> dict[str, Any]:
        return {"cpu": self.cpu, "cuda": self.cuda}

    @classmethod
    def from_json(cls, data: object) -> DefaultVariants:
        where = "default_variant"
        return cls(
            cpu=_optional(data, "cpu", str, where) or "fp32",
            cuda=_optional(data, "cuda", str, where) or "fp32",
        )


@dataclass(frozen=True)
class Cosines:
    """Cosine similarity between one variant and PyTorch over the check sentences."""

    lowest: float
    mean: float

    def to_json(self) -> dict[str, Any]:
        return {"min": self.lowest, "mean": self.mean}

    @classmethod
    def from_json(cls, data: object, where: str) -> Cosines:
        return cls(lowest=_number(data, "min", where), mean=_number(data, "mean", where))


@dataclass(frozen=True)
class Agreement:
    """How closely each exported graph reproduces PyTorch, measured by the export recipe."""

    sentences: int
    fp32: Cosines | None = None
    int8: Cosines | None = None
    fp16: Cosines | None = None

    def get(self, variant: str) -> Cosines | None:
        """The cosines of `variant`'s graph, None when it was not exported or not measured."""
        if variant not in VARIANT_NAMES:
            return None
        cosines: Cosines | None = getattr(self, variant)
        return cosines

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"sentences": self.sentences}
        for name in VARIANT_NAMES:
            cosines = self.get(name)
            if cosines is not None:
                data[name] = cosines.to_json()
        return data

    @classmethod
    def from_json(cls, data: object) -> Agreement:
        where = "cosine_vs_pytorch"
        variants = {}
        for name in VARIANT_NAMES:
            entry = _optional(data, name, dict, where)
            variants[name] = Cosines.from_json(entry, f"{where}.{name}") if entry else None
        return cls(
            sentences=_required(data, "sentences", int, where),
            fp32=variants["fp32"],
            int8=variants["int8"],
            fp16=variants["fp16"],
        )


@dataclass(frozen=True)
class ModelManifest:
    """Everything hnbooks-model.json says about an export (JSON keys in brackets where they differ).

    `optimization` and `versions` are informative (what was done, with which library versions);
    `agreement` ("cosine_vs_pytorch") is what the recipe measured against PyTorch.
    `int8_min_tokens`: texts of fewer tokens than this run on the fp32 graph when int8 is asked
    for, because int8 drifts most on short texts (0: int8 for all; older exports name none).
    `recipe`: the version of the export recipe that wrote the folder (older exports name none: 1).
    """

    spec: ModelSpec
    files: VariantFiles
    tokenizer: str = TOKENIZER_FILE
    default_variant: DefaultVariants = field(default_factory=DefaultVariants)
    optimization: Mapping[str, str] = field(default_factory=dict)
    exported_at: str = ""
    versions: Mapping[str, str] = field(default_factory=dict)
    agreement: Agreement | None = None
    export_seconds: float | None = None
    int8_min_tokens: int = 0
    recipe: int = 1
    format: int = MANIFEST_FORMAT

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def dimension(self) -> int:
        """Length of the vectors the graphs produce (after pooling)."""
        return self.spec.dimension

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": self.format,
            "spec": self.spec.to_json(),
            "files": self.files.to_json(),
            "tokenizer": self.tokenizer,
            "optimization": dict(self.optimization),
            "default_variant": self.default_variant.to_json(),
            "exported_at": self.exported_at,
            "versions": dict(self.versions),
        }
        if self.agreement is not None:
            data["cosine_vs_pytorch"] = self.agreement.to_json()
        if self.export_seconds is not None:
            data["export_seconds"] = self.export_seconds
        if self.int8_min_tokens:
            data["int8_min_tokens"] = self.int8_min_tokens
        if self.recipe != 1:
            data["recipe"] = self.recipe
        return data

    @classmethod
    def from_json(cls, data: object) -> ModelManifest:
        """The manifest in `data` (parsed JSON), or ManifestError saying which field is wrong."""
        where = "manifest"
        version = _required(data, "format", int, where)
        if version != MANIFEST_FORMAT:
            raise ManifestError(
                f"format {version}; this version of hnbooks reads format {MANIFEST_FORMAT}"
            )
        spec_data = _required(data, "spec", dict, where)
        try:
            spec = ModelSpec.from_json(spec_data)
        except (KeyError, TypeError, ValueError) as error:
            raise ManifestError(f"spec is malformed ({error!r})") from None
        agreement = _optional(data, "cosine_vs_pytorch", dict, where)
        default_variant = _optional(data, "default_variant", dict, where)
        return cls(
            format=version,
            spec=spec,
            files=VariantFiles.from_json(_required(data, "files", dict, where)),
            tokenizer=_required(data, "tokenizer", str, where),
            default_variant=(
                DefaultVariants.from_json(default_variant)
                if default_variant is not None
                else DefaultVariants()
            ),
            optimization=_strings(data, "optimization"),
            exported_at=_optional(data, "exported_at", str, where) or "",
            versions=_strings(data, "versions"),
            agreement=Agreement.from_json(agreement) if agreement is not None else None,
            export_seconds=_optional_number(data, "export_seconds", where),
            int8_min_tokens=_optional(data, "int8_min_tokens", int, where) or 0,
            recipe=_optional(data, "recipe", int, where) or 1,
        )


def _mapping(data: object, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ManifestError(f"{where} is not a JSON object")
    return data


def _required(data: object, key: str, kind: type[_T], where: str) -> _T:
    value = _optional(data, key, kind, where)
    if value is None:
        raise ManifestError(f"{where} has no {key!r}")
    return value


def _optional(data: object, key: str, kind: type[_T], where: str) -> _T | None:
    value = _mapping(data, where).get(key)
    # bool is an int to isinstance, never a valid size or format.
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        wanted = JSON_TYPE_NAMES.get(kind, kind.__name__)
        raise ManifestError(f"{where}.{key} should be {wanted}, not {value!r}")
    return value


def _number(data: object, key: str, where: str) -> float:
    value = _optional_number(data, key, where)
    if value is None:
        raise ManifestError(f"{where} has no {key!r}")
    return value


def _optional_number(data: object, key: str, where: str) -> float | None:
    value = _mapping(data, where).get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ManifestError(f"{where}.{key} should be a number, not {value!r}")
    return float(value)


def _strings(data: object, key: str) -> dict[str, str]:
    value = _optional(data, key, dict, "manifest") or {}
    return {str(name): str(text) for name, text in value.items()}


# -- reading, checking and writing a folder -------------------------------------------------------


def load_manifest(folder: str | os.PathLike[str]) -> ModelManifest:
    """The manifest of the export in `folder`, or ModelFolderError saying why there is none.

    Checks that every file it lists is present with the listed size, not the hashes: instant, and
    enough because the export places files atomically. `verify` also checks the hashes.
    """
    folder = Path(folder)
    manifest = _parse_manifest(folder)
    problems = _file_problems(folder, manifest, hashes=False)
    if problems:
        raise ModelFolderError(folder, problems[0])
    return manifest


def read_manifest(folder: str | os.PathLike[str]) -> ModelManifest | None:
    """The manifest of a complete export in `folder`, or None (see `load_manifest` for the reason)."""
    try:
        return load_manifest(folder)
    except ModelFolderError:
        return None


def is_exported(folder: str | os.PathLike[str]) -> bool:
    """Whether `folder` holds a complete export (manifest plus every file it lists, sizes right)."""
    return read_manifest(folder) is not None


def verify(folder: str | os.PathLike[str]) -> list[str]:
    """Every problem with the export in `folder`, sha256 of each graph included; empty when sound.

    Reads every byte of every graph (about 0.1 s per 100 MB).
    """
    folder = Path(folder)
    try:
        manifest = _parse_manifest(folder)
    except ModelFolderError as error:
        return [error.reason]
    return _file_problems(folder, manifest, hashes=True)


def write_manifest(folder: str | os.PathLike[str], manifest: ModelManifest) -> Path:
    """Write `manifest` into `folder` atomically (a reader sees the old manifest or the new one)."""
    folder = Path(folder)
    target = folder / MANIFEST_NAME
    temporary = folder / f".{MANIFEST_NAME}.{os.getpid()}.tmp"
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write(json.dumps(manifest.to_json(), indent=2) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def describe_file(folder: str | os.PathLike[str], file_name: str) -> GraphFile:
    """The manifest entry of `file_name` in `folder`: its sha256 and size as they are now."""
    path = Path(folder) / file_name
    return GraphFile(file=file_name, sha256=sha256_of(path), size=path.stat().st_size)


def sha256_of(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _parse_manifest(folder: Path) -> ModelManifest:
    path = folder / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        reason = f"no {MANIFEST_NAME}" if folder.is_dir() else "the folder does not exist"
        raise ModelFolderError(folder, reason) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ModelFolderError(folder, f"cannot read {MANIFEST_NAME}: {error}") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise ModelFolderError(folder, f"{MANIFEST_NAME} is not valid JSON") from None
    try:
        return ModelManifest.from_json(data)
    except ManifestError as error:
        raise ModelFolderError(folder, f"{MANIFEST_NAME}: {error}") from None


def _file_problems(folder: Path, manifest: ModelManifest, *, hashes: bool) -> list[str]:
    problems = []
    if not (folder / manifest.tokenizer).is_file():
        problems.append(f"{manifest.tokenizer} is missing")
    for _, graph in manifest.files.items():
        path = folder / graph.file
        try:
            size = path.stat().st_size
        except OSError:
            problems.append(f"{graph.file} is missing")
            continue
        if size != graph.size:
            problems.append(f"{graph.file} has {size:,} bytes, the manifest says {graph.size:,}")
        elif hashes and sha256_of(path) != graph.sha256:
            problems.append(f"{graph.file} does not match its sha256 in the manifest")
    return problems


# -- the pooling the format defines ---------------------------------------------------------------


def mean_pool(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Masked mean over tokens, then L2 normalisation, as float32 (batch, dim).

    What `ModelSpec.pooling == "mean"` means: the encoder and the recipe's check both pool with it.
    """
    mask = attention_mask.astype(np.float32)
    summed = np.einsum("bsd,bs->bd", hidden.astype(np.float32, copy=False), mask)
    pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    pooled_unit: np.ndarray = (pooled / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return pooled_unit
