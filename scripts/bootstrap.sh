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

# Package lists are refreshed once per run before anything is installed: a new machine's lists
# are the image's, and those offer rustc-web 1.85 (bookworm main) where 1.96 sits in
# bookworm-security — installing from stale lists gives a compiler that cannot build the guest.
APT_UPDATED=0
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    log "missing system packages: $* — install them (sudo apt-get update && sudo apt-get install $*) and re-run"
    exit 1
  fi
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# The guest needs rustc >= 1.96 (tract-core 0.23 and spin-sdk 5.2 refuse older compilers).
DEBIAN_RUSTC_MIN=96
debian_rustc_ok() {
  [ -x /usr/bin/rustc ] || return 1
  local minor
  minor="$(/usr/bin/rustc --version 2>/dev/null | sed -n 's/^rustc 1\.\([0-9]*\)\..*/\1/p')"
  [ -n "$minor" ] && [ "$minor" -ge "$DEBIAN_RUSTC_MIN" ]
}

# 1. The wasm toolchain: rustup's wasm32-wasip1 target if installed, else Debian's rustc-web
#    recipe (xtask picks whichever it finds; see docs in xtask/src/main.rs).
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  need=()
  debian_rustc_ok || need+=(rustc-web)
  [ -d /usr/lib/rustlib/src/rust/library ] || need+=(rust-web-src)
  [ -x /usr/lib/llvm-19/bin/wasm-ld ] || need+=(lld-19)
  [ -f /usr/lib/wasm32-wasi/libc.a ] || need+=(wasi-libc)
  if [ ${#need[@]} -gt 0 ]; then
    apt_install "${need[@]}"
  fi
  if ! debian_rustc_ok; then
    log "Debian's rustc-web is $(/usr/bin/rustc --version 2>/dev/null || echo missing); the wasm guest needs 1.$DEBIAN_RUSTC_MIN or newer."
    log "Run 'apt-get update && apt-get install rustc-web rust-web-src lld-19 wasi-libc' (bookworm-security has 1.96), or install rustup's wasm32-wasip1 target."
    exit 1
  fi
  if [ ! -x /usr/lib/llvm-19/bin/wasm-ld ] || [ ! -f /usr/lib/wasm32-wasi/libc.a ] || [ ! -d /usr/lib/rustlib/src/rust/library ]; then
    log "the Debian wasm toolchain is incomplete (need rust-web-src, lld-19, wasi-libc)"
    exit 1
  fi
fi

# 2. A browser for the page's tests (tests/test_ui.py): Debian's chromium and its driver.
#    Optional on a developer machine without root (the browser tests then skip); CI runs as
#    root, installs them here and requires them (PFD_REQUIRE_BROWSER=1 in .ci/run).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt_install chromium chromium-driver
  else
    log "no chromium/chromedriver: the browser tests will skip (sudo apt-get install chromium chromium-driver)"
  fi
fi

# 3. Python: numpy for the data generator; pytest + tritonclient for the end-to-end tests;
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
