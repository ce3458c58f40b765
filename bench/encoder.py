"""Encoder throughput: the project's ONNX encoder against transformers + PyTorch and fastembed.

On the same texts (real HN comments from the shared bookfinder data, padded out to --texts with
longer texts made by joining comments, in a shuffled order), in one process:

1. plain     transformers + PyTorch: input order, batches of 32 padded to the longest, mean pooling
2. sorted    the same, batches built from texts sorted by token length
3. ours      `Encoder` (onnxruntime + tokenizers), default CPU variant (int8, fp32 for short texts)
4. ours fp32 `Encoder` with the fp32 graph
5. fastembed qdrant's fastembed running our exported fp32 graph (same file, same truncation, same
             threads), its default batches of 256 in input order; needs `pip install 'hnbooks[bench]'`

The pipelines are interleaved: the texts are cut into slices (--slice) and every pipeline embeds each
slice in turn, in a rotating order, so a change in machine load hits them alike. Prints texts/s,
ratios, padding waste, peak RSS and cosine agreement with (1), then as the last line one JSON object.
Also measures the peak RSS of the encoder alone in a fresh process (no torch loaded).

    python bench/encoder.py                  # >= 2,000 texts
    python bench/encoder.py --texts 300      # a quick run

The last line's keys: texts, *_tps (texts/s), ratio_* (ours int8 / the other), cosine_* (agreement
with plain; the int8 figures are the ones the issue bounds), pad_waste, peak RSS, provider;
fastembed_tps and ratio_vs_fastembed are null when fastembed is not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "bookfinder"
DEMO_DATA = REPO_ROOT / "hnbooks" / "demo"
TORCH_BATCH = 32
WARM_UP_TEXTS = 8
FASTEMBED_BATCH = 256
"""fastembed's own default batch size for `TextEmbedding.embed`."""
FASTEMBED_NAMES = {"all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2"}
"""fastembed's name of each registered model (it picks pooling and normalisation by name)."""
FASTEMBED_INSTALL = "pip install 'hnbooks[bench]'  (or: .venv/bin/pip install fastembed)"


def read_texts(folder: Path) -> list[str]:
    """Distinct non-empty "text" fields of every *.jsonl in `folder`, in file order."""
    texts: list[str] = []
    for path in sorted(folder.glob("*.jsonl")):
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                try:
                    text = json.loads(line).get("text")
                except (json.JSONDecodeError, AttributeError):
                    continue
                if isinstance(text, str) and text.strip():
                    texts.append(text)
    return list(dict.fromkeys(texts))


def bench_texts(data_dir: Path, count: int, seed: int = 0) -> tuple[list[str], str]:
    """`count` texts: real comments first, then longer ones joined from 2-4 comments, shuffled."""
    source = data_dir
    comments = read_texts(data_dir) if data_dir.is_dir() else []
    if not comments:
        source = DEMO_DATA
        comments = read_texts(DEMO_DATA)
    if not comments:
        raise SystemExit(f"no texts found in {data_dir} or {DEMO_DATA}")
    rng = random.Random(seed)
    texts = comments[:count]
    seen = set(texts)
    while len(texts) < count:
        joined = "\n\n".join(rng.sample(comments, k=min(len(comments), rng.randint(2, 4))))
        if joined not in seen:
            seen.add(joined)
            texts.append(joined)
    rng.shuffle(texts)
    return texts, str(source)


def proc_status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), in MB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far.

    VmHWM, not ru_maxrss: a child started with fork+exec inherits its parent's ru_maxrss.
    """
    peak = proc_status_mb("VmHWM")
    return peak if peak == peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class TorchPipeline:
    """The baseline: transformers tokenizer + model, batches padded to their longest text."""

    def __init__(self, weights: Path, max_length: int, threads: int) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        torch.set_num_threads(threads)
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(  # type: ignore[no-untyped-call]
            str(weights), local_files_only=True
        )
        self.model = AutoModel.from_pretrained(str(weights), local_files_only=True).eval()
        self.max_length = max_length
        self.last_pad_waste = 0.0
        self.last_token_slots = 0

    def embed(self, texts: Sequence[str], *, sort_by_length: bool) -> np.ndarray:
        torch = self.torch
        order = np.arange(len(texts))
        if sort_by_length:
            lengths = [
                len(ids)
                for ids in self.tokenizer(list(texts), truncation=True, max_length=self.max_length)[
                    "input_ids"
                ]
            ]
            order = np.argsort(lengths, kind="stable")
        vectors = np.empty((len(texts), self.model.config.hidden_size), dtype=np.float32)
        real_tokens = token_slots = 0
        with torch.inference_mode():
            for start in range(0, len(texts), TORCH_BATCH):
                rows = order[start : start + TORCH_BATCH]
                batch = self.tokenizer(
                    [texts[i] for i in rows],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                vectors[rows] = torch.nn.functional.normalize(pooled, dim=1).numpy()
                real_tokens += int(batch["attention_mask"].sum())
                token_slots += int(batch["attention_mask"].numel())
        self.last_pad_waste = 1 - real_tokens / token_slots
        self.last_token_slots = token_slots
        return vectors


class FastEmbedPipeline:
    """fastembed's TextEmbedding on our exported fp32 graph, offline, in a temporary folder."""

    def __init__(
        self, model_dir: Path, weights: Path, name: str, max_length: int, threads: int
    ) -> None:
        from fastembed import TextEmbedding
        from tokenizers import Tokenizer

        self.folder = Path(tempfile.mkdtemp(prefix="hnbooks-fastembed-"))
        # The same graph file and tokenizer as ours; the configs fastembed reads come from the
        # weights package, with the truncation ours uses (sentence-transformers' max_seq_length).
        (self.folder / "model.onnx").symlink_to(model_dir / "model.onnx")
        shutil.copyfile(model_dir / "tokenizer.json", self.folder / "tokenizer.json")
        for config in ("config.json", "special_tokens_map.json"):
            shutil.copyfile(weights / config, self.folder / config)
        tokenizer_config = json.loads((weights / "tokenizer_config.json").read_text())
        tokenizer_config["model_max_length"] = max_length
        (self.folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
        self.model = TextEmbedding(
            model_name=FASTEMBED_NAMES[name], specific_model_path=str(self.folder), threads=threads
        )
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_length)
        self._last_lengths: list[int] = []
        self._last_texts: Sequence[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self._last_texts = texts
        self._last_lengths = []
        return np.stack(list(self.model.embed(list(texts), batch_size=FASTEMBED_BATCH)))

    def _lengths(self) -> list[int]:
        # Counted after the timed call, from the same tokenizer: fastembed does not report them.
        if not self._last_lengths and self._last_texts:
            encodings = self.tokenizer.encode_batch(list(self._last_texts))
            self._last_lengths = [len(encoding.ids) for encoding in encodings]
        return self._last_lengths

    @property
    def last_token_slots(self) -> int:
        lengths = self._lengths()
        chunks = range(0, len(lengths), FASTEMBED_BATCH)
        return sum(
            len(lengths[i : i + FASTEMBED_BATCH]) * max(lengths[i : i + FASTEMBED_BATCH])
            for i in chunks
        )

    @property
    def last_pad_waste(self) -> float:
        slots = self.last_token_slots
        return 1 - sum(self._lengths()) / slots if slots else 0.0

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def fastembed_pipeline(
    model_dir: Path, weights: Path, name: str, max_length: int, threads: int
) -> FastEmbedPipeline | None:
    """fastembed on our graph, or None (with how to install it) when it is missing or unknown."""
    try:
        import fastembed  # noqa: F401
    except ImportError:
        print(f"fastembed is not installed, its column is skipped; {FASTEMBED_INSTALL}")
        return None
    if name not in FASTEMBED_NAMES:
        print(f"fastembed has no name for {name}; its column is skipped")
        return None
    return FastEmbedPipeline(model_dir, weights, name, max_length, threads)


def encoder_alone_peak_rss(model_dir: Path, texts: list[str], threads: int) -> float:
    """Peak RSS (MB) of a fresh process that only loads the encoder and embeds `texts`."""
    code = (
        "import json, sys; from hnbooks.scoring.encoder import Encoder; "
        "texts = json.load(open(sys.argv[1])); "
        f"Encoder(sys.argv[2], device='cpu', threads={threads}).embed(texts); "
        "print([int(l.split()[1]) / 1024 for l in open('/proc/self/status') if l.startswith('VmHWM:')][0])"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(texts, handle)
    try:
        result = subprocess.run(
            [sys.executable, "-c", code, handle.name, str(model_dir)],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.unlink(handle.name)
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=2000, help="texts to embed (default 2000)")
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="folder of *.jsonl with a text field"
    )
    parser.add_argument(
        "--model", default=None, help="registered model name (default: the default model)"
    )
    parser.add_argument("--models-dir", type=Path, default=None, help="exported models folder")
    parser.add_argument(
        "--threads", type=int, default=available_cores(), help="threads for both runtimes"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="batch size of the ONNX encoder")
    parser.add_argument(
        "--slice", type=int, default=512, help="texts per interleaved slice (default 512)"
    )
    parser.add_argument(
        "--no-fastembed", action="store_true", help="skip the fastembed column even if installed"
    )
    args = parser.parse_args()

    from hnbooks.models.export import export_model
    from hnbooks.models.registry import DEFAULT_MODEL, model_spec, weights_path
    from hnbooks.scoring.encoder import Encoder

    name = args.model or DEFAULT_MODEL
    spec = model_spec(name)
    # The bench needs PyTorch anyway, so it exports the model itself when it is not exported yet.
    model_dir = export_model(name, args.models_dir)
    texts, source = bench_texts(args.data, args.texts)
    print(f"{len(texts)} texts from {source}; {args.threads} threads; model {name} ({model_dir})")

    torch_pipeline = TorchPipeline(weights_path(spec), spec.max_length, args.threads)
    ours = Encoder(model_dir, device="auto", threads=args.threads, batch_size=args.batch_size)
    ours_fp32 = Encoder(
        model_dir, device="auto", variant="fp32", threads=args.threads, batch_size=args.batch_size
    )
    pipelines: dict[str, tuple[Callable[[Sequence[str]], np.ndarray], Any]] = {
        "plain": (partial(torch_pipeline.embed, sort_by_length=False), torch_pipeline),
        "sorted": (partial(torch_pipeline.embed, sort_by_length=True), torch_pipeline),
        "ours": (ours.embed, ours),
        "ours fp32": (ours_fp32.embed, ours_fp32),
    }
    fastembed = None
    if not args.no_fastembed:
        fastembed = fastembed_pipeline(
            model_dir, weights_path(spec), name, spec.max_length, args.threads
        )
    if fastembed is not None:
        pipelines["fastembed"] = (fastembed.embed, fastembed)
    for embed, _ in pipelines.values():
        embed(texts[:WARM_UP_TEXTS])
    provider = ours.provider
    print(f"ours runs on: {provider}; interleaved in slices of {args.slice} texts", flush=True)

    labels = list(pipelines)
    seconds = dict.fromkeys(labels, 0.0)
    token_slots = dict.fromkeys(labels, 0)
    padded_slots = dict.fromkeys(labels, 0.0)
    vectors = {label: np.empty((len(texts), spec.dimension), dtype=np.float32) for label in labels}
    slice_starts = range(0, len(texts), args.slice)
    for slice_index, start in enumerate(slice_starts):
        part = texts[start : start + args.slice]
        # Each slice runs every pipeline, in a rotating order: load changes hit them alike.
        rotation = labels[slice_index % len(labels) :] + labels[: slice_index % len(labels)]
        for label in rotation:
            embed, stats = pipelines[label]
            started = time.perf_counter()
            vectors[label][start : start + len(part)] = embed(part)
            seconds[label] += time.perf_counter() - started
            token_slots[label] += stats.last_token_slots
            padded_slots[label] += stats.last_pad_waste * stats.last_token_slots
        done = start + len(part)
        rates = "  ".join(f"{label} {done / seconds[label]:.1f}/s" for label in labels)
        print(f"  {done:>6} texts  {rates}", flush=True)

    results: dict[str, dict[str, float]] = {}
    for label in labels:
        cosines = np.einsum("nd,nd->n", vectors[label], vectors["plain"])
        results[label] = {
            "seconds": seconds[label],
            "tps": len(texts) / seconds[label],
            "pad_waste": padded_slots[label] / token_slots[label],
            "cosine_min": float(cosines.min()),
            "cosine_mean": float(cosines.mean()),
        }

    peak = peak_rss_mb()
    alone = encoder_alone_peak_rss(model_dir, texts, args.threads)
    plain_tps = results["plain"]["tps"]
    sorted_tps = results["sorted"]["tps"]
    print()
    print(
        f"{'pipeline':<11}{'texts/s':>9}{'x plain':>9}{'x sorted':>10}{'pad waste':>11}{'cos min':>9}{'cos mean':>10}"
    )
    for label, result in results.items():
        print(
            f"{label:<11}{result['tps']:>9.1f}{result['tps'] / plain_tps:>9.2f}{result['tps'] / sorted_tps:>10.2f}"
            f"{result['pad_waste']:>11.1%}{result['cosine_min']:>9.4f}{result['cosine_mean']:>10.4f}"
        )
    print(
        f"peak RSS: {peak:.0f} MB this process (torch + onnxruntime); {alone:.0f} MB for the encoder alone"
    )
    fastembed_tps = results["fastembed"]["tps"] if "fastembed" in results else None
    if fastembed is not None:
        fastembed.close()
    summary = {
        "texts": len(texts),
        "plain_tps": round(plain_tps, 1),
        "sorted_torch_tps": round(sorted_tps, 1),
        "ours_tps": round(results["ours"]["tps"], 1),
        "ours_fp32_tps": round(results["ours fp32"]["tps"], 1),
        "ratio_vs_plain": round(results["ours"]["tps"] / plain_tps, 2),
        "ratio_vs_sorted_torch": round(results["ours"]["tps"] / sorted_tps, 2),
        "ratio_fp32_vs_plain": round(results["ours fp32"]["tps"] / plain_tps, 2),
        "cosine_min": round(results["ours"]["cosine_min"], 4),
        "cosine_mean": round(results["ours"]["cosine_mean"], 4),
        "cosine_min_fp32": round(results["ours fp32"]["cosine_min"], 5),
        "pad_waste": round(results["ours"]["pad_waste"], 4),
        "plain_pad_waste": round(results["plain"]["pad_waste"], 4),
        "peak_rss_mb": round(peak, 1),
        "encoder_alone_peak_rss_mb": round(alone, 1),
        "provider": provider,
        "fastembed_tps": round(fastembed_tps, 1) if fastembed_tps else None,
        "ratio_vs_fastembed": (
            round(results["ours"]["tps"] / fastembed_tps, 2) if fastembed_tps else None
        ),
        "ratio_fp32_vs_fastembed": (
            round(results["ours fp32"]["tps"] / fastembed_tps, 2) if fastembed_tps else None
        ),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
