"""A tiny random BERT exported to ONNX by the project's own export recipe, shared by the encoder tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.scoring.tiny_bert import TINY_SPEC, build_tiny_weights

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_weights(tmp_path_factory.mktemp("tiny-weights"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_weights_dir: Path) -> Path:
    """The tiny BERT exported with `export_weights`: model.onnx, model_int8.onnx, tokenizer, manifest."""
    from hnbooks.models.export import export_weights

    folder = tmp_path_factory.mktemp("models") / TINY_SPEC.name
    export_weights(TINY_SPEC, tiny_weights_dir, folder)
    return folder
