#!/usr/bin/env bash
# Idempotent setup shared by serve.sh and test.sh: the wasm toolchain and the Python venv.
# Safe to run again; each step checks before it installs. Sourced, so it exports paths.
set -euo pipefail

PFD_CACHE="${PFD_CACHE:-$HOME/.cache/pfd-edge}"
export PFD_CACHE
# Builds live outside the clone so repeated runs (and CI on the same machine) reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PFD_CACHE/target}"
PFD_VENV="${PFD_VENV:-$PFD_CACHE/venv}"
export PFD_VENV
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '\033[1mbootstrap:\033[0m %s\n' "$*" >&2; }

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    log "missing system packages: $* — install them (sudo apt-get install $*) and re-run"
    exit 1
  fi
  log "apt-get install $*"
  if [ -z "$(find /var/lib/apt/lists -name '*Packages*' -print -quit 2>/dev/null)" ]; then
    apt-get update -qq
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  }
}

# 1. The wasm toolchain: rustup's wasm32-wasip1 target if installed, else Debian's rustc-web
#    recipe (xtask picks whichever it finds; see docs in xtask/src/main.rs).
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  need=()
  [ -x /usr/bin/rustc ] && /usr/bin/rustc --version 2>/dev/null | grep -q '^rustc 1\.9[6-9]' || need+=(rustc-web)
  [ -d /usr/lib/rustlib/src/rust/library ] || need+=(rust-web-src)
  [ -x /usr/lib/llvm-19/bin/wasm-ld ] || need+=(lld-19)
  [ -f /usr/lib/wasm32-wasi/libc.a ] || need+=(wasi-libc)
  if [ ${#need[@]} -gt 0 ]; then
    apt_install "${need[@]}"
  fi
fi

# 2. Python: numpy for the data generator; pytest + tritonclient for the end-to-end tests;
#    onnxruntime ships the libonnxruntime.so that pfd-host links against.
REQS="$ROOT/tests/requirements.txt"
STAMP="$PFD_VENV/.requirements.sha256"
want="$(sha256sum "$REQS" | cut -d' ' -f1)"
if [ ! -x "$PFD_VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    apt_install python3-venv
  fi
  log "creating $PFD_VENV"
  python3 -m venv "$PFD_VENV"
  "$PFD_VENV/bin/pip" install -q --upgrade pip
  "$PFD_VENV/bin/pip" install -q -r "$REQS"
  echo "$want" > "$STAMP"
fi
