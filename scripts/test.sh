#!/usr/bin/env bash
# The whole test suite — the README's test command, and what CI runs:
#   1. the wasm components, built for real (cargo xtask build-component; builds pfd-host too);
#   2. native tests: the shared core, the tract backend, pfd-host (units, and its own
#      end-to-end tests against the component built in 1) and xtask;
#   3. end-to-end tests: pfd-host serving the components, and `wasmtime serve` serving the
#      portable one, over HTTP (tests/, pytest);
#   4. a 10 000-request soak (scripts/soak.py) and a short run of every fuzz target
#      (scripts/fuzz.sh);
#   5. deploy artifacts validated with the real tools (deploy/validate.sh).
# Native tests run in the release profile: they share every compiled dependency (wasmtime,
# cranelift…) with the release pfd-host instead of building them a second time.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
source scripts/bootstrap.sh

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "toolchain"
# Printed on every run so a CI log says which compilers built what (a stale rustc-web once
# broke a fresh machine's build; this makes such a drift visible at the top of the log).
echo "native: $(rustc --version); $(cargo --version)"
if rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  echo "wasm:   rustup target wasm32-wasip1 ($(rustc --version))"
else
  echo "wasm:   Debian $(/usr/bin/rustc --version); $(/usr/lib/llvm-19/bin/wasm-ld --version | head -1)"
fi
echo "python: $("$PFD_VENV/bin/python" --version)"

step "wasm components (and pfd-host)"
cargo xtask build-component
# The deliberately faulty component pfd-host's fault tests serve (never shipped).
cargo xtask build-component --only fault
export PFD_HOST_BIN="$CARGO_TARGET_DIR/release/pfd-host"

step "native tests"
# The same package selection as xtask's pfd-host build (the workspace's default members: every
# native crate, not the wasm ones), so every dependency is compiled once, with one feature set.
PFD_REQUIRE_COMPONENT=1 cargo test --release --locked

step "end-to-end tests (pfd-host and wasmtime serve, component over HTTP)"
source scripts/tools.sh
echo "second host: $("$PFD_WASMTIME_BIN" --version)"
PFD_REQUIRE_WASMTIME=1 "$PFD_VENV/bin/python" -m pytest tests -q -rs "$@"

step "soak (10 000 mixed requests at concurrency 128: no 5xx, none lost, RSS settles)"
PFD_HOST_BIN="$PFD_HOST_BIN" "$PFD_VENV/bin/python" scripts/soak.py --requests 10000 --conc 128

step "fuzzing (each target for a short while on its committed corpus)"
scripts/fuzz.sh --seconds "${PFD_FUZZ_SECONDS:-15}"

step "deploy artifacts (helm, kubernetes schemas, promtool, hadolint, compose)"
bash deploy/validate.sh
