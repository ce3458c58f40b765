"""A fake, deterministic encoder standing in for the ONNX model where the encoder is not what is tested.

Vectors are a fixed random projection of hashed words, so texts sharing words are close (the head has
something to learn) and the same text always gives the same vector (a cache can be checked row by row).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DIMENSION = 384
BUCKETS = 2048
MODEL_HASH = "fake-hashed-words-v1"


class FakeEncoder:
    """What `hnbooks-score` needs of `hnbooks.scoring.encoder.Encoder`: embed, encode, hash, provider."""

    model_hash = MODEL_HASH
    dimension = DIMENSION
    provider = "CPU (fake hashed-words encoder)"
    name = "fake"

    def __init__(self, model_dir: Any = None, **_: Any) -> None:
        self._projection = (
            np.random.default_rng(7).standard_normal((BUCKETS, DIMENSION)).astype(np.float32)
        )
        self.last_pad_waste = 0.0
        self.last_token_slots = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        counts = np.zeros((len(texts), BUCKETS), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                counts[row, zlib.crc32(word.encode("utf-8")) % BUCKETS] += 1.0
        vectors = counts @ self._projection
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)

    encode = embed


def install(models_dir: Path | None = None) -> None:
    """Make `hnbooks-score` (and `hnbooks seed --semantic`) use the fake encoder in this process."""
    import hnbooks.scoring.encoder as encoder

    encoder.Encoder = FakeEncoder  # type: ignore[misc, assignment]
