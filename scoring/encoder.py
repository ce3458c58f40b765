"""Sentence encoder on onnxruntime + tokenizers: length-sorted batches, mean pooling, L2 norm.

Never imports torch or transformers. onnxruntime and tokenizers are imported when the session is
first needed, so constructing an `Encoder` (or importing this module) costs nothing.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from hnbooks.models.folder import (
    GraphFile,
    ModelFolderError,
    ModelManifest,
    load_manifest,
    mean_pool,
)
from hnbooks.models.registry import CUDA_INSTALL, MODELS, export_command

__all__ = [
    "DEVICES",
    "VARIANTS",
    "Device",
    "Encoder",
    "EncoderError",
    "ModelLoadError",
    "Variant",
    "available_cores",
    "cuda_unusable_reason",
    "mean_pool",
    "plan_batches",
]

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

Device = Literal["auto", "cpu", "cuda"]
Variant = Literal["auto", "fp32", "int8"]

DEVICES = ("auto", "cpu", "cuda")
VARIANTS = ("auto", "fp32", "int8")
ORT_ERRORS_ONLY = 3
ORT_FATAL_ONLY = 4
# Padded token positions per batch at most (32 texts of 128 tokens): bounds activation memory.
DEFAULT_MAX_BATCH_TOKENS = 4096
# A batch closes rather than pad more than this. Padding costs compute in proportion, while an extra
# session call costs about as much as a token or two, so small batches in the sparse long tail are
# cheaper than padded ones.
MAX_BATCH_PAD_WASTE = 0.02
# On CPU, batches run side by side on single-threaded session calls: no per-op thread barriers,
# which on 2 cores is ~1.3x faster than one batch on 2 intra-op threads. More than a few in
# flight only multiplies activation memory, so wide machines also get intra-op threads.
MAX_PARALLEL_BATCHES = 4


class EncoderError(RuntimeError):
    """The encoder cannot run as asked (e.g. CUDA requested where it is not usable)."""


class ModelLoadError(EncoderError):
    """A file of an export that looks complete could not be loaded: damaged, or from another exporter."""


def available_cores() -> int:
    """CPU cores this process may run on (respects affinity and container CPU sets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def cuda_unusable_reason() -> str | None:
    """Why onnxruntime cannot run on a CUDA GPU here, or None when it looks usable."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return "onnxruntime has no CUDA provider here (the CPU package `onnxruntime` is installed)"
    # The GPU package lists CUDA even on machines without a GPU; a device node is the cheap check.
    if sys.platform.startswith("linux") and not any(Path("/dev").glob("nvidia[0-9]*")):
        return "onnxruntime-gpu is installed but no NVIDIA GPU device is visible"
    return None


class Encoder:
    """Embeds texts with an exported model folder (see `hnbooks models export`).

    `device`: "auto" (CUDA when onnxruntime-gpu can really use a GPU, else CPU), "cpu" or "cuda".
    `variant`: "auto" (int8 on CPU when exported, fp32 on CUDA), "fp32" or "int8".
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        *,
        device: Device = "auto",
        variant: Variant = "auto",
        threads: int | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
    ) -> None:
        if device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.model_dir = Path(model_dir)
        try:
            self.manifest: ModelManifest = load_manifest(self.model_dir)
        except ModelFolderError as error:
            raise ModelFolderError(
                self.model_dir, error.reason, hint=export_hint(self.model_dir)
            ) from None
        self.spec = self.manifest.spec
        if variant == "int8" and self.manifest.files.int8 is None:
            raise EncoderError(f"{self.model_dir} has no int8 variant; use variant fp32")
        self.requested_device: Device = device
        self.requested_variant: Variant = variant
        self.threads = threads or available_cores()
        self.batch_size = batch_size
        self.max_length = max_length or self.spec.max_length
        self.max_batch_tokens = max_batch_tokens
        self.last_pad_waste = 0.0
        """Share of token positions that were padding in the last `embed` call (0..1)."""
        self.last_token_slots = 0
        """Token positions (real + padding) run through the model in the last `embed` call."""
        self._session: onnxruntime.InferenceSession | None = None
        self._tokenizer: Tokenizer | None = None
        self._device = ""
        self._variant = ""
        self._input_types: dict[str, type[np.integer[Any]]] = {}
        self._output_name = ""
        self._pad_id = 0
        self._parallel_batches = 1
        self._executor: ThreadPoolExecutor | None = None

    # -- what it is ---------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def dimension(self) -> int:
        return self.manifest.dimension

    @property
    def loaded(self) -> bool:
        """Whether the onnxruntime session exists yet (it is created on first use)."""
        return self._session is not None

    @property
    def device(self) -> str:
        """Where the session runs, "cuda" or "cpu" (creates it)."""
        self._load()
        return self._device

    @property
    def variant(self) -> str:
        """The graph the session runs, "fp32" or "int8" (creates it)."""
        self._load()
        return self._variant

    @property
    def provider(self) -> str:
        """Where and how texts are encoded, for a start-up line (creates the session)."""
        self._load()
        if self._device == "cuda":
            return f"CUDA (onnxruntime-gpu), {self._variant}"
        return f"CPU, {self.threads} thread{'s' if self.threads != 1 else ''}, {self._variant}"

    @property
    def parallel_batches(self) -> int:
        """Batches run side by side (each on one thread on CPU; 1 on CUDA); creates the session."""
        self._load()
        return self._parallel_batches

    @property
    def model_hash(self) -> str:
        """sha256 of the ONNX graph in use: embeddings from another graph are not interchangeable."""
        self._load()
        return self._graph(self._variant).sha256

    # -- running --------------------------------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors (len(texts), dimension), in the order of `texts`."""
        session, tokenizer = self._load()
        texts = list(texts)
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            self.last_pad_waste, self.last_token_slots = 0.0, 0
            return vectors
        token_ids = [encoding.ids for encoding in tokenizer.encode_batch(texts)]
        lengths = np.fromiter((len(ids) for ids in token_ids), dtype=np.int64, count=len(token_ids))
        batches = plan_batches(lengths, self.batch_size, self.max_batch_tokens)

        def run_batch(batch_rows: np.ndarray) -> None:
            batch_lengths = lengths[batch_rows]
            width = max(int(batch_lengths.max()), 1)
            input_ids = np.full((len(batch_rows), width), self._pad_id, dtype=np.int64)
            for row, text_index in enumerate(batch_rows):
                input_ids[row, : batch_lengths[row]] = token_ids[text_index]
            attention_mask = (np.arange(width)[None, :] < batch_lengths[:, None]).astype(np.int64)
            vectors[batch_rows] = mean_pool(
                self._run(session, input_ids, attention_mask), attention_mask
            )

        if self._parallel_batches > 1 and len(batches) > 1:
            self._run_in_parallel(run_batch, batches)
        else:
            for batch_rows in batches:
                run_batch(batch_rows)
        token_slots = sum(len(rows) * max(int(lengths[rows].max()), 1) for rows in batches)
        self.last_token_slots = token_slots
        self.last_pad_waste = 1.0 - int(lengths.sum()) / token_slots
        return vectors

    def _run_in_parallel(
        self, run_batch: Callable[[np.ndarray], None], batches: list[np.ndarray]
    ) -> None:
        """Run batches on worker threads (onnxruntime releases the GIL), a few in flight at a time."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                self._parallel_batches, thread_name_prefix="hnbooks-encoder"
            )
        # A bounded window: an interrupt leaves at most a few batches to finish, not the whole list.
        in_flight: deque[Future[None]] = deque()
        try:
            for batch_rows in batches:
                in_flight.append(self._executor.submit(run_batch, batch_rows))
                if len(in_flight) >= 2 * self._parallel_batches:
                    in_flight.popleft().result()
            while in_flight:
                in_flight.popleft().result()
        except BaseException:
            for future in in_flight:
                future.cancel()
            raise

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Same as `embed` (the name sentence-transformers users reach for)."""
        return self.embed(texts)

    def close(self) -> None:
        """Release the session and worker threads (the next `embed` creates them again)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._session = None
        self._tokenizer = None

    def _run(
        self,
        session: onnxruntime.InferenceSession,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
    ) -> np.ndarray:
        available = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": np.zeros_like(input_ids),
        }
        feed = {
            name: available[name].astype(dtype, copy=False)
            for name, dtype in self._input_types.items()
        }
        hidden: np.ndarray = session.run([self._output_name], feed)[0]
        if hidden.ndim != 3 or hidden.shape[-1] != self.dimension:
            raise EncoderError(
                f"{self.model_dir}: output {self._output_name} has shape {hidden.shape}, "
                f"expected (batch, tokens, {self.dimension})"
            )
        return hidden

    # -- lazy set-up ----------------------------------------------------------------------------------

    def _load(self) -> tuple[onnxruntime.InferenceSession, Tokenizer]:
        if self._session is not None and self._tokenizer is not None:
            return self._session, self._tokenizer
        import onnxruntime as ort

        # Keep onnxruntime's C++ logger to real errors: no provider warnings on a CPU box.
        ort.set_default_logger_severity(ORT_ERRORS_ONLY)
        session = None
        if self.requested_device in ("auto", "cuda"):
            session = self._try_cuda_session()
        if session is None:
            self._variant = self._resolve_variant("cpu")
            self._parallel_batches = min(self.threads, MAX_PARALLEL_BATCHES)
            graph_path = self._graph_path(self._variant)
            try:
                session = ort.InferenceSession(
                    str(graph_path),
                    self._session_options(
                        ORT_ERRORS_ONLY, max(1, self.threads // self._parallel_batches)
                    ),
                    providers=["CPUExecutionProvider"],
                )
            except Exception as error:  # onnxruntime's Fail/InvalidProtobuf derive from Exception
                raise ModelLoadError(f"onnxruntime cannot load {graph_path}: {error}") from error
            self._device = "cpu"
        self._describe_graph(session)
        self._tokenizer = self._load_tokenizer()
        self._session = session
        return session, self._tokenizer

    def _try_cuda_session(self) -> onnxruntime.InferenceSession | None:
        """A session on CUDA, None in auto mode when CUDA is not usable, EncoderError in cuda mode."""
        import onnxruntime as ort

        reason = cuda_unusable_reason()
        if reason is None:
            variant = self._resolve_variant("cuda")
            # In auto mode a failed CUDA start is expected on some boxes: only fatal lines may show.
            severity = ORT_ERRORS_ONLY if self.requested_device == "cuda" else ORT_FATAL_ONLY
            try:
                session = ort.InferenceSession(
                    str(self._graph_path(variant)),
                    self._session_options(severity, self.threads),
                    providers=[("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"],
                )
            except Exception as error:  # onnxruntime raises its own Fail/RuntimeException types
                reason = f"onnxruntime could not start a CUDA session ({error})"
            else:
                if session.get_providers()[0] == "CUDAExecutionProvider":
                    self._device, self._variant = "cuda", variant
                    return session
                reason = (
                    "onnxruntime-gpu could not load CUDA (driver, CUDA or cuDNN libraries missing?)"
                )
        if self.requested_device == "cuda":
            raise EncoderError(
                f"device cuda was requested but {reason}. On a machine with an NVIDIA GPU install "
                f"the GPU runtime with `{CUDA_INSTALL}` (in a checkout: `make setup GPU=1`), or "
                "use --device cpu/auto."
            )
        return None

    def _resolve_variant(self, device: str) -> str:
        if self.requested_variant != "auto":
            return self.requested_variant
        preferred = self.manifest.default_variant.for_device(device)
        return preferred if self.manifest.files.get(preferred) is not None else "fp32"

    def _graph(self, variant: str) -> GraphFile:
        graph = self.manifest.files.get(variant)
        if graph is None:
            raise EncoderError(f"{self.model_dir} has no {variant} variant")
        return graph

    def _graph_path(self, variant: str) -> Path:
        return self.model_dir / self._graph(variant).file

    def _session_options(self, log_severity: int, intra_threads: int) -> onnxruntime.SessionOptions:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = log_severity
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = intra_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        return options

    def _describe_graph(self, session: onnxruntime.InferenceSession) -> None:
        """Record the inputs the graph declares (and their integer type) and its token output."""
        integer_types: dict[str, type[np.integer[Any]]] = {
            "tensor(int64)": np.int64,
            "tensor(int32)": np.int32,
        }
        self._input_types = {}
        for declared in session.get_inputs():
            if declared.name not in ("input_ids", "attention_mask", "token_type_ids"):
                raise EncoderError(f"{self.model_dir}: unexpected graph input {declared.name!r}")
            self._input_types[declared.name] = integer_types.get(declared.type, np.int64)
        output_names = [declared.name for declared in session.get_outputs()]
        self._output_name = (
            "last_hidden_state" if "last_hidden_state" in output_names else output_names[0]
        )

    def _load_tokenizer(self) -> Tokenizer:
        from tokenizers import Tokenizer

        path = self.model_dir / self.manifest.tokenizer
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as error:  # tokenizers raises a bare Exception for an unreadable file
            raise ModelLoadError(f"tokenizers cannot load {path}: {error}") from error
        # Padding happens per batch here; truncation keeps texts within the model's trained length.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=self.max_length)
        pad_id = tokenizer.token_to_id("[PAD]")
        self._pad_id = pad_id if pad_id is not None else 0
        return tokenizer


def plan_batches(
    lengths: np.ndarray,
    batch_size: int,
    max_batch_tokens: int,
    max_pad_waste: float = MAX_BATCH_PAD_WASTE,
) -> list[np.ndarray]:
    """Text indices grouped into batches of similar token length, shortest first.

    A batch takes the next text (in length order) unless that would make it exceed `batch_size`
    texts, `max_batch_tokens` padded positions, or `max_pad_waste` padding. A batch always holds
    at least one text.
    """
    # Sorting by length makes neighbours nearly equal in length: little padding.
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = [max(int(length), 1) for length in lengths[order]]
    batches = []
    start = 0
    while start < len(order):
        end = start + 1
        real_tokens = sorted_lengths[start]
        while end < len(order) and end - start < batch_size:
            # Ascending order: the candidate is the batch's new longest text, everything pads to it.
            width = sorted_lengths[end]
            rows = end - start + 1
            if rows * width > max_batch_tokens:
                break
            if 1 - (real_tokens + width) / (rows * width) > max_pad_waste:
                break
            real_tokens += width
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


def export_hint(folder: Path) -> str:
    """What to run so that `folder` holds an export."""
    if folder.name in MODELS:
        return f"run `{export_command(folder.name, folder.parent)}`"
    return (
        "export a model with `hnbooks models export NAME --models-dir DIR` "
        "(`hnbooks models export -h` says what to pip install first)"
    )
