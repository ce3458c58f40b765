"""Export an encoder to ONNX with optimum, atomically: fp32 graph-optimised, int8, fp16 for CUDA.

Torch, transformers and optimum are imported inside the functions: importing this module is cheap,
and run time (the encoder) never needs them.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hnbooks.models.folder import (
    FP16_FILE,
    FP32_FILE,
    INT8_FILE,
    POOLED_OUTPUT,
    TOKENIZER_FILE,
    Agreement,
    Cosines,
    DefaultVariants,
    ModelManifest,
    VariantFiles,
    describe_file,
    is_exported,
    mean_pool,
    read_manifest,
    write_manifest,
)
from hnbooks.models.registry import (
    DEFAULT_MODEL,
    ModelMissing,
    ModelSpec,
    export_command,
    export_tools_install,
    model_dir,
    model_spec,
    weights_module_name,
    weights_path,
)

if TYPE_CHECKING:
    import onnx

__all__ = [
    "ExportProgress",
    "ModelMissing",
    "ensure_model",
    "export_dependencies_missing",
    "export_model",
    "export_weights",
    "pytorch_embeddings",
]

ExportProgress = Callable[[str], None]
"""Called with a short description of each export step as it starts."""

# The fp32 graph must agree with PyTorch this closely for the optimised graph to be kept.
FP32_MIN_COSINE = 0.999
# int8 becomes the CPU default only when its mean agreement with PyTorch is at least this. A guard
# against a broken quantisation (per-tensor int8 gives ~0.95), not a quality claim.
INT8_MIN_MEAN_COSINE = 0.98
# Texts of fewer tokens run on fp32 where int8 is asked for. int8 drifts most on short texts (one
# word: cosine ~0.96 to fp32); from 25 tokens on the recipe keeps every real HN comment tried
# >= 0.99 (see `quantize_graph`), and shorter texts are ~4% of the tokens of HN comments, so fp32
# for them costs little.
INT8_MIN_TOKENS = 25
# fp16 becomes the CUDA default only when its lowest agreement with PyTorch is at least this.
FP16_MIN_COSINE = 0.999
# The recipe's version, in each manifest: `export_model` redoes an export an older recipe wrote.
# 2: int8 keeps attention and the FFN down-projections fp32 and runs short texts on fp32; fp16.
RECIPE = 2
# Partial exports older than this are leftovers of a killed export, not a concurrent one.
STALE_PARTIAL_S = 3600

# Short and long, plain and odd: the short ones are where int8 drifts most.
AGREEMENT_SENTENCES = (
    "Thanks",
    "I just finished reading The Left Hand of Darkness by Ursula K. Le Guin and loved it.",
    "Has anyone here read Designing Data-Intensive Applications? Is it worth it for a backend dev?",
    "The new release fixes the memory leak in the scheduler, but the build still fails on ARM.",
    "My favourite programming book is Structure and Interpretation of Computer Programs (SICP).",
    "We moved from Postgres to SQLite for the edge nodes and latency dropped by half.",
    "Wow... that is a great point, I had never thought about it that way.",
    "Gödel, Escher, Bach: an Eternal Golden Braid — Hofstadter's book about self-reference, "
    "strange loops, formal systems, music and art, which I reread every few years and always "
    "find something new in, especially in the dialogues between Achilles and the Tortoise.",
)

EXPORT_MODULES = (
    "torch",
    "transformers",
    "optimum.exporters.onnx",
    "optimum.onnxruntime",
    "onnx",
    "onnxruntime",
)


def export_dependencies_missing(spec: ModelSpec) -> list[str]:
    """The modules an export of `spec` needs that cannot be imported here (empty when all are present)."""
    missing = []
    for module in (*EXPORT_MODULES, weights_module_name(spec)):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(module)
    return missing


def ensure_model(
    name: str = DEFAULT_MODEL,
    models_dir: str | os.PathLike[str] | None = None,
    *,
    progress: ExportProgress | None = None,
) -> Path:
    """The folder of the exported model `name`, exporting it first when missing and possible.

    For callers that run PyTorch anyway and choose to export (the lab); the scorer only opens
    existing exports.
    """
    folder = model_dir(name, models_dir)
    if is_exported(folder):
        return folder
    spec = model_spec(name)
    missing = export_dependencies_missing(spec)
    if missing:
        raise ModelMissing(
            f"the encoder {name!r} is not exported in {folder} and cannot be exported here "
            f"(missing: {', '.join(missing)}). Install the export tools with "
            f"{export_tools_install(spec)}, then run `{export_command(name, folder.parent)}`."
        )
    return export_model(name, folder.parent, progress=progress)


def export_model(
    name: str = DEFAULT_MODEL,
    models_dir: str | os.PathLike[str] | None = None,
    *,
    progress: ExportProgress | None = None,
    force: bool = False,
) -> Path:
    """Export model `name` into `models_dir/<name>/` and return that folder.

    The files are written into a hidden folder beside the target and renamed into place at the end,
    so a killed export never leaves a half model. An existing complete export by this recipe
    (`RECIPE`) is kept unless `force`; one by an older recipe is redone.
    """
    spec = model_spec(name)
    folder = model_dir(name, models_dir)
    existing = read_manifest(folder)
    if existing is not None and existing.recipe >= RECIPE and not force:
        return folder
    source_weights = weights_path(spec)
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(folder)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=folder.parent))
    # mkdtemp makes the folder private; an exported model is as readable as any other cache file.
    staging.chmod(0o777 & ~current_umask())
    try:
        export_weights(spec, source_weights, staging, progress=progress)
        replace_folder(staging, folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_stale_partials(folder: Path) -> None:
    """Delete hidden partial exports of this model left by a killed export."""
    now = time.time()
    for leftover in folder.parent.glob(f".{folder.name}.*-*"):
        with contextlib.suppress(OSError):
            if now - leftover.stat().st_mtime > STALE_PARTIAL_S:
                shutil.rmtree(leftover, ignore_errors=True)


def replace_folder(staging: Path, folder: Path) -> None:
    """Move the finished `staging` folder to `folder`, swapping out any previous export."""
    if not folder.exists():
        os.replace(staging, folder)
        return
    # A directory cannot be renamed over a non-empty one: move the old one aside first. In between
    # the model is absent (an encoder opening then reports it missing), never half written.
    retired = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
    os.replace(folder, retired / folder.name)
    os.replace(staging, folder)
    shutil.rmtree(retired, ignore_errors=True)


def export_weights(
    spec: ModelSpec,
    source_weights: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    progress: ExportProgress | None = None,
) -> ModelManifest:
    """Export the PyTorch weights folder `source_weights` into `output_dir` and return the manifest.

    Writes model.onnx (fp32, O2-optimised when that keeps cosine >= 0.999 against PyTorch),
    model_int8.onnx (per-channel dynamic int8 of that graph's MatMuls after layer norms),
    model_fp16.onnx (that graph in fp16 with mean pooling and L2 norm inside, for CUDA),
    tokenizer.json (truncation to spec.max_length, no fixed padding) and hnbooks-model.json.
    Use `export_model` for an atomic export.
    """
    report = progress or (lambda message: None)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    source = Path(source_weights)
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    tokenizer_file = output / TOKENIZER_FILE
    work = Path(tempfile.mkdtemp(prefix="_work-", dir=output))
    started = time.perf_counter()
    try:
        with quiet_export_libraries():
            report(
                f"writing the tokenizer (truncation at {spec.max_length} tokens, no fixed padding)"
            )
            write_tokenizer(source / TOKENIZER_FILE, tokenizer_file, spec.max_length)

            report("exporting the PyTorch weights to ONNX (optimum, feature-extraction)")
            raw_graph = export_raw_graph(source, work / "raw")

            report("optimising the graph (onnxruntime O2: fused attention, GELU, layer norms)")
            optimized_graph = optimize_graph(work / "raw", work / "optimized")

            report("measuring agreement with PyTorch")
            reference = pytorch_embeddings(source, tokenizer_file, spec.max_length)
            fp32_cosines = onnx_cosines(optimized_graph, tokenizer_file, spec, reference)
            use_optimized = float(fp32_cosines.min()) >= FP32_MIN_COSINE
            if not use_optimized:
                fp32_cosines = onnx_cosines(raw_graph, tokenizer_file, spec, reference)
            chosen_graph = optimized_graph if use_optimized else raw_graph
            shutil.copyfile(chosen_graph, output / FP32_FILE)

            report("quantising to int8 (dynamic, per-channel weights, attention and FFN-out fp32)")
            quantize_graph(chosen_graph, output / INT8_FILE)

            report("checking the int8 graph against PyTorch")
            int8_cosines = onnx_cosines(
                output / INT8_FILE,
                tokenizer_file,
                spec,
                reference,
                fallback=(output / FP32_FILE, INT8_MIN_TOKENS),
            )

            report("converting to fp16 for CUDA (mean pooling and L2 norm inside the graph)")
            write_fp16_graph(chosen_graph, output / FP16_FILE)
            fp16_cosines = onnx_cosines(output / FP16_FILE, tokenizer_file, spec, reference)
            agreement = Agreement(
                sentences=len(AGREEMENT_SENTENCES),
                fp32=summarize(fp32_cosines),
                int8=summarize(int8_cosines),
                fp16=summarize(fp16_cosines),
            )
            int8_is_default = agreement.int8 is not None and (
                agreement.int8.mean >= INT8_MIN_MEAN_COSINE
            )
            fp16_is_default = agreement.fp16 is not None and (
                agreement.fp16.lowest >= FP16_MIN_COSINE
            )
            manifest = ModelManifest(
                spec=spec,
                files=VariantFiles(
                    fp32=describe_file(output, FP32_FILE),
                    int8=describe_file(output, INT8_FILE),
                    fp16=describe_file(output, FP16_FILE),
                ),
                tokenizer=TOKENIZER_FILE,
                optimization={
                    "fp32": "O2" if use_optimized else "none",
                    "int8": (
                        "dynamic int8, per-channel QInt8 weights, the MatMuls after layer norms"
                        " (attention and FFN down-projections fp32), on the fp32 graph;"
                        f" fp32 below {INT8_MIN_TOKENS} tokens"
                    ),
                    "fp16": "the fp32 graph in fp16 (fp32 inputs/outputs), mean pooling + L2 inside",
                },
                default_variant=DefaultVariants(
                    cpu="int8" if int8_is_default else "fp32",
                    cuda="fp16" if fp16_is_default else "fp32",
                ),
                int8_min_tokens=INT8_MIN_TOKENS,
                recipe=RECIPE,
                exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
                versions=package_versions(),
                agreement=agreement,
                export_seconds=round(time.perf_counter() - started, 1),
            )
            write_manifest(output, manifest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return manifest


@contextlib.contextmanager
def quiet_export_libraries() -> Iterator[None]:
    """Silence the tracer warnings and log chatter of torch/optimum/onnxruntime during an export."""
    names = ("", "optimum", "transformers", "torch", "onnxruntime", "onnx")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def write_tokenizer(source: Path, target: Path, max_length: int) -> None:
    """Copy the tokenizer with truncation at `max_length` and padding left to the runtime."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(source))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.save(str(target))


def export_raw_graph(source: Path, target_dir: Path) -> Path:
    """Run optimum's ONNX export of the local weights folder (never a hub id)."""
    from optimum.exporters.onnx import main_export
    from optimum.utils import logging as optimum_logging
    from transformers.utils import logging as transformers_logging

    # Both libraries configure their own loggers on import; only errors are worth showing.
    optimum_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    main_export(
        str(source),
        output=target_dir,
        task="feature-extraction",
        library_name="transformers",
        local_files_only=True,
        do_validation=False,
    )
    return target_dir / FP32_FILE


def optimize_graph(raw_dir: Path, target_dir: Path) -> Path:
    """Apply onnxruntime's O2 transformer optimisations (CPU-safe fusions, no fp16)."""
    from optimum.onnxruntime import ORTOptimizer
    from optimum.onnxruntime.configuration import AutoOptimizationConfig

    optimizer = ORTOptimizer.from_pretrained(raw_dir)
    optimizer.optimize(AutoOptimizationConfig.O2(), save_dir=target_dir, file_suffix="optimized")
    return target_dir / "model_optimized.onnx"


def quantize_graph(source_graph: Path, target: Path) -> None:
    """Dynamic int8 with per-channel weights on the MatMuls that read a layer norm; the rest fp32.

    Default (per-tensor) dynamic int8 drops cosine to ~0.95 on AVX2; per-channel keeps the mean ~0.99.
    Dynamic int8 scales activations per tensor, i.e. per batch, so a long-tailed activation costs
    every text in its batch. Two kinds are kept fp32: the MatMuls that read a GELU output (each
    layer's FFN down-projection) and the fused attention (its QKV projection and softmax). Over
    ~2,000 HN comments of 25+ tokens the lowest cosine to fp32 is then ~0.993, against ~0.976
    with everything quantised and ~0.990 with only the down-projections kept (which is ~15%
    faster, but not reliably >= 0.99); this recipe runs ~1.25x fp32 on CPU.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        source_graph,
        target,
        op_types_to_quantize=["MatMul"],
        nodes_to_exclude=gelu_fed_matmuls(onnx.load(str(source_graph), load_external_data=False)),
        per_channel=True,
        reduce_range=False,
        weight_type=QuantType.QInt8,
        # The fused graph has contrib ops shape inference cannot type; their outputs are float.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


GELU_OPS = ("Gelu", "BiasGelu", "FastGelu", "QuickGelu")


def gelu_fed_matmuls(model: onnx.ModelProto) -> list[str]:
    """Names of the MatMul nodes whose input is a GELU's output (the FFN down-projections)."""
    gelu_outputs = {
        name for node in model.graph.node if node.op_type in GELU_OPS for name in node.output
    }
    return [
        node.name
        for node in model.graph.node
        if node.op_type == "MatMul" and any(name in gelu_outputs for name in node.input)
    ]


def write_fp16_graph(source_graph: Path, target: Path) -> None:
    """`source_graph` in fp16 with fp32 inputs and outputs, plus a pooled, unit-length output.

    What optimum's O4 does for a GPU (the fused graph converted to fp16), plus POOLED_OUTPUT: the
    masked mean and L2 norm run on the device, so only (batch, dimension) floats come back.
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(source_graph))
    model = convert_float_to_float16(model, keep_io_types=True)
    add_mean_pooling(model)
    onnx.save(model, str(target))


def add_mean_pooling(model: onnx.ModelProto) -> None:
    """Append POOLED_OUTPUT: masked mean of the first output over tokens, then L2 normalised.

    The same arithmetic as `mean_pool` (clamps 1e-9 and 1e-12), in float32.
    """
    from onnx import TensorProto, helper

    graph = model.graph
    hidden = graph.output[0].name
    mask = next(declared.name for declared in graph.input if declared.name == "attention_mask")
    prefix = "hnbooks_pool/"
    graph.initializer.extend(
        [
            helper.make_tensor(prefix + "axis1", TensorProto.INT64, [1], [1]),
            helper.make_tensor(prefix + "axis2", TensorProto.INT64, [1], [2]),
            helper.make_tensor(prefix + "min_count", TensorProto.FLOAT, [], [1e-9]),
            helper.make_tensor(prefix + "min_norm", TensorProto.FLOAT, [], [1e-12]),
        ]
    )

    def node(op: str, inputs: list[str], output: str, **attributes: object) -> str:
        graph.node.append(
            helper.make_node(op, inputs, [prefix + output], name=prefix + output, **attributes)
        )
        return prefix + output

    mask_float = node("Cast", [mask], "mask", to=TensorProto.FLOAT)
    mask_3d = node("Unsqueeze", [mask_float, prefix + "axis2"], "mask_3d")
    masked = node("Mul", [hidden, mask_3d], "masked")
    summed = node("ReduceSum", [masked, prefix + "axis1"], "summed", keepdims=0)
    counts = node("ReduceSum", [mask_float, prefix + "axis1"], "counts", keepdims=1)
    counts = node("Max", [counts, prefix + "min_count"], "counts_clamped")
    mean = node("Div", [summed, counts], "mean")
    norms = node("ReduceL2", [mean, prefix + "axis1"], "norms", keepdims=1)
    norms = node("Max", [norms, prefix + "min_norm"], "norms_clamped")
    graph.node.append(helper.make_node("Div", [mean, norms], [POOLED_OUTPUT], name=prefix + "unit"))
    dimension = graph.output[0].type.tensor_type.shape.dim[-1]
    output = helper.make_tensor_value_info(POOLED_OUTPUT, TensorProto.FLOAT, ["batch", 0])
    output.type.tensor_type.shape.dim[1].CopyFrom(dimension)
    graph.output.append(output)


def pytorch_embeddings(source: Path, tokenizer_file: Path, max_length: int) -> np.ndarray:
    """Reference embeddings of AGREEMENT_SENTENCES from the PyTorch model, one text at a time."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.enable_truncation(max_length=max_length)
    model = AutoModel.from_pretrained(str(source), local_files_only=True).eval()
    vectors = []
    with torch.inference_mode():
        for sentence in AGREEMENT_SENTENCES:
            encoding = tokenizer.encode(sentence)
            input_ids = torch.tensor([encoding.ids], dtype=torch.long)
            attention_mask = torch.tensor([encoding.attention_mask], dtype=torch.long)
            hidden = model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
            vectors.append(mean_pool(hidden.numpy(), attention_mask.numpy())[0])
    return np.stack(vectors)


def onnx_cosines(
    graph: Path,
    tokenizer_file: Path,
    spec: ModelSpec,
    reference: np.ndarray,
    *,
    fallback: tuple[Path, int] | None = None,
) -> np.ndarray:
    """Cosine of each agreement sentence between `graph` and `reference`, one sentence per run.

    Runs onnxruntime directly with the format's pooling (`mean_pool`, or the graph's POOLED_OUTPUT
    where it has one), as the encoder does; `fallback` (graph, tokens): sentences of fewer tokens
    run on that graph instead, as the encoder's int8 does. The encoder's own agreement with PyTorch
    is asserted by the tests (tests/scoring/test_real_model.py).
    """
    import onnxruntime as ort
    from tokenizers import Tokenizer

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    short_session, min_tokens = session, 0
    if fallback is not None:
        short_session = ort.InferenceSession(
            str(fallback[0]), options, providers=["CPUExecutionProvider"]
        )
        min_tokens = fallback[1]
    input_names = {declared.name for declared in session.get_inputs()}
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.enable_truncation(max_length=spec.max_length)
    vectors = []
    for sentence in AGREEMENT_SENTENCES:
        encoding = tokenizer.encode(sentence)
        feed = {
            "input_ids": np.array([encoding.ids], dtype=np.int64),
            "attention_mask": np.array([encoding.attention_mask], dtype=np.int64),
            "token_type_ids": np.zeros((1, len(encoding.ids)), dtype=np.int64),
        }
        runner = short_session if len(encoding.ids) < min_tokens else session
        outputs = [declared.name for declared in runner.get_outputs()]
        inputs = {name: value for name, value in feed.items() if name in input_names}
        if POOLED_OUTPUT in outputs:
            vectors.append(runner.run([POOLED_OUTPUT], inputs)[0][0])
        else:
            hidden = runner.run([outputs[0]], inputs)[0]
            vectors.append(mean_pool(hidden, feed["attention_mask"])[0])
    cosines: np.ndarray = np.einsum("nd,nd->n", np.stack(vectors), reference)
    return cosines


def summarize(cosines: np.ndarray) -> Cosines:
    return Cosines(lowest=round(float(cosines.min()), 6), mean=round(float(cosines.mean()), 6))


def package_versions() -> dict[str, str]:
    versions = {}
    for package in (
        "torch",
        "transformers",
        "optimum",
        "optimum-onnx",
        "onnx",
        "onnxruntime",
        "onnxruntime-gpu",
        "tokenizers",
    ):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    return versions
