#!/usr/bin/env bash
# The whole test suite — the README's test command, and what CI runs:
#   1. native unit tests of the shared core, the tract backend, pfd-host and xtask;
#   2. the wasm component, built for real (cargo xtask build-component);
#   3. pfd-host (release);
#   4. end-to-end tests: pfd-host serving the component over HTTP (tests/, pytest);
#   5. deploy artifacts validated with the real tools (deploy/validate.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
source scripts/bootstrap.sh

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "unit tests (native)"
cargo test --workspace --locked

step "wasm component"
cargo xtask build-component

step "pfd-host"
cargo build --release --locked -p pfd-host
export PFD_HOST_BIN="$CARGO_TARGET_DIR/release/pfd-host"

step "end-to-end tests (pfd-host + component over HTTP)"
"$PFD_VENV/bin/python" -m pytest tests -q -rs "$@"

step "deploy artifacts (helm, kubernetes schemas, promtool, hadolint, compose)"
bash deploy/validate.sh
