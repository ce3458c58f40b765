"""A 2-layer, 32-wide random BERT with a WordPiece tokenizer: the encoder tests' model."""

from __future__ import annotations

import string
from pathlib import Path

from hnbooks.models.registry import ModelSpec

TINY_SPEC = ModelSpec(
    name="tiny-bert",
    weights_package="tiny-bert-weights",
    max_length=64,
    pooling="mean",
    dimension=32,
    description="2-layer random BERT for unit tests",
)

WORDS = (
    "the a of and to in is it that was for on book books read reading novel author story "
    "thanks great code server kernel python rust data crash update loved this i you we they"
).split()


def build_tiny_weights(folder: Path) -> Path:
    """Save a 2-layer, 32-wide random BERT and a WordPiece tokenizer.json to `folder`."""
    import torch
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import BertConfig, BertModel

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    characters = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocabulary = specials + WORDS + characters + [f"##{character}" for character in characters]
    token_ids = {token: index for index, token in enumerate(dict.fromkeys(vocabulary))}
    tokenizer = Tokenizer(WordPiece(token_ids, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", token_ids["[CLS]"]), ("[SEP]", token_ids["[SEP]"])],
    )
    tokenizer.decoder = decoders.WordPiece()
    # Like the shipped MiniLM tokenizer: fixed padding that the export must remove.
    tokenizer.enable_padding(length=16, pad_id=0, pad_token="[PAD]")
    tokenizer.enable_truncation(max_length=16)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))

    torch.manual_seed(0)
    config = BertConfig(  # type: ignore[no-untyped-call]
        vocab_size=len(token_ids),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=0,
    )
    BertModel(config).eval().save_pretrained(folder)  # type: ignore[no-untyped-call]
    return folder
