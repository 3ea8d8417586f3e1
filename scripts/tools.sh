#!/usr/bin/env bash
# Test-only tools, installed once into the build cache (idempotent; sourced by scripts/test.sh):
#   - the wasmtime CLI, the second, independent host the end-to-end suite runs the portable
#     component on (`wasmtime serve`), at exactly the wasmtime version pfd-host is built with,
#     so a difference between the two hosts is never a wasmtime version difference.
# Exports PFD_WASMTIME_BIN.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PFD_CACHE="${PFD_CACHE:-$HOME/.cache/pfd-edge}"
TOOLS="$PFD_CACHE/tools"

# The version pfd-host pins (host/Cargo.toml: wasmtime = { version = "=X.Y.Z", ... }).
WASMTIME_VERSION="$(sed -n 's/^wasmtime = { version = "=\([0-9.]*\)".*/\1/p' "$ROOT/host/Cargo.toml")"
if [ -z "$WASMTIME_VERSION" ]; then
  echo "tools: cannot read pfd-host's wasmtime version from host/Cargo.toml" >&2
  exit 1
fi
# Only what `wasmtime serve` (and `wasmtime compile`) need. Why not the default features: they
# add winch, pulley, GC, the wast runner, wasi-nn/tls/keyvalue/config, the explorer, objdump
# (capstone) and the cache (zstd) — about twice the compile time on CI's 2 cores, none of it used.
# component-model-async is listed because wasmtime-cli 48's `serve` does not compile without it,
# pooling-allocator because `serve` uses it by default (without it every run needs
# `-O pooling-allocator=n`, which is not how people run it).
WASMTIME_FEATURES="run,serve,component-model-async,pooling-allocator,compile,cranelift,parallel-compilation"
PFD_WASMTIME_BIN="$TOOLS/bin/wasmtime"
# What was installed is recorded beside it: a version or feature change reinstalls.
STAMP="$TOOLS/wasmtime-cli.installed"
want="wasmtime-cli $WASMTIME_VERSION $WASMTIME_FEATURES"
if [ ! -x "$PFD_WASMTIME_BIN" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "tools: cargo install wasmtime-cli $WASMTIME_VERSION ($WASMTIME_FEATURES) into $TOOLS" >&2
  start=$(date +%s)
  cargo install --locked --quiet --force --root "$TOOLS" --version "=$WASMTIME_VERSION" \
    --no-default-features --features "$WASMTIME_FEATURES" wasmtime-cli
  echo "$want" > "$STAMP"
  echo "tools: wasmtime-cli installed in $(( $(date +%s) - start ))s" >&2
fi
export PFD_WASMTIME_BIN
