"""int8's fp32 fallback for short texts, the fp16 graph with pooling inside, and the CUDA plumbing on CPU."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hnbooks.models import export as export_module
from hnbooks.models.folder import MANIFEST_NAME, POOLED_OUTPUT, mean_pool, read_manifest
from hnbooks.scoring import encoder as encoder_module
from hnbooks.scoring.encoder import Encoder

SHORT = ["thanks", "a book", "the kernel update made the server crash"]
# 30 words: 32 tokens with [CLS] and [SEP], above INT8_MIN_TOKENS (25).
LONG = [
    " ".join(["book", "read", "the", "novel", "python", "data"] * 5),
    " ".join(["server", "crash", "kernel", "update", "code", "rust"] * 5),
]


def test_int8_runs_short_texts_on_fp32_and_long_ones_on_int8(tiny_model_dir: Path) -> None:
    manifest = read_manifest(tiny_model_dir)
    assert manifest is not None and manifest.int8_min_tokens == export_module.INT8_MIN_TOKENS
    int8 = Encoder(tiny_model_dir, device="cpu", variant="int8").embed(SHORT + LONG)
    fp32 = Encoder(tiny_model_dir, device="cpu", variant="fp32").embed(SHORT + LONG)
    np.testing.assert_allclose(int8[: len(SHORT)], fp32[: len(SHORT)], atol=1e-6)
    long_cosines = np.einsum("nd,nd->n", int8[len(SHORT) :], fp32[len(SHORT) :])
    assert np.all(long_cosines > 0.98) and np.any(
        np.abs(int8[len(SHORT) :] - fp32[len(SHORT) :]) > 5e-6
    )


def test_token_states_under_int8_come_from_the_fp32_graph_for_every_length(
    tiny_model_dir: Path,
) -> None:
    """A span model reads token states: short and long texts must not come from two graphs."""
    int8 = Encoder(tiny_model_dir, device="cpu", variant="int8").token_states(SHORT + LONG)
    fp32 = Encoder(tiny_model_dir, device="cpu", variant="fp32").token_states(SHORT + LONG)
    for got, expected in zip(int8, fp32, strict=True):
        np.testing.assert_array_equal(got.offsets, expected.offsets)
        np.testing.assert_allclose(got.states, expected.states, atol=1e-5)


def test_an_export_from_before_the_fallback_and_fp16_still_runs(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "old"))
    data = json.loads((folder / MANIFEST_NAME).read_text())
    del data["int8_min_tokens"], data["files"]["fp16"], data["cosine_vs_pytorch"]["fp16"]
    data["default_variant"]["cuda"] = "fp32"
    (folder / MANIFEST_NAME).write_text(json.dumps(data))
    (folder / "model_fp16.onnx").unlink()
    encoder = Encoder(folder, device="cpu", threads=2)
    assert encoder.provider == "CPU, 2 threads, int8"
    int8 = encoder.embed(SHORT)
    fp32 = Encoder(folder, device="cpu", variant="fp32").embed(SHORT)
    # No fallback recorded: int8 runs every text, short ones included.
    assert np.abs(int8 - fp32).max() > 5e-6
    assert encoder.model_hash == data["files"]["int8"]["sha256"]
    assert encoder._resolve_variant("cuda") == "fp32"
    with pytest.raises(encoder_module.EncoderError, match="no fp16 variant"):
        Encoder(folder, variant="fp16")


def test_the_fp16_graphs_pooled_output_is_mean_pool_of_its_token_output(
    tiny_model_dir: Path,
) -> None:
    import onnxruntime as ort
    from tokenizers import Tokenizer

    session = ort.InferenceSession(
        str(tiny_model_dir / "model_fp16.onnx"), providers=["CPUExecutionProvider"]
    )
    assert [declared.name for declared in session.get_outputs()] == [
        "last_hidden_state",
        POOLED_OUTPUT,
    ]
    tokenizer = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    encodings = tokenizer.encode_batch(SHORT + LONG)
    input_ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
    attention_mask = np.array([encoding.attention_mask for encoding in encodings], dtype=np.int64)
    feed = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": np.zeros_like(input_ids),
    }
    inputs = {declared.name for declared in session.get_inputs()}
    hidden, pooled = session.run(None, {name: feed[name] for name in inputs})
    assert pooled.dtype == np.float32 and pooled.shape == (len(SHORT + LONG), 32)
    np.testing.assert_allclose(pooled, mean_pool(hidden, attention_mask), atol=1e-5)


def test_fp16_runs_through_io_binding_and_agrees_with_fp32(tiny_model_dir: Path) -> None:
    fp16 = Encoder(tiny_model_dir, device="cpu", variant="fp16")
    vectors = fp16.embed(SHORT + LONG)
    assert fp16._pooled_output == POOLED_OUTPUT
    fp32 = Encoder(tiny_model_dir, device="cpu", variant="fp32").embed(SHORT + LONG)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.einsum("nd,nd->n", vectors, fp32).min() >= export_module.FP16_MIN_COSINE


def test_int8_keeps_attention_and_the_matmuls_after_gelu_in_fp32(tiny_model_dir: Path) -> None:
    import onnx

    fp32 = onnx.load(str(tiny_model_dir / "model.onnx"), load_external_data=False)
    kept = export_module.gelu_fed_matmuls(fp32)
    assert len(kept) == 2  # one FFN down-projection per layer of the tiny BERT
    int8 = onnx.load(str(tiny_model_dir / "model_int8.onnx"), load_external_data=False)
    float_matmuls = {node.name for node in int8.graph.node if node.op_type == "MatMul"}
    assert float_matmuls == set(kept)
    op_types = {node.op_type for node in int8.graph.node}
    assert "MatMulInteger" in op_types and "Attention" in op_types and "QAttention" not in op_types


def test_on_cuda_the_encoder_takes_gpu_batches_and_the_fp16_graph(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CUDA branch after its session exists, with a CPU session standing in for the GPU."""
    import onnxruntime as ort

    def cpu_session_as_cuda(self: Encoder) -> ort.InferenceSession:
        self._device, self._variant = "cuda", self._resolve_variant("cuda")
        self._parallel_batches = encoder_module.CUDA_PARALLEL_BATCHES
        return ort.InferenceSession(
            str(self._graph_path(self._variant)), providers=["CPUExecutionProvider"]
        )

    monkeypatch.setattr(Encoder, "_try_cuda_session", cpu_session_as_cuda)
    # Five chunks: each tokenized while the one before runs.
    monkeypatch.setattr(encoder_module, "CUDA_CHUNK_TEXTS", 64)
    texts = [" ".join(["book"] * (1 + index % 50)) for index in range(300)]
    on_gpu = Encoder(tiny_model_dir, device="cuda")
    vectors = on_gpu.embed(texts)
    real_tokens = sum(1 + index % 50 + 2 for index in range(300))
    assert on_gpu.last_token_slots == round(real_tokens / (1 - on_gpu.last_pad_waste))
    assert 0 <= on_gpu.last_pad_waste <= encoder_module.CUDA_MAX_BATCH_PAD_WASTE
    assert on_gpu.provider == "CUDA (onnxruntime-gpu), fp16"
    assert on_gpu.batch_size == encoder_module.CUDA_BATCH_SIZE
    assert on_gpu.max_batch_tokens == encoder_module.CUDA_MAX_BATCH_TOKENS
    assert on_gpu.parallel_batches == 2
    reference = Encoder(tiny_model_dir, device="cpu", variant="fp32").embed(texts)
    assert np.einsum("nd,nd->n", vectors, reference).min() >= export_module.FP16_MIN_COSINE
    chosen = Encoder(tiny_model_dir, device="cuda", batch_size=8, max_batch_tokens=256)
    chosen.embed(texts[:20])
    assert (chosen.batch_size, chosen.max_batch_tokens) == (8, 256)
