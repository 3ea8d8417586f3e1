#!/usr/bin/env bash
# Builds what is missing and serves the component with pfd-host on 127.0.0.1:3000
# (override with PFD_LISTEN, or pass pfd-host flags: scripts/serve.sh --listen 127.0.0.1:8080).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
source scripts/bootstrap.sh
# Only the component pfd-host will serve: the wasi-nn build (its default) unless the arguments
# name the portable one. Why not both: the two flavours share one cargo target and differ in
# features, so building both recompiles the component crate twice (~4 s) even when nothing
# changed. xtask builds pfd-host too, with the package selection scripts/test.sh uses (a plain
# `cargo build -p pfd-host` unifies features differently and recompiles wasmtime for minutes),
# and skips pre-initialisation/componentisation when their inputs are unchanged.
flavour=wasi-nn
for arg in "$@"; do
  case "$arg" in *pfd-edge.wasm) flavour=portable ;; esac
done
cargo xtask build-component --only "$flavour"
exec "$CARGO_TARGET_DIR/release/pfd-host" serve --manifest spin.toml "$@"
