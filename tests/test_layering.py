"""The house rules, checked in a fresh interpreter: the TUI never loads the model runtime, the core
never loads Textual."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

MODEL_RUNTIME = ("onnxruntime", "tokenizers", "sklearn", "torch", "transformers")


def modules_loaded_by(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return {name.split(".")[0] for name in json.loads(result.stdout)}


@pytest.mark.parametrize("module", ["hnbooks.tui.app", "hnbooks.tui.cli"])
def test_tui_never_loads_the_model_runtime(module: str) -> None:
    loaded = modules_loaded_by(module)
    assert not loaded & set(MODEL_RUNTIME)


def test_the_tui_app_module_is_what_loads_textual() -> None:
    assert "textual" in modules_loaded_by("hnbooks.tui.app")


@pytest.mark.parametrize(
    "module", ["hnbooks.store.db", "hnbooks.importing", "hnbooks.exporting", "hnbooks.cli"]
)
def test_core_loads_neither_textual_nor_the_model_runtime(module: str) -> None:
    loaded = modules_loaded_by(module)
    assert not loaded & {"textual", *MODEL_RUNTIME}


@pytest.mark.parametrize("module", ["hnbooks.tui.cli", "hnbooks.store.db", "hnbooks.cli"])
def test_opening_the_store_does_not_load_pandas(module: str) -> None:
    # sqlite-utils would load pandas and pyarrow (0.3 s) on every process start.
    assert not modules_loaded_by(module) & {"pandas", "pyarrow"}


def test_pandas_still_imports_after_the_store() -> None:
    code = "import hnbooks.store.db, pandas; print(pandas.DataFrame({'a': [1]}).shape)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "(1, 1)", result.stderr
