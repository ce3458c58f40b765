"""End to end on the real exported default encoder, against plain transformers + PyTorch.

The export recipe measures its graphs with onnxruntime directly; these tests hold the `Encoder`
itself (length-sorted batches, parallel calls, the CPU default variant) to the same standard.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from hnbooks.models import export as export_module
from hnbooks.models.folder import is_exported, load_manifest
from hnbooks.models.registry import DEFAULT_MODEL, MODELS, model_dir, weights_path
from hnbooks.scoring.encoder import Encoder

pytestmark = pytest.mark.model

# Real Hacker News comments, short and long, with and without a book in them.
SENTENCES = [
    "I just finished reading The Left Hand of Darkness by Ursula K. Le Guin and it blew my mind.",
    "Has anyone read Designing Data-Intensive Applications? Is it worth it for a backend developer?",
    "The new release fixes the memory leak in the scheduler, but the build still fails on ARM.",
    "My favourite programming book is still Structure and Interpretation of Computer Programs.",
    "We moved from Postgres to SQLite for the edge nodes and p99 latency dropped by half.",
    "This reminds me of a chapter in Thinking, Fast and Slow about how we misjudge probabilities "
    "when the numbers are small, and why experts are no better than anyone else at it.",
    "Does anyone know a good laptop for running Linux with decent battery life in 2024?",
    "Honestly the best thing I did for my career was reading The Pragmatic Programmer early on.",
]


@pytest.fixture(scope="module")
def exported_dir() -> os.PathLike[str]:
    """The default model's export, made here (explicitly) when the machine has none yet."""
    folder = model_dir(DEFAULT_MODEL)
    if not is_exported(folder):
        export_module.export_model(DEFAULT_MODEL)
    return folder


@pytest.fixture(scope="module")
def pytorch_vectors() -> np.ndarray:
    """Plain transformers + PyTorch: tokenizer, model, masked mean pooling, L2 norm."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    spec = MODELS[DEFAULT_MODEL]
    source = str(weights_path(spec))
    tokenizer = transformers.AutoTokenizer.from_pretrained(source, local_files_only=True)
    model = transformers.AutoModel.from_pretrained(source, local_files_only=True).eval()
    batch = tokenizer(
        SENTENCES, padding=True, truncation=True, max_length=spec.max_length, return_tensors="pt"
    )
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    vectors: np.ndarray = torch.nn.functional.normalize(pooled, dim=1).numpy()
    return vectors


# fp32 is the same computation as PyTorch. Dynamic int8 drifts most on short texts and depends a
# little on which texts share a batch (see models/README.md): its mean holds 0.99, single ones 0.98.
@pytest.mark.parametrize(
    ("variant", "min_cosine", "mean_cosine"), [("fp32", 0.999, 0.9999), ("int8", 0.98, 0.99)]
)
def test_agrees_with_pytorch(
    exported_dir: os.PathLike[str],
    pytorch_vectors: np.ndarray,
    variant: str,
    min_cosine: float,
    mean_cosine: float,
) -> None:
    encoder = Encoder(exported_dir, device="cpu", variant=variant)  # type: ignore[arg-type]
    vectors = encoder.embed(SENTENCES)
    assert vectors.shape == (len(SENTENCES), 384)
    cosines = np.einsum("nd,nd->n", vectors, pytorch_vectors)
    assert cosines.min() >= min_cosine, cosines
    assert cosines.mean() >= mean_cosine, cosines


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_close_meanings_score_closer_than_unrelated_ones(
    exported_dir: os.PathLike[str], variant: str
) -> None:
    encoder = Encoder(exported_dir, device="cpu", variant=variant)  # type: ignore[arg-type]
    book, also_book, laptop, database = encoder.embed(
        [
            "I loved reading this novel, it is the best book I read this year.",
            "Great book recommendation, I could not put that novel down.",
            "My laptop battery dies after two hours running Linux.",
            "We migrated the database cluster to a new version of Postgres.",
        ]
    )
    assert book @ also_book > book @ laptop + 0.2
    assert book @ also_book > book @ database + 0.2
    assert laptop @ database < book @ also_book


def test_the_encoder_meets_the_recipes_own_bar_on_its_sentences(
    exported_dir: os.PathLike[str],
) -> None:
    """What the export checked with onnxruntime alone, checked again through `Encoder`."""
    pytest.importorskip("torch")
    spec = MODELS[DEFAULT_MODEL]
    manifest = load_manifest(exported_dir)
    reference = export_module.pytorch_embeddings(
        weights_path(spec), Path(exported_dir) / manifest.tokenizer, spec.max_length
    )
    sentences = list(export_module.AGREEMENT_SENTENCES)
    assert manifest.agreement is not None
    for variant in manifest.files.variants():
        encoder = Encoder(exported_dir, device="cpu", variant=variant)  # type: ignore[arg-type]
        cosines = np.einsum("nd,nd->n", encoder.embed(sentences), reference)
        recorded = manifest.agreement.get(variant)
        assert recorded is not None
        assert abs(float(cosines.mean()) - recorded.mean) < 0.01, (variant, cosines, recorded)
        if variant == "fp32":
            assert cosines.min() >= export_module.FP32_MIN_COSINE, cosines
        else:
            assert cosines.mean() >= export_module.INT8_MIN_MEAN_COSINE, cosines
    assert manifest.default_variant.cpu == "int8"
