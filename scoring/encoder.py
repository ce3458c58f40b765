"""Sentence encoder on onnxruntime + tokenizers: length-sorted batches, mean pooling, L2 norm.

Never imports torch or transformers. onnxruntime and tokenizers are imported when the session is
first needed, so constructing an `Encoder` (or importing this module) costs nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from hnbooks.models.folder import (
    POOLED_OUTPUT,
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
    "TokenStates",
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
Variant = Literal["auto", "fp32", "int8", "fp16"]

DEVICES = ("auto", "cpu", "cuda")
VARIANTS = ("auto", "fp32", "int8", "fp16")
ORT_ERRORS_ONLY = 3
ORT_FATAL_ONLY = 4
# Padded token positions per batch at most (32 texts of 128 tokens): bounds activation memory.
DEFAULT_MAX_BATCH_TOKENS = 4096
# A batch closes rather than pad more than this. Padding costs compute in proportion, while an extra
# session call costs about as much as a token or two, so small batches in the sparse long tail are
# cheaper than padded ones.
MAX_BATCH_PAD_WASTE = 0.02
# A GPU wants few, large batches: a session call costs far more than padding there, and even
# 1024 texts of 256 tokens in fp16 need only a few GB of activations.
CUDA_BATCH_SIZE = 1024
CUDA_MAX_BATCH_TOKENS = 131072
CUDA_MAX_BATCH_PAD_WASTE = 0.05
# Two batches in flight on CUDA: the host pads the next batch while the GPU runs this one.
CUDA_PARALLEL_BATCHES = 2
# On CUDA, texts are tokenized this many at a time, the next chunk while the GPU runs this one:
# tokenizing, not the GPU, is what bounds a big GPU's throughput. Length sorting happens per chunk.
CUDA_CHUNK_TEXTS = 16384

# On CPU, batches run side by side on single-threaded session calls: no per-op thread barriers,
# which on 2 cores is ~1.3x faster than one batch on 2 intra-op threads. More than a few in
# flight only multiplies activation memory, so wide machines also get intra-op threads.
MAX_PARALLEL_BATCHES = 4

_Batch = tuple[np.ndarray, "onnxruntime.InferenceSession", str | None]
"""One planned batch: its text rows, the session that runs it, the graph's pooled output if any."""


class EncoderError(RuntimeError):
    """The encoder cannot run as asked (e.g. CUDA requested where it is not usable)."""


class ModelLoadError(EncoderError):
    """A file of an export that looks complete could not be loaded: damaged, or from another exporter."""


@dataclass(frozen=True)
class TokenStates:
    """One text's contextual token vectors, before pooling, with where each token lies in the text."""

    offsets: np.ndarray
    """(n, 2) int64: each real token's Python `str` offsets (code points), end exclusive."""
    states: np.ndarray
    """(n, dimension) float32: the graph's token output for each real token (no special tokens)."""


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
    `variant`: "auto" (the manifest's default per device: int8 on CPU, fp16 on CUDA when exported),
    "fp32", "int8" or "fp16". int8 runs texts shorter than the manifest's `int8_min_tokens` on
    the fp32 graph, where int8 drifts most.
    `batch_size` and `max_batch_tokens` default per device (32 texts / 4,096 tokens on CPU,
    1,024 texts / 131,072 tokens on CUDA).
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        *,
        device: Device = "auto",
        variant: Variant = "auto",
        threads: int | None = None,
        batch_size: int | None = None,
        max_length: int | None = None,
        max_batch_tokens: int | None = None,
    ) -> None:
        if device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
        if batch_size is not None and batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.model_dir = Path(model_dir)
        try:
            self.manifest: ModelManifest = load_manifest(self.model_dir)
        except ModelFolderError as error:
            raise ModelFolderError(
                self.model_dir, error.reason, hint=export_hint(self.model_dir)
            ) from None
        self.spec = self.manifest.spec
        if variant != "auto" and self.manifest.files.get(variant) is None:
            raise EncoderError(f"{self.model_dir} has no {variant} variant; use variant fp32")
        self.requested_device: Device = device
        self.requested_variant: Variant = variant
        self.threads = threads or available_cores()
        self._requested_batch_size = batch_size
        self._requested_max_batch_tokens = max_batch_tokens
        self.batch_size = batch_size or 32
        """Texts per batch at most (the device default until the session exists, unless given)."""
        self.max_length = max_length or self.spec.max_length
        self.max_batch_tokens = max_batch_tokens or DEFAULT_MAX_BATCH_TOKENS
        self.max_pad_waste = MAX_BATCH_PAD_WASTE
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
        self._pooled_output: str | None = None
        self._fp32_session: onnxruntime.InferenceSession | None = None
        """The fp32 session for short texts when int8 runs with a short-text fallback."""
        self._int8_min_tokens = 0
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
        variant = self._variant
        if self._fp32_session is not None:
            variant += f" (fp32 below {self._int8_min_tokens} tokens)"
        if self._device == "cuda":
            return f"CUDA (onnxruntime-gpu), {variant}"
        return f"CPU, {self.threads} thread{'s' if self.threads != 1 else ''}, {variant}"

    @property
    def parallel_batches(self) -> int:
        """Batches run side by side (each on one thread on CPU; 1 on CUDA); creates the session."""
        self._load()
        return self._parallel_batches

    @property
    def model_hash(self) -> str:
        """sha256 of the ONNX graph in use: embeddings from another graph are not interchangeable.

        With int8's short-text fallback, a sha256 over both graphs' hashes and the threshold.
        """
        self._load()
        graph_hash = self._graph(self._variant).sha256
        if self._fp32_session is None:
            return graph_hash
        mixed = f"{graph_hash}+{self.manifest.files.fp32.sha256}<{self._int8_min_tokens}"
        return hashlib.sha256(mixed.encode("ascii")).hexdigest()

    # -- running --------------------------------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors (len(texts), dimension), in the order of `texts`.

        On CUDA a long list is taken in chunks of CUDA_CHUNK_TEXTS, the next chunk tokenized on the
        CPU while the GPU runs this one.
        """
        session, tokenizer = self._load()
        texts = list(texts)
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        self.last_pad_waste, self.last_token_slots = 0.0, 0
        if not texts:
            return vectors
        chunk_size = CUDA_CHUNK_TEXTS if self._device == "cuda" else len(texts)
        if chunk_size >= len(texts):
            token_ids = self._token_ids(tokenizer, texts)
            real_tokens, token_slots = self._embed_tokens(session, token_ids, vectors)
        else:
            real_tokens = token_slots = 0
            with ThreadPoolExecutor(1, thread_name_prefix="hnbooks-tokenize") as tokenizing:
                pending = tokenizing.submit(self._token_ids, tokenizer, texts[:chunk_size])
                for start in range(0, len(texts), chunk_size):
                    token_ids = pending.result()
                    following = texts[start + chunk_size : start + 2 * chunk_size]
                    if following:
                        pending = tokenizing.submit(self._token_ids, tokenizer, following)
                    chunk_vectors = vectors[start : start + len(token_ids)]
                    real, slots = self._embed_tokens(session, token_ids, chunk_vectors)
                    real_tokens, token_slots = real_tokens + real, token_slots + slots
        self.last_token_slots = token_slots
        self.last_pad_waste = 1.0 - real_tokens / token_slots
        return vectors

    @staticmethod
    def _token_ids(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
        # Only ids are needed here: the fast variant skips computing offsets (tokenizers >= 0.20).
        encode_batch = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
        return [encoding.ids for encoding in encode_batch(texts)]

    def _embed_tokens(
        self,
        session: onnxruntime.InferenceSession,
        token_ids: list[list[int]],
        vectors: np.ndarray,
    ) -> tuple[int, int]:
        """Fill `vectors` (a row per text) from the texts' token ids; (real tokens, token slots)."""
        lengths = np.fromiter((len(ids) for ids in token_ids), dtype=np.int64, count=len(token_ids))
        planned: list[_Batch] = []
        main_rows = np.arange(len(token_ids))
        if self._fp32_session is not None:
            short = lengths < self._int8_min_tokens
            main_rows = np.flatnonzero(~short)
            planned += [
                (rows, self._fp32_session, None)
                for rows in self._plan(lengths, np.flatnonzero(short))
            ]
        planned += [(rows, session, self._pooled_output) for rows in self._plan(lengths, main_rows)]

        def run_batch(batch: _Batch) -> None:
            batch_rows, batch_session, pooled_output = batch
            input_ids, attention_mask = self._padded(token_ids, lengths, batch_rows)
            vectors[batch_rows] = self._run_pooled(
                batch_session, input_ids, attention_mask, pooled_output
            )

        if self._parallel_batches > 1 and len(planned) > 1:
            self._run_in_parallel(run_batch, planned)
        else:
            for batch in planned:
                run_batch(batch)
        token_slots = sum(len(rows) * max(int(lengths[rows].max()), 1) for rows, _, _ in planned)
        return int(lengths.sum()), token_slots

    def _padded(
        self, token_ids: Sequence[Sequence[int]], lengths: np.ndarray, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(input ids padded to the longest of `rows`, attention mask) of one batch."""
        batch_lengths = lengths[rows]
        width = max(int(batch_lengths.max()), 1)
        input_ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
        for row, index in enumerate(rows):
            input_ids[row, : batch_lengths[row]] = token_ids[index]
        attention_mask = (np.arange(width)[None, :] < batch_lengths[:, None]).astype(np.int64)
        return input_ids, attention_mask

    def _plan(self, lengths: np.ndarray, rows: np.ndarray) -> list[np.ndarray]:
        """`plan_batches` over the texts `rows` only, as indices into `lengths`."""
        if len(rows) == 0:
            return []
        planned = plan_batches(
            lengths[rows], self.batch_size, self.max_batch_tokens, self.max_pad_waste
        )
        return [rows[batch] for batch in planned]

    def _run_in_parallel(self, run_batch: Callable[[_Batch], None], batches: list[_Batch]) -> None:
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
        self._fp32_session = None
        self._tokenizer = None

    def _feed(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, np.ndarray]:
        available = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": np.zeros_like(input_ids),
        }
        return {
            name: available[name].astype(dtype, copy=False)
            for name, dtype in self._input_types.items()
        }

    def _run_pooled(
        self,
        session: onnxruntime.InferenceSession,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        pooled_output: str | None,
    ) -> np.ndarray:
        """Unit vectors (batch, dimension): the graph's own pooling when it has one, else `mean_pool`."""
        if pooled_output is None:
            return mean_pool(self._run(session, input_ids, attention_mask), attention_mask)
        # IO binding fetches only the pooled output: the (batch, tokens, dimension) states stay on
        # the device instead of crossing to the host.
        binding = session.io_binding()
        for name, value in self._feed(input_ids, attention_mask).items():
            binding.bind_cpu_input(name, value)
        binding.bind_output(pooled_output, "cpu")
        session.run_with_iobinding(binding)
        pooled: np.ndarray = binding.copy_outputs_to_cpu()[0]
        if pooled.shape != (len(input_ids), self.dimension):
            raise EncoderError(
                f"{self.model_dir}: output {pooled_output} has shape {pooled.shape}, "
                f"expected ({len(input_ids)}, {self.dimension})"
            )
        return pooled.astype(np.float32, copy=False)

    def _run(
        self,
        session: onnxruntime.InferenceSession,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
    ) -> np.ndarray:
        feed = self._feed(input_ids, attention_mask)
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
        self._fp32_session = None
        self._int8_min_tokens = self.manifest.int8_min_tokens if self._variant == "int8" else 0
        if self._int8_min_tokens > 0:
            self._fp32_session = self._fallback_session()
        self._apply_device_defaults()
        self._tokenizer = self._load_tokenizer()
        self._session = session
        return session, self._tokenizer

    def _fallback_session(self) -> onnxruntime.InferenceSession:
        """The fp32 session that encodes int8's short texts, on the device of the main session."""
        import onnxruntime as ort

        graph_path = self._graph_path("fp32")
        if self._device == "cuda":
            threads, providers = self.threads, ["CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            threads = max(1, self.threads // self._parallel_batches)
            providers = ["CPUExecutionProvider"]
        try:
            return ort.InferenceSession(
                str(graph_path),
                self._session_options(ORT_ERRORS_ONLY, threads),
                providers=providers,
            )
        except Exception as error:  # onnxruntime's Fail/InvalidProtobuf derive from Exception
            raise ModelLoadError(f"onnxruntime cannot load {graph_path}: {error}") from error

    def _apply_device_defaults(self) -> None:
        """Batch limits for the device the session runs on, where the caller named none."""
        on_cuda = self._device == "cuda"
        self.batch_size = self._requested_batch_size or (CUDA_BATCH_SIZE if on_cuda else 32)
        self.max_batch_tokens = self._requested_max_batch_tokens or (
            CUDA_MAX_BATCH_TOKENS if on_cuda else DEFAULT_MAX_BATCH_TOKENS
        )
        self.max_pad_waste = CUDA_MAX_BATCH_PAD_WASTE if on_cuda else MAX_BATCH_PAD_WASTE

    def _try_cuda_session(self) -> onnxruntime.InferenceSession | None:
        """A session on CUDA, None in auto mode when CUDA is not usable, EncoderError in cuda mode."""
        import onnxruntime as ort

        reason = cuda_unusable_reason()
        if reason is None:
            # onnxruntime-gpu[cuda,cudnn] brings CUDA and cuDNN as pip wheels, which onnxruntime
            # finds only when asked to load them first (no-op where torch or the system has them).
            preload_dlls = getattr(ort, "preload_dlls", None)
            if preload_dlls is not None:
                with contextlib.suppress(Exception):
                    preload_dlls()
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
                    self._parallel_batches = CUDA_PARALLEL_BATCHES
                    return session
                reason = (
                    "onnxruntime-gpu could not load CUDA (driver, CUDA or cuDNN libraries missing?)"
                )
        if self.requested_device == "cuda":
            raise EncoderError(
                f"device cuda was requested but {reason}. On a machine with an NVIDIA GPU install "
                f"the GPU runtime with `{CUDA_INSTALL}` (in a checkout `make setup` does this "
                "where nvidia-smi lists a GPU; `make setup GPU=1` forces it), or use --device cpu/auto."
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
        self._pooled_output = POOLED_OUTPUT if POOLED_OUTPUT in output_names else None
        token_outputs = [name for name in output_names if name != POOLED_OUTPUT] or output_names
        self._output_name = (
            "last_hidden_state" if "last_hidden_state" in token_outputs else token_outputs[0]
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

    def token_states(self, texts: Sequence[str]) -> list[TokenStates]:
        """Each text's token vectors before pooling, with `str` offsets (what span models read).

        tokenizers reports offsets in code points of the text it was given, so they index the
        Python `str` as is (emoji, CJK and combining marks included). A text longer than the
        model's length is encoded in consecutive windows, each starting at the first word the
        previous one could not hold, so every token gets a state.

        With int8 and its fp32 fallback for short texts, every text's states come from the fp32
        graph: a span model's features must not change with the length of the text.
        """
        session, tokenizer = self._load()
        if self._fp32_session is not None:
            session = self._fp32_session
        windows: list[tuple[int, list[int], np.ndarray]] = []
        for text_index, text in enumerate(texts):
            start = 0
            while start < len(text):
                encoding = tokenizer.encode(text[start:])
                real = [i for i, special in enumerate(encoding.special_tokens_mask) if not special]
                if not real:
                    break
                offsets = np.array([encoding.offsets[i] for i in real], dtype=np.int64) + start
                truncated = bool(encoding.overflowing) or len(encoding.ids) >= self.max_length
                keep = len(real)
                if truncated and text[int(offsets[-1, 1]) :].strip():
                    # Restart at the last token that begins a word, so no word is split in two.
                    for k in range(len(real) - 1, 0, -1):
                        if offsets[k, 0] > offsets[k - 1, 1]:
                            keep = k
                            break
                else:
                    truncated = False
                ids = [encoding.ids[0], *[encoding.ids[i] for i in real[:keep]], encoding.ids[-1]]
                windows.append((text_index, ids, offsets[:keep]))
                if not truncated:
                    break
                start = int(offsets[keep - 1, 1]) if keep == len(real) else int(offsets[keep, 0])
        window_ids = [ids for _, ids, _ in windows]
        lengths = np.array([len(ids) for ids in window_ids], dtype=np.int64)
        window_states: list[np.ndarray] = [np.empty((0, self.dimension), np.float32)] * len(windows)
        for batch_rows in plan_batches(lengths, self.batch_size, self.max_batch_tokens):
            input_ids, attention_mask = self._padded(window_ids, lengths, batch_rows)
            hidden = self._run(session, input_ids, attention_mask)
            for row, window_index in enumerate(batch_rows):
                # Row 0 is [CLS] and the last real position [SEP]: the text's tokens lie between.
                real_count = int(lengths[window_index]) - 2
                window_states[window_index] = hidden[row, 1 : 1 + real_count].astype(np.float32)
        offsets_of: list[list[np.ndarray]] = [[] for _ in texts]
        states_of: list[list[np.ndarray]] = [[] for _ in texts]
        for (text_index, _, offsets), states in zip(windows, window_states, strict=True):
            offsets_of[text_index].append(offsets)
            states_of[text_index].append(states)
        return [
            TokenStates(
                np.concatenate(offsets) if offsets else np.empty((0, 2), np.int64),
                np.concatenate(states) if states else np.empty((0, self.dimension), np.float32),
            )
            for offsets, states in zip(offsets_of, states_of, strict=True)
        ]


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
