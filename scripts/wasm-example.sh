#!/usr/bin/env bash
# Builds a crate's example for wasm32-wasip1 (a command, +simd128 like the component) and runs it
# under the wasmtime CLI — to measure library code inside a wasm guest without a server:
#
#   scripts/wasm-example.sh pfd-signal stage_bench [args…]
#   scripts/wasm-example.sh pfd-core decode_bench
#
# The toolchain is picked like `cargo xtask build-component` picks it: rustup's wasm32-wasip1
# target when it is installed, else Debian's rustc-web + rust-web-src + lld-19 + wasi-libc
# (../shared/docs/toolchain.md). wasmtime: $PFD_WASMTIME_BIN (scripts/tools.sh installs it),
# else the one it installed in the cache, else `wasmtime` on PATH.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PFD_CACHE="${PFD_CACHE:-$HOME/.cache/pfd-edge}"
[ $# -ge 2 ] || { echo "usage: $0 PACKAGE EXAMPLE [ARGS…]" >&2; exit 2; }
package=$1 example=$2
shift 2
# Its own target directory: other RUSTFLAGS than the native and the component builds.
target_dir="$PFD_CACHE/target-wasm-examples"
flags=(-C target-feature=+simd128)
cargo_args=()
if rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  :
elif [ -x /usr/bin/rustc ] && [ -d /usr/lib/wasm32-wasi ] && [ -x /usr/lib/llvm-19/bin/wasm-ld ]; then
  export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
  export CARGO_TARGET_WASM32_WASIP1_LINKER=/usr/lib/llvm-19/bin/wasm-ld
  flags+=(-C link-self-contained=no -L /usr/lib/wasm32-wasi -C link-arg=/usr/lib/wasm32-wasi/crt1-command.o)
  cargo_args+=(-Zbuild-std=std,panic_abort)
else
  echo "no wasm32-wasip1 toolchain: rustup target add wasm32-wasip1, or see ../shared/docs/toolchain.md" >&2
  exit 1
fi
# CARGO_ENCODED_RUSTFLAGS (0x1f-separated) applies to the target only, not build scripts.
CARGO_ENCODED_RUSTFLAGS="$(IFS=$'\x1f'; echo "${flags[*]}")" \
  cargo build --quiet --release --manifest-path "$ROOT/Cargo.toml" --target wasm32-wasip1 \
  --target-dir "$target_dir" "${cargo_args[@]}" -p "$package" --example "$example"
wasmtime="${PFD_WASMTIME_BIN:-}"
[ -n "$wasmtime" ] || [ ! -x "$PFD_CACHE/tools/bin/wasmtime" ] || wasmtime="$PFD_CACHE/tools/bin/wasmtime"
[ -n "$wasmtime" ] || wasmtime="$(command -v wasmtime || true)"
[ -n "$wasmtime" ] || { echo "no wasmtime: run scripts/tools.sh, or put wasmtime on PATH" >&2; exit 1; }
exec "$wasmtime" run "$target_dir/wasm32-wasip1/release/examples/$example.wasm" "$@"
