"""End to end on the real exported default encoder, against plain transformers + PyTorch."""

from __future__ import annotations

import os

import numpy as np
import pytest

from hnbooks.models.export import ensure_model
from hnbooks.models.registry import DEFAULT_MODEL, MODELS, default_models_dir, weights_path
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
def model_dir() -> os.PathLike[str]:
    return ensure_model(DEFAULT_MODEL, default_models_dir())


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
    return torch.nn.functional.normalize(pooled, dim=1).numpy()


# fp32 is the same computation as PyTorch. Dynamic int8 drifts most on short texts and depends a
# little on which texts share a batch (see models/README.md): its mean holds 0.99, single ones 0.98.
@pytest.mark.parametrize(
    ("variant", "min_cosine", "mean_cosine"), [("fp32", 0.999, 0.9999), ("int8", 0.98, 0.99)]
)
def test_agrees_with_pytorch(
    model_dir: os.PathLike[str],
    pytorch_vectors: np.ndarray,
    variant: str,
    min_cosine: float,
    mean_cosine: float,
) -> None:
    encoder = Encoder(model_dir, device="cpu", variant=variant)  # type: ignore[arg-type]
    vectors = encoder.embed(SENTENCES)
    assert vectors.shape == (len(SENTENCES), 384)
    cosines = np.einsum("nd,nd->n", vectors, pytorch_vectors)
    assert cosines.min() >= min_cosine, cosines
    assert cosines.mean() >= mean_cosine, cosines


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_close_meanings_score_closer_than_unrelated_ones(
    model_dir: os.PathLike[str], variant: str
) -> None:
    encoder = Encoder(model_dir, device="cpu", variant=variant)  # type: ignore[arg-type]
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
