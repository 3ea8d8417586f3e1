#!/usr/bin/env bash
# GPU smoke test, for a machine with an NVIDIA GPU: builds pfd-host with the CUDA feature,
# loads every model in models/ on ONNX Runtime's CUDA provider, runs the reference vectors,
# compares the logits with ONNX Runtime on CPU (rtol 1e-3) and prints latency.
#
# Needs a CUDA build of libonnxruntime: `pip install onnxruntime-gpu` (its wheel ships
# libonnxruntime.so plus the CUDA provider library); point PFD_ORT_LIB at it, or let pfd-host
# find it in $PFD_VENV.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pfd-edge/target}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || {
  echo "gpu-smoke: no NVIDIA GPU visible (nvidia-smi failed)" >&2
  exit 1
}
cargo build --release --locked -p pfd-host --features cuda
exec "$CARGO_TARGET_DIR/release/pfd-host" nn-check --device cuda "$@"
