"""The ONNX encoder on a tiny exported BERT: order, normalisation, batching, padding, providers, laziness."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hnbooks.models import export as export_module
from hnbooks.models.folder import read_manifest
from hnbooks.models.registry import MODELS, ModelMissing
from hnbooks.scoring.encoder import Encoder, EncoderError, ModelLoadError
from tests.scoring.tiny_bert import TINY_SPEC

TEXTS = [
    "I loved this novel",
    "thanks",
    "the kernel update made the server crash and we read the data again",
    "",
    "Rust code in python? we loved it, the author of the book read it to us in 2019!",
    "a book",
    "reading books is great",
    "ünïcödé and emoji 📚 are fine too",
]


def test_constructing_an_encoder_creates_no_session(tiny_model_dir: Path) -> None:
    encoder = Encoder(tiny_model_dir)
    assert not encoder.loaded
    assert encoder.dimension == 32 and encoder.name == "tiny-bert"
    encoder.embed(["hello"])
    assert encoder.loaded


def test_vectors_are_unit_float32_rows_in_input_order(tiny_model_dir: Path) -> None:
    encoder = Encoder(tiny_model_dir, variant="fp32")
    vectors = encoder.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 32)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    one_by_one = np.stack([encoder.embed([text])[0] for text in TEXTS])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)


def test_batch_size_one_and_thirty_two_agree(tiny_model_dir: Path) -> None:
    rng = random.Random(7)
    words = "the a book novel read server crash python data loved great thanks".split()
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 40))) for _ in range(70)]
    single = Encoder(tiny_model_dir, variant="fp32", batch_size=1).embed(texts)
    batched = Encoder(tiny_model_dir, variant="fp32", batch_size=32).embed(texts)
    np.testing.assert_allclose(single, batched, atol=1e-5)


def test_length_sorting_keeps_padding_small(tiny_model_dir: Path) -> None:
    rng = random.Random(3)
    word_counts = [rng.randint(1, 60) for _ in range(300)]
    texts = [" ".join(["book"] * count) for count in word_counts]
    encoder = Encoder(tiny_model_dir, variant="fp32")
    encoder.embed(texts)
    token_lengths = [count + 2 for count in word_counts]  # [CLS] ... [SEP]
    assert encoder.last_pad_waste < 0.03
    assert encoder.last_token_slots == round(sum(token_lengths) / (1 - encoder.last_pad_waste))
    input_order_slots = sum(
        len(token_lengths[i : i + 32]) * max(token_lengths[i : i + 32]) for i in range(0, 300, 32)
    )
    assert 1 - sum(token_lengths) / input_order_slots > 0.3


def test_equal_lengths_need_no_padding(tiny_model_dir: Path) -> None:
    word_counts = [count for count in range(1, 9) for _ in range(5)]
    random.Random(5).shuffle(word_counts)
    encoder = Encoder(tiny_model_dir, variant="fp32", batch_size=4)
    encoder.embed([" ".join(["book"] * count) for count in word_counts])
    assert encoder.last_pad_waste == 0.0
    assert encoder.last_token_slots == sum(count + 2 for count in word_counts)


def test_texts_are_truncated_to_max_length(tiny_model_dir: Path) -> None:
    long_text = " ".join(["book"] * 500)
    encoder = Encoder(tiny_model_dir, variant="fp32")
    encoder.embed([long_text])
    assert encoder.last_token_slots == 64
    short = Encoder(tiny_model_dir, variant="fp32", max_length=16)
    short.embed([long_text])
    assert short.last_token_slots == 16


def test_no_texts_give_an_empty_matrix(tiny_model_dir: Path) -> None:
    vectors = Encoder(tiny_model_dir).embed([])
    assert vectors.shape == (0, 32) and vectors.dtype == np.float32


def test_int8_variant_runs_and_is_the_cpu_default(tiny_model_dir: Path) -> None:
    manifest = json.loads((tiny_model_dir / "hnbooks-model.json").read_text())
    encoder = Encoder(tiny_model_dir, device="cpu", threads=2)
    assert encoder.variant == manifest["default_variant"]["cpu"] == "int8"
    assert encoder.provider == "CPU, 2 threads, int8 (fp32 below 25 tokens)"
    int8 = encoder.embed(TEXTS)
    fp32 = Encoder(tiny_model_dir, variant="fp32").embed(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    assert np.einsum("nd,nd->n", int8, fp32).min() > 0.99


def test_model_hash_is_the_sha256_of_the_graph_in_use(tiny_model_dir: Path) -> None:
    for variant, file_name in (("fp32", "model.onnx"), ("fp16", "model_fp16.onnx")):
        encoder = Encoder(tiny_model_dir, variant=variant)  # type: ignore[arg-type]
        expected = hashlib.sha256((tiny_model_dir / file_name).read_bytes()).hexdigest()
        assert encoder.model_hash == expected


def test_int8_with_its_fp32_fallback_has_a_hash_of_its_own(tiny_model_dir: Path) -> None:
    manifest = read_manifest(tiny_model_dir)
    assert manifest is not None and manifest.files.int8 is not None
    int8 = Encoder(tiny_model_dir, variant="int8").model_hash
    assert int8 not in (manifest.files.int8.sha256, manifest.files.fp32.sha256)
    mixed = f"{manifest.files.int8.sha256}+{manifest.files.fp32.sha256}<{manifest.int8_min_tokens}"
    assert int8 == hashlib.sha256(mixed.encode()).hexdigest()


def test_cuda_requested_without_a_usable_gpu_is_a_clear_error(tiny_model_dir: Path) -> None:
    from hnbooks.scoring.encoder import cuda_unusable_reason

    if cuda_unusable_reason() is None:
        pytest.skip("this machine can run onnxruntime on CUDA")
    with pytest.raises(EncoderError, match=r"pip install 'onnxruntime-gpu\[cuda,cudnn\]'"):
        Encoder(tiny_model_dir, device="cuda").embed(["x"])
    assert Encoder(tiny_model_dir, device="auto").provider.startswith("CPU")


def test_a_folder_without_an_export_says_what_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ModelMissing, match="hnbooks models export"):
        Encoder(tmp_path)
    monkeypatch.setitem(MODELS, TINY_SPEC.name, TINY_SPEC)
    with pytest.raises(ModelMissing) as missing:
        Encoder(tmp_path / TINY_SPEC.name)
    assert f"run `hnbooks models export {TINY_SPEC.name} --models-dir {tmp_path}`" in str(
        missing.value
    )


def test_the_encoder_reads_the_manifest_as_attributes(tiny_model_dir: Path) -> None:
    encoder = Encoder(tiny_model_dir, variant="fp16")
    assert encoder.manifest == read_manifest(tiny_model_dir)
    assert encoder.manifest.files.fp16 is not None
    assert encoder.model_hash == encoder.manifest.files.fp16.sha256


def test_a_graph_that_cannot_load_is_a_model_load_error(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    import shutil

    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "damaged"))
    graph = folder / "model.onnx"
    graph.write_bytes(bytes(graph.stat().st_size))
    encoder = Encoder(folder, device="cpu", variant="fp32")
    with pytest.raises(ModelLoadError, match="onnxruntime cannot load"):
        encoder.embed(["a book"])


def test_the_encoder_agrees_with_the_recipes_pytorch_reference(
    tiny_model_dir: Path, tiny_weights_dir: Path
) -> None:
    """The recipe measures its graphs with onnxruntime directly; the encoder must match PyTorch too."""
    reference = export_module.pytorch_embeddings(
        tiny_weights_dir, tiny_model_dir / "tokenizer.json", TINY_SPEC.max_length
    )
    sentences = list(export_module.AGREEMENT_SENTENCES)
    manifest = read_manifest(tiny_model_dir)
    assert manifest is not None and manifest.agreement is not None
    for variant in ("fp32", "int8", "fp16"):
        encoder = Encoder(tiny_model_dir, device="cpu", variant=variant)  # type: ignore[arg-type]
        cosines = np.einsum("nd,nd->n", encoder.embed(sentences), reference)
        recorded = manifest.agreement.get(variant)
        assert recorded is not None
        assert abs(float(cosines.mean()) - recorded.mean) < 0.01, (variant, cosines)
        if variant == "fp32":
            assert cosines.min() >= export_module.FP32_MIN_COSINE, cosines
        elif variant == "fp16":
            assert cosines.min() >= export_module.FP16_MIN_COSINE, cosines
        else:
            assert cosines.mean() >= export_module.INT8_MIN_MEAN_COSINE, cosines


def test_bad_arguments_are_refused(tiny_model_dir: Path) -> None:
    with pytest.raises(ValueError, match="device"):
        Encoder(tiny_model_dir, device="tpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="variant"):
        Encoder(tiny_model_dir, variant="fp8")  # type: ignore[arg-type]


def test_a_cpu_run_prints_nothing_on_stderr(tiny_model_dir: Path) -> None:
    code = (
        "import sys; from hnbooks.scoring.encoder import Encoder; "
        f"e = Encoder({str(tiny_model_dir)!r}); print(e.provider); e.embed(['a book', 'thanks'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("CPU")
    assert result.stderr == ""


def test_batches_are_length_sorted_and_token_bounded() -> None:
    from hnbooks.scoring.encoder import plan_batches

    lengths = np.array(
        [200, 10, 200, 10, 10, 200, 10, 10, 10, 10, 200, 200, 200, 200, 200, 10, 300]
    )
    batches = plan_batches(lengths, batch_size=8, max_batch_tokens=800)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    assert [lengths[rows].tolist() for rows in batches] == [[10] * 8, [200] * 4, [200] * 4, [300]]
    assert all(len(rows) * lengths[rows].max() <= 800 or len(rows) == 1 for rows in batches)


@pytest.mark.parametrize(
    ("max_pad_waste", "expected"),
    [(1.0, [[3, 4, 5, 6]]), (0.2, [[3, 4, 5], [6]]), (0.02, [[3], [4], [5], [6]])],
)
def test_batches_close_rather_than_pad_too_much(
    max_pad_waste: float, expected: list[list[int]]
) -> None:
    from hnbooks.scoring.encoder import plan_batches

    lengths = np.array([6, 3, 5, 4])
    batches = plan_batches(
        lengths, batch_size=4, max_batch_tokens=4096, max_pad_waste=max_pad_waste
    )
    assert [lengths[rows].tolist() for rows in batches] == expected


def test_parallel_batches_match_one_batch_at_a_time(tiny_model_dir: Path) -> None:
    rng = random.Random(11)
    words = "the a book novel read server crash python data loved great thanks".split()
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 60))) for _ in range(300)]
    parallel = Encoder(tiny_model_dir, variant="fp32", threads=2, batch_size=8)
    sequential = Encoder(tiny_model_dir, variant="fp32", threads=1, batch_size=8)
    np.testing.assert_allclose(parallel.embed(texts), sequential.embed(texts), atol=1e-5)
    assert parallel.parallel_batches == 2 and sequential.parallel_batches == 1
    parallel.close()
    assert not parallel.loaded
